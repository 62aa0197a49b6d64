"""MuZero training loop: self-play with MCTS over the learned model, replay, n-step value targets.

Read top to bottom. Every real step encodes the observation, searches with
:class:`~agentwm.planning.mcts.MCTS` over :class:`~agentwm.worldmodels.muzero.MuZeroModel` (root
Dirichlet noise, action sampled from visit counts at a temperature that anneals), and stores
``(obs, action, reward, visit distribution, search value)``. A finished episode gets its n-step
value targets ``z_t = sum_{i<n} gamma^i r_{t+i} + gamma^n v_{t+n}`` (``v`` = the search value; no
bootstrap past a real terminal, the model's value of the last observation past a time-limit cut)
and goes into a flat replay. Gradient steps sample positions, unroll ``K`` steps of the model from
the stored actions and regress value, reward and policy on those targets.

Works on gymnasium tasks with flat Box observations and Discrete actions (CartPole, Acrobot).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from agentwm.agents.devices import DeviceName, device_field
from agentwm.checkpoint import load_config, load_weights, save_module
from agentwm.core.finite import FiniteGuard, guarded_step
from agentwm.envs.gym import action_spec_of
from agentwm.planning.mcts import MCTS
from agentwm.worldmodels.muzero import LOSS_KEYS, MuZeroModel, MuZeroNetConfig


class MuZeroConfig(BaseModel):
    """Settings of a MuZero run; ``agentwm train muzero`` flags map to these fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str = Field(default="CartPole-v1", description="gymnasium id: flat Box observations, Discrete actions")
    env_steps: int = Field(default=6000, ge=1, description="real environment steps of self-play")
    simulations: int = Field(default=16, ge=1, description="MCTS simulations per real step")
    unroll_steps: int = Field(default=5, ge=0, description="K: model steps unrolled per training sample")
    td_steps: int = Field(default=10, ge=1, description="n of the n-step value targets")
    gamma: float = Field(default=0.99, ge=0.0, le=1.0, description="discount")
    batch_size: int = Field(default=64, ge=1, description="samples per gradient step")
    lr: float = Field(default=3e-3, gt=0.0, description="Adam learning rate")
    nonfinite_limit: int = Field(
        default=20, ge=1, description="stop when this many updates in a row had a NaN/inf loss or gradient (each skipped)"
    )
    weight_decay: float = Field(default=1e-4, ge=0.0, description="AdamW weight decay")
    updates_per_step: float = Field(default=0.5, gt=0.0, description="gradient steps per real step after warmup")
    warmup_steps: int = Field(default=300, ge=0, description="real steps before the first gradient step")
    loss_scales: dict[str, float] = Field(
        default_factory=lambda: {"value": 0.25, "reward": 1.0, "policy": 1.0},
        description="weights of the value, reward and policy losses (MuZero scales value by 0.25)",
    )
    dirichlet_alpha: float = Field(default=0.25, gt=0.0, description="root noise concentration")
    exploration_fraction: float = Field(default=0.25, ge=0.0, le=1.0, description="root noise weight")
    temperatures: tuple[float, float, float] = Field(
        default=(1.0, 0.5, 0.25), description="visit-count temperature in the first half, third quarter, last quarter"
    )
    net: MuZeroNetConfig = Field(default_factory=lambda: MuZeroNetConfig(), description="network sizes")
    eval_every: int = Field(default=2000, ge=1, description="real steps between evaluations")
    eval_episodes: int = Field(default=3, ge=1, description="episodes per evaluation (no noise, most-visited action)")
    seed: int = Field(default=0, description="seed of the env, the networks and the search")
    device: DeviceName = device_field()


class EpisodeReplay:
    """Finished episodes in flat arrays, with value targets fixed when the episode is added."""

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.action: list[np.ndarray] = []
        self.reward: list[np.ndarray] = []
        self.policy: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.end: list[np.ndarray] = []
        self.after: list[np.ndarray] = []
        self.size = 0
        self._flat: dict[str, np.ndarray] | None = None

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, policy: np.ndarray,
        search_value: np.ndarray, last_value: float, gamma: float, n: int,
    ) -> None:
        """Store one episode of ``T`` steps. ``last_value`` is V of the final observation (0 if terminal)."""
        T = len(action)
        values = np.append(search_value, last_value)
        z = np.zeros(T)
        for t in range(T):
            stop = min(t + n, T)
            z[t] = sum(gamma ** (i - t) * reward[i] for i in range(t, stop)) + gamma ** (stop - t) * values[stop]
        self.obs.append(obs)
        self.action.append(action)
        self.reward.append(reward)
        self.policy.append(policy)
        self.value.append(z)
        self.end.append(np.full(T, self.size + T))
        self.after.append(np.full(T, last_value))
        self.size += T
        self._flat = None

    def sample(self, batch: int, K: int, n_actions: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A training batch for :meth:`MuZeroModel.loss` (positions past an episode's end get random
        actions, zero reward, the after-end value, and no policy target)."""
        if self._flat is None:
            self._flat = {k: np.concatenate(getattr(self, k)) for k in
                          ("obs", "action", "reward", "policy", "value", "end", "after")}
        f = self._flat
        t = rng.integers(0, self.size, batch)
        idx = t[:, None] + np.arange(K + 1)[None]  # [B, K+1]
        valid = idx < f["end"][t][:, None]
        safe = np.where(valid, idx, t[:, None])
        action = np.where(valid[:, :K], f["action"][safe[:, :K]], rng.integers(0, n_actions, (batch, K)))
        uniform = np.full(n_actions, 1.0 / n_actions)
        return {
            "obs": torch.as_tensor(f["obs"][t], dtype=torch.float32),
            "action": torch.nn.functional.one_hot(torch.as_tensor(action), n_actions).float(),
            "target_value": torch.as_tensor(np.where(valid, f["value"][safe], f["after"][t][:, None]),
                                            dtype=torch.float32),
            "target_reward": torch.as_tensor(np.where(valid[:, :K], f["reward"][safe[:, :K]], 0.0),
                                             dtype=torch.float32),
            "target_policy": torch.as_tensor(np.where(valid[..., None], f["policy"][safe], uniform),
                                             dtype=torch.float32),
            "policy_mask": torch.as_tensor(valid, dtype=torch.float32),
        }


def _search(model: MuZeroModel, config: MuZeroConfig, *, evaluate: bool, seed: int) -> MCTS:
    return MCTS(
        model, simulations=config.simulations, gamma=config.gamma, dirichlet_alpha=config.dirichlet_alpha,
        exploration_fraction=0.0 if evaluate else config.exploration_fraction,
        temperature=0.0 if evaluate else config.temperatures[0], generator=seed,
    )


def evaluate(model: MuZeroModel, config: MuZeroConfig, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` real episodes acting by noise-free search (most-visited action)."""
    env = gym.make(config.env)
    mcts = _search(model, config, evaluate=True, seed=seed)
    model.eval()
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            state = model.observe(torch.as_tensor(obs, dtype=torch.float32, device=config.device)[None])
            obs, r, terminated, truncated, _ = env.step(mcts.plan(state).chosen[0])
            total += float(r)
            done = terminated or truncated
        out.append(total)
    env.close()
    return out


def train_muzero(config: MuZeroConfig, out: str | Path | None = None) -> tuple[MuZeroModel, dict[str, Any]]:
    """Self-play and train for ``config.env_steps`` real steps; return the model and a JSON-ready summary."""
    start = time.perf_counter()
    if set(config.loss_scales) != set(LOSS_KEYS):
        raise ValueError(f"loss_scales must have exactly the keys {LOSS_KEYS}, got {sorted(config.loss_scales)}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    env = gym.make(config.env)
    spec = action_spec_of(env.action_space)
    if spec.kind != "discrete" or not isinstance(env.observation_space, gym.spaces.Box):
        raise TypeError(f"MuZero here needs a flat Box observation and Discrete actions; {config.env} has "
                        f"{env.observation_space} and {env.action_space}")
    obs_dim = int(np.prod(env.observation_space.shape))
    model = MuZeroModel(obs_dim, spec, config.net).to(config.device)
    optim = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    guard = FiniteGuard("MuZero training", config.nonfinite_limit)  # NaN/inf updates skipped, counted
    mcts = _search(model, config, evaluate=False, seed=config.seed)
    replay = EpisodeReplay()
    A, K = spec.dim, config.unroll_steps

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(1, -1), device=config.device)

    curve: list[list[float]] = []
    episode_returns: list[float] = []
    metrics: dict[str, float] = {}
    updates, owed = 0, 0.0
    obs, _ = env.reset(seed=config.seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "action", "reward", "policy", "value")}
    for step in range(1, config.env_steps + 1):
        # --- act by search ---------------------------------------------------------------------
        phase = step / config.env_steps
        mcts.temperature = config.temperatures[0 if phase < 0.5 else 1 if phase < 0.75 else 2]
        model.eval()
        result = mcts.plan(model.observe(to_tensor(obs)))
        action = int(result.chosen[0])
        nxt, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(rows, (obs, action, reward, result.policy[0].numpy(), result.root_value.item())):
            rows[key].append(value)
        obs = nxt
        # --- episode end: n-step targets into replay ------------------------------------------
        if terminated or truncated:
            last = 0.0 if terminated else float(model.observe(to_tensor(obs))["value"].item())
            replay.add(
                np.asarray(rows["obs"], dtype=np.float32).reshape(len(rows["obs"]), -1),
                np.asarray(rows["action"]), np.asarray(rows["reward"], dtype=np.float64),
                np.asarray(rows["policy"], dtype=np.float32), np.asarray(rows["value"], dtype=np.float64),
                last, config.gamma, config.td_steps,
            )
            episode_returns.append(float(sum(rows["reward"])))
            rows = {k: [] for k in rows}
            obs, _ = env.reset()
        # --- learn from replay -----------------------------------------------------------------
        if step > config.warmup_steps and replay.size > 0:
            owed += config.updates_per_step
            model.train()
            while owed >= 1.0:
                owed -= 1.0
                batch = {k: v.to(config.device) for k, v in replay.sample(config.batch_size, K, A, rng).items()}
                losses, m = model.loss(batch)
                total = torch.stack([config.loss_scales[k] * v.sum(-1).mean() for k, v in losses.items()]).sum()
                optim.zero_grad(set_to_none=True)
                guarded_step(guard, total, optim, model.parameters(), clip=5.0, what="MuZero loss")
                updates += 1
                metrics = {f"loss/{k}": float(v.detach().mean()) for k, v in losses.items()}
                metrics.update({k: float(v) for k, v in m.items()})
        # --- evaluation ------------------------------------------------------------------------
        if step % config.eval_every == 0 or step == config.env_steps:
            returns = evaluate(model, config, config.eval_episodes, seed=10_000 + config.seed)
            curve.append([step, float(np.mean(returns))])
    env.close()
    summary: dict[str, Any] = {
        "family": "muzero",
        "env": config.env,
        "env_steps": config.env_steps,
        "updates": updates,
        "episodes": len(episode_returns),
        "first_episodes_mean_return": float(np.mean(episode_returns[:10])) if episode_returns else None,
        "last_episodes_mean_return": float(np.mean(episode_returns[-10:])) if episode_returns else None,
        "eval_curve": curve,
        "final_eval_return": curve[-1][1] if curve else None,
        "metrics": metrics,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if out is not None:
        save_muzero(out, model, config)
        summary["out"] = str(out)
    return model, summary


def save_muzero(folder: str | Path, model: MuZeroModel, config: MuZeroConfig) -> Path:
    """Weights (safetensors) and config (JSON), each written atomically."""
    meta = {"family": "muzero", "obs_dim": model.obs_dim, "actions": model.action_spec.dim,
            "config": config.model_dump(mode="json")}
    return save_module(folder, model, meta)


def load_muzero(folder: str | Path, device: str = "cpu") -> tuple[MuZeroModel, MuZeroConfig]:
    """Rebuild a saved MuZero model and its training config."""
    meta = load_config(folder)
    if meta.get("family") != "muzero":
        raise ValueError(f"{folder} holds a {meta.get('family')!r} checkpoint, not a muzero one")
    config = MuZeroConfig(**meta["config"])
    spec = action_spec_of(gym.spaces.Discrete(int(meta["actions"])))
    model = MuZeroModel(int(meta["obs_dim"]), spec, config.net)
    load_weights(folder, model, device)
    return model.to(device).eval(), config
