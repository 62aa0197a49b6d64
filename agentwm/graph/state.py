"""Graph state schemas of the LangGraph layer: plain, serializable data only.

Every value a planning graph keeps in its state is text, numbers, lists or dicts of them, so any
checkpointer (``SqliteSaver``, ``PostgresSaver``, the LangGraph server) can store a thread and
resume it. World models, chat models and tensors live in the node closures, never in the state.

The schemas are ``TypedDict(total=False)``: a user graph extends them by subclassing (add
``messages`` for a ReAct agent, a ``history`` for dialogue) and every node reads only the keys it
needs. List-valued keys that parallel branches write to use an additive reducer; the propose node
starts each decision with ``Overwrite`` so results of an earlier decision in the same thread never
mix with the new one.

Example:
    >>> from typing import Annotated
    >>> from langchain_core.messages import AnyMessage
    >>> from langgraph.graph.message import add_messages
    >>> class AgentState(PlanningState, total=False):
    ...     messages: Annotated[list[AnyMessage], add_messages]
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from typing_extensions import TypedDict

ProposalSource = Literal["state", "llm", "actions", "fallback", "none"]
"""Where a decision's candidates came from: given in the state, proposed by the LLM, the fixed
action menu, the documented fallback list, or nowhere (no candidates at all)."""

ChoiceReason = Literal["best_score", "fallback_first", "no_candidates", "human"]
"""Why a candidate was chosen: it had the best score; no simulation succeeded so the first
candidate (the proposer's preferred one) was taken; there was nothing to choose from; or a person
picked it when reviewing the ranking (``agentwm.graph.hitl``)."""


class Outcome(TypedDict, total=False):
    """The simulated future of one candidate.

    Attributes:
        candidate: the candidate action, as text.
        index: its position in ``PlanningState.candidates``.
        returns: discounted imagined return of each sample (``Rollout.returns``), ``[S]``.
        rewards: mean imagined reward per step over the samples, ``[H]``.
        disagreement: the world model's disagreement averaged over steps and samples, or ``None``
            when the model does not report one.
        steps: imagined text of each step of the first sample (text world models), else ``[]``.
        llm_calls: LLM calls this simulation made.
        simulator: which simulator produced it (``"latent"``, ``"text"``, …).
        model_fallbacks: how many of the world model's own fallbacks this simulation used (an LLM
            world model's unreadable answers), from ``rollout.extras["fallbacks"]``.
        error: why the simulation failed, or ``None``; a failed outcome has no ``returns``.
    """

    candidate: str
    index: int
    returns: list[float]
    rewards: list[float]
    disagreement: float | None
    steps: list[str]
    llm_calls: int
    simulator: str
    model_fallbacks: int
    error: str | None


class Ranked(TypedDict):
    """One scored candidate in ``PlanningState.ranking`` (best first)."""

    index: int
    candidate: str
    score: float


class Choice(TypedDict):
    """The decision: which candidate, its score and why it was chosen."""

    candidate: str | None
    index: int | None
    score: float | None
    reason: ChoiceReason


class Proposal(TypedDict, total=False):
    """How a decision's candidates were obtained (for tracing and cost accounting)."""

    source: ProposalSource
    llm_calls: int
    raw: str
    candidates: list[str]


class Step(TypedDict):
    """One earlier step of the episode in ``PlanningState.history``: what was seen, what was done."""

    observation: str
    action: str


class PlanningState(TypedDict, total=False):
    """State of a planning graph: a situation in, scored candidates and a choice out.

    Attributes:
        observation: the current situation: text for text world models, a (nested) list of numbers
            for latent ones.
        goal: what the agent is trying to achieve (text); used by proposers and text world models.
        candidates: candidate actions (text). Given in the input, they are simulated as they are
            (matched to ``admissible`` when it is given) and hold for THIS decision only: the
            decision ends by clearing them, so a later input on a checkpointed thread that gives
            none gets the proposer/menu, never the previous step's list (the decision's list stays
            in ``proposal["candidates"]``). Left empty, the proposer (or the menu) fills them in.
        admissible: this step's action menu from the environment (e.g. ``TextStep.admissible``);
            overrides the graph's ``actions`` menu for this decision (the proposer chooses among it,
            replies naming an entry in other words are matched to it tolerantly) and is cleared at
            the end of the decision like given candidates.
        history: the episode so far, oldest first; text world models fold it into their start
            state with ``observe`` (see :class:`~agentwm.graph.simulators.TextSimulator`). Each
            decision appends ``{"observation", "action": chosen}``, so a checkpointed thread
            carries it from step to step; pass it yourself on an unthreaded graph.
        proposal: where the candidates came from and what proposing them cost.
        simulations: one :class:`Outcome` per simulated candidate (parallel branches append).
        ranking: scored candidates, best first (failed or skipped simulations are left out).
        choice: the decision (``None`` while a decision is under way).
        chosen: the chosen candidate's text (``None`` when there was nothing to choose from); a
            convenient routing key.
        llm_calls: LLM calls this decision made (proposal + simulations).
        fallbacks: every fallback taken during this decision, in words (``"propose: ..."``,
            ``"simulate[2]: ..."``, ``"choose: ..."``); empty when everything went to plan.
    """

    observation: Any
    goal: str
    candidates: list[str]
    admissible: list[str]
    history: list[Step]
    proposal: Proposal
    simulations: Annotated[list[Outcome], operator.add]
    ranking: list[Ranked]
    choice: Choice | None
    chosen: str | None
    llm_calls: int
    fallbacks: Annotated[list[str], operator.add]


class SimulateInput(TypedDict, total=False):
    """What the fan-out sends to one simulate task: a slice of the candidates and the situation.

    Attributes:
        observation: the situation, as in :class:`PlanningState`.
        goal: the goal, as in :class:`PlanningState`.
        candidates: the candidates of this task (one for text world models, all of them for a
            batched latent model).
        indices: their positions in ``PlanningState.candidates``.
        history: the episode so far, as in :class:`PlanningState`.
        admissible: this step's menu, as in :class:`PlanningState` (the world model's follow-up pool).
    """

    observation: Any
    goal: str
    candidates: list[str]
    indices: list[int]
    history: list[Step]
    admissible: list[str]
