"""Negotiation by dialogue rollouts (the setting of Lewis et al. 2017) with dialogue outcome models.

Two negotiators split books, hats and balls, each knowing only its own values. On each of its
turns the agent proposes ``K`` candidate utterances (the most probable next turns of its model,
retrieved from the training dialogues) and picks one by a rule:

* ``rollouts``: imagine each candidate ``samples`` times to the end of the negotiation with its
  world model and take the highest expected imagined outcome (``Rollout.returns``);
* ``likelihood``: the most probable candidate; ``random``: a uniformly drawn candidate.

The partner is a *separately trained* model (another seed) that samples its turns from its own
next-turn distribution, and decides when the talk ends (its end head, sampled). At the end each
side states the split it takes; the deal stands only if the two splits add up to the pool, and the
agent scores its values of its take, 0 without a deal, as in the data. The partner states its
``take_*`` heads rounded into the pool. The agent (every rule alike) models the partner with its
*own* model: mirror carries read the talk from the partner's side under every value vector the
partner may hold, weighted by how well each explains the partner's turns; it claims the split of
highest ``points × P(the partner claims the rest)`` (:func:`best_split`). With ``score="game"``
the rollouts score each imagined future by that same figure at the imagined end, so imagination
values what decides the game (a deal the partner will read the same way), not only the points
humans got.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from agentwm.worldmodels.base import Rollout, repeat_state
from agentwm.worldmodels.dialogue_mirror import turn_loglik, value_hypotheses
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel

Rule = Literal["rollouts", "likelihood", "random"]
Split = Literal["heads", "expected"]
Score = Literal["points", "game"]
Reader = Literal["mirror", "own", "both"]
ITEMS = ("book", "hat", "ball")
__all__ = ["Scenario", "Side", "best_split", "compare_rules", "play", "propose", "rollout_values", "scenarios_from_logs",
           "split_table", "takes", "their_claim", "turn_loglik", "value_hypotheses"]


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
    """One negotiator: its model, its carry, and *mirror* carries: its own model reading the talk
    from the other side under each value vector the other side may hold (the pool is known, the
    other's values are not), weighted by how well each explains what the other side said; used to
    predict the split the other side will claim (partner modelling with the agent's own model)."""

    model: DialogueOutcomeModel
    carry: dict[str, Tensor]
    counts: tuple[int, int, int]
    values: tuple[int, int, int]
    mirror: dict[str, Tensor]  # batch V: one row per hypothesis of the other side's values
    loglik: Tensor  # [V] log-likelihood of the other side's turns under each hypothesis
    tempering: float = 0.3

    @classmethod
    def start(cls, model: DialogueOutcomeModel, counts: Sequence[int], values: Sequence[int]) -> Side:
        pool = [float(c) for c in counts]
        ctx = model.context_vector({"counts": pool, "values": [float(v) for v in values]})
        hyps = value_hypotheses(counts)
        other = torch.stack([model.context_vector({"counts": pool, "values": [float(x) for x in v]}) for v in hyps])
        return cls(model, model.initial(1, ctx[None]), tuple(counts), tuple(values),  # type: ignore[arg-type]
                   model.initial(len(hyps), other), torch.zeros(len(hyps)))

    @property
    def weights(self) -> Tensor:
        """Posterior ``[V]`` over the other side's value vectors (tempered likelihood of its turns)."""
        return torch.softmax(self.tempering * self.loglik, 0)

    def hear(self, emb: Tensor, own: bool) -> None:
        """Fold a turn (its embedding ``[E]``) into the carry and the mirrors; a turn of the other
        side first updates the weight of each value hypothesis."""
        V = self.loglik.shape[0]
        if not own:
            self.loglik = self.loglik + turn_loglik(self.model, self.mirror, emb)
        self.carry = self.model.step(self.carry, emb[None], torch.tensor([float(own)]), sample=False)[0]
        self.mirror = self.model.step(self.mirror, emb[None].expand(V, -1), torch.full((V,), float(not own)),
                                      sample=False)[0]

    def take(self, how: Split = "expected", sigma: float = 0.5, reader: Reader = "mirror") -> list[int]:
        """The split this side claims: its ``take_*`` heads rounded into the pool (``heads``), or the
        split of highest expected points given the predicted claim of the other side (``expected``)."""
        own = takes(self.model, self.model.predict(self.carry)["outcome"])
        if how == "heads":
            return [int(min(max(round(float(t)), 0), c)) for t, c in zip(own[0], self.counts)]
        mirror = takes(self.model, self.model.predict(self.mirror)["outcome"])[None]  # [1, V, 3]
        theirs = their_claim(own[:, None], mirror, self.counts, reader)
        table = split_table(self.counts)
        best, _ = best_split(theirs, self.counts, self.values, table, sigma, self.weights[None])
        return [int(x) for x in table[int(best[0])]]


def takes(model: DialogueOutcomeModel, outcome: Tensor) -> Tensor:
    """The ``take_*`` heads ``[N, 3]`` (books, hats, balls) of outcome predictions ``[N, n]``."""
    names = model.config.outcomes
    return outcome[:, [names.index(f"take_{item}") for item in ITEMS]]


def their_claim(own: Tensor, mirror: Tensor, counts: Sequence[int], reader: Reader) -> Tensor:
    """The other side's predicted claim ``[N, V, 3]`` from our own predicted take ``[N, 1, 3]`` and
    the mirrors' predictions ``[N, V, 3]``: the pool minus our take (``own``), the mirrors'
    predictions (``mirror``), or their mean (``both``)."""
    rest = (torch.tensor([float(c) for c in counts]) - own).expand_as(mirror)
    return {"own": rest[:, :1], "mirror": mirror, "both": 0.5 * (rest + mirror)}[reader]


def split_table(counts: Sequence[int]) -> Tensor:
    """Every split of the pool one side can claim, ``[S, 3]``."""
    grids = torch.meshgrid(*[torch.arange(c + 1) for c in counts], indexing="ij")
    return torch.stack([g.flatten() for g in grids], -1)


def best_split(their_takes: Tensor, counts: Sequence[int], values: Sequence[int], table: Tensor,
               sigma: float, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per row of predicted claims of the other side (``[N, 3]``, or ``[N, V, 3]`` under ``V``
    hypotheses with ``weights [N, V]``): the claim ``s`` of highest ``points(s) · P(the other
    claims pool - s)`` (each item's claim ~ a discretised Gaussian around the prediction, width
    ``sigma``; a mixture over hypotheses), and that expected value: rows ``[N]``, points ``[N]``."""
    if their_takes.dim() == 2:
        their_takes = their_takes[:, None]
    N, V, _ = their_takes.shape
    w = torch.full((N, V), 1.0 / V) if weights is None or weights.shape[-1] != V else weights.expand(N, V)
    pool = torch.tensor(list(counts))
    logp = torch.zeros(N, V, table.shape[0])
    for i, c in enumerate(counts):
        ks = torch.arange(c + 1, dtype=torch.float32)
        lp = torch.log_softmax(-((ks - their_takes[..., i : i + 1]) ** 2) / (2 * sigma**2), -1)  # [N, V, c+1]
        logp = logp + lp[..., pool[i] - table[:, i]]
    p_agree = (w[..., None] * logp.exp()).sum(1)  # [N, S]
    score = p_agree * (table.float() @ torch.tensor([float(v) for v in values]))[None]
    best = score.argmax(-1)
    return best, score.gather(1, best[:, None]).squeeze(1)


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
def rollout_values(side: Side, rows: list[int], samples: int, horizon: int, generator: torch.Generator,
                   score: Score = "game", sigma: float = 0.5, reader: Reader = "mirror") -> Tensor:
    """Expected imagined final outcome ``[K]`` of each candidate (mean over ``samples`` futures).

    ``points``: the model's own points head (learned from human talks). ``game``: the points of the
    split the agent would claim at each imagined end (:func:`best_split`, the other side's claim
    predicted by the mirror carry reading the imagined turns), weighted by the agent model's
    P(end) and bootstrapped at the horizon with the same figure (``Rollout.returns``, core λ-returns)."""
    model = side.model
    n = len(rows) * samples
    cands = model.bank_emb[torch.tensor(rows)].repeat_interleave(samples, 0)[None]
    roll = model.imagine(repeat_state(side.carry, n), cands, horizon, generator=generator)
    if score == "points":
        return roll.returns(1.0).view(len(rows), samples).mean(1)
    V = side.loglik.shape[0]
    mirror = {k: v.repeat(n, *[1] * (v.dim() - 1)) for k, v in side.mirror.items()}  # rows ordered [n, V]
    weights = side.weights[None].expand(n, V)
    table = split_table(side.counts)
    worth = []
    for t in range(horizon):
        own = roll.extras["agent"][t].repeat_interleave(V)
        mirror = model.step(mirror, roll.extras["emb"][t].repeat_interleave(V, 0), 1.0 - own, sample=False)[0]
        own_takes = takes(model, roll.extras["outcome_all"][t])[:, None]
        mirror_takes = takes(model, model.predict(mirror)["outcome"]).view(n, V, 3)
        theirs = their_claim(own_takes, mirror_takes, side.counts, reader)
        worth.append(best_split(theirs, side.counts, side.values, table, sigma, weights)[1])
    values = torch.stack(worth)  # [H, n]
    game = Rollout(states=roll.states, rewards=(1.0 - roll.continues) * values, continues=roll.continues, values=values)
    return game.returns(1.0).view(len(rows), samples).mean(1)


@dataclass
class GameResult:
    points: float
    agreement: bool
    turns: int
    transcript: list[tuple[str, str]] = field(default_factory=list)


@torch.no_grad()
def play(agent_model: DialogueOutcomeModel, partner_model: DialogueOutcomeModel, scenario: Scenario, rule: Rule, *,
         k: int = 20, samples: int = 6, horizon: int = 6, max_turns: int = 10, seed: int = 0,
         candidates: Literal["top", "sample"] = "top", score: Score = "game", split: Split = "expected",
         sigma: float = 0.5, reader: Reader = "mirror") -> GameResult:
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
                pick = rows[int(rollout_values(agent, rows, samples, horizon, gen, score, sigma, reader).argmax())]
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
    mine, theirs = agent.take(split, sigma, reader), partner.take("heads")
    agreed = all(a + b == c for a, b, c in zip(mine, theirs, scenario.counts))
    points = float(sum(t * v for t, v in zip(mine, scenario.values))) if agreed else 0.0
    return GameResult(points, agreed, len(transcript), transcript)


def compare_rules(agent_model: DialogueOutcomeModel, partner_model: DialogueOutcomeModel, scenarios: Sequence[Scenario],
                  rules: Sequence[Rule] = ("rollouts", "likelihood", "random"), *, seed: int = 0,
                  **kw: Any) -> dict[str, dict[str, float]]:
    """Mean points and agreement rate of each rule over the same scenarios and seeds (game ``i``
    of every rule is seeded ``seed * 100_003 + i``)."""
    out: dict[str, dict[str, float]] = {}
    for rule in rules:
        games = [play(agent_model, partner_model, s, rule, seed=seed * 100_003 + i, **kw)
                 for i, s in enumerate(scenarios)]
        out[rule] = {"mean_points": round(sum(g.points for g in games) / len(games), 3),
                     "agreement_rate": round(sum(g.agreement for g in games) / len(games), 4),
                     "mean_turns": round(sum(g.turns for g in games) / len(games), 2), "games": len(games)}
    return out
