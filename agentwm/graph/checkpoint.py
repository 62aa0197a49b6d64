"""Checkpointers for graphs that are called both ways: a sync ``SqliteSaver`` that also serves ``ainvoke``.

LangGraph's ``SqliteSaver`` raises ``NotImplementedError`` from every async method, so an async
graph (``ainvoke``/``astream``, what the deployable planning graph runs, 2.8x faster than sync with a
local model) compiled with it failed on its first checkpoint read. The builders of this package
return a :class:`PlanningStateGraph`, whose ``compile`` swaps a ``SqliteSaver`` for its async-capable
twin (:func:`serve_async`): the same connection, lock, tables and serializer, whose async methods
run the sync ones inline. SQLite calls are short local writes, so running them on the event loop
costs little for one agent; a server handling many threads at once should use LangGraph's
``AsyncSqliteSaver`` (``langgraph.checkpoint.sqlite.aio``, needs ``aiosqlite``), which ``compile``
takes as it is. ``langgraph-checkpoint-sqlite`` stays optional (extra ``sqlite``): it is imported
only when a ``SqliteSaver`` is given.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

__all__ = ["PlanningStateGraph", "serve_async"]


@functools.cache
def _async_twin_class() -> type[Any]:
    """``SqliteSaver`` with async methods that run the sync ones (built on first use: optional extra)."""
    from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
    from langgraph.checkpoint.sqlite import SqliteSaver

    class SqliteSaverForAsync(SqliteSaver):
        """A ``SqliteSaver`` whose async methods run its sync ones (same connection, lock and tables)."""

        async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
            return self.get_tuple(config)

        async def alist(
            self,
            config: RunnableConfig | None,
            *,
            filter: dict[str, Any] | None = None,
            before: RunnableConfig | None = None,
            limit: int | None = None,
        ) -> AsyncIterator[CheckpointTuple]:
            for item in self.list(config, filter=filter, before=before, limit=limit):
                yield item

        async def aput(
            self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions,
        ) -> RunnableConfig:
            return self.put(config, checkpoint, metadata, new_versions)

        async def aput_writes(
            self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
        ) -> None:
            self.put_writes(config, writes, task_id, task_path)

        async def adelete_thread(self, thread_id: str) -> None:
            self.delete_thread(thread_id)

    return SqliteSaverForAsync


def serve_async(checkpointer: Any) -> Any:
    """``checkpointer``, made to serve async graphs too when it is a sync-only ``SqliteSaver``
    (anything else is returned as it is).

    Example:
        >>> graph = builder.compile(checkpointer=serve_async(SqliteSaver(conn)))
        >>> await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})
    """
    cls = type(checkpointer)
    if cls.__name__ != "SqliteSaver" or not cls.__module__.startswith("langgraph.checkpoint.sqlite"):
        return checkpointer
    twin = _async_twin_class()(checkpointer.conn, serde=checkpointer.serde)
    twin.lock, twin.is_setup = checkpointer.lock, checkpointer.is_setup
    return twin


class PlanningStateGraph(StateGraph[Any, Any, Any, Any]):
    """A ``StateGraph`` whose ``compile`` accepts a sync ``SqliteSaver`` for async use too (see the module docstring)."""

    def compile(self, checkpointer: Any = None, **kwargs: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
        return super().compile(serve_async(checkpointer), **kwargs)
