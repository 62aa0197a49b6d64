"""The partner's view of a pool-splitting negotiation, read by the agent's own outcome model.

In a negotiation over a known pool where each side privately values the items (Deal or No Deal),
the agent's :class:`~agentwm.worldmodels.dialogue_outcome.DialogueOutcomeModel` can also read the
talk *from the partner's side*: one carry per value vector the partner may hold (every non-negative
vector worth as much as the agent's for this pool), each weighted by how well it explains the
partner's turns so far (the turn's InfoNCE log-likelihood, tempered). An outcome that both sides
share — whether they agree — is then predicted twice, from the agent's side and from the partner's;
:func:`both_views` averages the two at every imagined step, so a candidate scores high only if the
talk reads as heading to a deal from both sides. Outcomes that depend on the agent's private values
(its points) are not shared and are read from the agent's side only.

The same model is used for both views (no second model); the hypothesis weights are fixed during
imagination (only real partner turns reweigh them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from agentwm.core.distributions import mode_onehot
from agentwm.worldmodels.base import Rollout, State
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel

SHARED_OUTCOMES = ("agreement",)
"""Outcomes that are the same from both sides of the talk (what the partner's view can predict)."""


def value_hypotheses(counts: Sequence[int], total: int = 10) -> list[tuple[int, ...]]:
    """Every value vector a side may hold for this pool (non-negative, worth ``total`` in all)."""
    ranges = [range(total // c + 1) if c else range(1) for c in counts]
    grid = torch.cartesian_prod(*[torch.tensor(list(r)) for r in ranges]).view(-1, len(counts))
    keep = grid[(grid * torch.tensor(list(counts))).sum(-1) == total]
    return [tuple(int(x) for x in row) for row in keep] or [tuple([0] * len(counts))]


@torch.no_grad()
def turn_loglik(model: DialogueOutcomeModel, carry: Mapping[str, Tensor], emb: Tensor) -> Tensor:
    """``[B]`` log-probability of a turn (embedding ``[E]``, or ``[B, E]``) as the next turn of each
    carry's own speaker: its InfoNCE score against that speaker's side of the bank, at the prior's mode."""
    B = carry["deter"].shape[0]
    flag = torch.ones(B)
    pred = model.decode(carry, mode_onehot(model._prior(carry, flag)), flag)
    _, side = model._side(True)
    bank = pred @ side.T / model.config.temperature
    own = (pred * emb.expand_as(pred)).sum(-1) / model.config.temperature
    return own - torch.logsumexp(torch.cat([bank, own[:, None]], -1), -1)


@dataclass(frozen=True)
class Mirror:
    """The partner's view of ``B`` talks: ``R`` carry rows (one per value hypothesis of the partner
    of talk ``owner[r]``) and the log-likelihood of each hypothesis given the partner's turns."""

    model: DialogueOutcomeModel
    carry: dict[str, Tensor]
    owner: Tensor  # [R] long, which talk each row belongs to
    loglik: Tensor  # [R]
    talks: int
    tempering: float = 0.3

    @classmethod
    def start(cls, model: DialogueOutcomeModel, contexts: Sequence[Mapping[str, Any]], tempering: float = 0.3) -> Mirror:
        """Before any turn, one talk per private context (``counts`` and the agent's ``values``).

        Raises:
            ValueError: a context without ``counts`` and ``values`` of the same length.
        """
        rows, owner = [], []
        for b, ctx in enumerate(contexts):
            counts, values = ctx.get("counts"), ctx.get("values")
            if not (isinstance(counts, Sequence) and isinstance(values, Sequence) and len(counts) == len(values) > 0):
                raise ValueError("the partner's view needs private_context with 'counts' and 'values' lists of one length "
                                 f"(a pool-splitting negotiation), got {dict(ctx)!r}")
            pool = [float(c) for c in counts]
            total = round(sum(c * v for c, v in zip(pool, (float(v) for v in values))))
            for hyp in value_hypotheses([int(c) for c in pool], total):
                rows.append(model.context_vector({"counts": pool, "values": [float(x) for x in hyp]}))
                owner.append(b)
        carry = model.initial(len(rows), torch.stack(rows))
        return cls(model, carry, torch.tensor(owner), torch.zeros(len(rows)), len(contexts), tempering)

    @classmethod
    def cat(cls, mirrors: Sequence[Mirror]) -> Mirror:
        """The talks of several mirrors of one model, in order, as one mirror."""
        if not mirrors:
            raise ValueError("cat needs at least one mirror")
        offsets = torch.cumsum(torch.tensor([0] + [m.talks for m in mirrors[:-1]]), 0)
        carry = {k: torch.cat([m.carry[k] for m in mirrors]) for k in mirrors[0].carry}
        owner = torch.cat([m.owner + int(o) for m, o in zip(mirrors, offsets)])
        return cls(mirrors[0].model, carry, owner, torch.cat([m.loglik for m in mirrors]),
                   sum(m.talks for m in mirrors), mirrors[0].tempering)

    @property
    def weights(self) -> Tensor:
        """``[R]`` posterior of each hypothesis within its talk (tempered likelihood of the partner's turns)."""
        logits = self.tempering * self.loglik
        top = torch.zeros(self.talks).scatter_reduce(0, self.owner, logits, "amax", include_self=False)
        w = torch.exp(logits - top[self.owner])
        return w / torch.zeros(self.talks).index_add(0, self.owner, w)[self.owner]

    @torch.no_grad()
    def hear(self, emb: Tensor, agent: Tensor) -> Mirror:
        """Fold one turn per talk (``emb [B, E]``, ``agent [B]``: said by the agent) into the rows; a
        partner turn first reweighs the hypotheses. Returns the new mirror (this one is unchanged)."""
        agent = agent.float()
        e, a = emb[self.owner], agent[self.owner]
        loglik = self.loglik + torch.where(a > 0, 0.0, turn_loglik(self.model, self.carry, e))
        carry = self.model.step(self.carry, e, 1.0 - a, sample=False)[0]
        return Mirror(self.model, carry, self.owner, loglik, self.talks, self.tempering)

    def tile(self, repeats: int) -> Mirror:
        """Each talk repeated ``repeats`` times, copies adjacent (as :func:`~agentwm.worldmodels.base.repeat_state`)."""
        order = torch.argsort(self.owner, stable=True)  # rows grouped by talk
        sizes = torch.bincount(self.owner, minlength=self.talks)
        starts = torch.cumsum(sizes, 0) - sizes
        talk = torch.arange(self.talks).repeat_interleave(sizes * repeats)  # talk b's block, repeats times
        within = torch.arange(len(talk)) - (torch.cumsum(sizes * repeats, 0) - sizes * repeats)[talk]
        rows = order[starts[talk] + within % sizes[talk]]
        owner = talk * repeats + within // sizes[talk]
        return Mirror(self.model, {k: v[rows] for k, v in self.carry.items()}, owner, self.loglik[rows],
                      self.talks * repeats, self.tempering)

    @torch.no_grad()
    def read(self, roll: Rollout, outcome: str) -> tuple[Tensor, Tensor]:
        """Replay an imagined rollout of these ``B`` talks (``extras["emb"]``, ``extras["agent"]``) from
        the partner's side: ``(outcome if it ended here, value)``, each ``[H, B]``, hypothesis-weighted."""
        if outcome not in SHARED_OUTCOMES:
            raise ValueError(f"the partner's view predicts only outcomes both sides share {list(SHARED_OUTCOMES)}, "
                             f"not {outcome!r} (it depends on the agent's private values)")
        emb, agent = roll.extras["emb"], roll.extras["agent"]
        if emb.shape[1] != self.talks:
            raise ValueError(f"the rollout has {emb.shape[1]} rows but the mirror holds {self.talks} talks")
        index = self.model.config.outcomes.index(outcome)
        w, mirror, outs, vals = self.weights, self, [], []
        for t in range(emb.shape[0]):
            mirror = Mirror(self.model, self.model.step(mirror.carry, emb[t][self.owner], 1.0 - agent[t][self.owner].float(),
                                                        sample=False)[0], self.owner, self.loglik, self.talks)
            heads = self.model.predict(mirror.carry)
            outs.append(torch.zeros(self.talks).index_add(0, self.owner, w * heads["outcome"][:, index]))
            vals.append(torch.zeros(self.talks).index_add(0, self.owner, w * heads["value"][:, index]))
        return torch.stack(outs), torch.stack(vals)


def both_views(roll: Rollout, mirror: Mirror, outcome: str) -> Rollout:
    """The rollout with a shared outcome read from both sides: at each step the reward is
    ``P(end) · ½(agent's outcome + partner's outcome)`` and the value ``½(agent's + partner's)``, so
    ``returns(1.0)`` is the expected final outcome averaged over the two views."""
    index = mirror.model.config.outcomes.index(outcome)
    m_out, m_val = mirror.read(roll, outcome)
    own_out = roll.extras["outcome_all"][..., index]
    own_val = roll.values if roll.values is not None else own_out
    out, val = 0.5 * (own_out + m_out), 0.5 * (own_val + m_val)
    return Rollout(states=roll.states, rewards=(1.0 - roll.continues) * out, continues=roll.continues, values=val,
                   extras={**roll.extras, "partner_view_outcome": m_out, "partner_view_value": m_val})


class BothViews:
    """A dialogue outcome model whose rollouts read a shared outcome from both sides (:func:`both_views`),
    for the one ranking path (:func:`~agentwm.planning.ranking.rank`): ``imagine`` imagines with
    ``model`` and replays the futures through ``mirror`` (one talk, tiled to the batch)."""

    def __init__(self, model: DialogueOutcomeModel, mirror: Mirror, outcome: str = "agreement") -> None:
        if mirror.talks != 1:
            raise ValueError(f"BothViews takes the mirror of one talk, got {mirror.talks}")
        if outcome not in SHARED_OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not shared by both sides; use one of {list(SHARED_OUTCOMES)}")
        self.model, self.mirror, self.outcome = model, mirror, outcome

    def imagine(self, state: State, actions: Any, horizon: int, **options: Any) -> Rollout:
        """:meth:`DialogueOutcomeModel.imagine` of ``self.outcome``, read from both sides."""
        roll = self.model.imagine(state, actions, horizon, **{**options, "outcome": self.outcome})
        return both_views(roll, self.mirror.tile(roll.rewards.shape[1]), self.outcome)
