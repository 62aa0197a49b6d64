"""Rank candidate replies by the outcome they lead to, with a model trained on outcome-labelled logs.

:class:`OutcomeScorer` wraps a :class:`~agentwm.worldmodels.dialogue_outcome.DialogueOutcomeModel`
and ranks through the one ranking path (:func:`~agentwm.planning.ranking.rank`). A candidate's
score is ``Rollout.returns(1.0)`` averaged over ``samples`` imagined futures: the expected final
outcome (e.g. P(agreement), points, CSAT) of the conversation if the agent says the candidate.
It splits exactly into two parts: ``ends_within_horizon`` (the outcome of the imagined futures
that end within the horizon, weighted by their probability) plus ``after_horizon`` (the model's
value of the futures still going at the horizon, weighted by their probability).
With ``views="both"`` (negotiations over a known pool, e.g. Deal or No Deal) an outcome both sides
share (``agreement``) is read from the agent's side and from the partner's, as the agent's own model
reads the talk under each value vector the partner may hold (:mod:`agentwm.worldmodels.dialogue_mirror`),
and the two are averaged at every imagined step.
The scorer keeps the carries of recent contexts; embeddings are cached on disk by the model's
:class:`~agentwm.text.embedding_store.EmbeddingStore`.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field

from agentwm.planning.ranking import rank
from agentwm.worldmodels.dialogue_mirror import SHARED_OUTCOMES, BothViews, Mirror
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel

Turns = Sequence[str] | Sequence[tuple[str, str]]
"""A conversation so far: texts (speakers alternate, the last one is the partner's) or ``(speaker, text)`` pairs."""

Futures = Literal["retrieved", "latent"]
"""How imagined turns are made: real turns retrieved near the model's prediction, or the predicted embedding itself."""

Views = Literal["own", "both"]
"""``own``: the agent's reading of the talk; ``both``: a shared outcome also read from the partner's side."""


class OutcomeReply(BaseModel):
    """The score of one candidate reply under an outcome model."""

    reply: str = Field(description="the candidate")
    rank: int = Field(description="1 for the best candidate")
    score: float = Field(description="expected final outcome over the imagined futures (Rollout.returns(1.0), mean)")
    parts: dict[str, float] = Field(
        description="score = ends_within_horizon + after_horizon; p_end = P(the talk ends within the horizon)")
    imagined: list[tuple[str, str]] = Field(description="the first sampled future: (speaker, text), the candidate first")


class OutcomeScorer:
    """Scores replies with a dialogue outcome model, keeping context carries across calls.

    Args:
        model: the trained model (:func:`~agentwm.worldmodels.dialogue_outcome_io.load_outcome_model`).
        role: the agent's speaker name, for contexts given as ``(speaker, text)`` pairs.
        context_cache: how many recent contexts keep their carry.

    Example:
        >>> scorer = OutcomeScorer(load_outcome_model("models/dialogue-dond"), role="YOU")
        >>> best = min(scorer.score(["i want the hats and the ball"], ["deal", "no way"],
        ...                         private_context={"counts": [1, 2, 1], "values": [4, 1, 4]}), key=lambda r: r.rank)
    """

    def __init__(self, model: DialogueOutcomeModel, *, role: str = "agent", context_cache: int = 64) -> None:
        self.model = model.eval()
        self.role = role
        self._contexts: OrderedDict[Any, dict[str, Any]] = OrderedDict()
        self._mirrors: OrderedDict[Any, Mirror] = OrderedDict()
        self._cache_size = context_cache

    def _turns(self, context: Turns) -> list[tuple[str, str]]:
        if isinstance(context, str):
            raise TypeError("context must be a list of turns, not a single string")
        turns = list(context)
        if all(isinstance(t, str) for t in turns):  # alternate backwards from the partner's last turn
            n = len(turns)
            return [(self.role if (n - 1 - i) % 2 == 1 else "partner", str(t)) for i, t in enumerate(turns)]
        out = []
        for i, t in enumerate(turns):
            if not (isinstance(t, (tuple, list)) and len(t) == 2 and all(isinstance(x, str) for x in t)):
                raise TypeError(f"context[{i}] must be a text or a (speaker, text) pair, got {t!r}")
            out.append((t[0], t[1]))
        speakers = {s for s, _ in out}
        if out and out[-1][0] == self.role:  # training joins a speaker's consecutive turns: never agent after agent
            raise ValueError(f"context[{len(out) - 1}] is the agent's own turn (role {self.role!r}); the candidates "
                             "answer the partner's last turn (join the agent's consecutive turns into one)")
        if len(speakers) > 1 and self.role not in speakers:
            raise ValueError(f"context speakers {sorted(speakers)} do not include the agent's role {self.role!r}; "
                             "pass role= (--role) naming the agent")
        return out

    def mirror(self, context: Turns, private_context: Mapping[str, Any] | None = None) -> Mirror:
        """The partner's view after ``context`` (:class:`~agentwm.worldmodels.dialogue_mirror.Mirror`;
        cached like :meth:`carry`); ``private_context`` must hold ``counts`` and ``values``."""
        turns = self._turns(context)
        key = (tuple(turns), tuple(sorted((k, str(v)) for k, v in (private_context or {}).items())))
        if key in self._mirrors:
            self._mirrors.move_to_end(key)
            return self._mirrors[key]
        mirror = Mirror.start(self.model, [private_context or {}])
        if turns:
            emb = self.model.embed_texts([t for _, t in turns])
            for i, (speaker, _) in enumerate(turns):
                mirror = mirror.hear(emb[i : i + 1], torch.tensor([speaker == self.role]))
        self._mirrors[key] = mirror
        while len(self._mirrors) > self._cache_size:
            self._mirrors.popitem(last=False)
        return mirror

    def carry(self, context: Turns, private_context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The model's carry after ``context`` (cached by context and private context)."""
        turns = self._turns(context)
        key = (tuple(turns), tuple(sorted((k, str(v)) for k, v in (private_context or {}).items())))
        if key in self._contexts:
            self._contexts.move_to_end(key)
            return self._contexts[key]
        carry = self.model.observe_turns(turns, role=self.role, context=private_context)
        self._contexts[key] = carry
        while len(self._contexts) > self._cache_size:
            self._contexts.popitem(last=False)
        return carry

    def score(
        self,
        context: Turns,
        candidates: Sequence[str],
        horizon: int = 3,
        *,
        samples: int = 8,
        seed: int = 0,
        private_context: Mapping[str, Any] | None = None,
        outcome: str | None = None,
        views: Views = "own",
        futures: Futures = "latent",
    ) -> list[OutcomeReply]:
        """Score ``candidates`` as the agent's next turn after ``context``; results in input order.

        Args:
            context: the conversation so far (see :data:`Turns`).
            candidates: the agent's candidate replies.
            horizon: turns to imagine, the candidate included.
            samples: sampled futures per candidate.
            seed: seed of the futures (same seed, same scores).
            private_context: what the agent privately knows (the fields the model was trained with).
            outcome: which predicted outcome to rank by (default: the model's training target;
                with ``views="both"``: ``agreement``).
            views: ``"both"`` reads a shared outcome from both sides (:data:`Views`); it needs
                ``private_context`` with the pool's ``counts`` and the agent's ``values``.
            futures: ``"latent"`` (default) reads each imagined turn as the model's predicted
                embedding (``imagined`` shows the nearest real turns); ``"retrieved"`` samples a real
                turn of the logs at each step (:data:`Futures`), which adds sampling noise.

        Raises:
            ValueError: no or empty candidates, an unknown ``views`` or ``futures``, ``views="both"`` with an outcome
                both sides do not share or without ``counts``/``values``.
        """
        if isinstance(candidates, str) or not candidates:
            raise ValueError("candidates must be a non-empty list of texts")
        for i, c in enumerate(candidates):
            if not isinstance(c, str) or not c.strip():
                raise ValueError(f"candidates[{i}] must be a non-empty text, got {c!r}")
        K = len(candidates)
        gen = torch.Generator().manual_seed(seed)
        model: Any = self.model
        if views == "both":
            outcome = outcome or next((o for o in SHARED_OUTCOMES if o in self.model.config.outcomes), None)
            if outcome not in SHARED_OUTCOMES or outcome not in self.model.config.outcomes:
                raise ValueError(f"views='both' ranks by an outcome both sides share ({list(SHARED_OUTCOMES)}) that the "
                                 f"model predicts ({self.model.config.outcomes}); got {outcome!r}")
            model = BothViews(self.model, self.mirror(context, private_context), outcome)
        elif views != "own":
            raise ValueError(f"views must be 'own' or 'both', got {views!r}")
        if futures not in ("retrieved", "latent"):
            raise ValueError(f"futures must be 'retrieved' or 'latent', got {futures!r}")
        ranking = rank(model, self.carry(context, private_context), list(candidates), horizon=horizon,
                       samples=samples, gamma=1.0,
                       imagine_options={"generator": gen, "outcome": outcome, "turns": futures})
        roll = ranking.rollout
        alive = torch.cumprod(torch.cat([torch.ones_like(roll.continues[:1]), roll.continues[:-1]]), 0)
        ended = (alive * roll.rewards).sum(0).view(K, samples).mean(1)
        still = alive[-1] * roll.continues[-1]
        after = (still * roll.values[-1]).view(K, samples).mean(1) if roll.values is not None else torch.zeros(K)
        p_end = (1 - still).view(K, samples).mean(1)
        ranks = {int(b): r + 1 for r, b in enumerate(ranking.order.tolist())}
        speakers = roll.extras["agent"]
        out = []
        for k in range(K):
            b = k * samples
            imagined = [(self.role if bool(speakers[t, b]) else "partner", roll.extras["text"][t][b] or candidates[k])
                        for t in range(roll.horizon)]
            out.append(OutcomeReply(reply=candidates[k], rank=ranks[k], score=float(ranking.scores[k]),
                                    parts={"ends_within_horizon": float(ended[k]), "after_horizon": float(after[k]),
                                           "p_end": float(p_end[k])}, imagined=imagined))
        return out


_SCORERS: weakref.WeakKeyDictionary[DialogueOutcomeModel, dict[str, OutcomeScorer]] = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=4)
def _load(path: str) -> DialogueOutcomeModel:
    from agentwm.worldmodels.dialogue_outcome_io import load_outcome_model

    return load_outcome_model(path)


def trained_role(model: DialogueOutcomeModel) -> str:
    """The speaker the model was trained to play: the ``role`` of most training conversations, as
    the trainer recorded it (``"agent"`` where the checkpoint does not say)."""
    facts: dict[str, Any] = getattr(model, "metadata", None) or {}
    roles = (facts.get("load") or {}).get("roles") or {}
    named = (facts.get("config") or {}).get("role") or facts.get("role")
    if isinstance(named, str):
        return named
    return str(max(roles, key=lambda r: roles[r])) if roles else "agent"


def scorer_for(model: DialogueOutcomeModel | str | Path, role: str | None = None) -> OutcomeScorer:
    """The one scorer of ``model`` (a loaded model or a checkpoint folder) and ``role`` (default:
    :func:`trained_role`): repeated calls get the same object, so context carries stay cached."""
    loaded = _load(str(Path(model).resolve())) if isinstance(model, (str, Path)) else model
    role = trained_role(loaded) if role is None else role
    by_role = _SCORERS.setdefault(loaded, {})
    if role not in by_role:
        by_role[role] = OutcomeScorer(loaded, role=role)
    return by_role[role]


def score_outcome_replies(
    context: Turns,
    candidates: Sequence[str],
    horizon: int = 3,
    *,
    model: DialogueOutcomeModel | str | Path,
    role: str | None = None,
    samples: int = 8,
    seed: int = 0,
    private_context: Mapping[str, Any] | None = None,
    outcome: str | None = None,
    views: Views = "own",
    futures: Futures = "latent",
) -> list[OutcomeReply]:
    """Which reply leads to the better outcome? :meth:`OutcomeScorer.score` through :func:`scorer_for`.

    Example:
        >>> res = score_outcome_replies([("THEM", "i need the hats")], ["ok, take them", "no, i need them"],
        ...                             model="models/dialogue-dond", role="YOU",
        ...                             private_context={"counts": [1, 2, 1], "values": [4, 2, 2]})
        >>> [r.rank for r in res]  # doctest: +SKIP
    """
    return scorer_for(model, role).score(context, candidates, horizon, samples=samples, seed=seed,
                                         private_context=private_context, outcome=outcome, views=views,
                                         futures=futures)
