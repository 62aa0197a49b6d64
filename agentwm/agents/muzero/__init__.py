"""MuZero: learned representation, dynamics and prediction nets searched by MCTS."""

from agentwm.agents.muzero.agent import (
    EpisodeReplay,
    MuZeroConfig,
    evaluate,
    load_muzero,
    save_muzero,
    train_muzero,
)

__all__ = [
    "EpisodeReplay",
    "MuZeroConfig",
    "evaluate",
    "load_muzero",
    "save_muzero",
    "train_muzero",
]
