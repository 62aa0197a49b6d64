"""The LangGraph planning layer: end-to-end runs with scripted chat models (sockets off), known
optima on toy world models, checkpoint round trips and resumes, fallbacks, budgets, concurrency."""

from __future__ import annotations

import asyncio
import socket
import sqlite3

import pytest
import torch
from graph_fakes import FixedLatencyChatModel, ScriptedTextWorldModel
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.types import RetryPolicy
from pydantic import ValidationError
from toy_models import JUMP, LEFT, RIGHT, STAY, Chain, RiskyBandit

from agentwm.graph import (
    PlanningContext,
    PlanningState,
    build_planning_graph,
    make_choose_node,
    make_plan_node,
    make_propose_node,
    make_score_node,
    make_simulate_node,
)
from agentwm.graph.nodes import ProposerError, SimulationError, is_retryable
from agentwm.graph.planning import DEFAULT_RETRY
from agentwm.text.client import LLMClient

VALUES = {"open the door": 1.0, "wait": 0.1, "shout": -1.0}
FAST_RETRY = RetryPolicy(initial_interval=0.0, max_interval=0.0, jitter=False, max_attempts=3, retry_on=is_retryable)


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything here runs offline: any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def text_graph(wm: ScriptedTextWorldModel, chat: FixedLatencyChatModel | None = None, **kw):
    kw.setdefault("retry_policy", FAST_RETRY)
    return build_planning_graph(world_model=wm, proposer=chat, **kw)


# ----------------------------------------------------------------------------------------------
# End to end with a scripted chat model


def test_end_to_end_scripted_chat_model_streams_and_chooses_best():
    wm = ScriptedTextWorldModel(VALUES)
    chat = FixedLatencyChatModel(responses=['Sure! ```json\n["wait", "open the door", "shout", "wait"]\n```'])
    graph = text_graph(wm, chat).compile()
    events = list(
        graph.stream(
            {"observation": "a closed door", "goal": "leave the room"},
            context={"horizon": 2, "gamma": 0.5, "candidates": 3},
            stream_mode=["custom", "updates"],
        )
    )
    custom = [chunk for mode, chunk in events if mode == "custom"]
    assert [c["type"] for c in custom] == ["proposal", "simulation", "simulation", "simulation", "choice"]
    assert custom[0]["candidates"] == ["wait", "open the door", "shout"]  # de-duplicated, capped at 3
    assert sorted(c["candidate"] for c in custom[1:4]) == ["open the door", "shout", "wait"]
    assert custom[-1]["candidate"] == "open the door"
    nodes = [next(iter(chunk)) for mode, chunk in events if mode == "updates"]
    assert nodes == ["propose", "simulate", "simulate", "simulate", "score", "choose"]

    ctx = {"horizon": 2, "gamma": 0.5, "candidates": 3}
    out = graph.invoke({"observation": "a closed door", "goal": "leave the room"}, context=ctx)
    assert out["chosen"] == "open the door"
    assert out["choice"]["reason"] == "best_score"
    # the same return math as Rollout.returns: r * (1 + gamma) for a constant reward
    assert [r["candidate"] for r in out["ranking"]] == ["open the door", "wait", "shout"]
    assert out["ranking"][0]["score"] == pytest.approx(1.5)
    assert out["ranking"][2]["score"] == pytest.approx(-1.5)
    assert out["simulations"][0]["steps"] and out["simulations"][0]["llm_calls"] == 2
    assert out["proposal"]["source"] == "llm"
    assert out["fallbacks"] == []
    # second invoke: the proposer's answer comes from the LLMClient cache (no new call); 3 x 2 imagined calls
    assert out["llm_calls"] == 0 + 6
    assert chat.calls == 1


def test_given_candidates_skip_the_proposer_and_async_graph_matches_sync():
    wm = ScriptedTextWorldModel(VALUES)
    chat = FixedLatencyChatModel(responses=['["shout"]'])
    builder = text_graph(wm, chat)
    out = asyncio.run(
        builder.compile().ainvoke({"observation": "x", "candidates": ["shout", "wait"]}, context={"horizon": 1})
    )
    assert out["chosen"] == "wait" and out["proposal"]["source"] == "state"
    assert chat.calls == 0


def test_the_proposer_runs_again_for_the_next_decision_in_a_thread(tmp_path):
    wm = ScriptedTextWorldModel(VALUES)
    chat = FixedLatencyChatModel(responses=['["wait", "shout"]', '["open the door"]'])
    with sqlite3.connect(tmp_path / "t.db", check_same_thread=False) as conn:
        graph = text_graph(wm, chat).compile(checkpointer=SqliteSaver(conn))
        config = {"configurable": {"thread_id": "loop"}}
        first = graph.invoke({"observation": "a", "goal": "g"}, config, context={"horizon": 1})
        second = graph.invoke({"observation": "b", "goal": "g"}, config, context={"horizon": 1})
    assert first["chosen"] == "wait"
    assert second["candidates"] == ["open the door"] and second["chosen"] == "open the door"
    assert len(second["simulations"]) == 1  # the previous decision's simulations were reset


# ----------------------------------------------------------------------------------------------
# Known optima with latent (tensor) world models


def chain_sequences(model: Chain) -> dict[str, torch.Tensor]:
    oh = model.action_spec.one_hot
    return {
        "jump": oh(torch.tensor([JUMP] * 4)),
        "walk left": oh(torch.tensor([LEFT] * 4)),
        "walk right then stay": oh(torch.tensor([RIGHT, RIGHT, STAY, STAY])),
        "stay": oh(torch.tensor([STAY] * 4)),
    }


def test_latent_graph_chooses_the_known_best_sequence_with_the_known_return():
    model = Chain()
    graph = build_planning_graph(
        world_model=model, actions=chain_sequences(model), observe=lambda pos: model.state([int(pos)])
    ).compile()
    out = graph.invoke({"observation": 1}, context={"horizon": 4, "gamma": 0.9})
    g = 0.9
    assert out["chosen"] == "walk right then stay"
    scores = {r["candidate"]: r["score"] for r in out["ranking"]}
    assert scores["walk right then stay"] == pytest.approx(g + g**2 + g**3, rel=1e-5)
    assert scores["jump"] == pytest.approx(0.9, rel=1e-5)  # the episode ends: later rewards do not count
    assert out["proposal"]["source"] == "actions" and out["llm_calls"] == 0
    assert model.calls == 1  # all candidates in one batched imagine call
    # from the goal, staying is best
    assert graph.invoke({"observation": 3}, context={"horizon": 4, "gamma": 0.9})["chosen"] == "stay"


def test_score_mode_from_the_runtime_context_changes_the_choice():
    model = RiskyBandit(noise=0.0, slope=20.0)  # reward a per step; disagreement above a = 0.5
    actions = {"bold": torch.tensor([1.0]), "careful": torch.tensor([0.5]), "timid": torch.tensor([0.0])}
    graph = build_planning_graph(
        world_model=model, actions=actions, followup="repeat", observe=lambda obs: {"t": torch.tensor(obs)}
    ).compile()
    ctx = {"horizon": 3, "samples": 4}
    assert graph.invoke({"observation": [0.0]}, context=ctx)["chosen"] == "bold"
    cautious = graph.invoke({"observation": [0.0]}, context={**ctx, "score": "disagreement_penalized", "kappa": 1.0})
    assert cautious["chosen"] == "careful"


def test_unknown_candidates_fail_alone_and_are_recorded():
    model = Chain()
    graph = build_planning_graph(
        world_model=model, actions=chain_sequences(model), observe=lambda pos: model.state([int(pos)])
    ).compile()
    out = graph.invoke({"observation": 1, "candidates": ["fly", "stay", "walk right then stay"]}, context={"horizon": 4})
    assert out["chosen"] == "walk right then stay"
    failed = [s for s in out["simulations"] if s["error"]]
    assert [s["candidate"] for s in failed] == ["fly"] and "unknown action" in failed[0]["error"]
    assert any(f.startswith("simulate[0]") for f in out["fallbacks"])


# ----------------------------------------------------------------------------------------------
# Checkpointing: round trip and resume


def test_state_round_trips_through_sqlite_and_an_interrupted_run_resumes(tmp_path):
    wm = ScriptedTextWorldModel(VALUES)
    path = tmp_path / "checkpoints.db"
    config = {"configurable": {"thread_id": "t1"}}
    with sqlite3.connect(path, check_same_thread=False) as conn:
        graph = text_graph(wm).compile(checkpointer=SqliteSaver(conn), interrupt_before=["choose"])
        paused = graph.invoke({"observation": "door", "candidates": list(VALUES)}, config, context={"horizon": 2})
        assert paused["chosen"] is None and paused["choice"] is None
        assert wm.calls == 3
    # a new process: fresh connection, fresh graph object, same thread id
    with sqlite3.connect(path, check_same_thread=False) as conn:
        graph = text_graph(wm).compile(checkpointer=SqliteSaver(conn), interrupt_before=["choose"])
        snapshot = graph.get_state(config)
        assert snapshot.next == ("choose",)
        assert [r["candidate"] for r in snapshot.values["ranking"]] == ["open the door", "wait", "shout"]
        done = graph.invoke(None, config, context={"horizon": 2})
    assert done["chosen"] == "open the door"
    assert wm.calls == 3  # nothing was simulated twice
    assert done["simulations"] == snapshot.values["simulations"]


def test_a_crashed_run_resumes_and_re_simulates_only_the_failed_candidate(tmp_path):
    wm = ScriptedTextWorldModel(VALUES, fail_on=["shout"], fail_times=1)
    config = {"configurable": {"thread_id": "crash"}}
    with sqlite3.connect(tmp_path / "c.db", check_same_thread=False) as conn:
        graph = text_graph(wm, on_failure="raise", retry_policy=None).compile(checkpointer=SqliteSaver(conn))
        with pytest.raises(SimulationError):
            graph.invoke({"observation": "door", "candidates": list(VALUES)}, config, context={"horizon": 1})
        calls_before = wm.calls
        out = graph.invoke(None, config, context={"horizon": 1})
    assert out["chosen"] == "open the door"
    assert wm.calls == calls_before + 1  # the two successful simulations were kept as pending writes
    assert sorted(s["candidate"] for s in out["simulations"]) == sorted(VALUES)


# ----------------------------------------------------------------------------------------------
# Failures: retries, fallbacks, budget


def test_llm_errors_are_retried_by_the_retry_policy():
    wm = ScriptedTextWorldModel(VALUES)
    chat = FixedLatencyChatModel(responses=['["wait", "open the door"]'], errors=2)
    out = text_graph(wm, chat).compile().invoke({"observation": "x"}, context={"horizon": 1})
    assert out["proposal"]["source"] == "llm" and out["chosen"] == "open the door"
    assert chat.calls == 3 and out["fallbacks"] == []


def test_a_proposer_that_keeps_failing_falls_back_to_the_menu_and_is_recorded():
    wm = ScriptedTextWorldModel(VALUES)
    chat = FixedLatencyChatModel(responses=["never reached"], errors=100)
    graph = text_graph(wm, chat, actions=["wait", "shout"]).compile()
    out = graph.invoke({"observation": "x"}, context={"horizon": 1})
    assert out["candidates"] == ["wait", "shout"] and out["chosen"] == "wait"
    assert out["proposal"]["source"] == "fallback" and out["proposal"]["llm_calls"] == 3
    assert len(out["fallbacks"]) == 1 and "LLM call failed" in out["fallbacks"][0]
    assert chat.calls == 3


def test_on_failure_raise_surfaces_the_error_after_retries():
    wm = ScriptedTextWorldModel(VALUES)
    chat = FixedLatencyChatModel(responses=["x"], errors=100)
    graph = text_graph(wm, chat, on_failure="raise").compile()
    with pytest.raises(ProposerError):
        graph.invoke({"observation": "x"})


def test_failed_simulations_are_never_chosen_and_all_failed_falls_back_to_the_first():
    wm = ScriptedTextWorldModel(VALUES, fail_on=["open the door"])
    graph = text_graph(wm).compile()
    out = graph.invoke({"observation": "x", "candidates": ["open the door", "shout", "wait"]}, context={"horizon": 1})
    assert out["chosen"] == "wait"
    assert [f.split(":")[0] for f in out["fallbacks"]] == ["simulate[0]"]
    everything_fails = ScriptedTextWorldModel(VALUES, fail_on=list(VALUES))
    out = text_graph(everything_fails).compile().invoke({"observation": "x", "candidates": ["shout", "wait"]})
    assert out["chosen"] == "shout" and out["choice"]["reason"] == "fallback_first"
    assert out["fallbacks"][-1].startswith("choose:")
    # retryable failures were retried: 3 attempts per candidate
    assert everything_fails.calls == 2 * 3


def test_nothing_to_choose_from_gives_no_choice_instead_of_an_error():
    out = text_graph(ScriptedTextWorldModel(VALUES)).compile().invoke({"observation": "x"})
    assert out["chosen"] is None and out["choice"]["reason"] == "no_candidates"
    assert out["fallbacks"] == ["propose: no candidates given and no proposer", "choose: no candidates to choose from"]


def test_llm_budget_limits_the_simulated_candidates():
    wm = ScriptedTextWorldModel(VALUES)
    chat = FixedLatencyChatModel(responses=['["shout", "wait", "open the door"]'])
    out = text_graph(wm, chat).compile().invoke({"observation": "x"}, context={"horizon": 2, "llm_budget": 5})
    # 1 proposal call + 2 candidates x 2 steps; the third does not fit
    assert out["llm_calls"] == 5 and len(out["simulations"]) == 2 and out["chosen"] == "wait"
    assert any("not simulated" in f for f in out["fallbacks"])
    zero = text_graph(ScriptedTextWorldModel(VALUES), chat, actions=["wait"]).compile()
    out = zero.invoke({"observation": "x"}, context={"llm_budget": 0})
    assert out["llm_calls"] == 0 and out["chosen"] == "wait" and out["proposal"]["source"] == "fallback"


# ----------------------------------------------------------------------------------------------
# Concurrency (structural: how many simulations were in flight at once, not wall time)


def test_one_compiled_graph_simulates_candidates_concurrently_for_invoke_and_ainvoke():
    wm = ScriptedTextWorldModel(VALUES, latency=0.3)
    graph = text_graph(wm).compile()
    inputs = {"observation": "x", "candidates": ["open the door", "wait", "shout", "sing"]}
    for run in (lambda: graph.invoke(inputs), lambda: asyncio.run(graph.ainvoke(inputs))):
        wm.max_concurrent = 0
        assert run()["chosen"] == "open the door"
        assert wm.max_concurrent == 4


def test_the_asynchronous_flag_is_deprecated_but_still_works():
    wm = ScriptedTextWorldModel(VALUES)
    with pytest.warns(DeprecationWarning, match="asynchronous"):
        node = make_simulate_node(wm, asynchronous=True)
    update = asyncio.run(node({"observation": "x", "candidates": ["wait"]}, None))  # a coroutine, as before
    assert update["simulations"][0]["candidate"] == "wait"
    with pytest.warns(DeprecationWarning, match="asynchronous"):
        text_graph(wm, asynchronous=True)


# ----------------------------------------------------------------------------------------------
# Validation and standalone nodes


def test_bad_settings_and_arguments_fail_with_clear_errors():
    wm = ScriptedTextWorldModel(VALUES)
    graph = text_graph(wm).compile()
    with pytest.raises(ValidationError, match="horizon"):
        graph.invoke({"observation": "x", "candidates": ["wait"]}, context={"horizon": 0})
    with pytest.raises(ValidationError, match="score"):
        PlanningContext(score="best")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs `actions`"):
        build_planning_graph(world_model=Chain())
    with pytest.raises(ValueError, match="on_failure"):
        build_planning_graph(world_model=wm, on_failure="ignore")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="proposer"):
        build_planning_graph(world_model=wm, proposer="gpt")
    with pytest.raises(TypeError, match="world_model"):
        build_planning_graph(world_model=object())

    from typing_extensions import TypedDict

    class Bare(TypedDict):
        observation: str

    with pytest.raises(ValueError, match="PlanningState"):
        build_planning_graph(world_model=wm, state_schema=Bare)
    with pytest.raises(TypeError, match="state\\['candidates'\\]"):
        graph.invoke({"observation": "x", "candidates": "wait"})


def test_extended_state_schema_and_retry_classification():
    class AgentState(PlanningState, total=False):
        turn: int

    out = text_graph(ScriptedTextWorldModel(VALUES), state_schema=AgentState).compile().invoke(
        {"observation": "x", "candidates": ["wait"], "turn": 3}
    )
    assert out["turn"] == 3 and out["chosen"] == "wait"
    assert DEFAULT_RETRY.retry_on is is_retryable
    try:
        raise ConnectionError("down")
    except ConnectionError as cause:
        assert is_retryable(ProposerError("x").with_traceback(None).__class__("x")) is True
        err = SimulationError("x")
        err.__cause__ = cause
        assert is_retryable(err)
    bad = SimulationError("x")
    bad.__cause__ = ValueError("bad observation")
    assert not is_retryable(bad) and not is_retryable(ConnectionError())


def test_nodes_work_standalone_without_a_graph():
    chat = FixedLatencyChatModel(responses=["I cannot help with that."])
    propose = make_propose_node(proposer=LLMClient(chat, retries=0), fallback_candidates=["wait"])
    update = propose({"observation": "x"}, None)
    assert update["candidates"] == ["wait"] and update["proposal"]["source"] == "fallback"
    simulate = make_simulate_node(ScriptedTextWorldModel(VALUES))
    sims = simulate({"observation": "x", "candidates": ["wait", "shout"]}, None)["simulations"]
    assert [s["index"] for s in sims] == [0, 1]
    scored = make_score_node()({"candidates": ["wait", "shout"], "simulations": sims}, None)
    assert [r["candidate"] for r in scored["ranking"]] == ["wait", "shout"]
    assert make_choose_node()({"candidates": ["wait", "shout"], **scored}, None)["chosen"] == "wait"


# ----------------------------------------------------------------------------------------------
# The single-node planner


@pytest.mark.parametrize("asynchronous", [False, True])
def test_plan_node_makes_the_same_decision_in_one_node(asynchronous):
    wm = ScriptedTextWorldModel(VALUES, latency=0.2, fail_on=["shout"])
    chat = FixedLatencyChatModel(responses=['["shout", "wait", "open the door", "sing"]'])
    node = make_plan_node(wm, proposer=chat)
    state = {"observation": "x", "goal": "leave"}
    ctx = type("Runtime", (), {"context": {"horizon": 2, "gamma": 0.5}})()
    update = asyncio.run(node.acall(state, ctx)) if asynchronous else node(state, ctx)
    assert update["chosen"] == "open the door" and update["choice"]["reason"] == "best_score"
    assert update["ranking"][0]["score"] == pytest.approx(1.5)
    # four simulations started; the three that did not fail at once were in flight together
    assert wm.calls == 4 and wm.max_concurrent == 3
    assert [f.split(":")[0] for f in update["fallbacks"].value] == ["simulate[0]"]
    assert update["llm_calls"] == 1 + 3 * 2

    class AgentState(PlanningState, total=False):
        turn: int

    builder = StateGraph(AgentState)
    builder.add_node("plan", make_plan_node(Chain(), actions=chain_sequences(Chain()), observe=lambda p: Chain().state([p])))
    builder.add_edge(START, "plan")
    graph = builder.compile()
    out = graph.invoke({"observation": 1}, context={"horizon": 4, "gamma": 0.9})
    assert out["chosen"] == "walk right then stay" and len(out["simulations"]) == 4
    assert graph.invoke({"observation": 3}, context={"horizon": 4})["chosen"] == "stay"


def test_settings_resolve_from_context_objects_and_subclasses():
    from agentwm.graph.context import resolve_settings

    default = PlanningContext(horizon=7)
    assert resolve_settings(None, default) is default
    assert resolve_settings({"user_id": "u1"}, default) is default  # a user's own context keys are ignored
    assert resolve_settings({"samples": 4, "user_id": "u1"}, default).model_dump() == {
        **default.model_dump(),
        "samples": 4,
    }
    with pytest.raises(ValidationError, match="gamma"):
        resolve_settings({"gamma": 1.5}, default)

    class DialogueContext(PlanningContext):
        turns: int = 2

    wm = ScriptedTextWorldModel(VALUES)
    graph = text_graph(wm, context_schema=DialogueContext).compile()
    out = graph.invoke({"observation": "x", "candidates": ["wait", "open the door"]}, context={"turns": 3, "horizon": 1})
    assert out["chosen"] == "open the door"
    with pytest.raises(TypeError, match="context_schema"):
        text_graph(wm, context_schema=dict)


def test_the_public_api_is_narrow_and_old_names_still_import_with_a_warning():
    import agentwm.graph as graph_api
    from agentwm.graph.nodes import parse_candidates

    assert len(graph_api.__all__) <= 15
    assert all(hasattr(graph_api, name) for name in graph_api.__all__)
    with pytest.warns(DeprecationWarning, match="agentwm.graph.nodes"):
        assert graph_api.parse_candidates is parse_candidates
    with pytest.raises(AttributeError):
        _ = graph_api.no_such_name
