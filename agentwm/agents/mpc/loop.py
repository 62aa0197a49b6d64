"""Model-predictive control with a learned ensemble: collect, fit, plan, act. Read top to bottom.

The README's main job: learn a PETS-style ensemble of CartPole from 1,000 random transitions,
then control the real environment by imagining candidate action sequences with the model and
executing the first action of the best one, replanning every step.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from agentwm.agents.devices import DeviceName, device_field
from agentwm.checkpoint import load_config, load_weights, save_module
from agentwm.envs.gym import KNOWN_RULES, action_spec_of, collect_random_transitions, to_env_action
from agentwm.planning.scoring import ScoreMode, Scorer
from agentwm.worldmodels.base import ActionSpec, WorldModel
from agentwm.worldmodels.task_rules import RewardRule, WithTaskRules

PlanningReward = Literal["task", "margin"]
"""What imagined steps are scored by: the task's own reward, or its margin to termination (below)."""

_CARTPOLE_X_MAX, _CARTPOLE_THETA_MAX = 2.4, 12 * 2 * math.pi / 360


def _cartpole_margin(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    # 1 for an upright pole on a centred cart, falling quadratically to 0 at the termination bounds.
    x = next_obs[..., 0] / _CARTPOLE_X_MAX
    theta = next_obs[..., 2] / _CARTPOLE_THETA_MAX
    return 1.0 - 0.5 * theta * theta - 0.5 * x * x


MARGIN_REWARDS: dict[str, RewardRule] = {"CartPole-v0": _cartpole_margin, "CartPole-v1": _cartpole_margin}
"""Dense planning rewards built from a task's termination rule: the margin to the states that end it.

CartPole pays +1 for every step until a rule fires. Over a short horizon (20 steps) nearly every
candidate survives in imagination, so the task reward scores them all alike and the planner's
choice among them is arbitrary: the cart and pole drift, unchecked, into states the model has never
seen, and the episode ends within ~100 steps. Scoring each imagined step by its distance from the
termination bounds instead prefers the candidates that keep the pole upright and the cart centred,
which is what surviving 500 steps takes. It is the planner's objective only; the real return
(steps survived) is what is counted. It is domain knowledge, like the known rules themselves."""


class MPCConfig(BaseModel):
    """Settings of an MPC run; every CLI flag of ``agentwm plan`` maps to one field."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str = Field("CartPole-v1", description="gymnasium environment id with a flat Box observation")
    transitions: int = Field(1000, ge=10, description="random transitions to learn the model from")
    members: int = Field(5, ge=1, le=64, description="ensemble members")
    planner: Literal["shooting", "cem", "mppi"] = Field("shooting", description="which planner acts")
    horizon: int = Field(30, ge=1, le=500, description="imagined steps per action sequence")
    samples: int = Field(100, ge=1, description="action sequences evaluated per planning iteration")
    iterations: int = Field(3, ge=1, description="refinement iterations for cem and mppi")
    gamma: float = Field(0.99, ge=0.0, le=1.0, description="discount of imagined rewards")
    rules: Literal["auto", "known", "learned"] = Field(
        "auto",
        description="where rewards and episode ends come from: the task's known rules (PETS practice; "
        "only the dynamics are learned), the model's learned heads, or auto (known where agentwm has them)",
    )
    score: ScoreMode = Field(
        "disagreement_penalized",
        description="how sequences are scored: mean return, lower quantile, or mean return minus kappa "
        "times ensemble disagreement (keeps the plan where the model has data)",
    )
    kappa: float = Field(5.0, ge=0.0, description="disagreement penalty weight for score=disagreement_penalized")
    planning_reward: PlanningReward = Field(
        "task",
        description="what imagined steps earn: the task's reward, or (CartPole) the margin to its termination "
        "bounds, a dense objective; see MARGIN_REWARDS",
    )
    episodes: int = Field(3, ge=1, description="real evaluation episodes")
    max_steps: int | None = Field(None, ge=1, description="cap on steps per episode (env default if unset)")
    seed: int = Field(0, description="seed for data, model and planner")
    device: DeviceName = device_field()


# ------------------------------------------------------------------------------------------------
# Model: build, fit, save, load


def _build_ensemble(obs_dim: int, spec: ActionSpec, members: int, seed: int, device: str) -> Any:
    from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics

    config = EnsembleConfig(members=members, seed=seed)
    return EnsembleDynamics(obs_dim, spec, config).to(device)


def train_ensemble(
    config: MPCConfig, out: str | Path | None = None, progress: bool = False
) -> tuple[Any, dict[str, Any]]:
    """Collect ``config.transitions`` random steps, fit the ensemble, optionally save it to ``out``.

    Returns the fitted model and a JSON-ready summary (fit time, holdout metrics, where it was saved).
    """
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    data = collect_random_transitions(config.env, config.transitions, seed=config.seed)
    spec = action_spec_of(gym.make(config.env).action_space)
    model = _build_ensemble(data["obs"].shape[1], spec, config.members, config.seed, config.device)
    metrics = model.fit(data, progress=progress)
    result: dict[str, Any] = {
        "env": config.env,
        "transitions": config.transitions,
        "fit_seconds": round(time.perf_counter() - start, 2),
        "fit_metrics": {k: float(v) for k, v in metrics.items()},
    }
    if out is not None:
        save_module(out, model, {
            "family": "ensemble",
            "env": config.env,
            "obs_dim": int(data["obs"].shape[1]),
            "action_spec": {"kind": spec.kind, "dim": spec.dim, "low": spec.low, "high": spec.high},
            "config": model.config.model_dump(),
        })
        result["out"] = str(out)
    return model, result


def load_ensemble(folder: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild a saved ensemble and return it with its saved metadata."""
    from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics

    meta = load_config(folder)
    if meta.get("family") != "ensemble":
        raise ValueError(f"{folder} holds a {meta.get('family')!r} model, not an ensemble")
    spec = ActionSpec(**meta["action_spec"])
    model = EnsembleDynamics(int(meta["obs_dim"]), spec, EnsembleConfig(**meta["config"]))
    load_weights(folder, model, device)
    return model.to(device).eval(), meta


# ------------------------------------------------------------------------------------------------
# Planner


def planning_model(model: Any, env_id: str, config: MPCConfig) -> tuple[WorldModel, str]:
    """The model the planner imagines with: the ensemble, wrapped with the task's known reward and
    termination rules when ``config.rules`` asks for them, and with the margin reward when
    ``config.planning_reward`` does. Returns it and which rules were used."""
    model.disagreement = config.score == "disagreement_penalized"
    rules = KNOWN_RULES.get(env_id)
    if config.rules == "known" and rules is None:
        raise ValueError(f"no known rules for {env_id!r} (have {sorted(KNOWN_RULES)}); use --rules learned")
    margin: RewardRule | None = None
    if config.planning_reward == "margin":
        margin = MARGIN_REWARDS.get(env_id)
        if margin is None:
            raise ValueError(
                f"no margin reward for {env_id!r} (have {sorted(MARGIN_REWARDS)}); use planning_reward='task'"
            )
    if config.rules == "learned" or rules is None:
        if margin is not None:
            return WithTaskRules(model, reward=margin), "learned+margin"
        return model, "learned"
    if margin is not None:
        return WithTaskRules(model, termination=rules.termination, reward=margin), "known+margin"
    return WithTaskRules(model, termination=rules.termination, reward=rules.reward), "known"


def make_planner(model: Any, config: MPCConfig) -> Any:
    """The planner named by ``config.planner`` over ``model``."""
    from agentwm.planning import CEM, MPPI, RandomShooting

    gen = torch.Generator(device=config.device).manual_seed(config.seed)
    common: dict[str, Any] = {
        "horizon": config.horizon, "samples": config.samples, "gamma": config.gamma, "generator": gen,
        "score": Scorer(config.score, kappa=config.kappa),
    }
    if config.planner == "shooting":
        return RandomShooting(model, **common)
    if config.planner == "cem":
        return CEM(model, elites=max(2, config.samples // 10), iterations=config.iterations, **common)
    return MPPI(model, iterations=config.iterations, **common)


# ------------------------------------------------------------------------------------------------
# Control loop


def run_mpc(config: MPCConfig, model_dir: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Learn (or load) the ensemble, then run ``config.episodes`` real episodes under MPC.

    Returns a JSON-ready dict: per-episode returns, their mean, and timings.
    """
    if model_dir is not None:
        model, meta = load_ensemble(model_dir, config.device)
        env_id = meta["env"]
        fit: dict[str, Any] = {"model": str(model_dir)}
    else:
        model, fit = train_ensemble(config, progress=progress)
        env_id = config.env
    model.eval()
    world, rules = planning_model(model, env_id, config)
    planner = make_planner(world, config)
    env = gym.make(env_id, max_episode_steps=config.max_steps) if config.max_steps else gym.make(env_id)
    spec = model.action_spec

    returns: list[float] = []
    lengths: list[int] = []
    plan_seconds = 0.0
    decisions = 0
    for episode in range(config.episodes):
        obs, _ = env.reset(seed=config.seed + 1000 + episode)
        carry = None
        total, steps, done = 0.0, 0, False
        while not done:
            # observe → imagine candidates → choose: one decision per real step.
            t0 = time.perf_counter()
            state = model.observe(torch.as_tensor(np.asarray(obs, dtype=np.float32), device=config.device)[None])
            result = planner.plan(state, carry)
            carry = result.carry
            plan_seconds += time.perf_counter() - t0
            decisions += 1
            obs, reward, terminated, truncated, _ = env.step(to_env_action(result.action[0], spec))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
        if progress:
            print(f"episode {episode}: return {total:.1f} in {steps} steps", flush=True, file=sys.stderr)
    env.close()
    return {
        "env": env_id,
        "planner": config.planner,
        "rules": rules,
        "score": config.score,
        "episode_returns": returns,
        "mean_return": float(np.mean(returns)),
        "episode_lengths": lengths,
        "ms_per_decision": round(1000 * plan_seconds / max(decisions, 1), 3),
        **fit,
    }


def score_candidates(
    model_dir: str | Path,
    obs: list[float],
    candidates: list[Any],
    *,
    horizon: int = 15,
    samples: int = 32,
    gamma: float = 0.99,
    score: ScoreMode = "mean",
    seed: int = 0,
) -> dict[str, Any]:
    """Rank candidate first actions from one observation with a saved ensemble (JSON-ready)."""
    from agentwm.planning import rank

    model, meta = load_ensemble(model_dir)
    spec = model.action_spec
    model.disagreement = score == "disagreement_penalized"
    rules = KNOWN_RULES.get(meta.get("env", ""))
    world: WorldModel = model
    if rules is not None:
        world = WithTaskRules(model, termination=rules.termination, reward=rules.reward)
    if not candidates:
        raise ValueError("candidates must be a non-empty list")
    if spec.kind == "discrete":
        idx = torch.as_tensor(candidates, dtype=torch.long)
        if idx.dim() != 1 or idx.min() < 0 or idx.max() >= spec.dim:
            raise ValueError(f"discrete candidates must be ints in [0, {spec.dim}), got {candidates}")
        first = spec.one_hot(idx)
    else:
        first = torch.as_tensor(candidates, dtype=torch.float32).reshape(len(candidates), spec.dim)
    state = model.observe(torch.as_tensor(obs, dtype=torch.float32)[None])
    torch.manual_seed(seed)
    ranking = rank(world, state, first, horizon=horizon, samples=samples, gamma=gamma, score=score)
    return {
        "scores": ranking.scores.tolist(),
        "order": [int(i) for i in ranking.order],
        "best": int(ranking.best),
        "disagreement": None if ranking.disagreement is None else ranking.disagreement.tolist(),
        "rules": "known" if rules is not None else "learned",
    }
