"""Negotiation by dialogue rollouts (the setting of Lewis et al. 2017) with dialogue outcome models.

Two negotiators split books, hats and balls, each knowing only its own values. On each of its
turns the agent proposes ``K`` candidate utterances (the most probable next turns of its model,
retrieved from the training dialogues) and picks one by a rule:

* ``rollouts``: imagine each candidate ``samples`` times to the end of the negotiation with its
  world model and take the highest expected imagined outcome (``Rollout.returns``);
* ``likelihood``: the most probable candidate; ``random``: a uniformly drawn candidate.

The partner is a *separately trained* model (another seed) that samples its turns from its own
next-turn distribution, and decides when the talk ends (its end head, sampled). At the end each
side states the split it takes (its model's ``take_*`` outcome heads, rounded into the pool);
the deal stands only if the two splits add up to the pool, and the agent scores its values of its
take, 0 without a deal, as in the data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from agentwm.worldmodels.base import repeat_state
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel

Rule = Literal["rollouts", "likelihood", "random"]
ITEMS = ("book", "hat", "ball")


@dataclass(frozen=True)
class Scenario:
    """One negotiation: the pool, each side's values, and who opens."""

    counts: tuple[int, int, int]
    values: tuple[int, int, int]
    partner_values: tuple[int, int, int]
    agent_first: bool


def scenarios_from_logs(convs: Sequence[Any], *, one_side: bool = True) -> list[Scenario]:
    """Scenarios of Deal or No Deal conversations (``agentwm.envs.conversation_sources``); with
    ``one_side`` each dialogue gives one scenario (the first of its two sides)."""
    out, seen = [], set()
    for c in convs:
        key = c.meta.get("dialogue")
        if one_side and key in seen:
            continue
        seen.add(key)
        counts, values, partner = ([int(x) for x in v] for v in
                                   (c.context["counts"], c.context["values"], c.meta["partner_values"]))
        out.append(Scenario((counts[0], counts[1], counts[2]), (values[0], values[1], values[2]),
                            (partner[0], partner[1], partner[2]), c.turns[0].speaker == c.role))
    return out


@dataclass
class Side:
    """One negotiator: its model and its carry (the conversation as it has read it)."""

    model: DialogueOutcomeModel
    carry: dict[str, Tensor]
    counts: tuple[int, int, int]

    @classmethod
    def start(cls, model: DialogueOutcomeModel, counts: Sequence[int], values: Sequence[int]) -> Side:
        ctx = model.context_vector({"counts": [float(c) for c in counts], "values": [float(v) for v in values]})
        return cls(model, model.initial(1, ctx[None]), tuple(counts))  # type: ignore[arg-type]

    def hear(self, emb: Tensor, own: bool) -> None:
        """Fold a turn (its embedding ``[E]``) into the carry."""
        self.carry = self.model.step(self.carry, emb[None], torch.tensor([float(own)]), sample=False)[0]

    def take(self) -> list[int]:
        """The split this side claims: its ``take_*`` outcome heads, rounded into the pool."""
        out = self.model.predict(self.carry)["outcome"][0]
        names = self.model.config.outcomes
        return [int(min(max(round(float(out[names.index(f"take_{item}")])), 0), c)) for item, c in zip(ITEMS, self.counts)]


@torch.no_grad()
def propose(side: Side, k: int, generator: torch.Generator, how: Literal["top", "sample"] = "top") -> tuple[list[int], Tensor]:
    """``k`` next agent turns (bank rows) and their probabilities, most probable first: the ``k``
    most probable (``top``), or ``k`` distinct draws from the model's next-turn distribution (``sample``)."""
    probs = side.model.next_turn_probs(side.carry, agent=True, generator=generator)[0]
    k = min(k, int((probs > 0).sum()))
    if how == "top":
        top = probs.topk(k)
        return top.indices.tolist(), top.values
    rows = torch.multinomial(probs, k, replacement=False, generator=generator)
    order = probs[rows].argsort(descending=True)
    return rows[order].tolist(), probs[rows[order]]


@torch.no_grad()
def rollout_values(side: Side, rows: list[int], samples: int, horizon: int, generator: torch.Generator) -> Tensor:
    """Expected imagined final outcome ``[K]`` of each candidate (mean over ``samples`` futures)."""
    model = side.model
    state = repeat_state(side.carry, len(rows) * samples)
    cands = model.bank_emb[torch.tensor(rows)].repeat_interleave(samples, 0)[None]
    returns = model.imagine(state, cands, horizon, generator=generator).returns(1.0)
    return returns.view(len(rows), samples).mean(1)


@dataclass
class GameResult:
    points: float
    agreement: bool
    turns: int
    transcript: list[tuple[str, str]] = field(default_factory=list)


@torch.no_grad()
def play(agent_model: DialogueOutcomeModel, partner_model: DialogueOutcomeModel, scenario: Scenario, rule: Rule, *,
         k: int = 10, samples: int = 6, horizon: int = 6, max_turns: int = 10, seed: int = 0,
         candidates: Literal["top", "sample"] = "top") -> GameResult:
    """One negotiation between the agent (choosing by ``rule``) and the partner simulator."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    agent = Side.start(agent_model, scenario.counts, scenario.values)
    partner = Side.start(partner_model, scenario.counts, scenario.partner_values)
    agent_turn, transcript = scenario.agent_first, []
    for _ in range(max_turns):
        if agent_turn:
            rows, _ = propose(agent, k, gen, candidates)
            if rule == "rollouts":
                pick = rows[int(rollout_values(agent, rows, samples, horizon, gen).argmax())]
            elif rule == "likelihood":
                pick = rows[0]
            else:
                pick = rows[rng.randrange(len(rows))]
            text, emb = agent_model.bank_texts[pick], agent_model.bank_emb[pick]
        else:
            probs = partner_model.next_turn_probs(partner.carry, agent=True, generator=gen)[0]
            top = probs.topk(min(partner_model.config.top_k, int((probs > 0).sum())))
            pick = int(top.indices[torch.multinomial(top.values, 1, generator=gen)])
            text = partner_model.bank_texts[pick]
        transcript.append(("YOU" if agent_turn else "THEM", text))
        emb_a = agent_model.embed_texts([text])[0] if not agent_turn else emb
        emb_p = partner_model.embed_texts([text])[0] if agent_turn else partner_model.bank_emb[pick]
        agent.hear(emb_a, own=agent_turn)
        partner.hear(emb_p, own=not agent_turn)
        p_end = float(partner_model.predict(partner.carry)["end"][0])
        if torch.rand((), generator=gen).item() < p_end:
            break
        agent_turn = not agent_turn
    mine, theirs = agent.take(), partner.take()
    agreed = all(a + b == c for a, b, c in zip(mine, theirs, scenario.counts))
    points = float(sum(t * v for t, v in zip(mine, scenario.values))) if agreed else 0.0
    return GameResult(points, agreed, len(transcript), transcript)


def compare_rules(agent_model: DialogueOutcomeModel, partner_model: DialogueOutcomeModel, scenarios: Sequence[Scenario],
                  rules: Sequence[Rule] = ("rollouts", "likelihood", "random"), **kw: Any) -> dict[str, dict[str, float]]:
    """Mean points and agreement rate of each rule over the same scenarios and seeds."""
    out: dict[str, dict[str, float]] = {}
    for rule in rules:
        games = [play(agent_model, partner_model, s, rule, seed=i, **kw) for i, s in enumerate(scenarios)]
        out[rule] = {"mean_points": round(sum(g.points for g in games) / len(games), 3),
                     "agreement_rate": round(sum(g.agreement for g in games) / len(games), 4),
                     "mean_turns": round(sum(g.turns for g in games) / len(games), 2), "games": len(games)}
    return out
