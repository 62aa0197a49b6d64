"""Run by tests/test_graph_postgres.py in a NEW process: resume a paused planning decision from
Postgres with the async saver (``AsyncPostgresSaver``) and ``ainvoke``, print the result as JSON.

    python tests/postgres_resume.py URI THREAD_ID ANSWER
"""

from __future__ import annotations

import asyncio
import json
import sys

from graph_fakes import ScriptedTextWorldModel
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Command

from agentwm.graph import build_planning_graph
from agentwm.graph.hitl import add_review_before_choose

VALUES = {"wait": 0.1, "open the door": 1.0, "knock": 0.5}


def builder():  # type: ignore[no-untyped-def]
    """The graph both processes build (models live in the code, the decision in the checkpointer)."""
    return add_review_before_choose(build_planning_graph(world_model=ScriptedTextWorldModel(VALUES)))


async def resume(uri: str, thread: str, answer: str) -> dict[str, object]:
    async with AsyncPostgresSaver.from_conn_string(uri) as saver:
        app = builder().compile(checkpointer=saver)
        out = await app.ainvoke(Command(resume=answer), {"configurable": {"thread_id": thread}})
        return {"chosen": out["chosen"], "reason": out["choice"]["reason"]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(resume(*sys.argv[1:4]))))
