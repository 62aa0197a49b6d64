"""LLMClient: retries and backoff, LLMError, the request cache, structured output (native, text,
corrective retries, None after the last failure), counters under threads and tasks, timeouts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from agentwm.text.client import LLMClient, LLMError
from tests.text_fakes import NativeStructuredChat, ScriptedChat, last_human


class Verdict(BaseModel):
    label: str
    confidence: float = Field(ge=0.0, le=1.0)


def echo(messages: list[Any], kwargs: dict[str, Any]) -> str:
    return "echo: " + last_human(messages)


def test_complete_with_fake_models_and_message_forms() -> None:
    client = LLMClient(FakeListChatModel(responses=["one", "two"]))
    assert client.complete("a") == "one"
    assert client.complete([("system", "be brief"), ("human", "b")]) == "two"
    generic = LLMClient(GenericFakeChatModel(messages=iter([AIMessage("hi")])))
    assert generic.complete([SystemMessage("s"), HumanMessage("x")]) == "hi"
    assert client.stats["calls"] == 2 and client.stats["cache_hits"] == 0


def test_cache_hits_identical_requests_only() -> None:
    model = ScriptedChat(script=echo)
    client = LLMClient(model)
    assert client.complete("hello") == "echo: hello"
    assert client.complete("hello") == "echo: hello"
    assert model.calls == 1 and client.stats["cache_hits"] == 1
    client.complete("hello", temperature=0.7)  # other call options: another request
    client.complete("hello", temperature=0.7, sample=1)  # another sample: another request
    assert model.calls == 3
    client.complete([("system", "x"), ("human", "hello")])
    assert model.calls == 4
    uncached = LLMClient(ScriptedChat(script=echo), cache=False)
    uncached.complete("a")
    uncached.complete("a")
    assert uncached.stats["calls"] == 2 and uncached.stats["cache_hits"] == 0


def test_cache_is_bounded_lru() -> None:
    model = ScriptedChat(script=echo)
    client = LLMClient(model, max_cache=2)
    for text in ("a", "b", "a", "c"):  # "b" is least recently used when "c" arrives
        client.complete(text)
    calls = model.calls
    client.complete("a")
    assert model.calls == calls
    client.complete("b")
    assert model.calls == calls + 1


def test_retries_transport_errors_then_succeeds() -> None:
    model = ScriptedChat(script=echo, fail_first=2)
    client = LLMClient(model, retries=2, backoff=0.0)
    done = client.request("x")
    assert done.text == "echo: x" and done.calls == 3 and not done.cached
    assert client.stats["retries"] == 2 and client.stats["failures"] == 0


def test_exhausted_retries_raise_llm_error_with_cause_and_backoff() -> None:
    client = LLMClient(ScriptedChat(script=echo, fail_first=10), retries=2, backoff=0.01)
    start = time.perf_counter()
    with pytest.raises(LLMError, match="3 attempts") as info:
        client.complete("x")
    assert time.perf_counter() - start >= 0.01 + 0.02  # backoff 0.01 then 0.02
    assert isinstance(info.value.__cause__, ConnectionError)
    assert client.stats["failures"] == 1 and client.stats["calls"] == 3


def test_async_retries_and_error() -> None:
    client = LLMClient(ScriptedChat(script=echo, fail_first=1), retries=1, backoff=0.0)
    assert asyncio.run(client.acomplete("y")) == "echo: y"
    bad = LLMClient(ScriptedChat(script=echo, fail_first=5), retries=1, backoff=0.0)
    with pytest.raises(LLMError):
        asyncio.run(bad.acomplete("y"))


def test_timeouts_count_as_failures() -> None:
    slow = ScriptedChat(script=echo, latency=0.5)
    client = LLMClient(slow, retries=0, timeout=0.05)
    with pytest.raises(LLMError, match="did not answer"):
        client.complete("x")
    with pytest.raises(LLMError, match="did not answer"):
        asyncio.run(client.acomplete("x"))
    assert client.stats["failures"] == 2


def test_structured_text_path_parses_tolerantly() -> None:
    model = ScriptedChat(script=lambda m, k: 'Sure:\n```json\n{"label": "cat", "confidence": "0.9",}\n```')
    client = LLMClient(model)
    assert client.structured("classify", Verdict) == Verdict(label="cat", confidence=0.9)
    # The prompt described the schema's fields.
    assert client.structured("classify", Verdict) == Verdict(label="cat", confidence=0.9)
    assert model.calls == 1


def test_structured_retries_with_a_corrective_message_then_gives_none() -> None:
    answers = iter(["no idea", "label: dog\nconfidence: 0.4"])
    seen: list[str] = []

    def script(messages: list[Any], kwargs: dict[str, Any]) -> str:
        seen.append(last_human(messages))
        return next(answers)

    client = LLMClient(ScriptedChat(script=script), retries=2)
    assert client.structured("classify", Verdict) == Verdict(label="dog", confidence=0.4)
    assert "could not be read" in seen[1] and "confidence" in seen[1]
    never = LLMClient(ScriptedChat(script=lambda m, k: "confidence: 7 out of 10 maybe"), retries=2)
    assert never.structured("classify", Verdict) is None
    assert never.stats["failures"] == 1 and never.stats["calls"] == 3
    down = LLMClient(ScriptedChat(script=echo, fail_first=99), retries=1, backoff=0.0)
    result = down.structured_request("x", Verdict)
    assert result.value is None and result.calls == 2


def test_structured_prefers_native_and_falls_back_to_text() -> None:
    native = NativeStructuredChat(script=lambda m, k: "unused", native=lambda m, s: s(label="owl", confidence=1.0))
    client = LLMClient(native)
    assert client.structured("x", Verdict) == Verdict(label="owl", confidence=1.0)
    assert native.calls == 0 and native._native_calls == 1

    def broken(messages: Any, schema: type[BaseModel]) -> Any:
        raise ValueError("tool call could not be parsed")

    mixed = NativeStructuredChat(script=lambda m, k: "label: bat\nconfidence: 0.2", native=broken)
    client = LLMClient(mixed, retries=1)
    assert client.structured("x", Verdict) == Verdict(label="bat", confidence=0.2)
    assert mixed._native_calls == 2 and mixed.calls == 1
    dict_native = NativeStructuredChat(script=lambda m, k: "", native=lambda m, s: {"label": "a", "confidence": 0})
    assert LLMClient(dict_native).structured("x", Verdict) == Verdict(label="a", confidence=0.0)


def test_structured_rejects_non_schema() -> None:
    with pytest.raises(TypeError, match="pydantic BaseModel"):
        LLMClient(ScriptedChat(script=echo)).structured("x", dict)  # type: ignore[type-var]


def test_acomplete_overlaps_latency() -> None:
    model = ScriptedChat(script=echo, latency=0.2)
    client = LLMClient(model)

    async def run() -> list[str]:
        return await asyncio.gather(*(client.acomplete(f"q{i}") for i in range(8)))

    start = time.perf_counter()
    answers = asyncio.run(run())
    elapsed = time.perf_counter() - start
    assert answers == [f"echo: q{i}" for i in range(8)]
    assert model.max_in_flight == 8
    assert elapsed < 0.2 * 8 / 2  # far below the sequential 1.6 s


def test_identical_requests_in_flight_are_sent_once() -> None:
    model = ScriptedChat(script=echo, latency=0.05)
    client = LLMClient(model)

    async def run() -> list[str]:
        return await asyncio.gather(*(client.acomplete("same") for _ in range(5)), client.acomplete("other"))

    assert asyncio.run(run()) == ["echo: same"] * 5 + ["echo: other"]
    assert model.calls == 2 and client.stats["cache_hits"] == 4
    failing = LLMClient(ScriptedChat(script=echo, latency=0.02, fail_first=99), retries=0)

    async def run_failing() -> list[Any]:
        return await asyncio.gather(*(failing.acomplete("x") for _ in range(3)), return_exceptions=True)

    errors = asyncio.run(run_failing())
    assert all(isinstance(e, LLMError) for e in errors) and failing.stats["calls"] == 1

    async def first_cancelled() -> str:
        first = asyncio.ensure_future(client.acomplete("fresh"))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(client.acomplete("fresh"))
        await asyncio.sleep(0.01)
        first.cancel()
        return await second

    assert asyncio.run(first_cancelled()) == "echo: fresh"


def test_stats_are_exact_under_threads_and_tasks() -> None:
    client = LLMClient(ScriptedChat(script=echo))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.complete(f"t{i % 50}"), range(400)))

    async def run() -> None:
        await asyncio.gather(*(client.acomplete(f"a{i}") for i in range(100)))

    asyncio.run(run())
    stats = client.stats
    assert stats["calls"] + stats["cache_hits"] == 500
    assert stats["calls"] >= 150  # 50 distinct threaded prompts (some may race) + 100 async
    assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    assert stats["estimated_tokens"] == stats["calls"]


def test_usage_metadata_is_counted_when_reported() -> None:
    message = AIMessage("ok", usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14})
    client = LLMClient(GenericFakeChatModel(messages=iter([message])))
    client.complete("x")
    assert client.stats["prompt_tokens"] == 11 and client.stats["completion_tokens"] == 3
    assert client.stats["estimated_tokens"] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"retries": -1}, "retries"), ({"backoff": -1}, "backoff"), ({"max_cache": -2}, "max_cache"),
     ({"timeout": 0}, "timeout")],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LLMClient(ScriptedChat(script=echo), **kwargs)
    with pytest.raises(TypeError, match="BaseChatModel"):
        LLMClient(object())  # type: ignore[arg-type]
