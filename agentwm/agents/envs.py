"""Gymnasium adapters: action specs from spaces, and random-transition collection for model learning."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from agentwm.worldmodels.base import ActionSpec


def action_spec_of(space: gym.Space[Any]) -> ActionSpec:
    """The :class:`ActionSpec` of a gymnasium action space (Discrete or 1-D Box)."""
    if isinstance(space, gym.spaces.Discrete):
        return ActionSpec("discrete", int(space.n))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        low, high = float(np.min(space.low)), float(np.max(space.high))
        return ActionSpec("continuous", int(space.shape[0]), low, high)
    raise TypeError(f"unsupported action space {space}; agentwm handles Discrete and 1-D Box spaces")


def to_env_action(action: Tensor, spec: ActionSpec) -> Any:
    """Model action row ``[A]`` (one-hot for discrete) → what ``env.step`` takes."""
    if spec.kind == "discrete":
        return int(action.argmax(-1).item())
    return action.detach().cpu().numpy().astype(np.float32).clip(spec.low, spec.high)


def collect_random_transitions(env_id: str, n: int, seed: int = 0) -> dict[str, Tensor]:
    """Step ``env_id`` with uniformly random actions for ``n`` transitions.

    Returns float tensors ``obs [n, D]``, ``action [n, A]`` (one-hot for discrete), ``next_obs``,
    ``reward [n]`` and ``continue [n]`` (0 where the episode terminated; time-limit truncations
    still count as continuing, since the state itself was not terminal).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    env = gym.make(env_id)
    spec = action_spec_of(env.action_space)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "action", "next_obs", "reward", "continue")}
    for _ in range(n):
        raw = env.action_space.sample()
        nxt, reward, terminated, truncated, _ = env.step(raw)
        if spec.kind == "discrete":
            action = np.eye(spec.dim, dtype=np.float32)[int(raw)]
        else:
            action = np.asarray(raw, dtype=np.float32)
        rows["obs"].append(np.asarray(obs, dtype=np.float32))
        rows["action"].append(action)
        rows["next_obs"].append(np.asarray(nxt, dtype=np.float32))
        rows["reward"].append(float(reward))
        rows["continue"].append(0.0 if terminated else 1.0)
        obs = nxt
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in rows.items()}
