"""Planning inside prebuilt agents: ``as_tool`` (the agent calls "plan"), the post-model hook for
``create_react_agent`` and the ``create_agent`` middleware that keep the best proposed tool call,
and the two examples that show them, all with scripted chat models."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from graph_fakes import ScriptedTextWorldModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from agentwm.graph import build_planning_graph
from agentwm.graph.tools import as_tool, describe_tool_call, make_post_model_hook, planning_middleware

ROOT = Path(__file__).resolve().parents[1]
CALLS = [
    {"name": "wait", "args": {"minutes": 5}, "id": "c1"},
    {"name": "open_door", "args": {}, "id": "c2"},
    {"name": "knock", "args": {"times": 2}, "id": "c3"},
]
VALUES = {describe_tool_call(c): v for c, v in zip(CALLS, (0.1, 1.0, 0.5))}  # type: ignore[arg-type]
RAN: list[str] = []


@tool
def wait(minutes: int) -> str:
    """Wait a while."""
    RAN.append("wait")
    return "time passes"


@tool
def open_door() -> str:
    """Open the door."""
    RAN.append("open_door")
    return "the door opens"


@tool
def knock(times: int) -> str:
    """Knock on the door."""
    RAN.append("knock")
    return "nobody answers"


class ToolCaller(GenericFakeChatModel):
    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCaller:
        return self


def _agent_llm() -> ToolCaller:
    return ToolCaller(messages=iter([AIMessage(content="", tool_calls=CALLS), AIMessage(content="done")]))


def _planner() -> Any:
    return build_planning_graph(world_model=ScriptedTextWorldModel(VALUES))


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_plan_tool_chooses_by_imagined_return_sync_and_async():
    plan = as_tool(_planner().compile(), context={"horizon": 1})
    assert plan.name == "plan" and set(plan.args) == {"candidates", "goal", "observation"}
    args = {"candidates": list(VALUES), "goal": "leave the room", "observation": "a closed door"}
    summary = json.loads(plan.invoke(args))
    assert summary["chosen"] == "open_door({})"
    assert [r["candidate"] for r in summary["ranking"]] == ["open_door({})", 'knock({"times": 2})', 'wait({"minutes": 5})']
    call = {"name": "plan", "args": args, "id": "p1", "type": "tool_call"}
    message = asyncio.run(plan.ainvoke(call))
    assert isinstance(message, ToolMessage) and message.artifact["chosen"] == "open_door({})"
    assert message.artifact["choice"]["reason"] == "best_score"


def test_plan_tool_rejects_an_empty_candidate_list():
    with pytest.raises(ValueError, match="candidates"):
        as_tool(_planner()).invoke({"candidates": [], "goal": "x"})


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_post_model_hook_lets_only_the_best_tool_call_run(asynchronous: bool):
    from langgraph.prebuilt import create_react_agent

    hook = make_post_model_hook(_planner(), goal="leave the room", context={"horizon": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        agent = create_react_agent(_agent_llm(), [wait, open_door, knock], post_model_hook=hook, version="v2")
    RAN.clear()
    inp = {"messages": [HumanMessage("a closed door")]}
    out = asyncio.run(agent.ainvoke(inp)) if asynchronous else agent.invoke(inp)
    assert RAN == ["open_door"]
    pruned = next(m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert [c["id"] for c in pruned.tool_calls] == ["c2"]
    assert pruned.additional_kwargs["agentwm_plan"]["chosen"] == "open_door({})"
    assert out["messages"][-1].content == "done"


def test_hook_keeps_the_k_best_and_ignores_single_calls():
    hook = make_post_model_hook(_planner(), goal=lambda state: "leave the room", keep=2)
    kept = hook.invoke({"messages": [HumanMessage("door"), AIMessage(content="", tool_calls=CALLS, id="m1")]})
    [message] = kept["messages"]
    assert message.id == "m1" and [c["id"] for c in message.tool_calls] == ["c2", "c3"]
    assert hook.invoke({"messages": [AIMessage(content="", tool_calls=CALLS[:1])]}) == {}
    with pytest.raises(ValueError, match="keep"):
        make_post_model_hook(_planner(), goal="x", keep=0)


def test_create_agent_middleware_lets_only_the_best_tool_call_run():
    from langchain.agents import create_agent

    agent = create_agent(_agent_llm(), [wait, open_door, knock],
                         middleware=[planning_middleware(_planner(), goal="leave the room", context={"horizon": 1})])
    RAN.clear()
    out = agent.invoke({"messages": [HumanMessage("a closed door")]})
    assert RAN == ["open_door"] and out["messages"][-1].content == "done"


@pytest.mark.parametrize("prebuilt", [False, True], ids=["create_agent", "create_react_agent"])
def test_react_example_keeps_the_tool_call_with_the_best_imagined_future(prebuilt: bool, capsys: pytest.CaptureFixture[str]):
    example = _load(ROOT / "examples" / "react_with_planning.py", f"_example_react_{prebuilt}")
    messages = example.main(prebuilt=prebuilt)
    assert [m.name for m in messages if isinstance(m, ToolMessage)] == ["issue_refund"]  # one tool ran: the best of three
    assert "chosen: issue_refund" in capsys.readouterr().out


def test_plan_as_tool_example_runs_the_tool_the_planner_chose():
    example = _load(ROOT / "examples" / "plan_as_tool.py", "_example_plan_tool")
    messages = example.main()
    tools = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.name for m in tools] == ["plan", "issue_refund"]
    assert json.loads(str(tools[0].content))["chosen"] == "refund order A-1042"
