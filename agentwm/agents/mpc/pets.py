"""PETS (Chua et al. 2018) acting: trajectory sampling over the ensemble with CEM/MPPI, an agreement
gate, and the iterate loop (act, add the real data, refit). Read top to bottom.

What this adds to :mod:`agentwm.agents.mpc.loop` (whose model building, task rules and episode logic it
reuses):

* **Trajectory sampling.** Each candidate is imagined by ``particles`` particles under the
  ensemble's ``ts1``/``tsinf`` propagation (members keep or reshuffle their particles) and scored
  by the mean particle return.
* **Acting only where the members agree.** Before executing the planned first action, the gate
  measures the members' one-step disagreement on it. "Agree" is relative to the disagreement on the
  controller's own planned actions in this episode (``gate_reference="planned"``): once ``gate_warmup``
  steps are seen, an action is executed when its disagreement is at most ``gate_scale`` × the
  ``gate_quantile`` of theirs, so the gate catches the spikes where the plan leads into states the
  model knows little about. It never rejects an action the members agree on as much as on their own
  training transitions (the ``gate_floor_quantile`` of that disagreement, also the threshold during
  warm-up). ``gate_reference="training"`` uses the training transitions alone: that threshold is
  far too tight for states the controller reaches (it fell back on ~20% of CartPole steps and never
  balanced the pole). Above the threshold, a fallback acts instead: ``"cautious"`` (re-plan for
  the worst member: each candidate imagined once under every member, scored by the low quantile of
  those returns), ``"safe"`` (the candidate first action the members agree on most), ``"explore"``
  (the one they disagree on most: information for the next refit) or ``"random"``. On CartPole,
  ``"safe"`` amounts to pushing the other way at the very moments the pole is in trouble. Each episode logs the disagreement's mean, 90th percentile and
  maximum, the final threshold and how often the fallback acted.
* **A dense planning objective.** With ``planning_reward="auto"`` (the default) CartPole is planned
  on the margin to its termination bounds (``agentwm.agents.mpc.loop.MARGIN_REWARDS``, which says why)
  instead of its flat +1 per step; the real return is still what counts.
* **The PETS loop.** Random transitions → fit → one MPC episode → append its transitions → refit
  ... until an episode reaches ``target_return`` or ``max_episodes`` run. The real steps used up
  to that point (random ones included) are what :mod:`benchmarks.mbrl_vs_modelfree` compares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from agentwm.agents.devices import DeviceName, device_field
from agentwm.agents.mpc.loop import MARGIN_REWARDS, MPCConfig, planning_model
from agentwm.envs.gym import action_spec_of, collect_random_transitions, to_env_action
from agentwm.planning import CEM, MPPI, RandomShooting
from agentwm.planning.base import SamplingPlanner
from agentwm.planning.scoring import ScoreMode, Scorer
from agentwm.worldmodels.base import ActionSpec
from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics

Fallback = Literal["cautious", "safe", "explore", "random"]


class PETSConfig(BaseModel):
    """Settings of a PETS run; ``agentwm train pets`` flags map to these fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str = Field(default="CartPole-v1", description="gymnasium id with a flat Box observation")
    initial_transitions: int = Field(default=1000, ge=10, description="random transitions before the first fit")
    members: int = Field(default=5, ge=1, le=64, description="ensemble members")
    planner: Literal["shooting", "cem", "mppi"] = Field(default="cem", description="optimiser over action sequences")
    horizon: int = Field(default=20, ge=1, description="imagined steps per sequence")
    samples: int = Field(default=100, ge=1, description="sequences per planning iteration")
    iterations: int = Field(default=3, ge=1, description="refinement iterations of cem and mppi")
    particles: int = Field(default=5, ge=1, description="trajectory-sampling particles per sequence")
    propagation: Literal["ts1", "tsinf", "mean"] = Field(default="tsinf", description="how particles use members")
    gamma: float = Field(default=0.99, ge=0.0, le=1.0, description="discount of imagined rewards")
    rules: Literal["auto", "known", "learned"] = Field(
        default="auto", description="rewards/ends from the task's known rules or the model's heads (as in `plan`)"
    )
    score: ScoreMode = Field(
        default="mean", description="how particle returns are scored: mean, lower_quantile, disagreement_penalized"
    )
    kappa: float = Field(default=5.0, ge=0.0, description="disagreement penalty weight of disagreement_penalized")
    planning_reward: Literal["auto", "task", "margin"] = Field(
        default="auto", description="imagined reward: the task's, or the margin to termination (auto: where defined)"
    )
    gate: bool = Field(default=True, description="act only where members agree; otherwise the fallback acts")
    gate_reference: Literal["planned", "training"] = Field(
        default="planned", description="disagreement the gate compares with: its own planned actions, or training data"
    )
    gate_quantile: float = Field(default=0.9, gt=0.0, le=1.0, description="quantile of the reference disagreement")
    gate_scale: float = Field(default=2.0, gt=0.0, description="threshold = gate_scale × that quantile")
    gate_floor_quantile: float = Field(
        default=0.99, gt=0.0, le=1.0, description="quantile of training-data disagreement that is always accepted"
    )
    gate_warmup: int = Field(default=20, ge=1, description="planned steps before the planned reference is used")
    fallback: Fallback = Field(default="safe", description="who acts when members disagree")
    max_episodes: int = Field(default=5, ge=1, description="MPC episodes (each followed by a refit)")
    max_steps: int | None = Field(default=None, ge=1, description="cap on steps per episode (env default if unset)")
    target_return: float | None = Field(default=475.0, description="stop once an episode reaches this return")
    epochs: int | None = Field(default=None, ge=1, description="cap on ensemble fit epochs (EnsembleConfig default if unset)")
    seed: int = Field(default=0, description="seed of data, model and planner")
    device: DeviceName = device_field()


# ------------------------------------------------------------------------------------------------
# Agreement gate


def one_step_disagreement(model: EnsembleDynamics, obs: Tensor, action: Tensor) -> Tensor:
    """Members' disagreement ``[n]`` on the next state of each ``(obs [n, D], action [n, A])``."""
    rollout = model.imagine({"obs": obs}, action[None], 1, propagation="mean")
    out: Tensor = rollout.extras["disagreement"][0]
    return out


def calibrate_threshold(model: EnsembleDynamics, data: dict[str, Tensor], quantile: float, scale: float) -> float:
    """``scale`` × the ``quantile`` of one-step disagreement on the model's training transitions."""
    with torch.no_grad():
        d = one_step_disagreement(model, data["obs"], data["action"])
    return float(scale * torch.quantile(d.float(), quantile))


@dataclass
class GateDecision:
    """What the gate did on one step."""

    action: Tensor
    disagreement: float
    fell_back: bool


class AgreementGate:
    """Executes a planner's first action only where the ensemble members agree on its outcome.

    Args:
        model: the ensemble (reports disagreement under ``"mean"`` propagation).
        threshold: the floor: an action with at most this one-step disagreement is always executed
            (with ``relative=False``, the only threshold).
        fallback: see :data:`Fallback` and the module docstring.
        relative: also accept actions up to ``scale`` × the ``quantile`` of the disagreement of the
            planned actions this gate has seen, once it has seen ``warmup`` of them.
        candidates: continuous specs only: how many random first actions the fallback compares.
        generator: RNG for ``"random"`` and the continuous candidates.
        cautious: the planner ``"cautious"`` re-plans with (worst-member scoring over the ensemble).
    """

    def __init__(
        self, model: EnsembleDynamics, threshold: float, fallback: Fallback = "safe", *,
        relative: bool = False, quantile: float = 0.9, scale: float = 2.0, warmup: int = 20,
        candidates: int = 32, generator: torch.Generator | None = None, cautious: SamplingPlanner | None = None,
    ) -> None:
        if fallback not in ("cautious", "safe", "explore", "random"):
            raise ValueError(f"fallback must be 'cautious', 'safe', 'explore' or 'random', got {fallback!r}")
        if fallback == "cautious" and cautious is None:
            raise ValueError("fallback 'cautious' needs the planner it re-plans with (cautious=...)")
        if not threshold >= 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        if not (0.0 < quantile <= 1.0 and scale > 0.0 and warmup >= 1):
            raise ValueError(f"need 0 < quantile <= 1, scale > 0, warmup >= 1; got {quantile}, {scale}, {warmup}")
        self.model, self.floor, self.fallback = model, float(threshold), fallback
        self.relative, self.quantile, self.scale, self.warmup = relative, quantile, scale, warmup
        self.candidates, self.generator, self.cautious = candidates, generator, cautious
        self.seen: list[float] = []  # disagreement of every planned action decided on

    @property
    def threshold(self) -> float:
        """The largest disagreement at which the planned action is executed now."""
        if not self.relative or len(self.seen) < self.warmup:
            return self.floor
        return max(self.floor, self.scale * float(np.quantile(self.seen, self.quantile)))

    def _first_actions(self, spec: ActionSpec, planned: Tensor) -> Tensor:
        if spec.kind == "discrete":
            return torch.eye(spec.dim, device=planned.device)
        u = torch.rand(self.candidates, spec.dim, generator=self.generator, device=planned.device)
        return torch.cat([planned, spec.low + (spec.high - spec.low) * u], 0)

    @torch.no_grad()
    def decide(self, obs: Tensor, planned: Tensor) -> GateDecision:
        """``obs [1, D]``, the planner's ``planned [1, A]`` → the action to execute, and why."""
        d = float(one_step_disagreement(self.model, obs, planned)[0])
        threshold = self.threshold
        self.seen.append(d)
        if d <= threshold:
            return GateDecision(planned, d, False)
        if self.fallback == "cautious":
            assert self.cautious is not None
            return GateDecision(self.cautious.plan(self.model.observe(obs)).action, d, True)
        spec = self.model.action_spec
        options = self._first_actions(spec, planned)
        if self.fallback == "random":
            index = int(torch.randint(len(options), (1,), generator=self.generator, device=options.device))
        else:
            spread = one_step_disagreement(self.model, obs.expand(len(options), -1), options)
            index = int(spread.argmin() if self.fallback == "safe" else spread.argmax())
        return GateDecision(options[index : index + 1], d, True)


# ------------------------------------------------------------------------------------------------
# Planner with trajectory sampling


def make_pets_planner(world: Any, config: PETSConfig) -> SamplingPlanner:
    """CEM, MPPI or random shooting over ``world`` with ``config.particles`` particles per sequence."""
    gen = torch.Generator(device=config.device).manual_seed(config.seed)
    common: dict[str, Any] = {
        "horizon": config.horizon, "samples": config.samples, "particles": config.particles,
        "gamma": config.gamma, "generator": gen, "score": Scorer(config.score, kappa=config.kappa),
    }
    if config.planner == "shooting":
        return RandomShooting(world, **common)
    if config.planner == "cem":
        return CEM(world, elites=max(2, config.samples // 10), iterations=config.iterations, **common)
    return MPPI(world, iterations=config.iterations, **common)


def fit_ensemble(data: dict[str, Tensor], spec: ActionSpec, config: PETSConfig) -> EnsembleDynamics:
    """A fresh ensemble fitted on ``data``."""
    torch.manual_seed(config.seed)
    fields: dict[str, Any] = {"members": config.members, "seed": config.seed, "propagation": config.propagation}
    if config.epochs is not None:
        fields["epochs"] = config.epochs
    ens = EnsembleConfig.model_validate(fields)
    model = EnsembleDynamics(int(data["obs"].shape[1]), spec, ens).to(config.device)
    model.fit(data)
    return model.eval()


# ------------------------------------------------------------------------------------------------
# The loop


def run_pets(
    config: PETSConfig,
    *,
    data: dict[str, Tensor] | None = None,
    model: EnsembleDynamics | None = None,
) -> dict[str, Any]:
    """Run the PETS loop (see the module docstring); returns a JSON-ready summary.

    ``data`` (the initial random transitions) and ``model`` (already fitted on them) may be passed
    in, so that several controllers can start from the same model; their steps still count.
    """
    start = time.perf_counter()
    env = gym.make(config.env, max_episode_steps=config.max_steps) if config.max_steps else gym.make(config.env)
    spec = action_spec_of(env.action_space)
    if data is None:
        data = collect_random_transitions(config.env, config.initial_transitions, seed=config.seed)
    data = {k: v.clone() for k, v in data.items()}
    real_steps = int(data["obs"].shape[0])
    planning_reward = config.planning_reward
    if planning_reward == "auto":
        planning_reward = "margin" if config.env in MARGIN_REWARDS else "task"
    mpc_view = MPCConfig.model_validate({
        "env": config.env, "rules": config.rules, "score": config.score, "gamma": config.gamma,
        "planning_reward": planning_reward,
    })
    gen = torch.Generator(device=config.device).manual_seed(config.seed + 7)
    episodes: list[dict[str, Any]] = []
    steps_to_target: int | None = None
    fit_seconds = 0.0
    for episode in range(config.max_episodes):
        # --- fit (or reuse) the ensemble on everything seen so far ----------------------------
        if model is None or episode > 0:
            t0 = time.perf_counter()
            model = fit_ensemble(data, spec, config)
            fit_seconds += time.perf_counter() - t0
        world, rules = planning_model(model, config.env, mpc_view)
        planner = make_pets_planner(world, config)
        gate = None
        if config.gate:
            if config.gate_reference == "training":
                floor = calibrate_threshold(model, data, config.gate_quantile, config.gate_scale)
            else:
                floor = calibrate_threshold(model, data, config.gate_floor_quantile, 1.0)
            cautious = None
            if config.fallback == "cautious":  # every candidate imagined once under each member, worst case
                worst = config.model_copy(update={"particles": config.members, "score": "lower_quantile"})
                cautious = make_pets_planner(world, worst)
            gate = AgreementGate(
                model, floor, config.fallback, relative=config.gate_reference == "planned",
                quantile=config.gate_quantile, scale=config.gate_scale, warmup=config.gate_warmup, generator=gen,
                cautious=cautious,
            )
        # --- one real episode under MPC --------------------------------------------------------
        obs, _ = env.reset(seed=config.seed + 1000 + episode)
        carry, total, done = None, 0.0, False
        rows: dict[str, list[Any]] = {k: [] for k in data}
        disagreements: list[float] = []
        fallbacks = 0
        while not done:
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=config.device)[None]
            result = planner.plan(model.observe(obs_t), carry)
            carry, action = result.carry, result.action
            if gate is not None:
                decision = gate.decide(obs_t, action)
                action = decision.action
                disagreements.append(decision.disagreement)
                fallbacks += int(decision.fell_back)
            nxt, reward, terminated, truncated, _ = env.step(to_env_action(action[0], spec))
            for key, value in zip(("obs", "action", "next_obs", "reward", "continue"),
                                  (obs_t[0], action[0], nxt, reward, 0.0 if terminated else 1.0)):
                rows[key].append(torch.as_tensor(np.asarray(value, dtype=np.float32)).to(data[key]))
            total += float(reward)
            obs, done = nxt, terminated or truncated
        steps = len(rows["obs"])
        real_steps += steps
        data = {k: torch.cat([data[k], torch.stack(rows[k]).to(data[k])]) for k in data}
        log: dict[str, Any] = {"return": total, "steps": steps}
        if gate is not None:
            log.update({
                "threshold": gate.threshold,
                "threshold_floor": gate.floor,
                "fallback_rate": fallbacks / steps,
                "disagreement_mean": float(np.mean(disagreements)),
                "disagreement_q90": float(np.quantile(disagreements, 0.9)),
                "disagreement_max": float(np.max(disagreements)),
            })
        episodes.append(log)
        if config.target_return is not None and total >= config.target_return:
            steps_to_target = real_steps
            break
    env.close()
    return {
        "family": "pets",
        "env": config.env,
        "planner": config.planner,
        "rules": rules,
        "gate": config.gate,
        "gate_reference": config.gate_reference if config.gate else None,
        "steps_to_target": steps_to_target,
        "real_steps": real_steps,
        "episode_returns": [e["return"] for e in episodes],
        "episodes": episodes,
        "fit_s": round(fit_seconds, 1),
        "wall_s": round(time.perf_counter() - start, 1),
    }
