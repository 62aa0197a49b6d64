"""PlaNet (Hafner et al. 2019): a latent dynamics model (the RSSM) learned online, and CEM planning
in its latent space with no actor and no critic. Read top to bottom.

1. ``seed_episodes`` episodes of uniformly random actions go into a sequence replay.
2. Then, per episode: ``train_steps`` gradient steps of the RSSM on sampled ``[B, T]`` windows
   (its own reconstruction, reward, continue and KL losses, :meth:`RSSM.total_loss`), followed by
   one real episode in which every action is planned: the posterior carry is rolled forward with
   :class:`~agentwm.planning.CEM` over ``horizon`` imagined steps (scored by
   :meth:`Rollout.returns`), the first action of the result is executed with Gaussian exploration
   noise, and the next observation is folded into the carry with :meth:`RSSM.observe`.

Runs on DeepMind Control tasks through :mod:`agentwm.envs.dmc` (``dmc:cartpole-swingup``,
proprio or ``pixels=True``) and on gymnasium tasks with continuous actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from agentwm.agents.devices import DeviceName, device_field
from agentwm.agents.replay import SequenceReplay
from agentwm.checkpoint import load_config, load_weights, save_module
from agentwm.core.finite import FiniteGuard, guarded_step
from agentwm.envs.gym import action_spec_of
from agentwm.planning import CEM
from agentwm.worldmodels.base import ActionSpec, State
from agentwm.worldmodels.rssm import RSSM, RSSMConfig


class PlaNetConfig(BaseModel):
    """Settings of a PlaNet run; ``agentwm train planet`` flags map to these fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str = Field(default="dmc:cartpole-swingup", description="dmc:domain-task or a gymnasium id (Box actions)")
    pixels: bool = Field(default=False, description="DMC only: observe 64x64 renders instead of proprio")
    action_repeat: int = Field(default=8, ge=1, description="DMC only: physics steps per action (PlaNet: 8)")
    preset: str = Field(default="debug", description="RSSM size preset (debug, size1m, ...)")
    rssm: dict[str, Any] = Field(
        default_factory=lambda: {"deter": 64, "hidden": 32, "units": 64, "stoch": 8, "classes": 8},
        description="overrides of the preset",
    )
    seed_episodes: int = Field(default=2, ge=1, description="random-action episodes before planning")
    episodes: int = Field(default=8, ge=1, description="planning episodes, each after train_steps updates")
    train_steps: int = Field(default=50, ge=1, description="gradient steps before each planning episode")
    batch_size: int = Field(default=16, ge=1, description="windows per gradient step")
    seq_len: int = Field(default=32, ge=2, description="steps per window")
    lr: float = Field(default=1e-3, gt=0.0, description="Adam learning rate of the RSSM")
    nonfinite_limit: int = Field(
        default=20, ge=1, description="stop when this many updates in a row had a NaN/inf loss or gradient (each skipped)"
    )
    grad_clip: float = Field(default=100.0, gt=0.0, description="gradient norm clip")
    horizon: int = Field(default=12, ge=1, description="planning horizon (PlaNet: 12)")
    samples: int = Field(default=200, ge=2, description="CEM candidates per iteration (PlaNet: 1000)")
    elites: int = Field(default=20, ge=1, description="CEM elites (PlaNet: 100)")
    iterations: int = Field(default=5, ge=1, description="CEM iterations (PlaNet: 10)")
    explore_noise: float = Field(default=0.3, ge=0.0, description="std of Gaussian noise on executed actions")
    max_steps: int | None = Field(default=None, ge=1, description="cap on steps per episode")
    eval_episodes: int = Field(default=1, ge=0, description="noise-free planning episodes at the end")
    eval_every: int | None = Field(
        default=None, ge=1,
        description="also run eval_episodes noise-free episodes after every this many planning episodes "
        "(the return curve vs env steps in the summary's eval_curve; None: only at the end)",
    )
    seed: int = Field(default=0, description="seed of env, model, replay and planner")
    device: DeviceName = device_field()


def make_env(config: PlaNetConfig, seed: int) -> gym.Env[Any, Any]:
    """The task: a DMC adapter for ``dmc:`` names, else ``gym.make``."""
    if config.env.startswith("dmc:"):
        from agentwm.envs.dmc import make_dmc

        env: gym.Env[Any, Any] = make_dmc(config.env, pixels=config.pixels, action_repeat=config.action_repeat, seed=seed)
    else:
        env = gym.make(config.env)
    if config.max_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=config.max_steps)
    return env


def _obs_tensor(obs: np.ndarray, device: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(obs))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x[None].to(device)


def run_episode(
    env: gym.Env[Any, Any], model: RSSM, planner: CEM | None, spec: ActionSpec, replay: SequenceReplay | None,
    noise: float, rng: np.random.Generator, seed: int | None, device: str,
) -> float:
    """One episode: planned actions (``planner``) or uniformly random ones (``None``); rows go into ``replay``."""
    obs, _ = env.reset(seed=seed)
    action = np.zeros(spec.dim, np.float32)
    reward, first, done, total = 0.0, True, False, 0.0
    state: State | None = None
    carry = None
    while True:
        if replay is not None:
            replay.add(obs[None], action[None], np.array([reward]), np.array([first]), np.array([False]))
        if done:
            return total
        if planner is None:
            action = rng.uniform(spec.low, spec.high, spec.dim).astype(np.float32)
        else:
            with torch.no_grad():
                prev = None if state is None else torch.as_tensor(action, device=device)[None]
                state = model.observe(_obs_tensor(obs, device), state, prev)
                result = planner.plan(state, carry)
            carry = result.carry
            action = result.action[0].cpu().numpy().astype(np.float32)
            if noise > 0:
                action = action + noise * rng.standard_normal(spec.dim).astype(np.float32)
            action = np.clip(action, spec.low, spec.high)
        obs, r, terminated, truncated, _ = env.step(action)
        reward, first, done = float(r), False, terminated or truncated
        total += reward


def train_planet(
    config: PlaNetConfig, out: str | Path | None = None, progress: Callable[[dict[str, Any]], None] | None = None
) -> tuple[RSSM, dict[str, Any]]:
    """Train online; return the RSSM and a JSON-ready summary (returns per episode, the noise-free
    evaluation curve vs env steps, timings). ``progress`` gets one dict per planning episode."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    env = make_env(config, config.seed)
    spec = action_spec_of(env.action_space)
    if spec.kind != "continuous":
        raise TypeError(f"PlaNet plans continuous actions; {config.env} has {env.action_space}")
    obs_shape = tuple(env.observation_space.shape or ())
    model = RSSM(obs_shape, spec, RSSMConfig.preset(config.preset, **config.rssm)).to(config.device)
    optim = torch.optim.Adam(model.parameters(), lr=config.lr, eps=1e-8)
    guard = FiniteGuard("PlaNet training", config.nonfinite_limit)  # NaN/inf updates skipped, counted
    pixels = len(obs_shape) == 3
    replay = SequenceReplay(1_000_000, 1, obs_shape, spec.dim, np.uint8 if pixels else np.float32, seed=config.seed)
    planner = CEM(model, horizon=config.horizon, samples=config.samples, elites=config.elites,
                  iterations=config.iterations, gamma=1.0, generator=config.seed)
    # --- 1. seed episodes -------------------------------------------------------------------------
    seed_returns = [run_episode(env, model, None, spec, replay, 0.0, rng, config.seed + i if i == 0 else None,
                                config.device) for i in range(config.seed_episodes)]
    repeat = config.action_repeat if config.env.startswith("dmc:") else 1
    eval_env = make_env(config, 10_000 + config.seed)

    # Uniformly random actions from the evaluation start states (at least 10: random returns on
    # swingup vary 50-250 with action repeat 8): the baseline of the curve. Costs no planning.
    random_rng = np.random.default_rng(config.seed + 1)
    random_returns = [run_episode(eval_env, model, None, spec, None, 0.0, random_rng, 10_000 + config.seed + i,
                                  config.device) for i in range(max(config.eval_episodes, 10))]

    def evaluate() -> list[float]:
        # The same start states every time, so the curve compares like with like.
        return [run_episode(eval_env, model, planner, spec, None, 0.0, rng, 10_000 + config.seed + i, config.device)
                for i in range(config.eval_episodes)]

    returns: list[float] = []
    curve: list[dict[str, Any]] = []
    evals: list[float] = []
    metrics: dict[str, float] = {}
    train_s = plan_s = eval_s = 0.0
    for episode in range(config.episodes):
        # --- 2a. learn the model -------------------------------------------------------------------
        t0 = time.perf_counter()
        model.train()
        for _ in range(config.train_steps):
            # Windows never longer than what the replay holds (short episodes in smoke runs).
            batch = replay.sample(config.batch_size, min(config.seq_len, len(replay)), config.device)
            losses, m = model.loss(batch)
            loss = model.total_loss(losses)
            optim.zero_grad(set_to_none=True)
            guarded_step(guard, loss, optim, model.parameters(), clip=config.grad_clip, what="PlaNet RSSM loss")
        metrics = {k: float(v) for k, v in m.items()}
        model.eval()
        t1 = time.perf_counter()
        # --- 2b. act by planning ------------------------------------------------------------------
        returns.append(run_episode(env, model, planner, spec, replay, config.explore_noise, rng, None, config.device))
        t2 = time.perf_counter()
        train_s += t1 - t0
        plan_s += t2 - t1
        report: dict[str, Any] = {"episode": episode + 1, "env_steps": len(replay) * repeat, "return": returns[-1]}
        last = episode + 1 == config.episodes
        if config.eval_episodes and (last or (config.eval_every is not None and (episode + 1) % config.eval_every == 0)):
            evals = evaluate()  # the last one is the summary's eval_returns
            curve.append({"env_steps": len(replay) * repeat, "eval_mean_return": float(np.mean(evals))})
            report["eval_returns"] = evals
            eval_s += time.perf_counter() - t2
        if progress is not None:
            progress({**report, "wall_s": round(time.perf_counter() - start, 1)})
    env.close()
    eval_env.close()
    summary: dict[str, Any] = {
        "family": "planet",
        "env": config.env,
        "pixels": pixels,
        "seed_episode_returns": seed_returns,
        "episode_returns": returns,
        "eval_returns": evals,
        "eval_curve": curve,
        "random_eval_returns": random_returns,
        "env_steps": len(replay) * repeat,
        "metrics": metrics,
        "seconds": {"train": round(train_s, 1), "plan_and_act": round(plan_s, 1), "eval": round(eval_s, 1)},
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if out is not None:
        save_module(out, model, {"family": "planet", "obs_shape": list(obs_shape),
                                 "action_spec": {"kind": spec.kind, "dim": spec.dim, "low": spec.low, "high": spec.high},
                                 "config": config.model_dump(mode="json")})
        summary["out"] = str(out)
    return model, summary


def load_planet(folder: str | Path, device: str = "cpu") -> tuple[RSSM, PlaNetConfig]:
    """Rebuild a saved PlaNet RSSM and its config (plan with ``CEM(model, ...)`` as in training)."""
    meta = load_config(folder)
    if meta.get("family") != "planet":
        raise ValueError(f"{folder} holds a {meta.get('family')!r} checkpoint, not a planet one")
    config = PlaNetConfig(**meta["config"])
    model = RSSM(tuple(meta["obs_shape"]), ActionSpec(**meta["action_spec"]),
                 RSSMConfig.preset(config.preset, **config.rssm))
    load_weights(folder, model, device)
    return model.to(device).eval(), config
