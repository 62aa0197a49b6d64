"""Env state saved as data (no pickle): classic-control envs continue exactly after a restore;
envs holding other objects are not captured (a resumed run starts fresh episodes, or opts in to a
pickle); a restore sets only attributes the fresh env has, with values of the same kind."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from agentwm.agents import env_state
from agentwm.checkpoint import decode_tree, encode_tree
from agentwm.envs.gym import make_vector_env


def _steps(envs: gym.vector.SyncVectorEnv, actions: np.ndarray) -> list[np.ndarray]:
    return [envs.step(a)[0] for a in actions]


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1", "Acrobot-v1"])
def test_classic_control_continues_exactly_after_a_restore(name: str) -> None:
    envs = make_vector_env(name, 2, seed=3)
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    envs.reset(seed=3)
    space = envs.action_space
    space.seed(0)
    for _ in range(7):
        envs.step(space.sample())
    skeleton, tensors = encode_tree(env_state.capture(envs))
    saved = decode_tree(json.loads(json.dumps(skeleton)), tensors)  # through JSON + tensors, as on disk
    actions = np.stack([space.sample() for _ in range(30)])
    expected = _steps(envs, actions)
    fresh = make_vector_env(name, 2, seed=99)
    assert isinstance(fresh, gym.vector.SyncVectorEnv)
    fresh.reset(seed=99)
    env_state.restore(fresh, saved)
    assert all(np.array_equal(a, b) for a, b in zip(_steps(fresh, actions), expected))


class _Physics:
    """Stands for an engine handle (MuJoCo, a renderer): not plain data."""


class _OpaqueEnv(gym.Env[np.ndarray, int]):
    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.physics = _Physics()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> Any:
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_envs_holding_objects_are_not_captured_and_restores_are_checked() -> None:
    opaque = gym.vector.SyncVectorEnv([_OpaqueEnv])
    opaque.reset(seed=0)
    assert env_state.capture(opaque) is None
    envs = make_vector_env("CartPole-v1", 1, seed=0)
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    envs.reset(seed=0)
    saved = env_state.capture(envs)
    assert saved is not None
    planted = json.loads(json.dumps(saved, default=lambda x: x.tolist()))
    planted["envs"][0][-1]["attrs"]["__class__"] = "os.system"
    with pytest.raises(ValueError, match="unknown env attribute"):
        env_state.restore(envs, planted)
    other = json.loads(json.dumps(saved, default=lambda x: x.tolist()))
    other["envs"][0][-1]["attrs"]["gravity"] = "a string"
    with pytest.raises(ValueError, match="another kind of value"):
        env_state.restore(envs, other)
    with pytest.raises(ValueError, match="checkpoint has 1 envs"):
        two = make_vector_env("CartPole-v1", 2, seed=0)
        assert isinstance(two, gym.vector.SyncVectorEnv)
        env_state.restore(two, saved)
