"""LLM calls that really stop: timeouts cancel or abandon hung calls without blocking exit or later
calls; only transient errors are retried (tenacity, backoff with jitter), 4xx errors fail at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel

from agentwm.text.calls import has_native_async, is_fatal, is_retryable
from agentwm.text.client import LLMClient, LLMError

ROOT = Path(__file__).resolve().parents[1]


class HangingSync(BaseChatModel):
    """Sync only: prompts containing 'hang' block until ``release`` is set; others answer 'ok'."""

    release: Any = None

    @property
    def _llm_type(self) -> str:
        return "hanging-sync"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        if "hang" in str(messages[-1].content):
            self.release.wait()
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])


class HangingAsync(HangingSync):
    """Native async: 'hang' prompts await forever; ``cancelled`` counts calls that were cancelled."""

    cancelled: int = 0

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                         **kw: Any) -> ChatResult:  # fmt: skip
        if "hang" in str(messages[-1].content):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])


class ExecutorAsync(HangingSync):
    """Its async path runs the blocking generation in the loop's default executor (as local models do)."""

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                         **kw: Any) -> ChatResult:  # fmt: skip
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self._generate(messages))


class DeclaredBlocking(ExecutorAsync):
    blocking_async: ClassVar[bool] = True


class StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Failing(BaseChatModel):
    """Raises ``error`` on every call and counts the calls."""

    error: Any = None
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "failing"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        self.calls += 1
        raise self.error


def test_sync_hung_calls_time_out_and_later_calls_still_reach_the_model() -> None:
    release = threading.Event()
    model = HangingSync(release=release)
    assert not has_native_async(model)
    client = LLMClient(model, retries=0, timeout=0.1, cache=False)
    try:
        for i in range(10):  # more hung calls than any worker pool would hold
            with pytest.raises(LLMError, match="did not answer"):
                client.complete(f"hang {i}")
        start = time.perf_counter()
        assert client.complete("hello") == "ok"  # reaches the model at once
        assert time.perf_counter() - start < 0.1
        # Async with a sync-only model: asyncio.run returns although the call hangs.
        for i in range(9):
            with pytest.raises(LLMError, match="did not answer"):
                asyncio.run(client.acomplete(f"hang async {i}"))
        assert asyncio.run(client.acomplete("hello again")) == "ok"
        hung = [t for t in threading.enumerate() if t.name == "agentwm-llm-call"]
        assert hung and all(t.daemon for t in hung)  # abandoned, never joined at exit
    finally:
        release.set()


def test_async_timeouts_cancel_the_request() -> None:
    model = HangingAsync(release=threading.Event())
    assert has_native_async(model)
    client = LLMClient(model, retries=1, backoff=0.0, timeout=0.05, cache=False)
    with pytest.raises(LLMError, match="2 attempts"):
        asyncio.run(client.acomplete("hang"))
    assert model.cancelled == 2
    with pytest.raises(LLMError, match="did not answer"):  # the sync path goes through asyncio too
        client.complete("hang")
    assert model.cancelled == 4
    assert client.complete("fine") == "ok"


def test_a_process_with_hung_calls_exits() -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys, threading
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_text_calls import HangingSync
        from agentwm.text.client import LLMClient, LLMError
        client = LLMClient(HangingSync(release=threading.Event()), retries=0, timeout=0.05)
        for i in range(3):
            try: client.complete(f"hang {{i}}")
            except LLMError: pass
            try: asyncio.run(client.acomplete(f"hang a{{i}}"))
            except LLMError: pass
        print("done")
    """)
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr[-2000:]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_fail_at_once(status: int) -> None:
    model = Failing(error=StatusError(status))
    client = LLMClient(model, retries=3, backoff=0.0)
    with pytest.raises(LLMError, match="not retried"):
        client.complete("x")
    assert model.calls == 1 and client.stats["retries"] == 0

    class Out(BaseModel):
        answer: str

    model.calls = 0
    assert client.structured("y", Out) is None
    assert model.calls == 1


@pytest.mark.parametrize("error", [StatusError(429), StatusError(500), StatusError(503), ConnectionError("reset"),
                                   TimeoutError("slow")])  # fmt: skip
def test_transient_errors_are_retried(error: Exception) -> None:
    model = Failing(error=error)
    client = LLMClient(model, retries=2, backoff=0.0)
    with pytest.raises(LLMError, match="3 attempts"):
        client.complete("x")
    assert model.calls == 3 and client.stats["retries"] == 2


def test_retry_classification() -> None:
    class AuthenticationError(Exception):
        pass

    class RateLimitError(Exception):
        pass

    assert not is_retryable(AuthenticationError("bad key")) and is_fatal(AuthenticationError("bad key"))
    assert is_retryable(RateLimitError("slow down")) and not is_fatal(RateLimitError("x"))
    assert not is_retryable(ValueError("bug")) and is_retryable(RuntimeError("flaky"))
    assert is_retryable(StatusError(408)) and not is_retryable(StatusError(401))


def test_backoff_has_jitter() -> None:
    client = LLMClient(Failing(error=ConnectionError()), retries=1, backoff=1.0)
    wait = client._retry_policy()["wait"]

    class State:
        attempt_number = 2

    waits = {round(wait(State()), 6) for _ in range(20)}
    assert len(waits) > 1 and all(2.0 <= w <= 3.0 for w in waits)  # 1 * 2**1 + up to 1 s of jitter


def test_models_whose_async_runs_in_an_executor_still_time_out_and_return() -> None:
    release = threading.Event()
    try:
        sneaky = LLMClient(ExecutorAsync(release=release), retries=0, timeout=0.1, cache=False)
        start = time.perf_counter()
        with pytest.raises(LLMError, match="did not answer"):  # sync: a private loop, daemon executor
            sneaky.complete("hang")
        declared = LLMClient(DeclaredBlocking(release=release), retries=0, timeout=0.1, cache=False)
        assert not has_native_async(declared.model)
        with pytest.raises(LLMError, match="did not answer"):  # async: a daemon thread, not the executor
            asyncio.run(declared.acomplete("hang"))
        assert time.perf_counter() - start < 5
        assert declared.complete("fine") == "ok"
    finally:
        release.set()
