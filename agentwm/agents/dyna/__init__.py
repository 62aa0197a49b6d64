"""Dyna-Q on a tabular count model, and the model-free Double DQN baseline it is compared with."""

from agentwm.agents.dyna.agent import (
    DEFAULT_TARGETS,
    DynaConfig,
    QTable,
    evaluate_greedy,
    load_dyna,
    run_dyna,
    save_dyna,
)
from agentwm.agents.dyna.dqn import (
    DQNConfig,
    run_dqn,
)

__all__ = [
    "DEFAULT_TARGETS",
    "DQNConfig",
    "DynaConfig",
    "QTable",
    "evaluate_greedy",
    "load_dyna",
    "run_dqn",
    "run_dyna",
    "save_dyna",
]
