"""One way to call any LangChain chat model: retries, a cache, structured output and a cost counter.

A planning node asks the same question many times (K candidates × S samples × H steps, and the
same start state on every decision), so :class:`LLMClient` keeps a bounded LRU cache of answers
keyed by the exact request; concurrent async requests that are identical share one model call.
Transient errors (timeouts, connection errors, rate limits, 5xx) are retried with exponential
backoff and jitter (tenacity); authentication and other 4xx errors fail at once (see
:mod:`agentwm.text.calls`, which also makes timeouts really stop a call). An answer that
does not parse is retried with a corrective follow-up message. :meth:`LLMClient.structured` then
returns ``None`` rather than raising, so callers degrade to their documented fallback, while
:meth:`LLMClient.complete` raises :class:`LLMError` once its retries are spent.

Structured output: when the chat model implements ``with_structured_output`` (tool calling or a
JSON mode, e.g. ChatOpenAI, ChatAnthropic, ChatOllama), that is tried first. Otherwise, and when
the native call fails, the schema is described in the prompt and the answer is read with the
tolerant parsers of :mod:`agentwm.text.parsing`.

Counters (``client.stats``): ``calls`` (model invocations, cache hits excluded), ``cache_hits``,
``failures`` (requests that ended in an error or ``None``), ``retries`` (extra attempts),
``prompt_tokens`` and ``completion_tokens`` (from the model's ``usage_metadata``; estimated at
4 characters a token when a model reports none, and then ``estimated_tokens`` counts those calls).
They are updated under a lock, so threads and concurrent tasks may share one client.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from agentwm.extras import missing_extra

try:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
    from tenacity import (
        AsyncRetrying,
        RetryCallState,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential,
        wait_random,
    )
except ModuleNotFoundError as err:
    raise missing_extra(err, "llm", "agentwm.text") from None

from agentwm.text.calls import call_async, call_sync, has_native_async, is_fatal, is_retryable
from agentwm.text.parsing import parse_model

M = TypeVar("M", bound=BaseModel)

MessagesLike = str | Sequence[BaseMessage | tuple[str, str] | dict[str, Any] | str]
"""A prompt: a plain string (one user message) or anything LangChain's ``convert_to_messages`` takes."""

STAT_KEYS = (
    "calls", "cache_hits", "failures", "retries", "prompt_tokens", "completion_tokens", "estimated_tokens",
)


class LLMError(RuntimeError):
    """The chat model failed on every attempt (transport errors, timeouts); ``__cause__`` is the last."""


@dataclass(frozen=True)
class Completion:
    """A text answer and what it cost: ``calls`` model invocations (0 on a cache hit)."""

    text: str
    cached: bool
    calls: int


@dataclass(frozen=True)
class StructuredResult:
    """A structured answer (``None`` when every attempt failed to parse) and its cost in ``calls``."""

    value: BaseModel | None
    calls: int


def _as_messages(messages: MessagesLike) -> list[BaseMessage]:
    if isinstance(messages, str):
        return [HumanMessage(messages)]
    if isinstance(messages, BaseMessage):
        return [messages]
    try:
        return list(convert_to_messages(list(messages)))
    except (TypeError, ValueError, NotImplementedError) as err:
        raise TypeError(
            "messages must be a string or a list of messages, (role, text) tuples or role/content dicts"
        ) from err


def _content(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content if b)
    return str(content)


def _schema_instruction(schema: type[BaseModel]) -> str:
    fields = []
    for name, info in schema.model_fields.items():
        kind = getattr(info.annotation, "__name__", str(info.annotation))
        desc = f" ({info.description})" if info.description else ""
        fields.append(f'"{name}": {kind}{desc}')
    return "Answer with one JSON object and nothing else, with the fields: " + ", ".join(fields) + "."


class LLMClient:
    """Call a LangChain chat model with retries, caching, structured output and counters.

    Args:
        model: any LangChain chat model (``ChatOpenAI``, ``ChatOllama``, a fake model in tests, or
            :class:`agentwm.text.local_chat.LocalChatModel`).
        retries: extra attempts after a failed one (transient error, timeout, unparseable answer).
        backoff: seconds before the first retry after a transient error; doubled on each further
            one, plus up to ``backoff`` s of random jitter.
        cache: keep answers to identical requests (same messages, same call options, same sample).
        max_cache: most answers kept; the least recently used go first.
        timeout: seconds one model call may take before it counts as failed; ``None`` waits. A timed
            out call is cancelled (models with native async) or abandoned on a daemon thread that
            never blocks interpreter exit; later calls are not held up by hung ones.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> client = LLMClient(FakeListChatModel(responses=["Score: 7/10"]))
        >>> client.complete("How good is this?")
        'Score: 7/10'
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        retries: int = 2,
        backoff: float = 0.25,
        cache: bool = True,
        max_cache: int = 10_000,
        timeout: float | None = None,
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise TypeError(f"model must be a LangChain BaseChatModel, got {type(model).__name__}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if not isinstance(backoff, (int, float)) or backoff < 0:
            raise ValueError(f"backoff must be a number >= 0, got {backoff!r}")
        if isinstance(max_cache, bool) or not isinstance(max_cache, int) or max_cache < 0:
            raise ValueError(f"max_cache must be an int >= 0, got {max_cache!r}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"timeout must be a number > 0 or None, got {timeout!r}")
        self.model = model
        self.retries = retries
        self.backoff = float(backoff)
        self.cache_enabled = bool(cache) and max_cache > 0
        self.max_cache = max_cache
        self.timeout = None if timeout is None else float(timeout)
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self._native: dict[type[BaseModel], Any] = {}
        self._inflight: dict[tuple[int, str], asyncio.Future[Completion]] = {}
        self._native_async = has_native_async(model)

    # ------------------------------------------------------------------------------------------
    # Bookkeeping

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters (see the module docstring)."""
        with self._lock:
            return dict(self._stats)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = dict.fromkeys(STAT_KEYS, 0)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                self._stats[key] += delta

    def _key(self, kind: str, messages: list[BaseMessage], sample: int, options: dict[str, Any]) -> str:
        payload = {
            "kind": kind,
            "messages": [(m.type, _content(m)) for m in messages],
            "sample": sample,
            "options": options,
        }
        return json.dumps(payload, sort_keys=True, default=repr)

    def _cache_get(self, key: str) -> tuple[bool, Any]:
        if not self.cache_enabled:
            return False, None
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self._stats["cache_hits"] += 1
                return True, self._cache[key]
        return False, None

    def _cache_put(self, key: str, value: Any) -> None:
        if not self.cache_enabled:
            return
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.max_cache:
                self._cache.popitem(last=False)

    def _record_usage(self, messages: list[BaseMessage], message: Any) -> None:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            self._count(
                prompt_tokens=int(usage.get("input_tokens", 0)),
                completion_tokens=int(usage.get("output_tokens", 0)),
            )
        else:
            chars = sum(len(_content(m)) for m in messages)
            self._count(
                prompt_tokens=(chars + 3) // 4,
                completion_tokens=(len(_content(message)) + 3) // 4,
                estimated_tokens=1,
            )

    def _retry_policy(self) -> dict[str, Any]:
        """tenacity settings: transient errors only, exponential backoff with jitter."""

        def count(state: RetryCallState) -> None:
            self._count(retries=1)

        return {"stop": stop_after_attempt(self.retries + 1), "retry": retry_if_exception(is_retryable),
                "wait": wait_exponential(multiplier=self.backoff) + wait_random(0, self.backoff), "reraise": True,
                "before_sleep": count}  # fmt: skip

    def _failed(self, err: BaseException, attempts: int) -> LLMError:
        self._count(failures=1)
        if not is_retryable(err):
            return LLMError(f"chat model refused the request (not retried): {err!r}")
        return LLMError(f"chat model failed after {attempts} attempts: {err!r}")

    # ------------------------------------------------------------------------------------------
    # One model call, with a timeout that really stops it

    def _invoke(self, runnable: Any, messages: list[BaseMessage], options: dict[str, Any]) -> Any:
        return call_sync(runnable, messages, options, self.timeout, self._native_async)

    async def _ainvoke(self, runnable: Any, messages: list[BaseMessage], options: dict[str, Any]) -> Any:
        return await call_async(runnable, messages, options, self.timeout, self._native_async)

    # ------------------------------------------------------------------------------------------
    # Text

    def request(self, messages: MessagesLike, *, sample: int = 0, **options: Any) -> Completion:
        """:meth:`complete` with its cost: the answer, whether it came from the cache, and calls made.

        Args:
            messages: the prompt.
            sample: distinguishes repeated samples of the same request in the cache (sample 0 and
                sample 1 of a sampled model are different answers); not sent to the model.
            options: call options forwarded to ``model.invoke`` (``stop``, ``temperature``, ...).

        Raises:
            LLMError: every attempt failed; the last error is its ``__cause__``.
        """
        msgs = _as_messages(messages)
        key = self._key("text", msgs, sample, options)
        hit, value = self._cache_get(key)
        if hit:
            return Completion(str(value), True, 0)
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            self._count(calls=1)
            return self._invoke(self.model, msgs, options)

        try:
            message: Any = Retrying(**self._retry_policy())(attempt)
        except Exception as err:
            raise self._failed(err, attempts) from err
        self._record_usage(msgs, message)
        text = _content(message)
        self._cache_put(key, text)
        return Completion(text, False, attempts)

    async def arequest(self, messages: MessagesLike, *, sample: int = 0, **options: Any) -> Completion:
        """Async :meth:`request`; concurrent calls overlap their latency.

        With the cache on, a request identical to one already in flight on the same event loop
        waits for that one's answer instead of asking again (counted as a cache hit).
        """
        msgs = _as_messages(messages)
        key = self._key("text", msgs, sample, options)
        hit, value = self._cache_get(key)
        if hit:
            return Completion(str(value), True, 0)
        if not self.cache_enabled:
            return await self._arequest(msgs, key, options)
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        with self._lock:
            running = self._inflight.get(slot)
            if running is None:
                running = self._inflight[slot] = loop.create_future()
                owner = True
            else:
                owner = False
        if not owner:
            try:
                done = await asyncio.shield(running)
            except asyncio.CancelledError:
                if running.cancelled():  # the first caller was cancelled, not this one: ask ourselves
                    return await self._arequest(msgs, key, options)
                raise
            self._count(cache_hits=1)
            return Completion(done.text, True, 0)
        try:
            done = await self._arequest(msgs, key, options)
        except asyncio.CancelledError:
            running.cancel()
            raise
        except BaseException as err:
            running.set_exception(err)
            running.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        else:
            running.set_result(done)
            return done
        finally:
            with self._lock:
                self._inflight.pop(slot, None)

    async def _arequest(self, msgs: list[BaseMessage], key: str, options: dict[str, Any]) -> Completion:
        attempts = 0

        async def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            self._count(calls=1)
            return await self._ainvoke(self.model, msgs, options)

        try:
            message: Any = await AsyncRetrying(**self._retry_policy())(attempt)
        except Exception as err:
            raise self._failed(err, attempts) from err
        self._record_usage(msgs, message)
        text = _content(message)
        self._cache_put(key, text)
        return Completion(text, False, attempts)

    def complete(self, messages: MessagesLike, *, sample: int = 0, **options: Any) -> str:
        """The model's text answer to ``messages`` (cached). Raises :class:`LLMError` when retries run out."""
        return self.request(messages, sample=sample, **options).text

    async def acomplete(self, messages: MessagesLike, *, sample: int = 0, **options: Any) -> str:
        """Async :meth:`complete`."""
        return (await self.arequest(messages, sample=sample, **options)).text

    # ------------------------------------------------------------------------------------------
    # Structured

    def _native_runnable(self, schema: type[BaseModel]) -> Any:
        """``model.with_structured_output(schema)``, or ``None`` when the model has no native support."""
        if schema not in self._native:
            try:
                runnable = self.model.with_structured_output(schema)
            except (NotImplementedError, ValueError, TypeError, AttributeError, ImportError):
                runnable = None
            self._native[schema] = runnable
        return self._native[schema]

    @staticmethod
    def _text_prompt(msgs: list[BaseMessage], schema: type[BaseModel], instruct: bool) -> list[BaseMessage]:
        """The prompt of the text path: the schema's description joins the last user message (one
        user turn reads better to small models than two), or follows as its own message."""
        if not instruct:
            return list(msgs)
        note = _schema_instruction(schema)
        if msgs and msgs[-1].type == "human" and isinstance(msgs[-1].content, str):
            return [*msgs[:-1], HumanMessage(msgs[-1].content + "\n\n" + note)]
        return [*msgs, HumanMessage(note)]

    @staticmethod
    def _retry_prompt(prompt: list[BaseMessage], answer: str, schema: type[BaseModel]) -> list[BaseMessage]:
        return [
            *prompt,
            AIMessage(answer),
            HumanMessage("That answer could not be read. " + _schema_instruction(schema)),
        ]

    def structured_request(
        self, messages: MessagesLike, schema: type[M], *, text_field: str | None = None, sample: int = 0,
        format_instructions: bool = True, **options: Any,
    ) -> StructuredResult:
        """:meth:`structured` with its cost in model calls."""
        msgs = _as_messages(messages)
        _check_schema(schema)
        key = self._key("structured:" + schema.__qualname__, msgs, sample, options)
        hit, value = self._cache_get(key)
        if hit:
            return StructuredResult(value, 0)
        calls = 0
        native = self._native_runnable(schema)
        if native is not None:
            for attempt in range(self.retries + 1):
                if attempt:
                    self._count(retries=1)
                self._count(calls=1)
                calls += 1
                try:
                    raw = self._invoke(native, msgs, options)
                    result = _coerce_native(raw, schema)
                except Exception as err:  # noqa: BLE001 - fall through to the next attempt, then to text
                    result = None
                    if is_fatal(err):  # auth, bad request: asking again cannot help
                        break
                if result is not None:
                    self._cache_put(key, result)
                    return StructuredResult(result, calls)
        prompt = self._text_prompt(msgs, schema, format_instructions)
        for attempt in range(self.retries + 1):
            if attempt or native is not None:
                self._count(retries=1)
            try:
                done = self.request(prompt, sample=sample, **options)
            except LLMError:
                calls += self.retries + 1
                break
            calls += done.calls
            result = parse_model(done.text, schema, text_field=text_field)
            if result is not None:
                self._cache_put(key, result)
                return StructuredResult(result, calls)
            prompt = self._retry_prompt(prompt, done.text, schema)
        self._count(failures=1)
        return StructuredResult(None, calls)

    async def astructured_request(
        self, messages: MessagesLike, schema: type[M], *, text_field: str | None = None, sample: int = 0,
        format_instructions: bool = True, **options: Any,
    ) -> StructuredResult:
        """Async :meth:`structured_request`."""
        msgs = _as_messages(messages)
        _check_schema(schema)
        key = self._key("structured:" + schema.__qualname__, msgs, sample, options)
        hit, value = self._cache_get(key)
        if hit:
            return StructuredResult(value, 0)
        calls = 0
        native = self._native_runnable(schema)
        if native is not None:
            for attempt in range(self.retries + 1):
                if attempt:
                    self._count(retries=1)
                self._count(calls=1)
                calls += 1
                try:
                    raw = await self._ainvoke(native, msgs, options)
                    result = _coerce_native(raw, schema)
                except Exception as err:  # noqa: BLE001
                    result = None
                    if is_fatal(err):
                        break
                if result is not None:
                    self._cache_put(key, result)
                    return StructuredResult(result, calls)
        prompt = self._text_prompt(msgs, schema, format_instructions)
        for attempt in range(self.retries + 1):
            if attempt or native is not None:
                self._count(retries=1)
            try:
                done = await self.arequest(prompt, sample=sample, **options)
            except LLMError:
                calls += self.retries + 1
                break
            calls += done.calls
            result = parse_model(done.text, schema, text_field=text_field)
            if result is not None:
                self._cache_put(key, result)
                return StructuredResult(result, calls)
            prompt = self._retry_prompt(prompt, done.text, schema)
        self._count(failures=1)
        return StructuredResult(None, calls)

    def structured(
        self, messages: MessagesLike, schema: type[M], *, text_field: str | None = None, sample: int = 0,
        format_instructions: bool = True, **options: Any,
    ) -> M | None:
        """The answer validated into ``schema``, or ``None`` when every attempt failed.

        Native structured output is used where the model supports it; otherwise (and after native
        attempts fail) the schema is described in the prompt and the answer parsed tolerantly,
        retrying with a corrective message. ``format_instructions=False`` leaves the description
        out of the first attempt, for prompts that already ask for a format the tolerant parser
        reads (``Field: value`` lines). ``text_field`` names a string field that takes the
        answer's first line when a model ignores the format altogether (see
        :func:`agentwm.text.parsing.parse_model`). Transport errors also end in ``None`` here.
        """
        value = self.structured_request(
            messages, schema, text_field=text_field, sample=sample, format_instructions=format_instructions,
            **options,
        ).value
        return value if isinstance(value, schema) else None

    async def astructured(
        self, messages: MessagesLike, schema: type[M], *, text_field: str | None = None, sample: int = 0,
        format_instructions: bool = True, **options: Any,
    ) -> M | None:
        """Async :meth:`structured`."""
        result = await self.astructured_request(
            messages, schema, text_field=text_field, sample=sample, format_instructions=format_instructions,
            **options,
        )
        return result.value if isinstance(result.value, schema) else None


def _check_schema(schema: Any) -> None:
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise TypeError(f"schema must be a pydantic BaseModel subclass, got {schema!r}")


def _coerce_native(raw: Any, schema: type[M]) -> M | None:
    if isinstance(raw, schema):
        return raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if isinstance(raw, dict):
        if isinstance(raw.get("parsed"), (dict, BaseModel)):  # include_raw style
            return _coerce_native(raw["parsed"], schema)
        return schema.model_validate(raw)
    return None
