"""The dialogue graph: given or LLM-proposed candidates, world-model scoring, reaction blending,
fallbacks, runtime context and a SQLite checkpointer. Chat models are scripted fakes."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from pydantic import ValidationError
from test_dialogue import tiny_model

from agentwm.graph.dialogue import (
    DEFAULT_FALLBACK_REPLIES,
    DialogueContext,
    DialogueState,
    build_dialogue_graph,
    conversation_turns,
    make_dialogue_node,
)
from agentwm.planning.replies import score_replies
from agentwm.text.client import LLMClient

USER = [HumanMessage("I just adopted a puppy!")]


def fake_llm(*answers: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(a) for a in answers]))


class BrokenChatModel(GenericFakeChatModel):
    """A chat model whose every call fails, like a provider that is down."""

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("provider unavailable")


def no_retry(model: Any) -> LLMClient:
    return LLMClient(model, retries=0, cache=False)


def test_given_candidates_are_scored_and_the_best_is_sent() -> None:
    model = tiny_model()
    cands = ["Congrats! What breed?", "ok", "Puppies are so much work, good luck"]
    graph = build_dialogue_graph(world_model=model).compile()
    out = graph.invoke({"messages": USER, "candidates": cands}, context={"horizon": 2, "gamma": 0.8})
    expected = score_replies(["I just adopted a puppy!"], cands, horizon=2, gamma=0.8, model=model)
    best = min(expected, key=lambda r: r.rank).reply
    assert out["chosen"] == best
    assert isinstance(out["messages"][-1], AIMessage) and out["messages"][-1].content == best
    assert out["proposal"]["source"] == "state" and out["llm_calls"] == 0
    assert out["ranking"][0]["candidate"] == best
    assert [s["reply"] for s in out["scores"]] == cands
    assert out["candidates"] == [], "candidates are cleared for the next turn"
    assert all(len(s["imagined"]) == 2 for s in out["scores"])


def test_llm_proposes_candidates_and_the_state_checkpoints_in_sqlite() -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    llm = fake_llm("1. Congrats! What breed is it?\n2. Nice.\n3. What's the puppy's name?",
                   "1. Where do you walk her?\n2. Cool")
    graph = build_dialogue_graph(world_model=tiny_model(), chat_model=no_retry(llm))
    with sqlite3.connect(":memory:", check_same_thread=False) as conn:
        app = graph.compile(checkpointer=SqliteSaver(conn))
        cfg: Any = {"configurable": {"thread_id": "t1"}}
        out = app.invoke({"messages": USER}, cfg, context={"candidates": 3})
        assert out["proposal"]["source"] == "llm"
        assert out["chosen"] in ("Congrats! What breed is it?", "Nice.", "What's the puppy's name?")
        assert out["llm_calls"] == 1
        out = app.invoke({"messages": [HumanMessage("her name is Luna")]}, cfg)
        assert out["chosen"] in ("Where do you walk her?", "Cool")
        assert [type(m).__name__ for m in out["messages"]] == ["HumanMessage", "AIMessage", "HumanMessage", "AIMessage"]
        saved = app.get_state(cfg).values
        assert saved["chosen"] == out["chosen"] and len(saved["scores"]) == 2


def test_a_failing_chat_model_falls_back_without_crashing() -> None:
    graph = build_dialogue_graph(world_model=tiny_model(), chat_model=no_retry(BrokenChatModel(messages=iter([]))))
    out = graph.compile().invoke({"messages": USER})
    assert out["proposal"]["source"] == "fallback"
    assert out["chosen"] in DEFAULT_FALLBACK_REPLIES
    assert any("chat model failed" in f for f in out["fallbacks"])


def test_an_answer_without_candidates_falls_back() -> None:
    graph = build_dialogue_graph(world_model=tiny_model(), chat_model=no_retry(fake_llm("")),
                                 fallback_candidates=["Tell me about the puppy!"])
    out = graph.compile().invoke({"messages": USER})
    assert out["chosen"] == "Tell me about the puppy!"
    assert out["fallbacks"]


def test_reaction_blending_can_overturn_the_world_model() -> None:
    model = tiny_model()
    cands = ["Congrats! What breed?", "ok"]
    wm = score_replies(["I just adopted a puppy!"], cands, model=model)
    worst = max(wm, key=lambda r: r.rank).reply
    # the reaction model loves the world model's worst candidate and hates the other
    answers = {c: ("Score: 10" if c == worst else "Score: 0") for c in cands}

    class Judge(GenericFakeChatModel):
        def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            from langchain_core.outputs import ChatGeneration, ChatResult

            text = next(v for k, v in answers.items() if k in messages[-1].content)
            return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    judge = no_retry(Judge(messages=iter([])))
    node = make_dialogue_node(world_model=model, reaction_model=judge)
    builder = StateGraph(DialogueState, context_schema=DialogueContext)
    builder.add_node("reply", node)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    app = builder.compile()
    alone = app.invoke({"messages": USER, "candidates": cands})
    assert alone["chosen"] != worst and alone["llm_calls"] == 0
    blended = app.invoke({"messages": USER, "candidates": cands}, context={"reaction_weight": 0.9})
    assert blended["chosen"] == worst
    assert blended["llm_calls"] == 2
    assert {s["reply"]: s["reaction"] for s in blended["scores"]} == {worst: 1.0, next(c for c in cands if c != worst): 0.0}


def test_bad_context_and_state_get_clear_errors() -> None:
    app = build_dialogue_graph(world_model=tiny_model()).compile()
    with pytest.raises(ValidationError, match="reaction_weight"):
        app.invoke({"messages": USER, "candidates": ["a"]}, context={"reaction_weight": 2.0})
    with pytest.raises(ValueError, match="at least one human or AI message"):
        app.invoke({"messages": [], "candidates": ["a"]})
    with pytest.raises(TypeError, match="world_model"):
        build_dialogue_graph(world_model="not a model")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context_schema"):
        build_dialogue_graph(world_model=tiny_model(), context_schema=dict)  # type: ignore[arg-type]


def test_conversation_turns_merge_consecutive_messages() -> None:
    msgs = [HumanMessage("hi"), HumanMessage("anyone there?"), AIMessage("yes!"), HumanMessage("cool")]
    assert conversation_turns(msgs, 12) == ["hi anyone there?", "yes!", "cool"]
    assert conversation_turns(msgs, 2) == ["yes!", "cool"]


def test_async_graph_gives_the_same_answer() -> None:
    import asyncio

    model = tiny_model()
    cands = ["Congrats! What breed?", "ok"]
    app = build_dialogue_graph(world_model=model).compile()  # one graph serves invoke and ainvoke
    sync = app.invoke({"messages": USER, "candidates": cands})
    out = asyncio.run(app.ainvoke({"messages": USER, "candidates": cands}))
    assert out["chosen"] == sync["chosen"]


def test_deployable_dialogue_graph_runs_on_the_shipped_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "graphs" / "dialogue.py"
    monkeypatch.setenv("AGENTWM_CHAT_MODEL", "none")  # before the import: it starts the shared chat model
    monkeypatch.setenv("AGENTWM_SERVE_WARMUP", "0")  # and, unless told, builds the graph in the background
    spec = importlib.util.spec_from_file_location("_deploy_dialogue_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.shared_chat_model() is None
    app = module.build(None).compile()
    cands = ["Congratulations! What breed is it?", "What did you have for lunch?"]
    out = app.invoke({"messages": USER, "candidates": cands}, context={"horizon": 2})
    assert out["chosen"] in cands and out["messages"][-1].content == out["chosen"]
    assert all(e["reply"] for s in out["scores"] for e in s["imagined"]), "imagined replies are real utterances"
