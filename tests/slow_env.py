"""CartPole with a slow step, as a physics simulator's can be, so that a test can signal env worker
processes while they are inside a step: ``gym.make("tests.slow_env:SlowCartPole-v1")`` imports
this module (in worker processes too) and makes it."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

STEP_SECONDS = 0.05


class SlowCartPole(CartPoleEnv):
    def step(self, action: Any) -> Any:
        time.sleep(STEP_SECONDS)
        return super().step(action)


gym.register("SlowCartPole-v1", entry_point=SlowCartPole, max_episode_steps=500)
