"""Model calls that really stop, and which errors are worth retrying.

A timed-out call must not outlive its deadline in a way that blocks the program: async calls of
models with native async support are cancelled (``asyncio.wait_for`` cancels the task, closing the
HTTP request); calls that can only run synchronously run on a daemon thread of their own, which the
caller stops waiting for and which never holds up interpreter exit or ``asyncio.run``'s shutdown
(the loop's default executor is not used). No pool is shared, so hung calls never starve later ones.

Retries: timeouts, connection errors, rate limits (429), 408/409/425 and server errors (5xx) are
retried; authentication, permission, bad-request and other 4xx errors, and programming errors
(``ValueError``, ``TypeError``, ...), fail at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel

_RETRY_STATUS = {408, 409, 425, 429}
_FATAL_NAMES = ("authentication", "permissiondenied", "badrequest", "notfound", "unprocessable",
                "invalidrequest", "unauthorized", "forbidden", "conflict")  # fmt: skip
_RETRY_NAMES = ("timeout", "connection", "ratelimit", "serviceunavailable", "internalserver", "overloaded",
                "apiconnection", "servererror", "temporarily")  # fmt: skip


def status_code(err: BaseException) -> int | None:
    """The HTTP status an error carries (OpenAI, Anthropic, httpx, requests style), if any."""
    for holder in (err, getattr(err, "response", None)):
        for attr in ("status_code", "status", "http_status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and 100 <= value < 600:
                return value
    return None


def is_retryable(err: BaseException) -> bool:
    """Whether a failed model call is worth another attempt (see the module docstring)."""
    status = status_code(err)
    if status is not None:
        return status in _RETRY_STATUS or status >= 500
    name = type(err).__name__.lower()
    if any(word in name for word in _FATAL_NAMES):
        return False
    if isinstance(err, (TimeoutError, asyncio.TimeoutError, ConnectionError)) or any(w in name for w in _RETRY_NAMES):
        return True
    return not isinstance(err, (ValueError, TypeError, KeyError, AttributeError, NotImplementedError, LookupError))


def is_fatal(err: BaseException) -> bool:
    """An error the provider will repeat for the same request: a 4xx status other than 408/409/425/429,
    or an authentication/permission/bad-request error by name."""
    status = status_code(err)
    if status is not None:
        return 400 <= status < 500 and status not in _RETRY_STATUS
    return any(word in type(err).__name__.lower() for word in _FATAL_NAMES)


def has_native_async(model: BaseChatModel) -> bool:
    """True when the model implements cancellable async generation itself (else LangChain runs
    ``invoke`` in the event loop's default executor, where a hung call would block ``asyncio.run``
    and interpreter exit). Models whose own async path runs in an executor thread say so with a
    ``blocking_async = True`` class attribute (e.g. the local transformers chat model)."""
    cls = type(model)
    if getattr(cls, "blocking_async", False):
        return False
    return cls._agenerate is not BaseChatModel._agenerate or cls._astream is not BaseChatModel._astream


class _DaemonExecutor(concurrent.futures.ThreadPoolExecutor):
    """An executor whose every job runs on its own daemon thread (never joined at exit); asyncio
    accepts only ``ThreadPoolExecutor`` instances as a loop's default executor."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        return _on_daemon_thread(lambda: fn(*args, **kwargs))


def _on_daemon_thread(fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """Run ``fn`` on a fresh daemon thread; its result or error lands in the returned future."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(err)
        else:
            future.set_result(result)

    threading.Thread(target=run, name="agentwm-llm-call", daemon=True).start()
    return future


def _timeout_error(timeout: float) -> TimeoutError:
    return TimeoutError(f"the chat model did not answer within {timeout} s")


def call_sync(runnable: Any, messages: Any, options: dict[str, Any], timeout: float | None, native_async: bool) -> Any:
    """``runnable.invoke(messages, **options)``, abandoned after ``timeout`` s (``TimeoutError``).
    Where the model has native async and no loop runs in this thread, the call goes through
    ``asyncio`` so a timeout really cancels it; otherwise it runs on a daemon thread."""
    if timeout is None:
        return runnable.invoke(messages, **options)
    if native_async:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop here: run the cancellable async call on a private loop
            loop = asyncio.new_event_loop()
            loop.set_default_executor(_DaemonExecutor())  # executor work a model starts never blocks exit
            try:
                return loop.run_until_complete(call_async(runnable, messages, options, timeout, True))
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
    future = _on_daemon_thread(lambda: runnable.invoke(messages, **options))
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError as err:
        future.cancel()
        raise _timeout_error(timeout) from err


async def call_async(
    runnable: Any, messages: Any, options: dict[str, Any], timeout: float | None, native_async: bool
) -> Any:
    """``await runnable.ainvoke(...)`` cancelled after ``timeout`` s (``TimeoutError``); models without
    native async run ``invoke`` on a daemon thread instead of the loop's default executor."""
    if timeout is None:
        return await runnable.ainvoke(messages, **options)
    if native_async:
        call = runnable.ainvoke(messages, **options)
    else:
        call = asyncio.wrap_future(_on_daemon_thread(lambda: runnable.invoke(messages, **options)))
    try:
        return await asyncio.wait_for(call, timeout)
    except asyncio.TimeoutError as err:
        raise _timeout_error(timeout) from err
