"""Planning inside prebuilt agents: the planning graph as a LangChain tool the agent calls
("plan": candidates + goal -> the best by imagined return), and as a post-model hook that keeps
only the best of the tool calls an agent's LLM proposes, before any of them runs.

Both wrap a planning graph from :func:`~agentwm.graph.build_planning_graph` (compiled or not); per
call settings go in ``context`` (a :class:`~agentwm.graph.PlanningContext` dict).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolCall
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from pydantic import BaseModel, Field

__all__ = ["PlanArgs", "as_tool", "describe_tool_call", "make_post_model_hook", "planning_middleware"]

Planner = Pregel[Any, Any, Any, Any] | StateGraph[Any, Any, Any, Any]


class PlanArgs(BaseModel):
    """Arguments of the ``plan`` tool, as the agent's LLM fills them in."""

    candidates: list[str] = Field(min_length=1, description="the actions to choose between, in words")
    goal: str = Field(description="what the actions should achieve")
    observation: str = Field(default="", description="the current situation, in words")


def _compiled(planner: Planner) -> Pregel[Any, Any, Any, Any]:
    if isinstance(planner, StateGraph):
        return planner.compile()
    if not isinstance(planner, Pregel):
        raise TypeError(f"planner must be a planning graph (StateGraph or compiled), got {type(planner).__name__}")
    return planner


def _summary(out: Mapping[str, Any]) -> str:
    """What the agent's LLM reads back: the choice, the ranking, any fallback."""
    ranking = [{"candidate": r["candidate"], "imagined_return": round(float(r["score"]), 4)} for r in out.get("ranking") or []]
    return json.dumps({"chosen": out.get("chosen"), "ranking": ranking, "fallbacks": list(out.get("fallbacks") or [])})


def as_tool(
    planner: Planner,
    *,
    name: str = "plan",
    description: str = (
        "Choose the best of several candidate actions by imagining where each one leads. "
        "Give the candidates, the goal and the current situation; returns the chosen action and the ranking."
    ),
    context: Mapping[str, Any] | None = None,
) -> BaseTool:
    """The planning graph as a tool: the agent calls ``plan(candidates, goal, observation)``.

    The tool's content is a JSON summary (``chosen``, ``ranking`` with imagined returns,
    ``fallbacks``); its artifact is the planner's whole output state. Sync and async agents both
    work (``invoke``/``ainvoke``); the agent's callbacks and tracing reach the planner.

    Args:
        planner: a planning graph from :func:`~agentwm.graph.build_planning_graph`.
        name: the tool's name.
        description: what the agent's LLM is told the tool does.
        context: per-call planning settings (``{"horizon": 2, "samples": 4}``).

    Example:
        >>> tool = as_tool(build_planning_graph(world_model=llm_world_model))  # doctest: +SKIP
        >>> agent = create_react_agent(chat_model, [tool, *other_tools])  # doctest: +SKIP
    """
    graph = _compiled(planner)
    settings = dict(context or {})

    def run(candidates: list[str], goal: str, observation: str = "", config: RunnableConfig | None = None) -> tuple[str, Any]:
        out = graph.invoke({"observation": observation, "goal": goal, "candidates": candidates}, config, context=settings)
        return _summary(out), out

    async def arun(
        candidates: list[str], goal: str, observation: str = "", config: RunnableConfig | None = None
    ) -> tuple[str, Any]:
        out = await graph.ainvoke({"observation": observation, "goal": goal, "candidates": candidates}, config, context=settings)
        return _summary(out), out

    return StructuredTool.from_function(
        func=run, coroutine=arun, name=name, description=description, args_schema=PlanArgs,
        response_format="content_and_artifact",
    )


def describe_tool_call(call: ToolCall) -> str:
    """A tool call as a candidate action: ``name({"arg": value})``."""
    return f"{call['name']}({json.dumps(call['args'], sort_keys=True)})"


def _last_human(messages: list[AnyMessage]) -> str:
    return next((str(m.text) for m in reversed(messages) if isinstance(m, HumanMessage)), "")


class _ToolCallPlanner:
    """Ranks the tool calls of an agent's last message with a planning graph; keeps the best."""

    def __init__(
        self,
        planner: Planner,
        goal: str | Callable[[Mapping[str, Any]], str],
        observation: Callable[[Mapping[str, Any]], str] | None,
        context: Mapping[str, Any] | None,
        keep: int,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.graph, self.goal, self.observation = _compiled(planner), goal, observation
        self.settings, self.keep = dict(context or {}), keep

    def request(self, state: Mapping[str, Any]) -> tuple[AIMessage, dict[str, Any]] | None:
        messages = list(state.get("messages") or [])
        last = messages[-1] if messages else None
        if not isinstance(last, AIMessage) or len(last.tool_calls) < 2:
            return None
        situation = self.observation(state) if self.observation else _last_human(messages)
        target = self.goal(state) if callable(self.goal) else self.goal
        return last, {"observation": situation, "goal": target, "candidates": [describe_tool_call(c) for c in last.tool_calls]}

    def pruned(self, last: AIMessage, out: Mapping[str, Any]) -> dict[str, Any]:
        calls = list(last.tool_calls)
        order = [int(r["index"]) for r in out.get("ranking") or []]
        choice = out.get("choice") or {}
        if not order and choice.get("index") is not None:
            order = [int(choice["index"])]
        kept = [calls[i] for i in (order or list(range(len(calls))))[: self.keep]]
        extra = {**last.additional_kwargs, "agentwm_plan": json.loads(_summary(out))}
        # same id: the agent's add_messages reducer replaces the message with this copy
        return {"messages": [last.model_copy(update={"tool_calls": kept, "additional_kwargs": extra})]}

    def __call__(self, state: Mapping[str, Any], config: RunnableConfig | None = None) -> dict[str, Any]:
        req = self.request(state)
        if req is None:
            return {}
        return self.pruned(req[0], self.graph.invoke(req[1], config, context=self.settings))

    async def acall(self, state: Mapping[str, Any], config: RunnableConfig | None = None) -> dict[str, Any]:
        req = self.request(state)
        if req is None:
            return {}
        return self.pruned(req[0], await self.graph.ainvoke(req[1], config, context=self.settings))


def make_post_model_hook(
    planner: Planner,
    *,
    goal: str | Callable[[Mapping[str, Any]], str],
    observation: Callable[[Mapping[str, Any]], str] | None = None,
    context: Mapping[str, Any] | None = None,
    keep: int = 1,
) -> Runnable[Any, dict[str, Any]]:
    """A ``post_model_hook`` for ``create_react_agent`` (``version="v2"``), or a node after any
    agent's LLM, that imagines where each proposed tool call leads and keeps the ``keep`` best
    before any of them runs.

    The agent's last message is replaced (same id) by a copy holding the kept calls, best first,
    with the ranking in ``additional_kwargs["agentwm_plan"]``; with fewer than two calls it is left
    alone. Serves ``invoke`` and ``ainvoke``.

    Args:
        planner: a planning graph from :func:`~agentwm.graph.build_planning_graph` (text world model).
        goal: the goal text, or ``state -> goal``.
        observation: ``state -> situation text`` (default: the last human message).
        context: per-call planning settings.
        keep: how many of the best calls to keep (1: only the best one runs).

    Example:
        >>> hook = make_post_model_hook(planning_graph, goal="refund the customer")  # doctest: +SKIP
        >>> agent = create_react_agent(model, tools, post_model_hook=hook, version="v2")  # doctest: +SKIP
    """
    planner_ = _ToolCallPlanner(planner, goal, observation, context, keep)
    return RunnableLambda(planner_, afunc=planner_.acall, name="plan_tool_calls")


def planning_middleware(
    planner: Planner,
    *,
    goal: str | Callable[[Mapping[str, Any]], str],
    observation: Callable[[Mapping[str, Any]], str] | None = None,
    context: Mapping[str, Any] | None = None,
    keep: int = 1,
) -> Any:
    """The same check as :func:`make_post_model_hook`, as LangChain ``create_agent`` middleware
    (an ``AgentMiddleware`` whose ``after_model`` keeps the best proposed tool calls).

    Raises:
        ModuleNotFoundError: ``langchain`` is not installed (``pip install 'agentwm[serve]'``).

    Example:
        >>> from langchain.agents import create_agent  # doctest: +SKIP
        >>> agent = create_agent(model, tools, middleware=[planning_middleware(graph, goal="...")])  # doctest: +SKIP
    """
    try:
        from langchain.agents.middleware import AgentMiddleware
    except ImportError as exc:
        raise ModuleNotFoundError("planning_middleware needs langchain: pip install 'agentwm[serve]'") from exc
    planner_ = _ToolCallPlanner(planner, goal, observation, context, keep)

    class PlanToolCalls(AgentMiddleware):  # type: ignore[misc,unused-ignore]
        """Keeps the proposed tool calls with the best imagined futures (agentwm)."""

        def after_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
            return planner_(state) or None

        async def aafter_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
            return await planner_.acall(state) or None

    return PlanToolCalls()
