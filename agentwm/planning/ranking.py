"""Rank a finite set of candidates by imagined return: what an LLM-agent planning node does.

The candidates come from somewhere else (an LLM proposing tool calls, a menu of replies, a
policy's top-k) and the world model only has to say which is best. A candidate is either a full
action sequence, or a first action followed by a follow-up behaviour for the rest of the horizon:
a :data:`~agentwm.worldmodels.base.Policy`, ``"random"`` (uniform actions, so the score is "how
good is this first step on average over what follows") or ``"repeat"`` (hold the first action).
All ``K`` candidates × ``S`` samples are imagined in one ``model.imagine`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    WorldModel,
    repeat_state,
    state_batch_size,
)

Followup = Policy | Literal["random", "repeat"]
"""What happens after a candidate's first action: a policy, uniform random actions, or the same action."""


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


@torch.no_grad()
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
    """Imagine each candidate ``samples`` times from one start state and rank by score.

    Args:
        model: any world model.
        state: a carry of batch 1 (one start state).
        candidates: ``[K, H, A]`` full action sequences, or ``[K, A]`` first actions continued by
            ``followup``; one-hot rows for discrete specs, values within the bounds for continuous.
        horizon: steps to imagine; required for first actions, and must equal ``H`` for sequences.
        samples: ``S`` imaginations per candidate (stochastic models, random follow-ups).
        gamma: discount.
        score: scoring rule over the ``S`` samples (``"mean"``, ``"lower_quantile"``,
            ``"disagreement_penalized"`` or a ``Scorer``); :meth:`Ranking.rescore` gives the others.
        followup: what follows a first action: a ``Policy``, ``"random"`` or ``"repeat"``; unused
            for full sequences.
        generator: ``torch.Generator`` or int seed for the random follow-up.

    Raises:
        ValueError: a carry with batch other than 1, candidates of the wrong shape, off-spec actions,
            a horizon that does not match, or an unknown follow-up.

    Example:
        >>> first = model.action_spec.one_hot(torch.tensor([0, 1, 2]))
        >>> ranking = rank_candidates(model, state, first, horizon=5, samples=8, followup="random")
        >>> chosen = first[ranking.best]
    """
    model = check_model(model)
    spec = model.action_spec
    samples = check_int("samples", samples)
    gamma = check_float("gamma", gamma, 0.0, 1.0)
    scorer = as_scorer(score)
    if state_batch_size(check_state_finite(state)) != 1:
        raise ValueError(
            f"rank_candidates ranks candidates for ONE start state; got a carry of batch {state_batch_size(state)}"
            " (select one with agentwm.worldmodels.index_state(state, slice(i, i + 1)))"
        )
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

    evaluation = evaluate_rollout(rollout, (K, samples, 1), gamma=gamma, horizon=H)
    returns = evaluation.returns.squeeze(-1)
    disagreement = None if evaluation.disagreement is None else evaluation.disagreement.squeeze(-1)
    scores = scorer(returns, disagreement)
    if not bool(torch.isfinite(scores).all()):  # argsort would rank NaN first: refuse instead
        bad = torch.nonzero(~torch.isfinite(scores)).flatten().tolist()
        raise ValueError(f"the model imagined NaN/inf scores for candidates {bad}: it has diverged, or its "
                         "inputs are out of range; nothing can be ranked")  # fmt: skip
    order = torch.argsort(scores, descending=True, stable=True)
    return Ranking(
        scores=scores,
        returns=returns,
        disagreement=None if disagreement is None else disagreement.mean(-1),
        order=order,
        best=int(order[0]),
        rollout=rollout,
    )


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
