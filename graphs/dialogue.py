"""Deployable dialogue graph for the LangGraph CLI / server (``langgraph dev`` here or at the root).

A chat model proposes candidate replies to the user's last message (or the input gives them in
``candidates``); the shipped dialogue world model (``models/dialogue-minilm``) imagines a few
exchanges after each and the reply with the best discounted imagined return (engagement, topic
relevance, predicted rating) is sent. Input and output keys are those of
``agentwm.graph.DialogueState``; per-run settings go in the run's ``context``
(``agentwm.graph.DialogueContext``: horizon, gamma, candidates, samples, reaction_weight).

The chat model comes from ``AGENTWM_CHAT_MODEL`` (``agentwm.graph.serve``); it is the same object
as the planning graph's, one per process. ``AGENTWM_CHAT_MODEL=none`` proposes nothing, so
candidates must come with the input (or the fallback replies are scored). ``make_graph`` loads the
world model in a worker thread, once per process.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from agentwm.graph import DialogueContext, build_dialogue_graph
from agentwm.graph.serve import shared_chat_model
from agentwm.worldmodels.dialogue import DialogueWorldModel

__all__ = ["DEFAULT_SETTINGS", "build", "graph_from_env", "make_graph"]

DEFAULT_SETTINGS = DialogueContext(horizon=3, gamma=0.9, candidates=4, samples=1)


def build(chat_model: Any = None, *, checkpoint: str | None = None) -> StateGraph[Any, Any, Any, Any]:
    """The dialogue graph (uncompiled) over the shipped (or given) checkpoint."""
    model = DialogueWorldModel.load(checkpoint)
    return build_dialogue_graph(world_model=model, chat_model=chat_model, settings=DEFAULT_SETTINGS)


_BUILD = threading.Lock()


@functools.lru_cache(maxsize=1)
def _graph_from_env() -> Pregel[Any, Any, Any, Any]:
    """The compiled graph over the process's shared chat model (blocks while the world model loads)."""
    return build(shared_chat_model()).compile(name="dialogue")


def graph_from_env() -> Pregel[Any, Any, Any, Any]:
    """The compiled graph, built once per process even when first asked from several threads."""
    with _BUILD:
        return _graph_from_env()


async def make_graph(config: RunnableConfig) -> Pregel[Any, Any, Any, Any]:
    """Graph factory for ``langgraph.json``: built once per process, off the event loop."""
    return await asyncio.to_thread(graph_from_env)


shared_chat_model()  # at import (the server imports graphs in a worker thread): check, start loading
# and build the graph (MiniLM, world model) in the background too, so the first run need not wait for it
if os.environ.get("AGENTWM_SERVE_WARMUP", "1") != "0":
    threading.Thread(target=graph_from_env, name="agentwm-warmup", daemon=True).start()
