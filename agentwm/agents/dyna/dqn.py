"""A small DQN (Mnih et al. 2015): the model-free baseline of the model-based vs model-free comparison.

Read top to bottom: epsilon-greedy acting with a linearly decaying epsilon, a uniform replay, a
target network synced every ``target_every`` steps, Double-DQN targets and a Huber loss. Written
here rather than imported because the baseline must run with agentwm's own dependencies (torch,
gymnasium) and report the one figure the comparison needs: real environment steps until a training
episode first reaches ``target_return``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class DQNConfig(BaseModel):
    """Settings of a DQN run; the defaults are tuned for CartPole-v1."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str = Field(default="CartPole-v1", description="gymnasium id: flat Box observations, Discrete actions")
    max_steps: int = Field(default=100_000, ge=1, description="real step budget")
    units: int = Field(default=128, ge=1, description="hidden width of the two-layer Q network")
    lr: float = Field(default=5e-4, gt=0.0, description="Adam learning rate")
    nonfinite_limit: int = Field(
        default=20, ge=1, description="stop when this many updates in a row had a NaN/inf loss or gradient (each skipped)"
    )
    gamma: float = Field(default=0.99, ge=0.0, le=1.0, description="discount")
    batch_size: int = Field(default=64, ge=1, description="transitions per gradient step")
    buffer: int = Field(default=50_000, ge=1, description="replay capacity")
    learning_starts: int = Field(default=1000, ge=0, description="random steps before learning")
    train_every: int = Field(default=1, ge=1, description="real steps per gradient step")
    target_every: int = Field(default=500, ge=1, description="real steps between target-network syncs")
    epsilon_start: float = Field(default=1.0, ge=0.0, le=1.0, description="initial exploration rate")
    epsilon_end: float = Field(default=0.02, ge=0.0, le=1.0, description="final exploration rate")
    epsilon_fraction: float = Field(
        default=0.1, gt=0.0, le=1.0, description="fraction of max_steps over which epsilon decays"
    )
    target_return: float | None = Field(default=475.0, description="stop at the first episode reaching this")
    seed: int = Field(default=0, description="seed of env, network and exploration")


def run_dqn(config: DQNConfig) -> dict[str, Any]:
    """Train until an episode reaches ``target_return`` or the budget ends; JSON-ready summary."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    env = gym.make(config.env)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise TypeError(f"DQN needs a Discrete action space, got {env.action_space}")
    n_actions = int(env.action_space.n)
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))

    def net() -> nn.Sequential:
        u = config.units
        return nn.Sequential(nn.Linear(obs_dim, u), nn.ReLU(), nn.Linear(u, u), nn.ReLU(), nn.Linear(u, n_actions))

    q, target = net(), net()
    target.load_state_dict(q.state_dict())
    optim = torch.optim.Adam(q.parameters(), lr=config.lr)
    guard = FiniteGuard("DQN training", config.nonfinite_limit)  # NaN/inf updates skipped, counted
    cap = config.buffer
    buf_obs = np.zeros((cap, obs_dim), np.float32)
    buf_next = np.zeros((cap, obs_dim), np.float32)
    buf_act = np.zeros(cap, np.int64)
    buf_rew = np.zeros(cap, np.float32)
    buf_cont = np.zeros(cap, np.float32)
    size = 0
    obs, _ = env.reset(seed=config.seed)
    episode_return, returns = 0.0, []
    steps_to_target: int | None = None
    decay = max(1, int(config.epsilon_fraction * config.max_steps))
    for step in range(1, config.max_steps + 1):
        # --- act ---------------------------------------------------------------------------------
        eps = config.epsilon_start + (config.epsilon_end - config.epsilon_start) * min(1.0, step / decay)
        if step <= config.learning_starts or rng.random() < eps:
            action = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                action = int(q(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())
        nxt, reward, terminated, truncated, _ = env.step(action)
        i = (step - 1) % cap
        buf_obs[i], buf_next[i], buf_act[i] = obs, nxt, action
        buf_rew[i], buf_cont[i] = reward, 0.0 if terminated else 1.0
        size = min(size + 1, cap)
        episode_return += float(reward)
        obs = nxt
        if terminated or truncated:
            returns.append(episode_return)
            if config.target_return is not None and episode_return >= config.target_return:
                steps_to_target = step
                break
            episode_return = 0.0
            obs, _ = env.reset()
        # --- learn -------------------------------------------------------------------------------
        if step > config.learning_starts and step % config.train_every == 0:
            idx = rng.integers(0, size, config.batch_size)
            o, n = torch.as_tensor(buf_obs[idx]), torch.as_tensor(buf_next[idx])
            with torch.no_grad():
                best = q(n).argmax(-1, keepdim=True)  # Double DQN: online net picks, target net values
                y = torch.as_tensor(buf_rew[idx]) + config.gamma * torch.as_tensor(buf_cont[idx]) * (
                    target(n).gather(1, best).squeeze(1)
                )
            pred = q(o).gather(1, torch.as_tensor(buf_act[idx])[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(pred, y)
            optim.zero_grad(set_to_none=True)
            guarded_step(guard, loss, optim, q.parameters(), what="DQN TD loss")
        if step % config.target_every == 0:
            target.load_state_dict(q.state_dict())
    env.close()
    return {
        "family": "dqn",
        "env": config.env,
        "steps_to_target": steps_to_target,
        "real_steps": step,
        "episodes": len(returns),
        "best_return": max(returns) if returns else None,
        "last10_mean_return": float(np.mean(returns[-10:])) if returns else None,
        "wall_s": round(time.perf_counter() - start, 1),
    }
from agentwm.core.finite import FiniteGuard, guarded_step
