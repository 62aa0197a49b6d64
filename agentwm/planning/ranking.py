"""THE candidate-ranking path: every "score these candidates" in agentwm goes through :func:`rank`.

The candidates come from somewhere else (an LLM proposing tool calls, a menu of replies, a
policy's top-k, an MPC user's first actions) and the world model only has to say which is best.
:func:`rank` takes a latent :class:`~agentwm.worldmodels.WorldModel` with tensor candidates or a
:class:`~agentwm.worldmodels.TextWorldModel` (LLM outcome model, dialogue model) with text
candidates and returns one :class:`Ranking`. A tensor candidate is either a full action sequence,
or a first action followed by a follow-up behaviour for the rest of the horizon: a
:data:`~agentwm.worldmodels.base.Policy`, ``"random"`` (uniform actions, so the score is "how good
is this first step on average over what follows") or ``"repeat"`` (hold the first action). A text
candidate is the first action; the text model proposes what follows. All ``K`` candidates × ``S``
samples are imagined in one ``model.imagine`` call (:func:`arank`: one ``aimagine`` call).
:func:`score_samples` is the scoring half on its own, for callers that already hold sample returns
(the graph's score node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor

from agentwm.planning.base import (
    GeneratorLike,
    check_float,
    check_int,
    check_model,
    check_state_finite,
    evaluate_rollout,
    make_generator,
    state_device,
    uniform_actions,
)
from agentwm.planning.scoring import ScoreLike, as_scorer
from agentwm.worldmodels.base import (
    ActionSpec,
    Policy,
    Rollout,
    State,
    TextWorldModel,
    WorldModel,
    repeat_state,
    state_batch_size,
)

Followup = Policy | Literal["random", "repeat"]
"""What happens after a candidate's first action: a policy, uniform random actions, or the same action."""

Candidates = Tensor | Sequence[str]
"""Tensor candidates (``[K, H, A]`` sequences or ``[K, A]`` first actions) or text candidates."""


@dataclass
class Ranking:
    """Candidates scored and ordered for one start state.

    Attributes:
        scores: ``[K]`` score of each candidate under the requested rule.
        returns: ``[K, S]`` return of each imagined sample.
        disagreement: ``[K]`` the model's disagreement averaged over horizon and samples, or ``None``
            when the model does not report it.
        order: ``[K]`` candidate indices, best first.
        best: index of the best candidate.
        rollout: the batched rollout, ``K * S`` rows ordered ``[K, S]``.
    """

    scores: Tensor
    returns: Tensor
    disagreement: Tensor | None
    order: Tensor
    best: int
    rollout: Rollout

    def rescore(self, score: ScoreLike) -> Tensor:
        """Scores ``[K]`` of the same imagined samples under another rule, e.g. ``"lower_quantile"``
        or ``Scorer("disagreement_penalized", kappa=2.0)``; no new imagination."""
        dis = None if self.disagreement is None else self.disagreement[:, None].expand_as(self.returns)
        return as_scorer(score)(self.returns, dis)


def score_samples(returns: Tensor, disagreement: Tensor | None, score: ScoreLike = "mean") -> tuple[Tensor, Tensor]:
    """Scores ``[K]`` of sample returns ``[K, S]`` under ``score`` and the order, best first (ties to
    the earlier candidate); ``disagreement`` is ``[K, S]`` or ``None``.

    Raises:
        ValueError: a NaN or infinite score (a non-finite reward, value or disagreement from the
            model is an input problem or a diverged model, never a candidate to rank).
    """
    scores = as_scorer(score)(returns, disagreement)
    bad_mask = ~torch.isfinite(scores)  # argsort would rank NaN first and inf as a sure win: refuse both
    if bool(bad_mask.any()):
        bad = [int(i) for i in bad_mask.nonzero().flatten()[:8]]
        raise ValueError(
            f"the score of candidate(s) {bad} is NaN or infinite: the world model returned non-finite rewards,"
            " values or disagreement for them (check the model's inputs and weights)"
        )
    return scores, torch.argsort(scores, descending=True, stable=True)


@torch.no_grad()
def rank(
    model: WorldModel | TextWorldModel,
    state: State,
    candidates: Candidates,
    *,
    horizon: int | None = None,
    samples: int = 1,
    gamma: float = 0.99,
    score: ScoreLike = "mean",
    followup: Followup = "random",
    generator: GeneratorLike = None,
    imagine_options: Mapping[str, Any] | None = None,
) -> Ranking:
    """Imagine each candidate ``samples`` times from one start state and rank by score.

    Args:
        model: a latent world model (tensor candidates) or a text world model (text candidates).
        state: a carry of batch 1 (one start state).
        candidates: ``[K, H, A]`` full action sequences, or ``[K, A]`` first actions continued by
            ``followup``, one-hot rows for discrete specs, values within the bounds for continuous;
            or ``K`` texts, each the first action of a text model's imagined future.
        horizon: steps to imagine; required for first actions and texts, and must equal ``H`` for
            sequences.
        samples: ``S`` imaginations per candidate (stochastic models, random follow-ups).
        gamma: discount.
        score: scoring rule over the ``S`` samples (``"mean"``, ``"lower_quantile"``,
            ``"disagreement_penalized"`` or a ``Scorer``); :meth:`Ranking.rescore` gives the others.
        followup: what follows a tensor first action: a ``Policy``, ``"random"`` or ``"repeat"``;
            unused for sequences and texts.
        generator: ``torch.Generator`` or int seed for the random follow-up (tensor candidates).
        imagine_options: extra keyword arguments of a text model's ``imagine`` (e.g. the dialogue
            model's ``sample``/``generator``).

    Raises:
        ValueError: a carry with batch other than 1, candidates of the wrong shape, off-spec actions,
            no texts, a horizon that does not match, an unknown follow-up, or a NaN score.

    Example:
        >>> first = model.action_spec.one_hot(torch.tensor([0, 1, 2]))
        >>> ranking = rank(model, state, first, horizon=5, samples=8, followup="random")
        >>> chosen = first[ranking.best]
        >>> rank(llm_model, llm_model.observe("a locked door"), ["knock", "kick it"], horizon=2).best
    """
    samples = check_int("samples", samples)
    gamma = check_float("gamma", gamma, 0.0, 1.0)
    score = as_scorer(score)  # a bad rule fails before any imagination
    _check_one_state(state)
    if isinstance(candidates, Tensor):
        return _rank_latent(model, state, candidates, horizon, samples, gamma, score, followup, generator)
    texts, H, tiled, actions = _text_inputs(model, state, candidates, horizon, samples)
    text_model = cast(TextWorldModel, model)
    rollout = text_model.imagine(tiled, actions, H, **dict(imagine_options or {}))
    return _ranking(rollout, len(texts), samples, gamma, H, score)


async def arank(
    model: TextWorldModel,
    state: State,
    candidates: Sequence[str],
    *,
    horizon: int,
    samples: int = 1,
    gamma: float = 0.99,
    score: ScoreLike = "mean",
) -> Ranking:
    """:func:`rank` of text candidates for event loops: one ``aimagine`` call, so the LLM latency
    of concurrent rankings overlaps."""
    samples = check_int("samples", samples)
    gamma = check_float("gamma", gamma, 0.0, 1.0)
    score = as_scorer(score)
    _check_one_state(state)
    texts, H, tiled, actions = _text_inputs(model, state, candidates, horizon, samples)
    rollout = await model.aimagine(tiled, actions, H)
    with torch.no_grad():
        return _ranking(rollout, len(texts), samples, gamma, H, score)


def rank_candidates(
    model: WorldModel,
    state: State,
    candidates: Tensor,
    *,
    horizon: int | None = None,
    samples: int = 1,
    gamma: float = 0.99,
    score: ScoreLike = "mean",
    followup: Followup = "random",
    generator: GeneratorLike = None,
) -> Ranking:
    """:func:`rank` of tensor candidates with a latent world model (the name planners know)."""
    if not isinstance(candidates, Tensor):
        raise TypeError("rank_candidates takes tensor candidates; use rank() for text candidates")
    return rank(
        model, state, candidates, horizon=horizon, samples=samples, gamma=gamma, score=score,
        followup=followup, generator=generator,
    )


def _check_one_state(state: State) -> None:
    if state_batch_size(check_state_finite(state)) != 1:
        raise ValueError(
            f"rank ranks candidates for ONE start state; got a carry of batch {state_batch_size(state)}"
            " (select one with agentwm.worldmodels.index_state(state, slice(i, i + 1)))"
        )


def _ranking(rollout: Rollout, K: int, samples: int, gamma: float, H: int, score: ScoreLike) -> Ranking:
    if not isinstance(rollout, Rollout):
        raise TypeError(f"the world model's imagine returned {type(rollout).__name__}, not a Rollout")
    evaluation = evaluate_rollout(rollout, (K, samples, 1), gamma=gamma, horizon=H)
    returns = evaluation.returns.squeeze(-1)
    disagreement = None if evaluation.disagreement is None else evaluation.disagreement.squeeze(-1)
    scores, order = score_samples(returns, disagreement, score)
    return Ranking(
        scores=scores,
        returns=returns,
        disagreement=None if disagreement is None else disagreement.mean(-1),
        order=order,
        best=int(order[0]),
        rollout=rollout,
    )


def _text_inputs(
    model: Any, state: State, candidates: Any, horizon: int | None, samples: int
) -> tuple[list[str], int, dict[str, Any], list[list[str]]]:
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(
            "candidates must be a tensor (latent world models) or a list of texts (text world models),"
            f" got {type(candidates).__name__}"
        )
    texts = list(candidates)
    if not texts:
        raise ValueError("candidates is empty; it needs at least one text")
    for i, c in enumerate(texts):
        if not isinstance(c, str):
            raise TypeError(f"candidates[{i}] must be a str, got {type(c).__name__}")
    if not callable(getattr(model, "imagine", None)):
        raise TypeError(f"model must be a WorldModel or a TextWorldModel, got {type(model).__name__}")
    if horizon is None:
        raise ValueError("horizon is required for text candidates")
    H = check_int("horizon", horizon)
    return texts, H, repeat_state(state, len(texts) * samples), [[c for c in texts for _ in range(samples)]]


def _rank_latent(
    model: Any,
    state: State,
    candidates: Tensor,
    horizon: int | None,
    samples: int,
    gamma: float,
    score: ScoreLike,
    followup: Followup,
    generator: GeneratorLike,
) -> Ranking:
    model = check_model(model)
    spec = model.action_spec
    device = state_device(state)
    cands = _check_candidates(candidates, spec).to(device)
    K = cands.shape[0]
    if cands.dim() == 3:
        H = int(cands.shape[1])
        if horizon is not None and check_int("horizon", horizon) != H:
            raise ValueError(f"horizon={horizon} does not match the candidate sequences' length {H}")
    elif horizon is None:
        raise ValueError("horizon is required when candidates are first actions [K, A]")
    else:
        H = check_int("horizon", horizon)

    tiled = repeat_state(state, K * samples)  # rows ordered [K, S]
    if cands.dim() == 3:
        actions = cands.transpose(0, 1).unsqueeze(2).expand(H, K, samples, spec.dim)
        rollout = model.imagine(tiled, actions.reshape(H, K * samples, spec.dim), H)
    elif followup == "repeat":
        actions = cands.view(1, K, 1, spec.dim).expand(H, K, samples, spec.dim)
        rollout = model.imagine(tiled, actions.reshape(H, K * samples, spec.dim), H)
    elif followup == "random":
        rng = make_generator(generator, device)
        actions = uniform_actions(spec, (H, K, samples), device, rng)
        actions[0] = cands.unsqueeze(1).expand(K, samples, spec.dim)
        rollout = model.imagine(tiled, actions.reshape(H, K * samples, spec.dim), H)
    elif callable(followup) and not isinstance(followup, str):
        first = cands.repeat_interleave(samples, dim=0)
        rollout = model.imagine(tiled, _FirstThen(first, followup, spec), H)
    else:
        raise ValueError(f"followup must be a Policy, 'random' or 'repeat', got {followup!r}")
    return _ranking(rollout, K, samples, gamma, H, score)


class _FirstThen:
    """A policy that plays fixed first actions, then defers to ``policy`` (one call per step)."""

    def __init__(self, first: Tensor, policy: Policy, spec: ActionSpec) -> None:
        self.first, self.policy, self.spec, self.calls = first, policy, spec, 0

    def __call__(self, state: State) -> Tensor:
        self.calls += 1
        if self.calls == 1:
            return self.first
        action = self.policy(state)
        if not isinstance(action, Tensor) or tuple(action.shape) != tuple(self.first.shape):
            got = tuple(action.shape) if isinstance(action, Tensor) else type(action).__name__
            raise ValueError(
                f"the follow-up policy must return actions [B, A] = {tuple(self.first.shape)}, got {got}"
            )
        return action.to(self.first)


def _check_candidates(candidates: Tensor, spec: ActionSpec) -> Tensor:
    if not isinstance(candidates, Tensor) or not candidates.is_floating_point():
        raise TypeError("candidates must be a float tensor [K, H, A] (sequences) or [K, A] (first actions)")
    if candidates.dim() not in (2, 3) or candidates.shape[-1] != spec.dim or candidates.shape[0] < 1:
        raise ValueError(
            f"candidates must be [K, H, A] sequences or [K, A] first actions with A = {spec.dim} and K >= 1,"
            f" got {list(candidates.shape)}"
        )
    if spec.kind == "discrete":
        binary = ((candidates == 0) | (candidates == 1)).all(-1)
        if not bool((binary & (candidates.sum(-1) == 1)).all()):
            raise ValueError(
                "discrete candidates must be one-hot rows (use model.action_spec.one_hot(index))"
            )
    elif not bool(((candidates >= spec.low) & (candidates <= spec.high)).all()):
        raise ValueError(f"continuous candidates must lie within the action bounds [{spec.low}, {spec.high}]")
    return candidates
