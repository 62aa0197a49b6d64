"""Dyna-Q (Sutton 1990): tabular Q-learning plus ``k`` planning updates from a learned model per real step.

Read top to bottom. Every real step (1) acts epsilon-greedily, (2) applies a Q-learning update to
the real transition, (3) records it in a :class:`~agentwm.worldmodels.tabular.TabularModel`, and
(4) replays ``k`` imagined transitions: a previously tried ``(s, a)`` chosen uniformly, its
outcome sampled from the model, and the same Q-learning update applied. ``k = 0`` is plain
Q-learning, so the real steps a run needs to reach a target return measure what the model buys.

Runs on any gymnasium task with Discrete observations and actions (FrozenLake, Taxi, CliffWalking).
The learning curve is the greedy policy's mean return on fixed evaluation episodes, measured every
``eval_every`` real steps.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from agentwm.checkpoint import load_config, load_weights, save_module
from agentwm.worldmodels.tabular import TabularModel

DEFAULT_TARGETS: dict[str, float] = {"Taxi-v4": 7.0, "FrozenLake-v1": 0.7, "CliffWalking-v1": -13.0}
"""Greedy mean evaluation return that counts as solved, per task (used when ``target_return`` is unset)."""


class DynaConfig(BaseModel):
    """Settings of a Dyna-Q run; every CLI flag of ``agentwm train dyna`` maps to one field."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str = Field(default="Taxi-v4", description="gymnasium id with Discrete observations and actions")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of gym.make")
    planning_steps: int = Field(default=10, ge=0, le=10_000, description="k: imagined updates per real step (0: Q-learning)")
    real_steps: int = Field(default=20_000, ge=1, description="budget of real environment steps")
    alpha: float = Field(default=0.5, gt=0.0, le=1.0, description="Q-learning step size")
    gamma: float = Field(default=0.95, ge=0.0, le=1.0, description="discount")
    epsilon: float = Field(default=0.1, ge=0.0, le=1.0, description="exploration rate of the behaviour policy")
    eval_every: int = Field(default=250, ge=1, description="real steps between greedy evaluations")
    eval_episodes: int = Field(default=10, ge=1, description="episodes per greedy evaluation (fixed seeds)")
    target_return: float | None = Field(
        default=None, description="mean greedy return that counts as solved; the task's default if unset"
    )
    stop_at_target: bool = Field(default=True, description="end the run once the target is reached")
    seed: int = Field(default=0, description="seed of the environment, exploration and planning samples")


class QTable(nn.Module):
    """The action values ``q [S, A]`` as a buffer, so they checkpoint with safetensors."""

    q: torch.Tensor

    def __init__(self, n_states: int, n_actions: int) -> None:
        super().__init__()
        self.register_buffer("q", torch.zeros(n_states, n_actions, dtype=torch.float64))


def _spaces(env: gym.Env[Any, Any]) -> tuple[int, int]:
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Discrete) or not isinstance(act, gym.spaces.Discrete):
        raise TypeError(f"Dyna-Q needs Discrete observation and action spaces, got {obs} and {act}")
    return int(obs.n), int(act.n)


def _greedy(q: np.ndarray, s: int, rng: random.Random) -> int:
    row = q[s]
    best = np.flatnonzero(row == row.max())
    return int(best[0]) if len(best) == 1 else int(rng.choice(best.tolist()))


def evaluate_greedy(env: gym.Env[Any, Any], q: np.ndarray, episodes: int, seed: int) -> float:
    """Mean return of the greedy policy over ``episodes`` episodes with seeds ``seed, seed+1, ...``.

    Ties go to the lowest action, so the evaluation is deterministic given the seeds.
    """
    total = 0.0
    for i in range(episodes):
        s, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(np.argmax(q[int(s)])))
            total += float(r)
            done = terminated or truncated
    return total / episodes


def run_dyna(config: DynaConfig, out: str | Path | None = None) -> tuple[TabularModel, QTable, dict[str, Any]]:
    """Run Dyna-Q; return the model, the Q-table and a JSON-ready summary.

    The summary has the learning ``curve`` (``[real_steps, greedy mean return]`` pairs),
    ``steps_to_target`` (first evaluation at or above the target, ``None`` if never), the number
    of real and planning updates and the wall time. With ``out``, model and Q-table are saved.
    """
    start = time.perf_counter()
    env = gym.make(config.env, **config.env_kwargs)
    eval_env = gym.make(config.env, **config.env_kwargs)
    n_states, n_actions = _spaces(env)
    target = config.target_return if config.target_return is not None else DEFAULT_TARGETS.get(config.env)
    rng = random.Random(config.seed)
    model = TabularModel(n_states, n_actions)
    table = QTable(n_states, n_actions)
    q = table.q.numpy()  # a view: updates land in the checkpointed buffer
    alpha, gamma, k = config.alpha, config.gamma, config.planning_steps

    def td_update(s: int, a: int, r: float, s2: int, cont: float) -> None:
        q[s, a] += alpha * (r + gamma * cont * q[s2].max() - q[s, a])

    curve: list[list[float]] = []
    steps_to_target: int | None = None
    episodes = 0
    s, _ = env.reset(seed=config.seed)
    env.action_space.seed(config.seed)
    for step in range(1, config.real_steps + 1):
        # --- act in the real environment -------------------------------------------------------
        a = rng.randrange(n_actions) if rng.random() < config.epsilon else _greedy(q, int(s), rng)
        s2, r, terminated, truncated, _ = env.step(a)
        # --- direct RL update and model learning ----------------------------------------------
        td_update(int(s), a, float(r), int(s2), 0.0 if terminated else 1.0)
        model.update(int(s), a, float(r), int(s2), bool(terminated))
        # --- planning: k imagined transitions from the model ----------------------------------
        seen = model.seen
        for _ in range(k):
            ps, pa = seen[rng.randrange(len(seen))]
            pr, ps2, pc = model.sample(ps, pa, rng)
            td_update(ps, pa, pr, ps2, pc)
        s = s2
        if terminated or truncated:
            episodes += 1
            s, _ = env.reset()
        # --- evaluation ------------------------------------------------------------------------
        if step % config.eval_every == 0:
            score = evaluate_greedy(eval_env, q, config.eval_episodes, seed=10_000 + config.seed)
            curve.append([step, score])
            if target is not None and steps_to_target is None and score >= target:
                steps_to_target = step
                if config.stop_at_target:
                    break
    env.close()
    eval_env.close()
    summary: dict[str, Any] = {
        "family": "dyna",
        "env": config.env,
        "planning_steps": k,
        "target_return": target,
        "steps_to_target": steps_to_target,
        "final_eval_return": curve[-1][1] if curve else None,
        "real_steps": step,
        "planning_updates": step * k,
        "episodes": episodes,
        "pairs_tried": len(model.seen),
        "curve": curve,
        "wall_s": round(time.perf_counter() - start, 2),
    }
    if out is not None:
        save_dyna(out, model, table, config)
        summary["out"] = str(out)
    return model, table, summary


class _Bundle(nn.Module):
    def __init__(self, model: TabularModel, table: QTable) -> None:
        super().__init__()
        self.model = model
        self.table = table


def save_dyna(folder: str | Path, model: TabularModel, table: QTable, config: DynaConfig) -> Path:
    """Write model counts and Q-table (safetensors) and the config (JSON), each atomically."""
    meta = {
        "family": "dyna",
        "n_states": model.n_states,
        "n_actions": model.n_actions,
        "config": config.model_dump(),
    }
    return save_module(folder, _Bundle(model, table), meta)


def load_dyna(folder: str | Path) -> tuple[TabularModel, QTable, DynaConfig]:
    """Rebuild a saved Dyna-Q run: its tabular model, Q-table and config."""
    meta = load_config(folder)
    if meta.get("family") != "dyna":
        raise ValueError(f"{folder} holds a {meta.get('family')!r} checkpoint, not a dyna one")
    bundle = _Bundle(TabularModel(meta["n_states"], meta["n_actions"]), QTable(meta["n_states"], meta["n_actions"]))
    load_weights(folder, bundle)
    return bundle.model, bundle.table, DynaConfig(**meta["config"])
