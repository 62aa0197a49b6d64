"""The deployable graph under graphs/ (what the LangGraph CLI loads) and the ReAct example."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from graph_fakes import DOOR_RULES, FixedLatencyChatModel, KeywordScorer
from langchain_core.messages import ToolMessage

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_langgraph_json_points_at_loadable_graphs():
    config = json.loads((ROOT / "graphs" / "langgraph.json").read_text())
    assert ".." in config["dependencies"]  # the agentwm package itself, relative to graphs/
    assert "planning" in config["graphs"]
    for name, target in config["graphs"].items():
        file, _, attr = target.partition(":")
        module = load(ROOT / "graphs" / file, f"_deploy_{name}")
        assert callable(getattr(module, attr)), f"{target} is not a graph factory"


def test_deployable_planning_graph_runs_with_any_chat_model(monkeypatch: pytest.MonkeyPatch):
    planning = load(ROOT / "graphs" / "planning.py", "_deploy_planning_run")
    chat = FixedLatencyChatModel(
        responses=["Observation: silence\nDone: no"],
        rules=[("Propose", '["wait", "open the door"]'), *DOOR_RULES],
    )
    graph = planning.build(chat, scorer=KeywordScorer("walk out")).compile()
    out = graph.invoke({"observation": "a closed door", "goal": "leave the room"})
    assert out["candidates"] == ["wait", "open the door"] and out["chosen"] == "open the door"
    assert out["llm_calls"] <= planning.DEFAULT_SETTINGS.llm_budget

    monkeypatch.setenv("AGENTWM_CHAT_MODEL", "no-such-model")
    planning._compiled.cache_clear()
    with pytest.raises(ValueError, match="AGENTWM_CHAT_MODEL"):
        planning.make_graph({})


def test_react_example_keeps_the_tool_call_with_the_best_imagined_future(capsys: pytest.CaptureFixture[str]):
    example = load(ROOT / "examples" / "react_with_planning.py", "_example_react")
    messages = example.main()
    tool_results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.name for m in tool_results] == ["issue_refund"]  # one tool ran: the best of three
    assert "chosen: issue_refund" in capsys.readouterr().out
