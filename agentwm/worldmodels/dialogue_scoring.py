"""Rank candidate replies by where they lead: ``score_replies(context, candidates)``.

Each candidate is rolled forward ``horizon`` exchanges by the dialogue world model; its score is
the discounted imagined return (``Rollout.returns``), broken down into the discounted sums of its
parts (engagement, topic relevance, predicted rating), and comes with the imagined future as the
nearest real utterances. The context's carry is cached, so re-scoring new candidates for the same
conversation only pays for the candidates.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentwm.core.returns import discounted_return
from agentwm.worldmodels.dialogue import COMPONENTS, DialogueWorldModel, check_texts

MAX_CONTEXT_TURNS = 512
MAX_CANDIDATES = 1024


class ScoreRequest(BaseModel):
    """A validated scoring request (the edges of the API and CLI go through this)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    context: list[str] = Field(description="the conversation so far, oldest first; the last turn is the one answered")
    candidates: list[str] = Field(description="candidate replies to rank")
    horizon: int = Field(3, ge=1, le=16, description="exchanges to imagine (our turn + their reply)")
    gamma: float = Field(0.9, ge=0.0, le=1.0, description="discount per exchange")
    samples: int = Field(1, ge=1, le=64, description="1: the most likely future; more: mean over sampled futures")
    seed: int = Field(0, description="seed of the sampled futures")

    @field_validator("context", mode="before")
    @classmethod
    def _context(cls, value: Any) -> list[str]:
        return check_texts("context", value, max_items=MAX_CONTEXT_TURNS)

    @field_validator("candidates", mode="before")
    @classmethod
    def _candidates(cls, value: Any) -> list[str]:
        return check_texts("candidates", value, max_items=MAX_CANDIDATES)


class Exchange(BaseModel):
    """One imagined exchange: our turn and the other speaker's imagined reply."""

    ours: str
    reply: str


class ReplyScore(BaseModel):
    """The score of one candidate reply.

    Attributes:
        reply: the candidate.
        rank: 1 for the best candidate.
        score: discounted imagined return (the weighted sum of the components).
        components: discounted sum of each reward part, unweighted: ``engagement`` (how much the
            other speaker is predicted to write back), ``relevance`` (how on-topic their replies
            stay), ``rating`` (predicted final rating of the conversation, 0-1).
        p_reply: predicted probability that the other speaker answers the candidate at all.
        imagined: the imagined exchanges of the most likely (or first sampled) future; the first
            ``ours`` is the candidate itself.
    """

    reply: str
    rank: int
    score: float
    components: dict[str, float]
    p_reply: float
    imagined: list[Exchange]


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
        state = self._carry(req.context)
        actions = [[c for c in req.candidates for _ in range(S)]]
        generator = torch.Generator().manual_seed(req.seed)
        rollout = self.model.imagine(state, actions, req.horizon, sample=S > 1, generator=generator)
        total = rollout.returns(req.gamma).view(K, S).mean(1)
        parts = {
            k: discounted_return(rollout.extras[k], rollout.continues, req.gamma).view(K, S).mean(1)
            for k in COMPONENTS
        }
        p_reply = rollout.extras["p_reply"][0].view(K, S).mean(1)
        order = torch.argsort(total, descending=True, stable=True).tolist()
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
def default_model() -> DialogueWorldModel:
    """The shipped checkpoint, loaded once per process."""
    return DialogueWorldModel.load()


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


def _read_json(path: str, what: str) -> Any:
    import json
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} file {path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err


def _turn_texts(items: Any, what: str) -> list[str]:
    """A list of turns as strings; chat-message dicts give their ``content`` or ``text``."""
    if not isinstance(items, list):
        raise TypeError(f"{what} must be a JSON list, got {type(items).__name__}")
    out: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            item = item.get("content", item.get("text"))
        if not isinstance(item, str):
            raise TypeError(f"{what}[{i}] must be a string or a message with 'content'/'text', got {type(item).__name__}")
        out.append(item)
    return out


def cli_score(
    *,
    context_file: str,
    candidates: Sequence[str] | None = None,
    candidates_file: str | None = None,
    model: str | None = None,
    horizon: int = 3,
    gamma: float = 0.9,
    samples: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """``agentwm score dialogue``: read the inputs, score, and return JSON-ready results (best first).

    Candidates come from ``candidates`` (strings, or one string holding a JSON list), else
    ``candidates_file``, else the ``"candidates"`` key of the context file.
    """
    import json

    raw = _read_json(context_file, "context")
    context_items = raw.get("context") if isinstance(raw, dict) else raw
    context = _turn_texts(context_items, "context")
    cands: Any = None
    if candidates:
        cands = list(candidates)
        if len(cands) == 1 and cands[0].lstrip().startswith("["):
            try:
                cands = json.loads(cands[0])
            except json.JSONDecodeError as err:
                raise ValueError(f"--candidates looks like JSON but is not valid: {err}") from err
    elif candidates_file:
        cands = _read_json(candidates_file, "candidates")
    elif isinstance(raw, dict) and "candidates" in raw:
        cands = raw["candidates"]
    if cands is None:
        raise ValueError("no candidates: pass --candidates, --candidates-file, or a 'candidates' key in the context file")
    cand_texts = _turn_texts(cands, "candidates")
    world_model = DialogueWorldModel.load(model) if model else None
    results = score_replies(context, cand_texts, horizon, gamma, model=world_model, samples=samples, seed=seed)
    ranked = sorted(results, key=lambda r: r.rank)
    return {
        "context": context, "horizon": horizon, "gamma": gamma, "samples": samples,
        "best": ranked[0].reply, "results": [r.model_dump() for r in ranked],
    }
