"""Cross-entropy method: sample sequences from a per-step distribution, refit it to the elites.

Continuous specs use a diagonal Gaussian per step (PlaNet), with samples clipped into the spec's
bounds; discrete specs use a categorical per step whose probabilities are refit to the elites'
action frequencies and smoothed towards uniform so no action ever becomes impossible. The current
mean (or mode) is always one of the candidates, so the best sequence found never gets worse from
one iteration to the next.

The result is either the best candidate seen over all iterations (``output="best"``, exact for
deterministic models) or the final mean / per-step mode (``output="mean"``, PlaNet's choice). With a
stochastic model the best candidate is chosen by a maximum over noisy scores, which favours lucky
estimates (the winner's curse) even with several particles; the refit mean averages over the
elites and is the robust choice there.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from agentwm.planning.base import (
    GeneratorLike,
    PlanCarry,
    PlanResult,
    SamplingPlanner,
    check_float,
    check_int,
    mode_onehot,
    pick,
    sample_categorical,
    shift,
)
from agentwm.planning.scoring import ScoreLike
from agentwm.worldmodels.base import State, WorldModel

CEMOutput = Literal["best", "mean"]
"""What :class:`CEM` returns: the best candidate seen, or the final mean (mode for discrete specs)."""


class CEM(SamplingPlanner):
    """Cross-entropy method over action sequences, for discrete and continuous action specs.

    Args:
        model: any world model.
        horizon: steps per sequence.
        samples: sequences per start state and iteration (one ``imagine`` call per iteration).
        elites: how many of the best sequences the distribution is refit to (``<= samples``).
        iterations: refits per call.
        particles: imaginations per sequence.
        gamma: discount.
        momentum: weight of the old distribution in each refit, in ``[0, 1)``.
        init_std: initial Gaussian std (continuous); ``None`` is half the action range.
        min_std: floor on the Gaussian std (continuous), ``> 0``.
        smoothing: mixing weight of uniform into the refit probabilities (discrete), in ``[0, 1)``.
        output: ``"best"`` candidate seen (its score is exact), or the final ``"mean"`` (mode for
            discrete specs; its score is the mean score of the last iteration's elites).
        score: scoring rule over particles.
        generator: ``torch.Generator``, int seed or ``None``.

    Carry: continuous ``{"mean", "std"}``: the final mean shifted one step (new last step at the
    centre of the range) and ``std`` reset to ``init_std``, so every call explores afresh around
    the previous plan (as TD-MPC2 does); discrete ``{"probs"}``: the final probabilities shifted
    one step and mixed half-way back to uniform, the categorical analogue of resetting the std.

    Example:
        >>> planner = CEM(model, horizon=12, samples=256, elites=32, iterations=5, generator=0)
        >>> result = planner.plan(state)
        >>> result = planner.plan(next_state, carry=result.carry)
    """

    def __init__(
        self,
        model: WorldModel,
        *,
        horizon: int,
        samples: int = 256,
        elites: int = 32,
        iterations: int = 5,
        particles: int = 1,
        gamma: float = 0.99,
        momentum: float = 0.1,
        init_std: float | None = None,
        min_std: float = 0.05,
        smoothing: float = 0.05,
        output: CEMOutput = "best",
        score: ScoreLike = "mean",
        generator: GeneratorLike = None,
    ) -> None:
        super().__init__(
            model,
            horizon=horizon,
            samples=samples,
            particles=particles,
            gamma=gamma,
            score=score,
            generator=generator,
        )
        self.elites = check_int("elites", elites)
        if self.elites > self.samples:
            raise ValueError(f"elites must be <= samples ({self.samples}), got {elites}")
        self.iterations = check_int("iterations", iterations)
        self.momentum = check_float("momentum", momentum, 0.0, 1.0)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be < 1 (1 would never refit), got {momentum}")
        half_range = (self.spec.high - self.spec.low) / 2
        self.init_std = (
            half_range if init_std is None else check_float("init_std", init_std, 0.0, open_low=True)
        )
        self.min_std = check_float("min_std", min_std, 0.0, open_low=True)
        self.smoothing = check_float("smoothing", smoothing, 0.0, 1.0)
        if self.smoothing >= 1.0:
            raise ValueError(f"smoothing must be < 1 (1 is a uniform distribution forever), got {smoothing}")
        if output not in ("best", "mean"):
            raise ValueError(f"output must be 'best' or 'mean', got {output!r}")
        self.output: CEMOutput = output

    @torch.no_grad()
    def plan(self, state: State, carry: PlanCarry | None = None) -> PlanResult:
        """Plan from ``state`` (batch ``B``); see :class:`~agentwm.planning.base.PlanResult`."""
        batch, device, tiled = self._start(state)
        if self.spec.kind == "continuous":
            return self._plan_gaussian(batch, device, tiled, carry)
        return self._plan_categorical(batch, device, tiled, carry)

    # -- continuous -----------------------------------------------------------------------------

    def _plan_gaussian(
        self, batch: int, device: torch.device, tiled: State, carry: PlanCarry | None
    ) -> PlanResult:
        spec, H, N, A = self.spec, self.horizon, self.samples, self.spec.dim
        rng = self._rng(device)
        keys = ("mean", "std") if isinstance(carry, dict) and "std" in carry else ("mean",)
        warm = self._check_carry(carry, keys, batch)
        centre = (spec.low + spec.high) / 2
        mean = torch.full((H, batch, A), centre, device=device)
        std = torch.full((H, batch, A), self.init_std, device=device)
        if warm is not None:
            mean = warm["mean"].to(mean).clamp(spec.low, spec.high)
            if "std" in warm:
                std = warm["std"].to(std).clamp_min(self.min_std)
        best_score = torch.full((batch,), -torch.inf, device=device)
        best_plan = mean.clone()
        for _ in range(self.iterations):
            # 1. sample around the current distribution; candidate 0 is its mean
            noise = torch.randn(H, batch, N, A, device=device, generator=rng)
            actions = (mean.unsqueeze(2) + std.unsqueeze(2) * noise).clamp(spec.low, spec.high)
            actions[:, :, 0] = mean
            # 2. imagine all candidates × particles at once and score them
            scores, evaluation = self._evaluate(tiled, actions)
            best_score, best_plan = _keep_best(scores, actions, best_score, best_plan)
            # 3. refit mean and std to the elites, with momentum and a floor on the std
            elites, elite_scores = _elites(actions, scores, self.elites)
            m = self.momentum
            mean = m * mean + (1 - m) * elites.mean(2)
            std = (m * std + (1 - m) * elites.std(2, unbiased=False)).clamp_min(self.min_std)
        info = self._info(scores, evaluation)
        info["plan/std"] = std.mean()
        next_carry = {
            "mean": shift(mean, torch.full((batch, A), centre, device=device)),
            "std": torch.full_like(std, self.init_std),
        }
        if self.output == "mean":
            best_plan, best_score = mean.clamp(spec.low, spec.high), elite_scores.mean(1)
        return PlanResult(best_plan[0], best_plan, best_score, next_carry, info)

    # -- discrete -------------------------------------------------------------------------------

    def _plan_categorical(
        self, batch: int, device: torch.device, tiled: State, carry: PlanCarry | None
    ) -> PlanResult:
        H, N, A = self.horizon, self.samples, self.spec.dim
        rng = self._rng(device)
        warm = self._check_carry(carry, ("probs",), batch)
        uniform = torch.full((H, batch, A), 1.0 / A, device=device)
        probs = uniform if warm is None else _normalise(warm["probs"].to(uniform))
        best_score = torch.full((batch,), -torch.inf, device=device)
        best_plan = mode_onehot(probs)
        for _ in range(self.iterations):
            # 1. sample one-hot sequences step by step; candidate 0 is the current mode
            actions = sample_categorical(probs, N, rng)
            actions[:, :, 0] = mode_onehot(probs)
            # 2. imagine and score
            scores, evaluation = self._evaluate(tiled, actions)
            best_score, best_plan = _keep_best(scores, actions, best_score, best_plan)
            # 3. refit to the elites' action frequencies, with momentum and uniform smoothing
            elites, elite_scores = _elites(actions, scores, self.elites)
            freq = elites.mean(2)
            probs = self.momentum * probs + (1 - self.momentum) * freq
            probs = (1 - self.smoothing) * probs + self.smoothing / A
        info = self._info(scores, evaluation)
        info["plan/entropy"] = -(probs * probs.log()).sum(-1).mean()
        next_carry = {"probs": shift(0.5 * probs + 0.5 / A, uniform[0])}
        if self.output == "mean":
            best_plan, best_score = mode_onehot(probs), elite_scores.mean(1)
        return PlanResult(best_plan[0], best_plan, best_score, next_carry, info)


def _elites(actions: Tensor, scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best sequences ``[H, B, k, A]`` of each start state and their scores ``[B, k]``."""
    H, B, _, A = actions.shape
    top, index = scores.topk(k, dim=1)
    return actions.gather(2, index.view(1, B, k, 1).expand(H, B, k, A)), top


def _keep_best(
    scores: Tensor, actions: Tensor, best_score: Tensor, best_plan: Tensor
) -> tuple[Tensor, Tensor]:
    """Fold this iteration's best candidate into the best seen so far (per start state)."""
    top, index = scores.max(1)
    better = top > best_score
    return torch.where(better, top, best_score), torch.where(
        better[None, :, None], pick(actions, index), best_plan
    )


def _normalise(probs: Tensor) -> Tensor:
    if bool((probs < 0).any()):
        raise ValueError("carry['probs'] must be non-negative probabilities")
    return probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)
