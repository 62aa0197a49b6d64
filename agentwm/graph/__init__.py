"""LangGraph layer: planning nodes and graphs that simulate candidate actions with a world model
and choose by discounted imagined return.

State schemas hold plain data only (any checkpointer works); models live in node closures;
per-run settings travel in the runtime context. Builders return an uncompiled ``StateGraph``.

Example:
    >>> from agentwm.graph import build_planning_graph
    >>> graph = build_planning_graph(world_model=my_model, actions=my_action_map).compile()
    >>> graph.invoke({"observation": obs}, context={"horizon": 15, "samples": 32})["chosen"]
"""

from agentwm.graph.context import PlanningContext, resolve_settings
from agentwm.graph.dialogue import DialogueContext, DialogueState, build_dialogue_graph, make_dialogue_node
from agentwm.graph.nodes import (
    CHOOSE,
    PROPOSE,
    SCORE,
    SIMULATE,
    OnError,
    ProposerError,
    SimulationError,
    default_prompt,
    is_retryable,
    make_choose_node,
    make_fan_out,
    make_propose_node,
    make_score_node,
    make_simulate_node,
    parse_candidates,
    rank_outcomes,
)
from agentwm.graph.plan_node import make_plan_node
from agentwm.graph.planning import DEFAULT_RETRY, build_planning_graph
from agentwm.graph.simulators import (
    ActionMap,
    LatentSimulator,
    SimulationRequest,
    Simulator,
    TextSimulator,
    as_simulator,
    failed_outcome,
    split_actions,
)
from agentwm.graph.state import (
    Choice,
    ChoiceReason,
    Outcome,
    PlanningState,
    Proposal,
    ProposalSource,
    Ranked,
    SimulateInput,
)

__all__ = [
    "CHOOSE",
    "DEFAULT_RETRY",
    "PROPOSE",
    "SCORE",
    "SIMULATE",
    "ActionMap",
    "Choice",
    "ChoiceReason",
    "DialogueContext",
    "DialogueState",
    "LatentSimulator",
    "OnError",
    "Outcome",
    "PlanningContext",
    "PlanningState",
    "Proposal",
    "ProposalSource",
    "ProposerError",
    "Ranked",
    "SimulateInput",
    "SimulationError",
    "SimulationRequest",
    "Simulator",
    "TextSimulator",
    "as_simulator",
    "build_dialogue_graph",
    "build_planning_graph",
    "default_prompt",
    "failed_outcome",
    "is_retryable",
    "make_choose_node",
    "make_dialogue_node",
    "make_fan_out",
    "make_plan_node",
    "make_propose_node",
    "make_score_node",
    "make_simulate_node",
    "parse_candidates",
    "rank_outcomes",
    "resolve_settings",
    "split_actions",
]
