"""Shared pieces of the graph nodes: node names, failure modes and errors, settings lookup."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, get_args

from langgraph.runtime import Runtime

from agentwm.graph.context import PlanningContext, resolve_settings

OnError = Literal["fallback", "raise"]
"""What a node does when its LLM or world model fails: degrade to the documented fallback and
record it, or raise (:class:`ProposerError`/:class:`SimulationError`) for a ``RetryPolicy``."""

ON_ERROR: tuple[str, ...] = get_args(OnError)

PROPOSE, SIMULATE, SCORE, CHOOSE = "propose", "simulate", "score", "choose"
"""Node names used by :func:`~agentwm.graph.build_planning_graph` and by :func:`make_fan_out`."""


# Protocols rather than Callable aliases: a Callable's parameters are positional-only to a type
# checker, while LangGraph's own node protocol passes ``runtime`` by keyword, so ``add_node``
# would refuse our nodes under mypy --strict.
class Node(Protocol):
    """A graph node: ``node(state, runtime)`` returns the state update (``runtime`` is None
    when the node is called outside a graph)."""

    def __call__(self, state: Any, runtime: Runtime[Any] | None) -> dict[str, Any]: ...


class AsyncNode(Protocol):
    """An ``async def`` graph node: ``await node(state, runtime)`` returns the state update."""

    def __call__(self, state: Any, runtime: Runtime[Any] | None) -> Awaitable[dict[str, Any]]: ...


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
