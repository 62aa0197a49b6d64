"""What every planner shares: the :class:`PlanResult` it returns, the tiling of start states over
samples × particles, batched evaluation of action sequences, and action sampling per ``ActionSpec``.

Planners see a world model only through the protocol: ``model.action_spec`` and
``model.imagine(state, actions, horizon) -> Rollout``. A candidate's return is
``Rollout.returns(gamma)`` (the one implementation of the return math, bootstrapped by the model's
values when it has them), so a planner never re-derives discounting or episode ends.

Layout convention: a start carry of batch ``B`` is tiled to ``B * N * P`` rows ordered
``[B, N, P]`` (start state, candidate sample, particle), which is exactly what
:func:`~agentwm.worldmodels.base.repeat_state` produces with ``repeats = N * P``. Action sequences
are time-major ``[H, B, N, A]`` and are broadcast over particles before the one ``imagine`` call.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from agentwm.core.distributions import sample_indices
from agentwm.planning.scoring import ScoreLike, Scorer, as_scorer
from agentwm.worldmodels.base import (
    ActionSpec,
    Rollout,
    State,
    WorldModel,
    repeat_state,
    state_batch_size,
)

PlanCarry = dict[str, Tensor]
"""A planner's warm start, handed back to the caller: time-major ``[H, B, A]`` tensors keyed by
what they are (``"mean"``/``"std"`` for Gaussian planners, ``"probs"`` for categorical ones,
``"actions"`` for random shooting), already shifted one step for the next call."""

GeneratorLike = torch.Generator | int | None
"""A ``torch.Generator`` (on the model's device), an integer seed (a generator is made on the
state's device at the first call and its stream continues across calls), or ``None`` for the
global RNG."""


@dataclass
class PlanResult:
    """What a planner decided for a batch of ``B`` start states.

    Attributes:
        action: ``[B, A]`` the first action to execute (a one-hot row for discrete specs).
        actions: ``[H, B, A]`` the whole planned sequence (best found, or the final mean/mode).
        score: ``[B]`` the planner's estimate of that sequence's score.
        carry: warm start for the next call (shifted one step), or ``None``; pass it back as
            ``plan(next_state, carry=result.carry)`` after executing ``action``.
        info: detached scalar metrics keyed ``plan/...``.
    """

    action: Tensor
    actions: Tensor
    score: Tensor
    carry: PlanCarry | None = None
    info: dict[str, Tensor] = field(default_factory=dict)


@runtime_checkable
class Planner(Protocol):
    """Anything that turns a start carry (and its own previous carry) into a :class:`PlanResult`."""

    def plan(self, state: State, carry: PlanCarry | None = None) -> PlanResult:
        """Plan from ``state`` (batch ``B``), warm-started from ``carry`` when given."""
        ...


# ----------------------------------------------------------------------------------------------
# Argument checks: the message names the argument and what was expected.


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (bools rejected), or a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_float(
    name: str, value: Any, low: float = -math.inf, high: float = math.inf, *, open_low: bool = False
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must be a finite number in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def check_state_finite(state: State, name: str = "state") -> State:
    """``state`` when every floating tensor in it is finite; else a ``ValueError`` naming the entry
    (a NaN observation would otherwise plan silently: every score NaN, the first candidate chosen)."""
    for key, value in state.items():
        checkable = isinstance(value, Tensor) and value.is_floating_point() and value.device.type != "meta"
        if checkable and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{name}[{key!r}] contains NaN or inf ({bad} of {value.numel()} values); "
                             "plan from finite observations")  # fmt: skip
    return state


def check_model(model: Any) -> WorldModel:
    """The model, if it offers what planners use: an ``ActionSpec`` and a callable ``imagine``."""
    spec = getattr(model, "action_spec", None)
    if not isinstance(spec, ActionSpec) or not callable(getattr(model, "imagine", None)):
        raise TypeError(
            "model must implement the WorldModel protocol (an ActionSpec `action_spec` and"
            f" `imagine(state, actions, horizon) -> Rollout`), got {type(model).__name__}"
        )
    return model  # type: ignore[no-any-return]


def check_generator(generator: Any) -> GeneratorLike:
    """``generator`` if it is a ``torch.Generator``, an int seed or ``None``; a ``TypeError`` otherwise."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return generator
    raise TypeError(
        f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}"
    )


def make_generator(generator: GeneratorLike, device: torch.device) -> torch.Generator | None:
    """A generator to sample with on ``device``: the given one, a fresh one from a seed, or ``None``."""
    generator = check_generator(generator)
    if isinstance(generator, int):
        return torch.Generator(device=device).manual_seed(generator)
    return generator


def state_device(state: State) -> torch.device:
    """Device of a carry (that of its first tensor; CPU for text-only carries)."""
    for value in state.values():
        if isinstance(value, Tensor):
            return value.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------
# Tiling and batched evaluation.


def tile_state(state: State, samples: int, particles: int = 1) -> dict[str, Any]:
    """Tile a carry of batch ``B`` to ``B * samples * particles`` rows, ordered ``[B, N, P]``."""
    return repeat_state(state, check_int("samples", samples) * check_int("particles", particles))


@dataclass
class Evaluation:
    """Returns of ``N`` candidate sequences per start state, each imagined ``P`` times.

    Attributes:
        returns: ``[B, N, P]`` ``Rollout.returns(gamma)`` of every row.
        disagreement: ``[B, N, P]`` the model's disagreement averaged over the horizon, or ``None``
            when the model does not report ``extras["disagreement"]``.
        rollout: the batched rollout (``B * N * P`` rows, ordered ``[B, N, P]``).
    """

    returns: Tensor
    disagreement: Tensor | None
    rollout: Rollout

    def score(self, scorer: Scorer) -> Tensor:
        """Scores ``[B, N]`` under ``scorer``."""
        return scorer(self.returns, self.disagreement)


def evaluate_sequences(
    model: WorldModel, tiled_state: State, actions: Tensor, *, particles: int, gamma: float
) -> Evaluation:
    """Imagine every candidate × particle in ONE ``model.imagine`` call and take its returns.

    Args:
        model: any world model.
        tiled_state: the start carry tiled by :func:`tile_state` to ``B * N * P`` rows.
        actions: ``[H, B, N, A]`` candidate sequences; each is repeated over the ``P`` particles.
        particles: ``P``, how many times each candidate is imagined (independent model samples).
        gamma: discount.

    Raises:
        ValueError: the rollout's rewards or disagreement do not have ``[H, B * N * P]`` rows.
    """
    H, B, N, A = actions.shape
    flat = actions.unsqueeze(3).expand(H, B, N, particles, A).reshape(H, B * N * particles, A)
    return evaluate_rollout(model.imagine(tiled_state, flat, H), (B, N, particles), gamma=gamma, horizon=H)


def evaluate_rollout(
    rollout: Rollout, layout: tuple[int, int, int], *, gamma: float, horizon: int | None = None
) -> Evaluation:
    """Returns and disagreement of a rollout whose rows are ordered ``layout = (B, N, P)``.

    Raises:
        ValueError: the rollout's rewards or disagreement are not ``[H, B * N * P]`` (with
            ``H = horizon`` when given).
    """
    rows = layout[0] * layout[1] * layout[2]
    H = rollout.rewards.shape[0] if horizon is None else horizon
    if tuple(rollout.rewards.shape) != (H, rows):
        raise ValueError(
            f"model.imagine returned rewards of shape {tuple(rollout.rewards.shape)}; expected {rows} rows"
            f" (start states × candidates × particles = {layout})"
        )
    returns = rollout.returns(gamma).reshape(layout)
    disagreement = rollout.extras.get("disagreement")
    if disagreement is not None:
        if not isinstance(disagreement, Tensor) or tuple(disagreement.shape) != (H, rows):
            shape = tuple(disagreement.shape) if isinstance(disagreement, Tensor) else type(disagreement)
            raise ValueError(f"rollout.extras['disagreement'] must be [H, B] = ({H}, {rows}), got {shape}")
        disagreement = disagreement.to(returns).mean(0).reshape(layout)
    return Evaluation(returns, disagreement, rollout)


# ----------------------------------------------------------------------------------------------
# Sampling actions from an ActionSpec (all time-major, one generator, no host sync).


def uniform_actions(
    spec: ActionSpec, shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """Uniformly random actions ``[*shape, A]``: one-hot rows or floats in ``[low, high]``."""
    if spec.kind == "discrete":
        idx = torch.randint(spec.dim, shape, device=device, generator=generator)
        return spec.one_hot(idx)
    u = torch.rand(*shape, spec.dim, device=device, generator=generator)
    return spec.low + (spec.high - spec.low) * u


def sample_categorical(probs: Tensor, samples: int, generator: torch.Generator | None) -> Tensor:
    """``samples`` one-hot sequences ``[H, B, N, A]`` from per-step probabilities ``[H, B, A]``."""
    H, B, A = probs.shape
    logits = torch.log(probs.clamp_min(1e-30)).unsqueeze(2).expand(H, B, samples, A)
    return torch.nn.functional.one_hot(sample_indices(logits, generator), A).to(probs.dtype)


def mode_onehot(probs: Tensor) -> Tensor:
    """Most likely action of each step as a one-hot row, ``[..., A] -> [..., A]``."""
    return torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)


def clip_to_spec(actions: Tensor, spec: ActionSpec) -> Tensor:
    """Clamp continuous actions into ``[low, high]``; discrete actions pass through."""
    return actions.clamp(spec.low, spec.high) if spec.kind == "continuous" else actions


def shift(x: Tensor, fill: Tensor) -> Tensor:
    """Drop step 0 of ``x [H, ...]`` and append ``fill [...]``: the warm start for the next call."""
    return torch.cat([x[1:], fill.unsqueeze(0).to(x)], 0)


def pick(actions: Tensor, index: Tensor) -> Tensor:
    """Select one candidate per start state: ``actions [H, B, N, A]``, ``index [B]`` -> ``[H, B, A]``."""
    H, _, _, A = actions.shape
    return actions.gather(2, index.view(1, -1, 1, 1).expand(H, -1, 1, A)).squeeze(2)


# ----------------------------------------------------------------------------------------------
# The shared skeleton of the sampling planners.


class SamplingPlanner(abc.ABC):
    """Common arguments, checks and RNG handling of random shooting, CEM and MPPI.

    Args:
        model: any :class:`~agentwm.worldmodels.base.WorldModel`.
        horizon: steps ``H`` imagined per candidate.
        samples: candidate sequences ``N`` per start state and iteration.
        particles: imaginations ``P`` per candidate (``> 1`` for stochastic/ensemble models).
        gamma: discount in ``[0, 1]``.
        score: how particle returns become one score (:data:`~agentwm.planning.scoring.ScoreMode`
            or a :class:`~agentwm.planning.scoring.Scorer`).
        generator: see :data:`GeneratorLike`.
    """

    def __init__(
        self,
        model: WorldModel,
        *,
        horizon: int,
        samples: int,
        particles: int = 1,
        gamma: float = 0.99,
        score: ScoreLike = "mean",
        generator: GeneratorLike = None,
    ) -> None:
        self.model = check_model(model)
        self.spec: ActionSpec = model.action_spec
        self.horizon = check_int("horizon", horizon)
        self.samples = check_int("samples", samples)
        self.particles = check_int("particles", particles)
        self.gamma = check_float("gamma", gamma, 0.0, 1.0)
        self.scorer = as_scorer(score)
        self._generator = check_generator(generator)
        self._seeded: dict[torch.device, torch.Generator | None] = {}

    @abc.abstractmethod
    def plan(self, state: State, carry: PlanCarry | None = None) -> PlanResult:
        """Plan from ``state`` (batch ``B``), warm-started from ``carry`` when given."""

    # -- helpers for subclasses -----------------------------------------------------------------

    def _rng(self, device: torch.device) -> torch.Generator | None:
        # A seed becomes one generator per device whose stream continues across calls.
        if device not in self._seeded:
            self._seeded[device] = make_generator(self._generator, device)
        return self._seeded[device]

    def _start(self, state: State) -> tuple[int, torch.device, dict[str, Any]]:
        """Batch size, device and the carry tiled over samples × particles."""
        batch = state_batch_size(check_state_finite(state))
        return batch, state_device(state), tile_state(state, self.samples, self.particles)

    def _evaluate(self, tiled: State, actions: Tensor) -> tuple[Tensor, Evaluation]:
        evaluation = evaluate_sequences(
            self.model, tiled, actions, particles=self.particles, gamma=self.gamma
        )
        return evaluation.score(self.scorer), evaluation

    def _check_carry(self, carry: PlanCarry | None, keys: tuple[str, ...], batch: int) -> PlanCarry | None:
        if carry is None:
            return None
        if not isinstance(carry, dict):
            raise TypeError(
                f"carry must be a dict from a previous PlanResult.carry or None, got {type(carry).__name__}"
            )
        shape = (self.horizon, batch, self.spec.dim)
        for key in keys:
            value = carry.get(key)
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else value
                raise ValueError(
                    f"carry[{key!r}] must be a tensor of shape [H, B, A] = {shape} (from this planner's"
                    f" previous PlanResult), got {got}"
                )
        return carry

    def _info(self, scores: Tensor, evaluation: Evaluation) -> dict[str, Tensor]:
        """Detached population metrics of the last iteration."""
        info = {
            "plan/score_mean": scores.mean(),
            "plan/score_max": scores.max(1).values.mean(),
            "plan/return_std": evaluation.returns.std(-1, unbiased=False).mean(),
        }
        if evaluation.disagreement is not None:
            info["plan/disagreement"] = evaluation.disagreement.mean()
        return {key: value.detach() for key, value in info.items()}
