"""DreamerV3-style agents: RSSM world model + actor-critic in imagination, on gymnasium and DMC.

``train(resolve_config(["tiny"], env="CartPole-v1", steps=10_000), "runs/cartpole")`` trains;
``evaluate_logdir("runs/cartpole")`` evaluates the newest checkpoint and ``load_agent`` loads it to
act in your own loop; ``compare_runs([...])`` sums up several runs. CLI: ``agentwm train dreamer``,
``agentwm eval dreamer``, ``agentwm compare dreamer``; a worked example: examples/dreamer_cartpole.py.
"""

from agentwm.agents.dreamer.actor_critic import Actor, Critic
from agentwm.agents.dreamer.agent import DreamerAgent, imagination_targets, replay_targets
from agentwm.agents.dreamer.config import PRESETS, DreamerConfig, resolve_config
from agentwm.agents.dreamer.evaluation import evaluate, evaluate_logdir, load_agent, plot_learning_curve
from agentwm.agents.dreamer.params import count_agent_params
from agentwm.agents.dreamer.report import compare_runs, plot_runs
from agentwm.agents.dreamer.train import train
from agentwm.agents.overrides import parse_override
from agentwm.agents.replay import SequenceReplay

__all__ = [
    "PRESETS",
    "Actor",
    "Critic",
    "DreamerAgent",
    "DreamerConfig",
    "SequenceReplay",
    "compare_runs",
    "count_agent_params",
    "evaluate",
    "evaluate_logdir",
    "imagination_targets",
    "load_agent",
    "parse_override",
    "plot_learning_curve",
    "plot_runs",
    "replay_targets",
    "resolve_config",
    "train",
]
