"""Deployable dialogue graph for the LangGraph CLI / server (``langgraph dev`` in this folder).

A chat model proposes candidate replies to the user's last message (or the input gives them in
``candidates``); the shipped dialogue world model (``models/dialogue-minilm``) imagines a few
exchanges after each and the reply with the best discounted imagined return (engagement, topic
relevance, predicted rating) is sent. Input and output keys are those of
``agentwm.graph.dialogue.DialogueState``; per-run settings go in the run's ``context``
(``agentwm.graph.dialogue.DialogueContext``: horizon, gamma, candidates, samples, reaction_weight).

The chat model comes from ``AGENTWM_CHAT_MODEL`` (see ``graphs/planning.py``: ``smollm2`` by
default, local and offline, or ``provider:model``); ``AGENTWM_CHAT_MODEL=none`` proposes nothing,
so candidates must come with the input (or the fallback replies are scored). Models load once per
process, on the first run.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph

from agentwm.graph.dialogue import DialogueContext, build_dialogue_graph
from agentwm.worldmodels.dialogue import DialogueWorldModel

DEFAULT_SETTINGS = DialogueContext(horizon=3, gamma=0.9, candidates=4, samples=1)


def build(chat_model: Any = None, *, checkpoint: str | None = None) -> StateGraph[Any, Any, Any, Any]:
    """The dialogue graph (uncompiled) over the shipped (or given) checkpoint."""
    model = DialogueWorldModel.load(checkpoint)
    return build_dialogue_graph(world_model=model, chat_model=chat_model, settings=DEFAULT_SETTINGS)


def _chat_model() -> Any:
    if os.environ.get("AGENTWM_CHAT_MODEL", "smollm2") == "none":
        return None
    # the same chat-model choice as the planning graph next to this file
    spec = importlib.util.spec_from_file_location("_agentwm_graphs_planning", Path(__file__).with_name("planning.py"))
    if spec is None or spec.loader is None:
        raise ImportError("graphs/planning.py not found next to graphs/dialogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.chat_model_from_env()


@functools.lru_cache(maxsize=1)
def _compiled() -> Any:
    return build(_chat_model()).compile()


def make_graph(config: RunnableConfig) -> Any:
    """Graph factory for ``langgraph.json``: the compiled graph, built once per process."""
    return _compiled()
