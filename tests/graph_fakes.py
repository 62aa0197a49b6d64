"""Scripted stand-ins for the LangGraph-layer tests and benchmark: a text world model whose answer
is known, and a chat model with a fixed latency. No network, no model weights."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from agentwm.text.scorers import Scores
from agentwm.worldmodels.base import Rollout


class ScriptedTextWorldModel:
    """A TextWorldModel whose imagined reward per step is ``values[action]`` (0 for unknown actions).

    Every ``imagine``/``aimagine`` call waits ``latency`` seconds (like one LLM round trip) and
    counts itself; ``fail_on`` actions raise ``ConnectionError`` (a flaky LLM) ``fail_times`` times.
    """

    def __init__(
        self,
        values: Mapping[str, float],
        *,
        latency: float = 0.0,
        fail_on: Sequence[str] = (),
        fail_times: int = 10**9,
    ) -> None:
        self.values = dict(values)
        self.latency = latency
        self.fail_on = set(fail_on)
        self.fail_left = {a: fail_times for a in fail_on}
        self.calls = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def observe(self, obs: Any, state: Any = None, action: Any = None) -> dict[str, list[str]]:
        return {"observation": [str(obs)]}

    def _enter(self, actions: Sequence[Sequence[str]]) -> None:
        with self._lock:
            self.calls += 1
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
            for a in actions[0]:
                if a in self.fail_on and self.fail_left[a] > 0:
                    self.fail_left[a] -= 1
                    self.concurrent -= 1
                    raise ConnectionError(f"LLM unavailable while imagining {a!r}")

    def _exit(self) -> None:
        with self._lock:
            self.concurrent -= 1

    def _rollout(self, state: Mapping[str, Any], actions: Sequence[Sequence[str]], horizon: int) -> Rollout:
        batch = len(actions[0])
        assert len(state["observation"]) == batch
        reward = torch.tensor([self.values.get(a, 0.0) for a in actions[0]]).expand(horizon, batch)
        text = [[f"t{t}: after {a!r}" for a in actions[0]] for t in range(horizon)]
        return Rollout(
            states=None,
            rewards=reward.clone(),
            continues=torch.ones(horizon, batch),
            extras={"text": text, "llm_calls": horizon * batch},
        )

    def imagine(self, state: Mapping[str, Any], actions: Sequence[Sequence[str]], horizon: int) -> Rollout:
        self._enter(actions)
        try:
            time.sleep(self.latency)
            return self._rollout(state, actions, horizon)
        finally:
            self._exit()

    async def aimagine(self, state: Mapping[str, Any], actions: Sequence[Sequence[str]], horizon: int) -> Rollout:
        self._enter(actions)
        try:
            await asyncio.sleep(self.latency)
            return self._rollout(state, actions, horizon)
        finally:
            self._exit()


class FixedLatencyChatModel(BaseChatModel):
    """Answers after ``latency`` seconds: the answer of the first ``rules`` pair whose substring is in
    the prompt, else the next of ``responses`` (cycling); the first ``errors`` calls raise."""

    responses: list[str]
    rules: list[tuple[str, str]] = Field(default_factory=list)
    latency: float = 0.0
    errors: int = 0
    calls: int = 0

    def model_post_init(self, context: Any) -> None:
        self._cycle = itertools.cycle(self.responses)
        self._lock = threading.Lock()

    @property
    def _llm_type(self) -> str:
        return "fixed-latency-fake"

    def _next(self, messages: list[BaseMessage]) -> str:
        with self._lock:
            self.calls += 1
            if self.errors > 0:
                self.errors -= 1
                raise ConnectionError("chat model unavailable")
            prompt = "\n".join(str(m.content) for m in messages)
            for needle, answer in self.rules:
                if needle in prompt:
                    return answer
            return next(self._cycle)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._next(messages)))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await asyncio.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._next(messages)))])


class KeywordScorer:
    """A TextScorer: reward 1 for an imagined state that contains ``keyword``, else 0 (no model)."""

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword

    def score(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        values = torch.tensor([1.0 if self.keyword in s else 0.0 for s in states])
        return Scores(values=values, calls=0, failed=torch.zeros(len(states), dtype=torch.bool))

    async def ascore(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        return self.score(states, goals)


DOOR_RULES = [
    ("Action: open the door", "Observation: the door swings open and you walk out\nDone: yes"),
    ("What do you do next?", "Action: look around"),
    ("Action:", "Observation: nothing changes; the door is still closed\nDone: no"),
]
"""Rules of a scripted chat model acting as the LLM of an ``LLMWorldModel`` in a locked-room world."""
