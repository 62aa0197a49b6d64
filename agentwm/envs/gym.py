"""Gymnasium adapters: action specs from spaces, and random-transition collection for model learning."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from agentwm.worldmodels.base import ActionSpec


@dataclass(frozen=True)
class TaskRules:
    """A task's public termination and reward rules, evaluated on (imagined) observations.

    Used by :class:`agentwm.worldmodels.task_rules.WithTaskRules` so that planners learn only
    the dynamics, as PETS does on these tasks.
    """

    termination: Callable[[Tensor], Tensor]
    reward: Callable[[Tensor, Tensor, Tensor], Tensor]


def _cartpole_terminal(next_obs: Tensor) -> Tensor:
    # gymnasium's CartPole ends an episode when |x| > 2.4 or |theta| > 12 degrees.
    return (next_obs[..., 0].abs() > 2.4) | (next_obs[..., 2].abs() > 12 * 2 * math.pi / 360)


def _cartpole_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return torch.ones(obs.shape[:-1], dtype=obs.dtype, device=obs.device)  # +1 for every step taken


def _never_terminal(next_obs: Tensor) -> Tensor:
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def _pendulum_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    # gymnasium's Pendulum cost on the pre-step state: theta^2 + 0.1 thetadot^2 + 0.001 torque^2.
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = action[..., 0].clamp(-2.0, 2.0)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


KNOWN_RULES: dict[str, TaskRules] = {
    "CartPole-v0": TaskRules(_cartpole_terminal, _cartpole_reward),
    "CartPole-v1": TaskRules(_cartpole_terminal, _cartpole_reward),
    "Pendulum-v1": TaskRules(_never_terminal, _pendulum_reward),
}
"""Rules of tasks whose termination and reward are public and simple."""


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


# ------------------------------------------------------------------------------------------------
# Environments for learning agents: gymnasium or DeepMind Control, vector or pixel observations,
# action repeat, vectorised.


VIDEO_SIDE = 256  # DMC frames rendered for videos (gymnasium envs render at their own size)


class ActionRepeat(gym.Wrapper[Any, Any, Any, Any]):
    """Repeat each action ``repeat`` times, summing rewards and stopping at an episode end."""

    def __init__(self, env: gym.Env[Any, Any], repeat: int) -> None:
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action repeat must be >= 1, got {repeat}")
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class PixelObservation(gym.ObservationWrapper[Any, Any, Any]):
    """Replace observations by the env's ``rgb_array`` frame resized to ``uint8 [3, size, size]``.

    Resizing uses Pillow's area-averaging filter (gymnasium's own resize wrapper needs OpenCV,
    which agentwm does not otherwise depend on).
    """

    def __init__(self, env: gym.Env[Any, Any], size: int = 64) -> None:
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"pixel observations need render_mode='rgb_array', env has {env.render_mode!r}")
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (3, size, size), dtype=np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        from PIL import Image

        frame = np.asarray(self.env.render(), dtype=np.uint8)
        image = Image.fromarray(frame).resize((self.size, self.size), Image.Resampling.BOX)
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def make_env(
    name: str,
    *,
    pixels: bool = False,
    size: int = 64,
    action_repeat: int = 1,
    time_limit: int | None = None,
    seed: int | None = None,
    render: bool = False,
) -> gym.Env[Any, Any]:
    """One environment: ``dmc:domain-task`` (see :mod:`agentwm.envs.dmc`) or a gymnasium id.

    Continuous actions stay in the env's own units; observations are the state vector
    (``float32 [D]``) or, with ``pixels``, ``uint8 [3, size, size]`` frames. With ``render``,
    ``env.render()`` returns full-size ``rgb_array`` frames for videos (DMC: 256 x 256).
    """
    env: gym.Env[Any, Any]
    if name.startswith("dmc:"):
        from agentwm.envs.dmc import make_dmc

        env = make_dmc(name, pixels=pixels, size=size, action_repeat=action_repeat, seed=seed,
                       render_size=VIDEO_SIDE if render else None)  # fmt: skip
    else:
        try:
            env = gym.make(name, render_mode="rgb_array") if pixels or render else gym.make(name)
        except gym.error.Error as err:
            raise ValueError(f"cannot make gymnasium env {name!r}: {err}") from err
        if pixels:
            env = PixelObservation(env, size)
        if action_repeat > 1:
            env = ActionRepeat(env, action_repeat)
    if time_limit is not None:
        env = gym.wrappers.TimeLimit(env, time_limit)
    return env


def make_vector_env(
    name: str, num_envs: int, *, seed: int = 0, asynchronous: bool = False, **kwargs: Any
) -> gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv:
    """``num_envs`` copies of :func:`make_env` in a gymnasium vector env: in-process, or with
    ``asynchronous`` one worker process per copy (``step_async``/``step_wait`` then let the caller
    work while the envs step).

    Autoreset is ``NEXT_STEP``: the step after an episode ends returns the next episode's first
    observation (reward 0, the action ignored), which is exactly the ``is_first`` row that Dreamer's
    replay stores. Seeds are ``seed + i`` per copy.
    """
    fns = [
        (lambda i=i: make_env(name, seed=seed + i, **kwargs))
        for i in range(num_envs)
    ]
    mode = gym.vector.AutoresetMode.NEXT_STEP
    if asynchronous:
        # spawn, not fork: a forked worker inherits the parent's EGL/OpenMP state and can hang (seen
        # here with MuJoCo rendering after the parent had rendered).
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="spawn")
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
