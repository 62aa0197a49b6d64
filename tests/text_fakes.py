"""Scripted chat models and scorers for the text tests: no sockets, answers decided by the test."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, PrivateAttr

from agentwm.text.scorers import Scores


def last_human(messages: Sequence[BaseMessage]) -> str:
    for m in reversed(messages):
        if m.type == "human":
            return str(m.content)
    return ""


def first_human(messages: Sequence[BaseMessage]) -> str:
    """The original question (a corrective retry appends later messages)."""
    for m in messages:
        if m.type == "human":
            return str(m.content)
    return ""


def field(prompt: str, name: str) -> str:
    """The value of a ``Name: value`` line of a prompt."""
    for line in prompt.splitlines():
        if line.startswith(name + ":"):
            return line[len(name) + 1 :].strip()
    return ""


class ScriptedChat(BaseChatModel):
    """Answers with ``script(messages, kwargs)``; sleeps ``latency`` s per call (async: without
    blocking the loop); raises ``ConnectionError`` on the first ``fail_first`` calls."""

    script: Callable[[list[BaseMessage], dict[str, Any]], str]
    latency: float = 0.0
    fail_first: int = 0
    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _in_flight: int = PrivateAttr(default=0)
    _max_in_flight: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        with self._lock:
            self._calls += 1
            n = self._calls
        if n <= self.fail_first:
            raise ConnectionError(f"scripted failure {n}")
        text = self.script(messages, kwargs)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            time.sleep(self.latency)
        return self._answer(messages, kwargs)

    async def _agenerate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return self._answer(messages, kwargs)
        finally:
            with self._lock:
                self._in_flight -= 1


class NativeStructuredChat(ScriptedChat):
    """Also supports ``with_structured_output``: ``native(messages, schema)`` builds the object
    (or raises, to test the fallback to text)."""

    native: Callable[[Any, type[BaseModel]], Any]
    _native_calls: int = PrivateAttr(default=0)

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kwargs: Any) -> Runnable:  # type: ignore[override]
        def run(messages: Any) -> Any:
            self._native_calls += 1
            return self.native(messages, schema)

        return RunnableLambda(run)


class KeywordScorer:
    """Reward 1 for a state containing ``word``, else 0; records what it scored."""

    def __init__(self, word: str = "open") -> None:
        self.word = word
        self.seen: list[str] = []

    def score(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        self.seen.extend(states)
        values = torch.tensor([1.0 if self.word in s else 0.0 for s in states])
        return Scores(values, 0, torch.zeros(len(states), dtype=torch.bool))

    async def ascore(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        return self.score(states, goals)


class HashEmbed:
    """Deterministic unit vectors per text (no MiniLM): tests stay fast and offline."""

    def embed(self, texts: list[str], progress: bool = False) -> torch.Tensor:
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
            rows.append(torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0))
        return torch.stack(rows) if rows else torch.zeros(0, 16)
