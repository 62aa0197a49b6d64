"""DreamerV3-style agents: RSSM world model + actor-critic in imagination, on gymnasium and DMC.

``train(resolve_config(["tiny"], env="CartPole-v1", steps=10_000), "runs/cartpole")`` trains;
``evaluate_logdir("runs/cartpole")`` evaluates the newest checkpoint. CLI: ``agentwm train dreamer``
and ``agentwm eval dreamer``.
"""

from agentwm.agents.dreamer.agent import Actor, Critic, DreamerAgent, imagination_targets
from agentwm.agents.dreamer.config import PRESETS, DreamerConfig, resolve_config
from agentwm.agents.dreamer.replay import SequenceReplay
from agentwm.agents.dreamer.train import evaluate, evaluate_logdir, plot_learning_curve, train
from agentwm.agents.overrides import parse_override

__all__ = [
    "PRESETS",
    "Actor",
    "Critic",
    "DreamerAgent",
    "DreamerConfig",
    "SequenceReplay",
    "evaluate",
    "evaluate_logdir",
    "imagination_targets",
    "parse_override",
    "plot_learning_curve",
    "resolve_config",
    "train",
]
