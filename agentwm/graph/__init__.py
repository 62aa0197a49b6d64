"""LangGraph layer: planning nodes and graphs that simulate candidate actions with a world model
and choose by discounted imagined return.

State schemas hold plain data only (any checkpointer works); models live in node closures;
per-run settings travel in the runtime context. Builders return an uncompiled ``StateGraph``;
every node serves ``invoke`` and ``ainvoke``. Everything else (simulators, retry policy, error
types, parsing helpers) is importable from its submodule: ``agentwm.graph.nodes``,
``.simulators``, ``.state``, ``.context``, ``.propose``, ``.planning``, ``.dialogue``,
``.text_env`` (play any text environment with a graph: ``play_text_env``,
``GraphTextAgent``, ``step_input``), ``.text_agent`` (the memory planner as a node, rebuilt from
the thread's history: ``build_text_agent_graph``) and ``.checkpoint`` (``serve_async``: a
``SqliteSaver`` for async graphs).

Example:
    >>> from agentwm.graph import build_planning_graph
    >>> graph = build_planning_graph(world_model=my_model, actions=my_action_map).compile()
    >>> graph.invoke({"observation": obs}, context={"horizon": 15, "samples": 32})["chosen"]
"""

from agentwm.extras import missing_extra

try:
    from agentwm.graph.context import PlanningContext
    from agentwm.graph.dialogue import (
        DialogueContext,
        DialogueState,
        build_dialogue_graph,
        make_dialogue_node,
    )
    from agentwm.graph.nodes import (
        make_choose_node,
        make_fan_out,
        make_propose_node,
        make_score_node,
        make_simulate_node,
    )
    from agentwm.graph.plan_node import make_plan_node
    from agentwm.graph.planning import build_planning_graph
    from agentwm.graph.simulators import Simulator, WorldModelLike
    from agentwm.graph.state import PlanningState
except ModuleNotFoundError as err:
    raise missing_extra(err, "graph", "agentwm.graph") from None

__all__ = [
    "DialogueContext",
    "DialogueState",
    "PlanningContext",
    "PlanningState",
    "Simulator",
    "WorldModelLike",
    "build_dialogue_graph",
    "build_planning_graph",
    "make_choose_node",
    "make_dialogue_node",
    "make_fan_out",
    "make_plan_node",
    "make_propose_node",
    "make_score_node",
    "make_simulate_node",
]

# Names that used to be exported here: still importable (with a DeprecationWarning) for one release.
_MOVED = {
    **dict.fromkeys(
        ("CHOOSE", "PROPOSE", "SCORE", "SIMULATE", "OnError", "ProposerError", "SimulationError", "default_prompt",
         "is_retryable", "parse_candidates", "rank_outcomes"),
        "agentwm.graph.nodes",
    ),
    **dict.fromkeys(("DEFAULT_RETRY",), "agentwm.graph.planning"),
    **dict.fromkeys(("resolve_settings",), "agentwm.graph.context"),
    **dict.fromkeys(
        ("ActionMap", "LatentSimulator", "SimulationRequest", "TextSimulator", "as_simulator", "failed_outcome",
         "split_actions"),
        "agentwm.graph.simulators",
    ),
    **dict.fromkeys(
        ("Choice", "ChoiceReason", "Outcome", "Proposal", "ProposalSource", "Ranked", "SimulateInput"),
        "agentwm.graph.state",
    ),
}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(
            f"agentwm.graph.{name} is deprecated; import it from {_MOVED[name]}", DeprecationWarning, stacklevel=2
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'agentwm.graph' has no attribute {name!r}")
