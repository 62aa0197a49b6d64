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

from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from agentwm.graph import DialogueContext, build_dialogue_graph
from agentwm.graph.serve import served_graph, shared_chat_model
from agentwm.worldmodels.dialogue import DialogueWorldModel

__all__ = ["DEFAULT_SETTINGS", "build", "graph_from_env", "make_graph"]

DEFAULT_SETTINGS = DialogueContext(horizon=3, gamma=0.9, candidates=4, samples=1)


def build(chat_model: Any = None, *, checkpoint: str | None = None) -> StateGraph[Any, Any, Any, Any]:
    """The dialogue graph (uncompiled) over the shipped (or given) checkpoint."""
    model = DialogueWorldModel.load(checkpoint)
    return build_dialogue_graph(world_model=model, chat_model=chat_model, settings=DEFAULT_SETTINGS)


def _compiled() -> Pregel[Any, Any, Any, Any]:
    """The compiled graph over the process's shared chat model (blocks while the world model loads:
    built in a worker thread)."""
    return build(shared_chat_model()).compile(name="dialogue")


graph_from_env, make_graph = served_graph(_compiled)
