"""Human in the loop: the planning graph pauses before ``choose`` with the ranking shown; a person
approves the best candidate or picks another; the decision resumes from the checkpoint."""

from __future__ import annotations

import pytest
from graph_fakes import ScriptedTextWorldModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agentwm.graph import build_planning_graph
from agentwm.graph.hitl import add_review_before_choose

VALUES = {"wait": 0.1, "open the door": 1.0, "knock": 0.5}


def _app():  # type: ignore[no-untyped-def]
    builder = add_review_before_choose(build_planning_graph(world_model=ScriptedTextWorldModel(VALUES)))
    return builder.compile(checkpointer=InMemorySaver())


def _start(app, thread: str):  # type: ignore[no-untyped-def]
    cfg = {"configurable": {"thread_id": thread}}
    out = app.invoke({"observation": "a closed door", "goal": "leave", "candidates": list(VALUES)}, cfg)
    return cfg, out


def test_review_shows_the_ranking_and_approval_takes_the_best():
    app = _app()
    cfg, out = _start(app, "approve")
    [pause] = out["__interrupt__"]
    shown = pause.value
    assert [r["candidate"] for r in shown["ranking"]] == ["open the door", "knock", "wait"]
    assert shown["proposed"] == "open the door" and shown["candidates"] == list(VALUES)
    assert app.get_state(cfg).next == ("review",) and out.get("chosen") is None
    done = app.invoke(Command(resume="approve"), cfg)
    assert done["chosen"] == "open the door" and done["choice"]["reason"] == "best_score"


@pytest.mark.parametrize("answer", ["knock", 2, {"choose": "knock"}])
def test_a_person_can_pick_another_candidate(answer: object):
    app = _app()
    cfg, _ = _start(app, f"pick-{answer!r}")
    done = app.invoke(Command(resume=answer), cfg)
    assert done["chosen"] == "knock"
    assert done["choice"] == {"candidate": "knock", "index": 2, "score": pytest.approx(done["ranking"][1]["score"]),
                              "reason": "human"}


def test_an_unknown_answer_is_refused_and_asked_again():
    app = _app()
    cfg, _ = _start(app, "bad")
    again = app.invoke(Command(resume="jump out of the window"), cfg)
    [pause] = again["__interrupt__"]
    assert "not one of the candidates" in pause.value["error"] and pause.value["ranking"]
    assert app.invoke(Command(resume="approve"), cfg)["chosen"] == "open the door"


def test_review_needs_a_planning_graph():
    from langgraph.graph import StateGraph
    from typing_extensions import TypedDict

    class S(TypedDict):
        x: int

    with pytest.raises(ValueError, match="score -> choose"):
        add_review_before_choose(StateGraph(S))


def test_review_graph_draws():
    mermaid = _app().get_graph().draw_mermaid()
    assert "score --> review" in mermaid and "review -.-> choose" in mermaid
