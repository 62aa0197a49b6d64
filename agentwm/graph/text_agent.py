"""A text agent as one LangGraph node: the strongest TextWorld player in any graph, resumable from its thread.

The memory planner (``make_agent("learned_memory", ...)``) keeps an episodic memory, a loop memory
and trackers: state that lives in Python objects, not in a graph's state. This node keeps the agent
in its closure and rebuilds it on every call from the thread's ``history`` (``reset``, then each
earlier step folded with ``observe_played``, which imagines nothing), so the graph's state stays
plain data, any checkpointer stores it, and a resumed or forked thread decides exactly as an
uninterrupted one. Each decision appends ``{"observation", "action", "admissible", "reward"}``.

    from agentwm.agents.textworld.factory import make_agent, shipped_model
    from agentwm.graph.text_agent import build_text_agent_graph
    agent = make_agent("learned_memory", prior=shipped_model("direct"), objective_weight=0.3)
    graph = build_text_agent_graph(agent).compile(checkpointer=InMemorySaver())
    graph.invoke({"observation": obs, "goal": objective, "admissible": menu}, thread)["chosen"]

``agentwm.graph.text_env.play_text_env`` plays an environment with it as with the planning graph.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

from langgraph.graph import END, START
from langgraph.runtime import Runtime
from torch import Tensor
from typing_extensions import TypedDict

from agentwm.envs.text import TextStep
from agentwm.graph._common import GraphNode, dual_node
from agentwm.graph.checkpoint import PlanningStateGraph
from agentwm.graph.state import Ranked

__all__ = ["TextAgentState", "TextStepRecord", "build_text_agent_graph", "make_text_agent_node"]


class ReplayableTextAgent(Protocol):
    """What the node needs of an agent (``MemoryPlanner`` has it): start, fold a played step, score a menu."""

    def reset(self, first: TextStep) -> None: ...

    def observe_played(self, step: TextStep, command: str) -> None: ...

    def scores(self, step: TextStep) -> tuple[list[str], Tensor]: ...


class TextStepRecord(TypedDict, total=False):
    """One earlier step in ``history``: what was seen, with which menu and reward, and what was played."""

    observation: str
    action: str
    admissible: list[str]
    reward: float


class TextAgentState(TypedDict, total=False):
    """State of a text agent graph (plain data only).

    Attributes:
        observation / goal / admissible / reward: this step of the environment (``TextStep``'s fields);
            ``reward`` is what the last command earned (0 when not given: TextWorld's only reward ends
            the game).
        history: the episode so far, oldest first; each decision appends its step.
        ranking: the menu scored, best first. chosen: the command to play (``None`` on an empty menu).
        fallbacks: what did not go to plan, in words (a tie at the top, history without menus).
    """

    observation: str
    goal: str
    admissible: list[str]
    reward: float
    history: list[TextStepRecord]
    ranking: list[Ranked]
    chosen: str | None
    fallbacks: list[str]


def _step(record: TextAgentState | TextStepRecord, goal: str, menu: list[str]) -> TextStep:
    return TextStep(str(record["observation"]), goal, tuple(menu), float(record.get("reward") or 0.0))


def make_text_agent_node(agent: ReplayableTextAgent) -> GraphNode:
    """A node that chooses this step's command with ``agent``, after replaying the thread's ``history``
    into it; it writes ``ranking``, ``chosen``, ``fallbacks`` and the extended ``history``.

    Raises:
        ValueError: the observation is not text, or a history step's action is not on its menu.
    """
    for method in ("reset", "observe_played", "scores"):
        if not callable(getattr(agent, method, None)):
            raise TypeError(f"agent must have reset, observe_played and scores (e.g. make_agent('learned_memory')); {type(agent).__name__} lacks {method}")
    lock = threading.Lock()  # one agent object: concurrent threads take turns rebuilding it

    def decide(state: TextAgentState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        observation, goal = state.get("observation"), str(state.get("goal") or "")
        if not isinstance(observation, str) or not observation:
            raise ValueError(f"observation must be non-empty text, got {type(observation).__name__}")
        menu, history = list(state.get("admissible") or []), list(state.get("history") or [])
        notes: list[str] = []
        if not menu:
            return {"ranking": [], "chosen": None, "fallbacks": ["choose: no admissible commands, nothing chosen"]}
        menus = []
        for i, past in enumerate(history):
            past_menu = list(past.get("admissible") or [])
            if not past_menu:  # a history written by another graph: the command played is all that is known
                past_menu = [str(past["action"])]
                notes.append(f"history[{i}]: no admissible menu recorded, taken as the command played")
            menus.append(past_menu)
        with lock:
            first_menu = menus[0] if history else menu
            agent.reset(_step(history[0] if history else state, goal, first_menu))
            for past, past_menu in zip(history, menus):
                agent.observe_played(_step(past, goal, past_menu), str(past["action"]))
            commands, scores = agent.scores(_step(state, goal, menu))
        order = sorted(range(len(commands)), key=lambda i: -float(scores[i]))
        ranking: list[Ranked] = [{"index": i, "candidate": commands[i], "score": float(scores[i])} for i in order]
        if len(order) > 1 and float(scores[order[0]]) == float(scores[order[1]]):
            notes.append(f"choose: best score tied between {commands[order[0]]!r} and {commands[order[1]]!r}; menu order decided")
        chosen = commands[order[0]]
        record: TextStepRecord = {"observation": observation, "action": chosen, "admissible": menu, "reward": float(state.get("reward") or 0.0)}
        return {"ranking": ranking, "chosen": chosen, "fallbacks": notes, "history": [*history, record], "admissible": []}

    async def adecide(state: TextAgentState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        return await asyncio.to_thread(decide, state, runtime)

    return dual_node(decide, adecide, name="text_agent")


def build_text_agent_graph(agent: ReplayableTextAgent) -> PlanningStateGraph:
    """An uncompiled one-node graph (``START -> choose -> END``) over ``agent``; compile it with any
    checkpointer (a ``SqliteSaver`` also serves ``ainvoke``, as for the planning graph)."""
    builder = PlanningStateGraph(TextAgentState)
    builder.add_node("choose", make_text_agent_node(agent))
    builder.add_edge(START, "choose")
    builder.add_edge("choose", END)
    return builder
