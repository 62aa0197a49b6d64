"""Known task rules replace a learned model's rewards and episode ends in its rollouts."""

from __future__ import annotations

import math

import pytest
import torch

from agentwm.envs.gym import KNOWN_RULES
from agentwm.worldmodels.base import ActionSpec, Rollout
from agentwm.worldmodels.task_rules import WithTaskRules


class Drift:
    """obs' = obs + action; learned-style heads that always say reward 7, never terminal."""

    action_spec = ActionSpec("continuous", 4)

    def initial(self, batch_size):
        return {"obs": torch.zeros(batch_size, 4)}

    def observe(self, obs, state=None, action=None):
        return {"obs": obs}

    def imagine(self, state, actions, horizon):
        obs = [state["obs"]]
        for t in range(horizon):
            obs.append(obs[-1] + actions[t])
        B = state["obs"].shape[0]
        return Rollout({"obs": torch.stack(obs)}, torch.full((horizon, B), 7.0), torch.ones(horizon, B), actions)


def test_cartpole_rules_cut_the_episode_where_the_pole_falls():
    rules = KNOWN_RULES["CartPole-v1"]
    model = WithTaskRules(Drift(), termination=rules.termination, reward=rules.reward)
    # Tilt the pole by 0.1 rad per step: 0.1, 0.2 are within 12 degrees (0.2094), 0.3 is not.
    actions = torch.zeros(4, 1, 4)
    actions[:, 0, 2] = 0.1
    rollout = model.imagine(model.observe(torch.zeros(1, 4)), actions, 4)
    assert rollout.continues[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert rollout.rewards[:, 0].tolist() == [1.0] * 4
    assert rollout.returns(1.0).item() == pytest.approx(3.0)


def test_pendulum_reward_matches_gymnasium():
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=3)
    action = torch.tensor([[1.3]])
    nxt, reward, *_ = env.step(action[0].numpy())
    ours = KNOWN_RULES["Pendulum-v1"].reward(torch.tensor(obs)[None], action, torch.tensor(nxt)[None])
    assert ours.item() == pytest.approx(reward, abs=1e-4)
    assert not math.isnan(ours.item())


def test_needs_a_rule_and_keeps_the_protocol():
    with pytest.raises(ValueError, match="termination rule"):
        WithTaskRules(Drift())
    wrapped = WithTaskRules(Drift(), termination=KNOWN_RULES["CartPole-v1"].termination)
    assert wrapped.action_spec.dim == 4
    rollout = wrapped.imagine(wrapped.initial(2), torch.zeros(3, 2, 4), 3)
    assert rollout.rewards.eq(7.0).all()  # no reward rule: the model's rewards stay
