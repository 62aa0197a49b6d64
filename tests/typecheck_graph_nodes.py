"""Type-checked, not run by pytest: our node factories must slot into a user's own ``StateGraph``
under ``mypy --strict``, as LangGraph users write it (``.ci/run`` runs mypy on this file).

Each ``add_node`` below failed with "No overload variant of add_node" while the nodes were typed as
``Callable`` aliases: LangGraph's node protocol passes ``runtime`` by keyword.
"""

from __future__ import annotations

from typing import Any

import torch
from langgraph.graph import END, START, StateGraph

from agentwm.graph import (
    DialogueState,
    PlanningState,
    make_choose_node,
    make_dialogue_node,
    make_plan_node,
    make_propose_node,
    make_score_node,
    make_simulate_node,
)
from agentwm.worldmodels import ActionSpec, EnsembleDynamics


def user_graphs() -> list[Any]:
    model = EnsembleDynamics(obs_dim=4, action_spec=ActionSpec("discrete", 2))
    actions = {"left": torch.tensor([1.0, 0.0]), "right": torch.tensor([0.0, 1.0])}

    one = StateGraph(PlanningState)
    one.add_node("plan", make_plan_node(model, actions=actions))
    one.add_node("aplan", make_plan_node(model, actions=actions))
    one.add_edge(START, "plan")
    one.add_edge("plan", END)

    steps = StateGraph(PlanningState)
    steps.add_node("propose", make_propose_node(actions=["left", "right"]))
    steps.add_node("simulate", make_simulate_node(model, actions=actions))
    steps.add_node("score", make_score_node())
    steps.add_node("choose", make_choose_node())
    steps.add_edge(START, "propose")

    talk = StateGraph(DialogueState)
    talk.add_node("reply", make_dialogue_node())
    talk.add_edge(START, "reply")

    # Outside a graph a node is called like a function; ``runtime`` may be None there.
    chosen: str | None = make_choose_node()({"candidates": []}, None)["chosen"]
    pending = make_plan_node(model, actions=actions).acall({"observation": [0.0] * 4}, None)  # the async body
    return [one.compile(), steps.compile(), talk.compile(), chosen, pending]
