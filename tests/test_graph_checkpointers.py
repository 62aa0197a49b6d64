"""docs/graph.md's checkpointer lines: ``SqliteSaver`` serves ``invoke``, ``AsyncSqliteSaver``
serves ``ainvoke`` (``SqliteSaver`` refuses it); a decision paused for review resumes from either."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from graph_fakes import ScriptedTextWorldModel
from langgraph.types import Command

from agentwm.graph import build_planning_graph
from agentwm.graph.hitl import add_review_before_choose

sqlite = pytest.importorskip("langgraph.checkpoint.sqlite", reason="needs the sqlite extra")
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

VALUES = {"wait": 0.1, "open the door": 1.0}
INPUT = {"observation": "a closed door", "goal": "leave", "candidates": list(VALUES)}


def _graph():  # type: ignore[no-untyped-def]
    return add_review_before_choose(build_planning_graph(world_model=ScriptedTextWorldModel(VALUES)))


def test_sync_saver_with_invoke(tmp_path: Path):
    cfg = {"configurable": {"thread_id": "t1"}}
    with sqlite.SqliteSaver.from_conn_string(str(tmp_path / "decisions.db")) as saver:
        app = _graph().compile(checkpointer=saver)
        assert app.invoke(INPUT, cfg)["__interrupt__"]
    with sqlite.SqliteSaver.from_conn_string(str(tmp_path / "decisions.db")) as saver:  # reopened: state persisted
        assert _graph().compile(checkpointer=saver).invoke(Command(resume="approve"), cfg)["chosen"] == "open the door"


def test_async_graph_runs_on_the_async_saver_and_the_wrapped_sync_one(tmp_path: Path):
    cfg = {"configurable": {"thread_id": "t1"}}

    async def run() -> dict[str, object]:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "decisions.db")) as saver:
            app = _graph().compile(checkpointer=saver)
            assert (await app.ainvoke(INPUT, cfg))["__interrupt__"]
            return await app.ainvoke(Command(resume="wait"), cfg)

    out = asyncio.run(run())
    assert out["chosen"] == "wait" and out["choice"]["reason"] == "human"  # type: ignore[index]

    # LangGraph's sync SqliteSaver has no async methods; the builders' compile wraps it, so the
    # async path pauses and resumes on it too (agentwm.graph.checkpoint)
    with sqlite.SqliteSaver.from_conn_string(str(tmp_path / "sync.db")) as saver:
        app = _graph().compile(checkpointer=saver)
        assert asyncio.run(app.ainvoke(INPUT, cfg))["__interrupt__"]
        assert asyncio.run(app.ainvoke(Command(resume="wait"), cfg))["chosen"] == "wait"
