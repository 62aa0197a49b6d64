"""Run coroutines from sync code: one private event loop per thread, or a worker thread when a loop
is already running (a sync ``imagine`` called from inside an async graph). Stdlib only."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_LOOPS = threading.local()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code: on this thread's private event loop (kept between calls, so
    a planner's many ``imagine`` calls do not each build a loop), or on a worker thread when an
    event loop is already running here."""
    global _POOL
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_LOOPS, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            _LOOPS.loop = loop
        return loop.run_until_complete(coro)
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="agentwm-imagine")
    future: concurrent.futures.Future[T] = _POOL.submit(run_sync, coro)
    return future.result()
