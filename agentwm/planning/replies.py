"""Rank candidate replies by where they lead: ``score_replies(context, candidates)``.

Reply scoring is the dialogue world model plus the one ranking path (:func:`~agentwm.planning.rank`):
each candidate is rolled forward ``horizon`` exchanges; its score is the discounted imagined
return, broken down into the discounted sums of its parts (engagement, topic relevance, predicted
rating), and comes with the imagined future as the nearest real utterances. The context's carry is
cached, so re-scoring new candidates for the same conversation only pays for the candidates.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from agentwm.core.returns import discounted_return
from agentwm.planning.ranking import rank
from agentwm.worldmodels.dialogue import COMPONENTS, DialogueWorldModel
from agentwm.worldmodels.dialogue_scoring import Exchange, ReplyScore, ScoreRequest, default_model

__all__ = ["DialogueScorer", "ReplyScore", "score_replies"]


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


@functools.lru_cache(maxsize=1)
def _default_scorer() -> DialogueScorer:
    return DialogueScorer(default_model())


def score_replies(
    context: Sequence[str],
    candidates: Sequence[str],
    horizon: int = 3,
    gamma: float = 0.9,
    *,
    model: DialogueWorldModel | None = None,
    samples: int = 1,
    seed: int = 0,
) -> list[ReplyScore]:
    """Which of these replies leads to the better conversation?

    Args:
        context: the conversation so far, oldest turn first, speakers alternating; the last turn
            is the other speaker's, the one the candidates answer.
        candidates: the replies to rank.
        horizon: exchanges to imagine per candidate (our turn, their reply).
        gamma: discount per exchange.
        model: a loaded :class:`DialogueWorldModel`; ``None`` uses the shipped checkpoint.
        samples: ``1`` follows the most likely future (deterministic); more averages sampled futures.
        seed: seed of the sampled futures (same seed, same scores).

    Returns:
        One :class:`ReplyScore` per candidate, in input order, with ``rank`` 1 for the best.

    Example:
        >>> results = score_replies(["hey! what are you up to?"], ["not much, you?", "Reading a great sci-fi book!"])
        >>> [r.rank for r in results]  # doctest: +SKIP
        [2, 1]
    """
    scorer = _default_scorer() if model is None else DialogueScorer(model)
    return scorer.score(context, candidates, horizon, gamma, samples=samples, seed=seed)


