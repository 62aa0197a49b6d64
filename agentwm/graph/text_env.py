"""Plug any text environment into a planning graph: one input per step, the chosen command played.

A :class:`~agentwm.envs.text.TextEnv` hands out a ``TextStep`` (observation, objective, admissible
commands); the planning graph takes ``{"observation", "goal", "admissible", "history"}`` and
returns ``chosen``. :func:`step_input` is that mapping, :class:`GraphTextAgent` a
:class:`~agentwm.agents.textworld.agents.TextAgent` over a compiled graph (so the TextWorld
evaluation plays it like any agent), and :func:`play_text_env` plays one episode::

    from agentwm.graph import build_planning_graph
    from agentwm.graph.text_env import play_text_env
    graph = build_planning_graph(world_model=my_text_world_model).compile()
    episode = play_text_env(graph, my_env, context={"horizon": 3})
    episode.won, episode.commands

Every step gives the graph the environment's menu as ``admissible`` (candidates are the menu, or
the proposer's picks matched to it tolerantly), and the episode's ``history`` so far, which the
text world model folds into its start state. The graph's ``fallbacks`` of every step are kept
(ties and ignored actions included), so a run reports how often the choice was arbitrary.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentwm.envs.text import TextEnv, TextStep, match_action


def step_input(step: TextStep, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The planning graph's input for one environment step."""
    return {
        "observation": step.observation,
        "goal": step.objective,
        "admissible": list(step.admissible),
        "history": list(history or []),
    }


@dataclass
class Episode:
    """One episode played by a graph: outcome, commands, cost and every fallback note."""

    won: bool = False
    steps: int = 0
    commands: list[str] = field(default_factory=list)
    llm_calls: int = 0
    seconds: float = 0.0
    fallbacks: list[list[str]] = field(default_factory=list)

    @property
    def ties(self) -> int:
        """Decisions whose choice fell to candidate order (a tied best score or an ignored action)."""
        return sum(any(n.startswith("choose: best score") or "ignored the action" in n for n in notes)
                   for notes in self.fallbacks)


class GraphTextAgent:
    """A compiled planning graph as a text agent: ``reset(first_step)``, then ``act(step) -> command``.

    Args:
        graph: a compiled planning graph (``build_planning_graph(...).compile()``).
        context: per-run planning settings (``{"horizon": 3, "gamma": 0.85}``).
        config: the LangGraph config (a checkpointer's ``{"configurable": {"thread_id": ...}}``).

    Raises:
        RuntimeError: the graph chose nothing (no candidates) or chose a command off the menu.
    """

    def __init__(self, graph: Any, *, context: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None) -> None:
        if not callable(getattr(graph, "invoke", None)):
            raise TypeError(f"graph must be a compiled graph (call .compile() on the builder), got {type(graph).__name__}")
        self.graph, self.context, self.config = graph, dict(context or {}), dict(config or {})
        self.history: list[dict[str, str]] = []
        self.llm_calls = 0
        self.fallbacks: list[list[str]] = []

    def reset(self, first: TextStep) -> None:
        self.history = []

    def act(self, step: TextStep) -> str:
        out = self.graph.invoke(step_input(step, self.history), self.config or None, context=self.context)
        chosen = out.get("chosen")
        if chosen is None:
            raise RuntimeError(f"the graph chose nothing: {out.get('fallbacks')}")
        command = match_action(str(chosen), step.admissible)
        self.llm_calls += int(out.get("llm_calls") or 0)
        self.fallbacks.append(list(out.get("fallbacks") or []))
        self.history = list(out.get("history") or [*self.history, {"observation": step.observation, "action": command}])
        return command


def play_text_env(
    graph: Any,
    env: TextEnv,
    *,
    context: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    max_steps: int = 50,
) -> Episode:
    """Play one episode of ``env`` with ``graph`` choosing every command (at most ``max_steps``)."""
    agent = GraphTextAgent(graph, context=context, config=config)
    episode = Episode()
    step = env.reset()
    agent.reset(step)
    while not step.done and episode.steps < max_steps:
        start = time.perf_counter()
        command = agent.act(step)
        episode.seconds += time.perf_counter() - start
        episode.commands.append(command)
        episode.steps += 1
        step = env.step(command)
    episode.won, episode.llm_calls, episode.fallbacks = step.won, agent.llm_calls, agent.fallbacks
    return episode
