"""Deployable planning graph for the LangGraph CLI / server (``langgraph dev`` here or at the root).

An LLM proposes candidate actions for the situation in ``observation``; an ``LLMWorldModel``
(the same chat model, asked "if I do X, what happens?") imagines each candidate for ``horizon``
steps, concurrently; MiniLM relevance of each imagined state to ``goal`` is the reward; the
candidate with the best discounted imagined return is chosen. Input and output keys are those of
``agentwm.graph.PlanningState``; per-run settings go in the run's ``context``
(``agentwm.graph.PlanningContext``: horizon, gamma, candidates, samples, llm_budget, score), whose
defaults depend on the chat model: :data:`LOCAL_SETTINGS` for the local SmolLM2 (one imagined step,
short answers: a decision in a few seconds on CPU), :data:`DEFAULT_SETTINGS` for API models.

The chat model comes from ``AGENTWM_CHAT_MODEL`` (``agentwm.graph.serve``: ``smollm2`` by default,
``provider:model``, or ``scripted:rules.json``). Importing this file checks that its packages are
installed (a clear error at server start) and starts loading it in a worker thread, shared with
the dialogue graph; ``make_graph`` builds the graph (MiniLM included) in a worker thread too, so
the server's event loop never blocks. Set ``AGENTWM_INTERRUPT_BEFORE_CHOOSE=1`` to pause every run
before ``choose`` with the ranking in the state (resume with ``Command(resume=...)``, see
``agentwm.graph.hitl``).
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from pydantic import Field

from agentwm.graph import PlanningContext, build_planning_graph
from agentwm.graph.hitl import add_review_before_choose
from agentwm.graph.serve import DeferredChatModel, chat_model_from_env, served_graph, shared_chat_model
from agentwm.text.client import LLMClient
from agentwm.text.embeddings import TextEmbedder
from agentwm.text.scorers import EmbeddingRelevance
from agentwm.worldmodels.llm_outcome import LLMWorldModel

__all__ = [
    "DEFAULT_SETTINGS", "LOCAL_MAX_NEW_TOKENS", "LOCAL_SETTINGS", "LocalServedContext", "ServedContext",
    "build", "chat_model_from_env", "graph_from_env", "make_graph",
]


class ServedContext(PlanningContext):
    """The served graph's run context with its defaults as field defaults: the LangGraph server
    builds a run's context from the context schema (an empty ``context`` gives the schema's
    defaults), so the builder's ``settings=`` alone would not reach served runs."""

    horizon: int = Field(default=2, ge=1, le=1000, description="imagined steps per candidate")
    gamma: float = Field(default=0.9, ge=0.0, le=1.0, description="discount of the imagined return")
    candidates: int = Field(default=3, ge=1, le=64, description="candidates to ask the proposer for")
    llm_budget: int | None = Field(default=24, ge=0, description="max LLM calls per decision; None = no limit")


class LocalServedContext(ServedContext):
    """Defaults with the local model (SmolLM2 on CPU): one proposal call and one imagined step per
    candidate, the candidates' outcomes generated as one batch, so a decision is two generations
    (a few seconds). A run's ``context`` can still ask for more."""

    horizon: int = Field(default=1, ge=1, le=1000, description="imagined steps per candidate")
    llm_budget: int | None = Field(default=8, ge=0, description="max LLM calls per decision; None = no limit")


DEFAULT_SETTINGS = ServedContext()
"""Defaults of the deployed graph with an API chat model: short LLM rollouts and a cost cap per decision."""

LOCAL_SETTINGS = LocalServedContext()
"""Defaults of the deployed graph with the local model (:class:`DeferredChatModel`)."""

LOCAL_MAX_NEW_TOKENS = 24
"""Tokens per local answer: a proposal of three short actions or an ``Observation: ...`` line fits;
the model's default (64) mostly adds rambling, and every token of a batch costs a forward pass."""


def build(chat_model: BaseChatModel, *, scorer: Any = None, review: bool = False) -> StateGraph[Any, Any, Any, Any]:
    """The planning graph (uncompiled) over ``chat_model``; ``scorer`` defaults to MiniLM relevance;
    ``review`` pauses before ``choose`` for a human (``agentwm.graph.hitl``). A local model
    (:class:`DeferredChatModel`) gets :data:`LOCAL_SETTINGS`, short answers, no follow-up
    proposals (horizon 1) and no re-asking after an unreadable answer (a fallback instead); others keep
    :data:`DEFAULT_SETTINGS`."""
    local = isinstance(chat_model, DeferredChatModel)
    if local:
        chat_model = chat_model.with_options(max_new_tokens=LOCAL_MAX_NEW_TOKENS)
    world_model = LLMWorldModel(
        LLMClient(chat_model, retries=0 if local else 2), scorer=scorer, goal="make progress on the task"
    )
    builder = build_planning_graph(
        world_model=world_model,
        proposer=chat_model,
        fallback_candidates=["ask the user for clarification"],
        settings=LOCAL_SETTINGS if local else DEFAULT_SETTINGS,
        context_schema=LocalServedContext if local else ServedContext,
    )
    return add_review_before_choose(builder) if review else builder


def _compiled() -> Pregel[Any, Any, Any, Any]:
    """The compiled graph over the process's shared chat model (blocks while MiniLM loads: built in a
    worker thread); the server attaches its own checkpointer."""
    chat = shared_chat_model()
    if chat is None:
        raise ValueError("the planning graph needs a chat model: AGENTWM_CHAT_MODEL=none is not enough")
    review = os.environ.get("AGENTWM_INTERRUPT_BEFORE_CHOOSE", "") not in ("", "0")
    scorer = EmbeddingRelevance(TextEmbedder())  # MiniLM loads here, not in a node on the event loop
    return build(chat, scorer=scorer, review=review).compile(name="planning")


graph_from_env, make_graph = served_graph(_compiled)
