"""Every graph builder and both served graphs draw (``get_graph().draw_mermaid()``), as LangGraph
Studio's graph view needs; the edges drawn are the ones the graph runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from graph_fakes import FixedLatencyChatModel, KeywordScorer, ScriptedTextWorldModel
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from agentwm.graph import build_dialogue_graph, build_planning_graph
from agentwm.graph.hitl import add_review_before_choose
from agentwm.worldmodels import ActionSpec, EnsembleDynamics

ROOT = Path(__file__).resolve().parents[1]
PLANNING_EDGES = ("__start__ --> propose", "propose -.-> simulate", "propose -.-> score", "simulate -.-> score",
                  "score --> choose", "choose --> __end__")


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _latent() -> Any:
    model = EnsembleDynamics(obs_dim=4, action_spec=ActionSpec("discrete", 2))
    return build_planning_graph(world_model=model, actions={"left": torch.tensor([1.0, 0.0]), "right": torch.tensor([0.0, 1.0])})


def _text() -> Any:
    return build_planning_graph(world_model=ScriptedTextWorldModel({"a": 1.0}), proposer=FixedLatencyChatModel(responses=["[]"]))


@pytest.mark.parametrize("builder", [_latent, _text], ids=["latent", "text"])
def test_planning_graph_draws(builder: Any):
    mermaid = builder().compile().get_graph().draw_mermaid()
    for edge in PLANNING_EDGES:
        assert edge in mermaid, (edge, mermaid)


def test_review_and_dialogue_graphs_draw():
    review = add_review_before_choose(_text()).compile().get_graph().draw_mermaid()
    assert "score --> review" in review and "review -.-> choose" in review and "review -.-> __end__" in review
    chat = GenericFakeChatModel(messages=iter([AIMessage("1. hi")]))
    dialogue = build_dialogue_graph(chat_model=chat).compile().get_graph().draw_mermaid()  # world model loads on first use
    for edge in ("__start__ --> propose", "propose --> reply", "reply --> __end__"):
        assert edge in dialogue


def test_served_planning_graph_draws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    (tmp_path / "rules.json").write_text('{"rules": [], "default": "[]"}')
    monkeypatch.setenv("AGENTWM_CHAT_MODEL", f"scripted:{tmp_path / 'rules.json'}")
    monkeypatch.setenv("AGENTWM_SERVE_WARMUP", "0")
    planning = _load(ROOT / "graphs" / "planning.py", "_draw_served_planning")
    chat = FixedLatencyChatModel(responses=["[]"])
    for review in (False, True):
        mermaid = planning.build(chat, scorer=KeywordScorer("x"), review=review).compile().get_graph().draw_mermaid()
        assert "propose -.-> simulate" in mermaid and ("review" in mermaid) == review
