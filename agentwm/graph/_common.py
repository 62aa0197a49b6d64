"""Shared pieces of the graph nodes: node names, the sync/async node type, failure modes and errors, settings lookup."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_args

from langgraph._internal._runnable import RunnableCallable
from langgraph.runtime import Runtime

from agentwm.graph.context import PlanningContext, resolve_settings

OnError = Literal["fallback", "raise"]
"""What a node does when its LLM or world model fails: degrade to the documented fallback and
record it, or raise (:class:`ProposerError`/:class:`SimulationError`) for a ``RetryPolicy``."""

ON_ERROR: tuple[str, ...] = get_args(OnError)

PROPOSE, SIMULATE, SCORE, CHOOSE = "propose", "simulate", "score", "choose"
"""Node names used by :func:`~agentwm.graph.build_planning_graph` and by :func:`make_fan_out`."""


class GraphNode(RunnableCallable):
    """One node for sync and async callers: a sync body and an async body behind one runnable (as
    LangGraph's prebuilt agents pair ``call_model``/``acall_model``), so the same compiled graph
    serves ``invoke`` and ``ainvoke``. Outside a graph ``node(state, runtime)`` runs the sync body
    and ``await node.acall(state, runtime)`` the async one (``runtime`` may be ``None``).
    """

    def __init__(
        self,
        func: Callable[[Any, Runtime[Any] | None], dict[str, Any]],
        afunc: Callable[[Any, Runtime[Any] | None], Awaitable[dict[str, Any]]],
        *,
        name: str,
    ) -> None:
        super().__init__(func, afunc, name=name)
        self._sync, self._async = func, afunc

    def __call__(self, state: Any, runtime: Runtime[Any] | None = None) -> dict[str, Any]:
        return self._sync(state, runtime)

    async def acall(self, state: Any, runtime: Runtime[Any] | None = None) -> dict[str, Any]:
        """The async body, called directly."""
        return await self._async(state, runtime)


class _LegacyAsyncNode(GraphNode):
    """What ``asynchronous=True`` gave before one node served both: calling it returns a coroutine."""

    def __call__(self, state: Any, runtime: Runtime[Any] | None = None) -> Any:
        return self._async(state, runtime)


def dual_node(
    func: Callable[[Any, Runtime[Any] | None], dict[str, Any]],
    afunc: Callable[[Any, Runtime[Any] | None], Awaitable[dict[str, Any]]],
    *,
    name: str,
    asynchronous: bool | None = None,
) -> GraphNode:
    """The :class:`GraphNode` of a sync/async pair; ``asynchronous`` is the deprecated flag of the
    factories (``True``: a direct call returns a coroutine, as it used to)."""
    if asynchronous is not None:
        warnings.warn(
            "asynchronous= is deprecated and will be removed in the next release: every node now serves"
            " invoke and ainvoke (call node.acall(state, runtime) to await it directly)",
            DeprecationWarning,
            stacklevel=3,
        )
    cls = _LegacyAsyncNode if asynchronous else GraphNode
    return cls(func, afunc, name=name)


_NON_RETRYABLE = (ValueError, TypeError, LookupError, ArithmeticError, NotImplementedError, AssertionError)


class ProposerError(RuntimeError):
    """The proposer's LLM call failed (raised with ``on_error="raise"``; the cause is chained)."""


class SimulationError(RuntimeError):
    """A simulation failed (raised with ``on_error="raise"``; the cause is chained)."""


def is_retryable(exc: BaseException) -> bool:
    """``retry_on`` of the planning graph's ``RetryPolicy``: retry a :class:`ProposerError` or
    :class:`SimulationError` unless its cause is a programming or input error (``ValueError``,
    ``TypeError``, ``LookupError``, …), which a retry cannot fix."""
    if not isinstance(exc, (ProposerError, SimulationError)):
        return False
    return not isinstance(exc.__cause__, _NON_RETRYABLE)


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def settings_for(runtime: Any, default: PlanningContext) -> PlanningContext:
    return resolve_settings(getattr(runtime, "context", None), default)


def writer_for(runtime: Any) -> Callable[[Any], None]:
    writer = getattr(runtime, "stream_writer", None)
    return writer if callable(writer) else (lambda _chunk: None)
