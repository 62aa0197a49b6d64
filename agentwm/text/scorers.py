"""Rewards for imagined text states: how far a state is towards the goal.

:class:`agentwm.worldmodels.llm_outcome.LLMWorldModel` asks a scorer for the reward of every imagined
state. Two come with the package:

* :class:`EmbeddingRelevance`: cosine similarity of the state and the goal under a sentence
  embedder (all-MiniLM-L6-v2, offline), optionally mapped to ``[0, 1]``. Cheap (a few ms for a
  batch, cached per text), deterministic, no LLM calls; it rewards states that *talk about* the
  goal, which is a proxy, not a judgement.
* :class:`LLMJudge`: a chat model scores progress from 0 to 1 (``"Score: 0.7"``, ``"7/10"`` and
  ``"70%"`` all parse). One call per distinct (state, goal) pair, cached by the client. When the
  answer cannot be read after the client's retries, the item gets ``fallback`` (default 0.0, so an
  unjudgeable state is never preferred) and is flagged in ``Scores.failed``.

Any object with ``score(states, goals) -> Scores`` and ``async ascore(...)`` can be used instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from agentwm.text.client import LLMClient
from agentwm.text.embeddings import TextEmbedder
from agentwm.text.parsing import extract_score
from agentwm.text.prompts import JUDGE_PROMPT


@dataclass(frozen=True)
class Scores:
    """Rewards ``values [N]``, the LLM ``calls`` they cost, and ``failed [N]`` (bool) where a
    fallback value was used."""

    values: Tensor
    calls: int
    failed: Tensor


@runtime_checkable
class TextScorer(Protocol):
    """Scores states against goals, one reward per pair."""

    def score(self, states: Sequence[str], goals: Sequence[str]) -> Scores: ...

    async def ascore(self, states: Sequence[str], goals: Sequence[str]) -> Scores: ...


def _check_pairs(states: Sequence[str], goals: Sequence[str]) -> tuple[list[str], list[str]]:
    if isinstance(states, str) or isinstance(goals, str):
        raise TypeError("states and goals must be lists of strings, not a bare string")
    states, goals = list(states), list(goals)
    if len(states) != len(goals):
        raise ValueError(f"states and goals must have the same length, got {len(states)} and {len(goals)}")
    for name, items in (("states", states), ("goals", goals)):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(f"{name}[{i}] must be a str, got {type(item).__name__}")
    return states, goals


class EmbeddingRelevance:
    """Reward = cosine similarity between the embedded state and the embedded goal.

    Args:
        embedder: a :class:`~agentwm.text.embeddings.TextEmbedder`; ``None`` loads the bundled
            MiniLM on first use (~8 s).
        rescale: map the cosine from ``[-1, 1]`` to ``[0, 1]`` (``(c + 1) / 2``).

    Example:
        >>> scorer = EmbeddingRelevance()
        >>> scorer.score(["the red door is open"], ["open the red door"]).values  # doctest: +SKIP
        tensor([0.83])
    """

    def __init__(self, embedder: TextEmbedder | None = None, *, rescale: bool = False) -> None:
        self._embedder = embedder
        self.rescale = rescale

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            self._embedder = TextEmbedder()
        return self._embedder

    def score(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        states, goals = _check_pairs(states, goals)
        if not states:
            return Scores(torch.zeros(0), 0, torch.zeros(0, dtype=torch.bool))
        values = (self.embedder.embed(states) * self.embedder.embed(goals)).sum(-1)
        if self.rescale:
            values = (values + 1.0) / 2.0
        return Scores(values.float(), 0, torch.zeros(len(states), dtype=torch.bool))

    async def ascore(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        return self.score(states, goals)


class LLMJudge:
    """Reward = progress towards the goal in ``[0, 1]`` as judged by a chat model.

    Args:
        client: the :class:`~agentwm.text.client.LLMClient` to ask.
        fallback: value of a state whose judgement cannot be read (see the module docstring).
        prompt: a ``ChatPromptTemplate`` with ``goal`` and ``observation``; defaults to
            :data:`agentwm.text.prompts.JUDGE_PROMPT`.
    """

    def __init__(self, client: LLMClient, *, fallback: float = 0.0, prompt: object | None = None) -> None:
        if not isinstance(client, LLMClient):
            raise TypeError(f"client must be an LLMClient, got {type(client).__name__}")
        if not 0.0 <= float(fallback) <= 1.0:
            raise ValueError(f"fallback must lie in [0, 1], got {fallback}")
        self.client = client
        self.fallback = float(fallback)
        self.prompt = JUDGE_PROMPT if prompt is None else prompt

    def _messages(self, state: str, goal: str) -> object:
        return self.prompt.format_messages(goal=goal, observation=state)  # type: ignore[attr-defined]

    def _read(self, answers: list[tuple[str | None, int]], n: int) -> Scores:
        values, failed, calls = [], [], 0
        for text, cost in answers:
            calls += cost
            score = None if text is None else extract_score(text)
            failed.append(score is None)
            values.append(self.fallback if score is None else score)
        return Scores(torch.tensor(values, dtype=torch.float32).reshape(n), calls, torch.tensor(failed).reshape(n))

    def score(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        states, goals = _check_pairs(states, goals)
        unique = list(dict.fromkeys(zip(states, goals)))
        answers = {pair: self._ask(pair) for pair in unique}
        return self._read(_spread(answers, list(zip(states, goals))), len(states))

    async def ascore(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        states, goals = _check_pairs(states, goals)
        unique = list(dict.fromkeys(zip(states, goals)))
        results = await asyncio.gather(*(self._aask(pair) for pair in unique))
        return self._read(_spread(dict(zip(unique, results)), list(zip(states, goals))), len(states))

    def _ask(self, pair: tuple[str, str]) -> tuple[str | None, int]:
        try:
            done = self.client.request(self._messages(*pair))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a failed judgement degrades to the fallback
            return None, self.client.retries + 1
        return done.text, done.calls

    async def _aask(self, pair: tuple[str, str]) -> tuple[str | None, int]:
        try:
            done = await self.client.arequest(self._messages(*pair))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            return None, self.client.retries + 1
        return done.text, done.calls


def _spread(
    answers: dict[tuple[str, str], tuple[str | None, int]], pairs: list[tuple[str, str]]
) -> list[tuple[str | None, int]]:
    """One answer per pair; the cost of a repeated pair is charged to its first occurrence only."""
    seen: set[tuple[str, str]] = set()
    out = []
    for pair in pairs:
        text, cost = answers[pair]
        out.append((text, 0 if pair in seen else cost))
        seen.add(pair)
    return out
