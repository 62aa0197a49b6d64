"""The data of reply scoring: the validated request, the per-reply result and the shipped model.

The scoring itself is :func:`agentwm.planning.score_replies` (the dialogue world model plus the
one ranking path, :func:`agentwm.planning.rank`); this module holds only what a world model may
know, so ``worldmodels`` never imports a planner.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentwm.worldmodels.dialogue import DialogueWorldModel, check_texts

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
        components: each reward part on its own, unweighted, summed over the horizon like the
            score (``sum_t gamma^t c_<t part_t``): ``engagement`` (how much the other speaker is
            predicted to write back), ``relevance`` (how on-topic their replies stay), ``rating``
            (predicted final rating of the conversation). Each per-step part lies in [0, 1], so a
            component lies in [0, sum_t gamma^t] (up to 2.71 at horizon 3, gamma 0.9), not in [0, 1].
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


@functools.lru_cache(maxsize=1)
def default_model() -> DialogueWorldModel:
    """The shipped checkpoint, loaded once per process."""
    return DialogueWorldModel.load()
