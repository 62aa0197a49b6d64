"""DeepMind Control suite tasks as gymnasium environments: ``dmc:domain-task``, proprio or pixels.

``make_dmc("dmc:cartpole-swingup", pixels=True, action_repeat=2)`` gives a ``gymnasium.Env`` whose
observations are either the flattened proprioceptive vector (``float32 [D]``, the suite's
observation dict concatenated in key order) or a rendered ``uint8 [3, 64, 64]`` image (channels
first, the layout agentwm's image models read). Actions are the suite's bounded ``[-1, 1]`` box.

Episode ends: suite tasks have a fixed time limit (1,000 physics-control steps) and no terminal
states, so ``ts.last()`` is reported as ``truncated`` and ``terminated`` is set only when the suite
returns discount 0 (a real terminal). Rewards are summed over the ``action_repeat`` repeats.

Rendering runs headless: unless ``MUJOCO_GL`` is set already, it is set to ``egl`` before
``dm_control`` is imported (on this project's machines ``egl`` works and ``osmesa`` does not;
set ``MUJOCO_GL=osmesa`` yourself where only Mesa is installed).

The dm_control import is lazy: without the ``dmc`` extra the error names it.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

PREFIX = "dmc:"


def parse_dmc_name(name: str) -> tuple[str, str]:
    """``"dmc:cartpole-swingup"`` -> ``("cartpole", "swingup")``; tasks with underscores or
    dashes in their own name (``"dmc:ball_in_cup-catch"``, ``"dmc:walker-walk"``) split at the first dash."""
    if not name.startswith(PREFIX):
        raise ValueError(f"a DMC task name looks like 'dmc:domain-task' (e.g. dmc:cartpole-swingup), got {name!r}")
    body = name[len(PREFIX) :]
    domain, sep, task = body.partition("-")
    if not sep or not domain or not task:
        raise ValueError(f"a DMC task name looks like 'dmc:domain-task' (e.g. dmc:walker-walk), got {name!r}")
    return domain, task


def _import_suite() -> Any:
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from dm_control import suite
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("DeepMind Control tasks need the dmc extra: pip install 'agentwm[dmc]'") from err
    return suite


class DMCEnv(gym.Env[np.ndarray, np.ndarray]):
    """One DeepMind Control task behind the gymnasium API (see the module docstring).

    Args:
        domain: suite domain, e.g. ``"cartpole"``.
        task: suite task, e.g. ``"swingup"``.
        pixels: observe rendered ``uint8 [3, size, size]`` images instead of the proprio vector.
        size: image side in pixels.
        action_repeat: physics-control steps per ``step`` call (rewards summed).
        camera: camera id to render; default 2 for quadruped (its camera 0 is far away), else 0.
        seed: seed of the task's random state; ``reset(seed=...)`` re-seeds.
        render_size: side of ``render()`` frames (videos); pixel observations stay at ``size``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        pixels: bool = False,
        size: int = 64,
        action_repeat: int = 1,
        camera: int | None = None,
        seed: int | None = None,
        render_size: int | None = None,
    ) -> None:
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if size < 8:
            raise ValueError(f"image size must be >= 8 pixels, got {size}")
        self._suite = _import_suite()
        self.domain, self.task = domain, task
        self.pixels, self.size, self.action_repeat = pixels, size, action_repeat
        self.render_size = render_size or size
        self.camera = camera if camera is not None else (2 if domain == "quadruped" else 0)
        self.render_mode = "rgb_array"
        self._env = self._load(seed)
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)
        self.action_space = gym.spaces.Box(self._low, self._high, dtype=np.float32)
        if pixels:
            self.observation_space = gym.spaces.Box(0, 255, (3, size, size), dtype=np.uint8)
        else:
            dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), dtype=np.float32)

    def _load(self, seed: int | None) -> Any:
        try:
            return self._suite.load(self.domain, self.task, task_kwargs={"random": seed})
        except ValueError as err:
            raise ValueError(f"unknown DMC task {self.domain}-{self.task}: {err}") from err

    def _observe(self, ts: Any) -> np.ndarray:
        if self.pixels:
            return np.ascontiguousarray(self._frame(self.size).transpose(2, 0, 1))
        parts = [np.asarray(v, dtype=np.float32).reshape(-1) for v in ts.observation.values()]
        return np.concatenate(parts)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:  # the suite's random state is fixed at load time
            self._env = self._load(seed)
        ts = self._env.reset()
        return self._observe(ts), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float32).reshape(self.action_space.shape)
        action = np.clip(action, self._low, self._high)
        reward = 0.0
        for _ in range(self.action_repeat):
            ts = self._env.step(action)
            reward += float(ts.reward or 0.0)
            if ts.last():
                break
        terminated = bool(ts.last() and ts.discount == 0.0)
        truncated = bool(ts.last() and not terminated)
        return self._observe(ts), reward, terminated, truncated, {"discount": float(ts.discount)}

    def _frame(self, side: int) -> np.ndarray:
        frame: np.ndarray = self._env.physics.render(side, side, camera_id=self.camera)
        return frame

    def render(self) -> np.ndarray:
        """The current frame as ``uint8 [render_size, render_size, 3]`` (height, width, channels)."""
        return self._frame(self.render_size)

    def close(self) -> None:
        self._env.close()


def make_dmc(
    name: str,
    *,
    pixels: bool = False,
    size: int = 64,
    action_repeat: int = 1,
    seed: int | None = None,
    camera: int | None = None,
    render_size: int | None = None,
) -> DMCEnv:
    """Build a :class:`DMCEnv` from a ``"dmc:domain-task"`` name.

    Example:
        >>> env = make_dmc("dmc:cartpole-swingup", action_repeat=2, seed=0)
        >>> obs, _ = env.reset()
        >>> obs.shape
        (5,)
    """
    domain, task = parse_dmc_name(name)
    return DMCEnv(
        domain, task, pixels=pixels, size=size, action_repeat=action_repeat, seed=seed, camera=camera,
        render_size=render_size,
    )
