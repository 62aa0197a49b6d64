"""Model-predictive path integral control: a return-weighted average of perturbed sequences.

Each iteration perturbs the current plan, imagines every perturbation, and moves the plan to the
average of the perturbations weighted by ``softmax(score / temperature)``: low temperatures
approach "take the best", high ones a plain average. Continuous specs perturb a mean sequence
with Gaussian noise of fixed ``noise_std`` (clipped into the bounds, as TD-MPC2 does); discrete
specs sample from per-step categorical probabilities and move them to the weighted frequencies of
the sampled actions (smoothed towards uniform).

The result is the final mean (or the mode of the final probabilities), not the single best
sample: averaging is what makes MPPI's actions smooth and robust to noisy scores. Its ``score``
is the importance-weighted estimate ``sum_n w_n * score_n`` of the last iteration.

Temperature acts on raw scores, so pick it on the scale of score differences between candidates.
"""

from __future__ import annotations

import torch
from torch import Tensor

from agentwm.planning.base import (
    Evaluation,
    GeneratorLike,
    PlanCarry,
    PlanResult,
    SamplingPlanner,
    check_float,
    check_int,
    mode_onehot,
    sample_categorical,
    shift,
)
from agentwm.planning.scoring import ScoreLike
from agentwm.worldmodels.base import State, WorldModel


class MPPI(SamplingPlanner):
    """MPPI over action sequences, for discrete and continuous action specs.

    Args:
        model: any world model.
        horizon: steps per sequence.
        samples: perturbed sequences per start state and iteration (one ``imagine`` call each).
        iterations: weighted updates per call.
        particles: imaginations per sequence.
        gamma: discount.
        temperature: softmax temperature on scores, ``> 0``.
        noise_std: std of the Gaussian perturbations (continuous); ``None`` is a quarter of the
            action range.
        momentum: weight of the old plan in each update, in ``[0, 1)``.
        smoothing: mixing weight of uniform into the updated probabilities (discrete), in ``[0, 1)``.
        score: scoring rule over particles.
        generator: ``torch.Generator``, int seed or ``None``.

    Carry: continuous ``{"mean"}`` (shifted one step, new last step at the centre of the range);
    discrete ``{"probs"}`` (shifted one step and mixed half-way back to uniform).

    Example:
        >>> planner = MPPI(model, horizon=12, samples=256, iterations=4, temperature=0.5, generator=0)
        >>> result = planner.plan(state)
        >>> result = planner.plan(next_state, carry=result.carry)
    """

    def __init__(
        self,
        model: WorldModel,
        *,
        horizon: int,
        samples: int = 256,
        iterations: int = 3,
        particles: int = 1,
        gamma: float = 0.99,
        temperature: float = 0.5,
        noise_std: float | None = None,
        momentum: float = 0.0,
        smoothing: float = 0.05,
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
        self.iterations = check_int("iterations", iterations)
        self.temperature = check_float("temperature", temperature, 0.0, open_low=True)
        quarter_range = (self.spec.high - self.spec.low) / 4
        self.noise_std = (
            quarter_range if noise_std is None else check_float("noise_std", noise_std, 0.0, open_low=True)
        )
        self.momentum = check_float("momentum", momentum, 0.0, 1.0)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be < 1 (1 would never update), got {momentum}")
        self.smoothing = check_float("smoothing", smoothing, 0.0, 1.0)
        if self.smoothing >= 1.0:
            raise ValueError(f"smoothing must be < 1 (1 is a uniform distribution forever), got {smoothing}")

    @torch.no_grad()
    def plan(self, state: State, carry: PlanCarry | None = None) -> PlanResult:
        """Plan from ``state`` (batch ``B``); see :class:`~agentwm.planning.base.PlanResult`."""
        batch, device, tiled = self._start(state)
        if self.spec.kind == "continuous":
            return self._plan_gaussian(batch, device, tiled, carry)
        return self._plan_categorical(batch, device, tiled, carry)

    def _weights(self, scores: Tensor) -> Tensor:
        """Softmax weights ``[B, N]`` of the candidates."""
        return torch.softmax(scores / self.temperature, dim=1)

    # -- continuous -----------------------------------------------------------------------------

    def _plan_gaussian(
        self, batch: int, device: torch.device, tiled: State, carry: PlanCarry | None
    ) -> PlanResult:
        spec, H, N, A = self.spec, self.horizon, self.samples, self.spec.dim
        rng = self._rng(device)
        warm = self._check_carry(carry, ("mean",), batch)
        centre = (spec.low + spec.high) / 2
        mean = torch.full((H, batch, A), centre, device=device)
        if warm is not None:
            mean = warm["mean"].to(mean).clamp(spec.low, spec.high)
        for _ in range(self.iterations):
            # 1. perturb the plan (candidate 0 is the plan itself), clipped into the bounds
            noise = self.noise_std * torch.randn(H, batch, N, A, device=device, generator=rng)
            actions = (mean.unsqueeze(2) + noise).clamp(spec.low, spec.high)
            actions[:, :, 0] = mean
            # 2. imagine all perturbations × particles at once and score them
            scores, evaluation = self._evaluate(tiled, actions)
            # 3. move the plan to the score-weighted average of the perturbations
            weights = self._weights(scores)
            mean = self.momentum * mean + (1 - self.momentum) * torch.einsum("bn,hbna->hba", weights, actions)
        info = self._finish_info(scores, evaluation, weights)
        estimate = (weights * scores).sum(1)
        next_carry = {"mean": shift(mean, torch.full((batch, A), centre, device=device))}
        return PlanResult(mean[0], mean, estimate, next_carry, info)

    # -- discrete -------------------------------------------------------------------------------

    def _plan_categorical(
        self, batch: int, device: torch.device, tiled: State, carry: PlanCarry | None
    ) -> PlanResult:
        H, N, A = self.horizon, self.samples, self.spec.dim
        rng = self._rng(device)
        warm = self._check_carry(carry, ("probs",), batch)
        uniform = torch.full((H, batch, A), 1.0 / A, device=device)
        probs = uniform
        if warm is not None:
            probs = warm["probs"].to(uniform).clamp_min(0.0)
            probs = probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)
        for _ in range(self.iterations):
            # 1. sample one-hot sequences (candidate 0 is the current mode)
            actions = sample_categorical(probs, N, rng)
            actions[:, :, 0] = mode_onehot(probs)
            # 2. imagine and score
            scores, evaluation = self._evaluate(tiled, actions)
            # 3. move the probabilities to the score-weighted action frequencies, smoothed
            weights = self._weights(scores)
            freq = torch.einsum("bn,hbna->hba", weights, actions)
            probs = self.momentum * probs + (1 - self.momentum) * freq
            probs = (1 - self.smoothing) * probs + self.smoothing / A
        info = self._finish_info(scores, evaluation, weights)
        info["plan/entropy"] = -(probs * probs.log()).sum(-1).mean()
        plan = mode_onehot(probs)
        estimate = (weights * scores).sum(1)
        next_carry = {"probs": shift(0.5 * probs + 0.5 / A, uniform[0])}
        return PlanResult(plan[0], plan, estimate, next_carry, info)

    def _finish_info(self, scores: Tensor, evaluation: Evaluation, weights: Tensor) -> dict[str, Tensor]:
        info = self._info(scores, evaluation)
        # Effective sample size of the weights: ~1 means the temperature is too low to average.
        info["plan/ess"] = (1.0 / (weights**2).sum(1)).mean()
        return info
