"""Rank candidate replies by where they lead: ``score_replies(context, candidates)``.

Reply scoring is a dialogue world model plus the one ranking path (:func:`~agentwm.planning.rank`).
Two kinds of model rank replies, picked by what ``model=`` is (a loaded model, a scorer, or a
checkpoint folder, told apart by its ``config.json``):

* the Chit-Chat model (:class:`DialogueWorldModel`, the default ``models/dialogue-minilm``): each
  candidate is rolled forward ``horizon`` exchanges; its score is the discounted imagined return
  ``sum_t gamma^t c_<t r_t``; ``components`` are the same discounted sums of each reward part on its
  own (engagement, topic relevance, predicted rating): each per-step part lies in [0, 1], so a
  component lies in [0, sum_t gamma^t] (2.71 at horizon 3, gamma 0.9), not in [0, 1];
* an outcome model (:class:`DialogueOutcomeModel`, trained by ``agentwm train dialogue --data
  LOGS.jsonl --outcome NAME``): the score is ``Rollout.returns(1.0)`` averaged over sampled futures,
  the expected final outcome if the agent says the candidate (see :mod:`agentwm.planning.outcome_replies`).

One scorer per model object (and per role), kept across calls, so context carries and embeddings
stay cached; embeddings are also cached on disk (:class:`~agentwm.text.embedding_store.EmbeddingStore`)
for models loaded here, so a new process pays only for texts never seen.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import torch

from agentwm.core.returns import discounted_return
from agentwm.planning.outcome_replies import Futures, OutcomeReply, OutcomeScorer, Turns, Views, scorer_for
from agentwm.planning.ranking import rank
from agentwm.worldmodels.dialogue import COMPONENTS, DialogueWorldModel
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel
from agentwm.worldmodels.dialogue_scoring import Exchange, ReplyScore, ScoreRequest, default_model

__all__ = ["DialogueScorer", "OutcomeReply", "ReplyModel", "ReplyScore", "score_replies", "scorer_of"]

class DialogueScorer:
    """Scores candidate replies with a :class:`DialogueWorldModel`, caching context carries.

    Args:
        model: the world model; ``None`` loads the shipped checkpoint.
        context_cache: how many recent contexts keep their carry.

    Example:
        >>> scorer = DialogueScorer()
        >>> best = min(scorer.score(["any plans for the weekend?"], ["yes, hiking!", "no"]), key=lambda r: r.rank)
    """

    def __init__(self, model: DialogueWorldModel | None = None, *, context_cache: int = 64) -> None:
        self.model = model if model is not None else default_model()
        self.model.eval()
        self._contexts: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
        self._cache_size = context_cache

    def _carry(self, context: Sequence[str]) -> dict[str, Any]:
        key = tuple(context)
        if key in self._contexts:
            self._contexts.move_to_end(key)
            return self._contexts[key]
        carry = self.model.observe_context(list(context))
        self._contexts[key] = carry
        while len(self._contexts) > self._cache_size:
            self._contexts.popitem(last=False)
        return carry

    def score(
        self,
        context: Sequence[str],
        candidates: Sequence[str],
        horizon: int = 3,
        gamma: float = 0.9,
        *,
        samples: int = 1,
        seed: int = 0,
    ) -> list[ReplyScore]:
        """Score ``candidates`` as replies to the last turn of ``context``; results in input order.

        Raises:
            pydantic.ValidationError: empty, non-text or too long context/candidates, bad settings.
        """
        req = ScoreRequest(
            context=list(context) if not isinstance(context, str) else context,
            candidates=list(candidates) if not isinstance(candidates, str) else candidates,
            horizon=horizon, gamma=gamma, samples=samples, seed=seed,
        )
        K, S = len(req.candidates), req.samples
        generator = torch.Generator().manual_seed(req.seed)
        ranking = rank(
            self.model, self._carry(req.context), req.candidates, horizon=req.horizon, samples=S,
            gamma=req.gamma, imagine_options={"sample": S > 1, "generator": generator},
        )
        rollout, total = ranking.rollout, ranking.scores
        parts = {
            k: discounted_return(rollout.extras[k], rollout.continues, req.gamma).view(K, S).mean(1)
            for k in COMPONENTS
        }
        p_reply = rollout.extras["p_reply"][0].view(K, S).mean(1)
        order = ranking.order.tolist()
        ranks = {b: r + 1 for r, b in enumerate(order)}
        out = []
        for k in range(K):
            b = k * S  # the first sample of candidate k
            imagined = [
                Exchange(ours=rollout.extras["actions"][t][b], reply=rollout.extras["text"][t][b])
                for t in range(req.horizon)
            ]
            out.append(ReplyScore(
                reply=req.candidates[k], rank=ranks[k], score=float(total[k]),
                components={c: float(parts[c][k]) for c in COMPONENTS},
                p_reply=float(p_reply[k]), imagined=imagined,
            ))
        return out


ReplyModel = DialogueWorldModel | DialogueOutcomeModel | DialogueScorer | OutcomeScorer | str | Path
"""What ``model=`` may be: a loaded model, a scorer, or a checkpoint folder of either kind."""


def _disk_cached(folder: str | Path | None) -> DialogueWorldModel:
    """A Chit-Chat model whose embeddings are cached on disk (shared with its trainer's cache)."""
    from agentwm.text.embedding_store import EmbeddingStore

    model = DialogueWorldModel.load(folder, embedder=EmbeddingStore())
    if model.config.embedder != model.embedder.folder.name.removeprefix("emb-"):
        model = DialogueWorldModel.load(folder, embedder=EmbeddingStore(model_tag=model.config.embedder))
    return model


@functools.lru_cache(maxsize=1)
def _default_scorer() -> DialogueScorer:
    return DialogueScorer(_disk_cached(None))


@functools.lru_cache(maxsize=4)
def _chitchat_at(folder: str) -> DialogueWorldModel:
    return _disk_cached(folder)


_CHITCHAT: weakref.WeakKeyDictionary[DialogueWorldModel, DialogueScorer] = weakref.WeakKeyDictionary()


def _is_outcome_folder(folder: str | Path) -> bool:
    from agentwm.worldmodels.dialogue_outcome_io import is_outcome_checkpoint

    return is_outcome_checkpoint(folder)


def scorer_of(model: ReplyModel | None = None, *, role: str | None = None) -> DialogueScorer | OutcomeScorer:
    """The one scorer of ``model``: repeated calls with the same model object (or folder) return the
    same scorer, so its context carries and embeddings stay cached.

    Args:
        model: ``None`` (the shipped Chit-Chat model), a loaded model, a scorer (returned as is), or a
            checkpoint folder; a folder holding an outcome model is loaded as one (by its config).
        role: outcome models only: the agent's speaker name (default: the role the model was trained
            to play, else ``"agent"``).

    Raises:
        TypeError: ``model`` is none of these.
    """
    if isinstance(model, (DialogueScorer, OutcomeScorer)):
        return model
    if isinstance(model, (str, Path)):
        if _is_outcome_folder(model):
            return scorer_for(model, role)
        model = _chitchat_at(str(Path(model).resolve()))
    if isinstance(model, DialogueOutcomeModel):
        return scorer_for(model, role)
    if role is not None:
        raise ValueError("role is for outcome models; the Chit-Chat model reads alternating turns")
    if model is None:
        return _default_scorer()
    if isinstance(model, DialogueWorldModel):
        if model not in _CHITCHAT:
            _CHITCHAT[model] = DialogueScorer(model)
        return _CHITCHAT[model]
    raise TypeError(f"model must be a DialogueWorldModel, DialogueOutcomeModel, a scorer or a checkpoint folder, "
                    f"got {type(model).__name__}")


@overload
def score_replies(
    context: Sequence[str], candidates: Sequence[str], horizon: int = 3, gamma: float | None = None, *,
    model: DialogueWorldModel | DialogueScorer | None = None, samples: int | None = None, seed: int = 0,
) -> list[ReplyScore]: ...


@overload
def score_replies(
    context: Turns, candidates: Sequence[str], horizon: int = 3, gamma: float | None = None, *,
    model: DialogueOutcomeModel | OutcomeScorer, samples: int | None = None, seed: int = 0, role: str | None = None,
    private_context: Mapping[str, Any] | None = None, outcome: str | None = None, views: Views = "own",
    futures: Futures | None = None,
) -> list[OutcomeReply]: ...


@overload
def score_replies(
    context: Turns, candidates: Sequence[str], horizon: int = 3, gamma: float | None = None, *,
    model: str | Path, samples: int | None = None, seed: int = 0, role: str | None = None,
    private_context: Mapping[str, Any] | None = None, outcome: str | None = None, views: Views = "own",
    futures: Futures | None = None,
) -> list[ReplyScore] | list[OutcomeReply]: ...


def score_replies(
    context: Turns,
    candidates: Sequence[str],
    horizon: int = 3,
    gamma: float | None = None,
    *,
    model: ReplyModel | None = None,
    samples: int | None = None,
    seed: int = 0,
    role: str | None = None,
    private_context: Mapping[str, Any] | None = None,
    outcome: str | None = None,
    views: Views = "own",
    futures: Futures | None = None,
) -> list[ReplyScore] | list[OutcomeReply]:
    """Which of these replies leads to the better conversation (or the better outcome)?

    Args:
        context: the conversation so far, oldest turn first, speakers alternating; the last turn
            is the other speaker's, the one the candidates answer. Outcome models also take
            ``(speaker, text)`` pairs (the agent's turns are those of ``role``).
        candidates: the replies to rank.
        horizon: Chit-Chat: exchanges to imagine (our turn, their reply); outcome models: turns to
            imagine, the candidate included.
        gamma: Chit-Chat: discount per exchange (default 0.9). Outcome models rank by the expected
            final outcome, undiscounted: only ``None`` or ``1.0``.
        model: see :func:`scorer_of` (``None``: the shipped Chit-Chat model).
        samples: futures per candidate (default: 1 for Chit-Chat, the most likely future; 8 for
            outcome models, whose futures are sampled).
        seed: seed of the sampled futures (same seed, same scores).
        role / private_context / outcome: outcome models only: the agent's speaker name, what the
            agent privately knows (the context fields the model was trained with, e.g. item values),
            and the outcome to rank by (default: the one the model was trained for).
        views: outcome models only: ``"both"`` reads a shared outcome (``agreement``) from the
            agent's side and from the partner's (see :class:`OutcomeScorer`).
        futures: outcome models only: ``"latent"`` (the default) imagines turns as the model's
            predicted embeddings; ``"retrieved"`` as real turns of the logs nearest them (noisier:
            0.008-0.016 lower AUC on Deal or No Deal over three training seeds).

    Returns:
        One result per candidate, in input order, ``rank`` 1 for the best: :class:`ReplyScore`
        (Chit-Chat) or :class:`OutcomeReply` (outcome models); both have ``reply``, ``rank``,
        ``score`` and ``model_dump()``.

    Raises:
        ValueError: empty or mistyped inputs, a context whose last turn is the agent's own, or an
            option the model kind does not take.

    Example:
        >>> results = score_replies(["hey! what are you up to?"], ["not much, you?", "Reading a great sci-fi book!"])
        >>> [r.rank for r in results]  # doctest: +SKIP
        [2, 1]
        >>> deal = score_replies(["i need the hats and the ball"], ["ok, deal", "no, i need the hats"],
        ...                      model="models/dialogue-dond", private_context={"counts": [1, 2, 1], "values": [4, 1, 4]})
    """
    scorer = scorer_of(model, role=role)
    if isinstance(scorer, OutcomeScorer):
        if gamma is not None and gamma != 1.0:
            raise ValueError(f"gamma: an outcome model ranks by the expected final outcome (gamma 1), got {gamma}")
        return scorer.score(context, candidates, horizon, samples=8 if samples is None else samples, seed=seed,
                            private_context=private_context, outcome=outcome, views=views,
                            futures="latent" if futures is None else futures)
    given = [n for n, v in (("private_context", private_context), ("outcome", outcome),
                            ("views", None if views == "own" else views),
                            ("futures", futures)) if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: only outcome models take this; the Chit-Chat model does not")
    texts: Any = context  # validated as a list of texts (speakers alternating) by ScoreRequest
    return scorer.score(texts, candidates, horizon, 0.9 if gamma is None else gamma,
                        samples=1 if samples is None else samples, seed=seed)
