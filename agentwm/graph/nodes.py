"""Node factories of the planning graph: propose, simulate, score, choose.

Each factory returns a :class:`~agentwm.graph._common.GraphNode`: a sync and an async body behind
one runnable, so one compiled graph serves ``invoke`` and ``ainvoke``, and ``node(state, runtime)``
still works outside a graph. A node reads only the keys of :class:`~agentwm.graph.state.PlanningState` it
needs and returns a partial update, so the nodes drop into any ``StateGraph`` whose state schema
extends ``PlanningState``. Models live in the closures; per-run settings come from
``runtime.context`` (:class:`~agentwm.graph.context.PlanningContext`, or the factory's
``settings`` when the run gives none).

Failures degrade, they do not crash (``on_error="fallback"``, the default):

* propose: an LLM call that raises, or an answer with no usable candidate, falls back to the
  action menu, else to ``fallback_candidates``, else to no candidates; recorded in ``fallbacks``.
* simulate: a simulation that raises becomes a failed :class:`~agentwm.graph.state.Outcome`
  (never chosen); recorded in ``fallbacks``.
* choose: no scored candidate -> the first candidate (the proposer's preferred one); none at all
  -> ``choice.candidate = None``; recorded in ``fallbacks``.

With ``on_error="raise"`` the propose and simulate nodes raise :class:`ProposerError` /
:class:`SimulationError` instead, so a LangGraph ``RetryPolicy`` can retry them and an
``error_handler`` apply the same fallback afterwards; :func:`~agentwm.graph.build_planning_graph`
wires it that way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from langgraph.runtime import Runtime
from langgraph.types import Send

from agentwm.graph._common import (
    CHOOSE,
    ON_ERROR,
    PROPOSE,
    SCORE,
    SIMULATE,
    GraphNode,
    OnError,
    ProposerError,
    SimulationError,
    check_on_error,
    dual_node,
    is_retryable,
    settings_for,
    writer_for,
)
from agentwm.graph.context import PlanningContext
from agentwm.graph.propose import PromptFn, default_prompt, make_propose_node, parse_candidates
from agentwm.graph.simulators import (
    ActionMap,
    SimulationRequest,
    Simulator,
    WorldModelLike,
    as_simulator,
    failed_outcome,
    mean_return,
)
from agentwm.graph.state import Choice, Outcome, PlanningState, Ranked, SimulateInput
from agentwm.planning.ranking import Followup, score_samples
from agentwm.worldmodels.base import State

__all__ = [
    "CHOOSE",
    "ON_ERROR",
    "PROPOSE",
    "SCORE",
    "SIMULATE",
    "GraphNode",
    "OnError",
    "PromptFn",
    "ProposerError",
    "SimulationError",
    "affordable",
    "choose_from",
    "default_prompt",
    "end_of_decision",
    "failed_simulations",
    "is_retryable",
    "make_choose_node",
    "make_fan_out",
    "make_propose_node",
    "make_score_node",
    "make_simulate_node",
    "parse_candidates",
    "rank_outcomes",
    "simulated_update",
    "tie_notes",
]

# ----------------------------------------------------------------------------------------------
# Fan-out and simulate


def affordable(n: int, settings: PlanningContext, proposal_calls: int, per_candidate: int) -> int:
    """How many of ``n`` candidates fit in ``settings.llm_budget`` after the proposal's calls."""
    if settings.llm_budget is None or per_candidate <= 0:
        return n
    return max(0, min(n, (settings.llm_budget - proposal_calls) // per_candidate))


def make_fan_out(
    simulator: Simulator,
    *,
    settings: PlanningContext | None = None,
    simulate_node: str = SIMULATE,
    skip_to: str = SCORE,
) -> Callable[[Any, Runtime[Any]], list[Send] | str]:
    """A conditional-edge function that sends the candidates to ``simulate_node`` with ``Send``:
    one task per candidate (text simulators, so their LLM latency overlaps), or one task with all
    of them (batched latent simulators). Candidates over ``llm_budget`` are not sent; with nothing
    to send it routes to ``skip_to``.

    Example:
        >>> builder.add_conditional_edges("propose", make_fan_out(sim), ["simulate", "score"])
    """
    default = settings or PlanningContext()

    def fan_out(state: PlanningState, runtime: Runtime[Any]) -> list[Send] | str:
        settings_ = settings_for(runtime, default)
        candidates = list(state.get("candidates") or [])
        calls = int((state.get("proposal") or {}).get("llm_calls", 0))
        n = affordable(len(candidates), settings_, calls, simulator.llm_calls_per_candidate(settings_))
        if n == 0:
            return skip_to
        observation, goal = state.get("observation"), state.get("goal", "")
        history, admissible = list(state.get("history") or []), list(state.get("admissible") or [])

        def task(cands: list[str], indices: list[int]) -> Send:
            return Send(simulate_node, SimulateInput(
                observation=observation, goal=goal, candidates=cands, indices=indices, history=history, admissible=admissible,
            ))

        if simulator.batched:
            return [task(candidates[:n], list(range(n)))]
        return [task([c], [i]) for i, c in enumerate(candidates[:n])]

    return fan_out


def _request(inp: Mapping[str, Any], settings: PlanningContext) -> SimulationRequest:
    candidates = list(inp.get("candidates") or [])
    indices = list(inp.get("indices") or range(len(candidates)))
    return SimulationRequest(
        inp.get("observation"), inp.get("goal") or "", candidates, indices, settings,
        history=list(inp.get("history") or []), admissible=list(inp.get("admissible") or []),
    )


def simulated_update(outcomes: list[Outcome], runtime: Any) -> dict[str, Any]:
    """The state update of finished simulations: the outcomes, streamed, with notes on fallbacks."""
    write = writer_for(runtime)
    notes = []
    for outcome in outcomes:
        write({"type": "simulation", **outcome, "mean_return": mean_return(outcome)})
        if outcome.get("error"):
            notes.append(f"simulate[{outcome.get('index')}]: {outcome['error']}")
        elif outcome.get("model_fallbacks"):
            notes.append(
                f"simulate[{outcome.get('index')}]: the world model fell back {outcome['model_fallbacks']} time(s)"
                " (unreadable or missing LLM answers)"
            )
    update: dict[str, Any] = {"simulations": outcomes}
    if notes:
        update["fallbacks"] = notes
    return update


def failed_simulations(inp: Mapping[str, Any], exc: BaseException, simulator: str = "") -> list[Outcome]:
    """Failed outcomes for every candidate of a simulate task (the documented fallback)."""
    cause = exc.__cause__ if isinstance(exc, SimulationError) and exc.__cause__ is not None else exc
    reason = f"{type(cause).__name__}: {cause}"
    request_candidates = list(inp.get("candidates") or [])
    indices = list(inp.get("indices") or range(len(request_candidates)))
    return [failed_outcome(c, i, reason, simulator) for c, i in zip(request_candidates, indices)]


def make_simulate_node(
    world_model: WorldModelLike,
    *,
    actions: ActionMap | None = None,
    observe: Callable[[Any], State] | None = None,
    followup: Followup = "random",
    settings: PlanningContext | None = None,
    on_error: OnError = "fallback",
    asynchronous: bool | None = None,
) -> GraphNode:
    """A node that imagines the future of candidates with a world model.

    It takes a :class:`~agentwm.graph.state.SimulateInput` (what :func:`make_fan_out` sends) or the
    whole :class:`~agentwm.graph.state.PlanningState` (then it simulates every candidate), appends
    one :class:`~agentwm.graph.state.Outcome` per candidate to ``simulations`` and streams each as a
    ``{"type": "simulation", ...}`` custom event.

    Args:
        world_model: a tensor ``WorldModel`` (needs ``actions``), a ``TextWorldModel`` or a
            :class:`~agentwm.graph.simulators.Simulator`.
        actions: candidate text -> action tensor, for tensor world models.
        observe: observation -> start carry, for tensor world models (default ``model.observe``).
        followup: what follows a first action in latent simulations.
        settings: defaults when the run's context gives none.
        on_error: ``"fallback"`` (failed outcomes, recorded) or ``"raise"`` (:class:`SimulationError`).
        asynchronous: deprecated (every node serves ``invoke`` and ``ainvoke``).

    Example:
        >>> node = make_simulate_node(model, actions={"left": torch.tensor([1.0, 0.0]), "right": torch.tensor([0.0, 1.0])})
        >>> node({"observation": [0.0, 0.0, 0.1, 0.0], "candidates": ["left", "right"]}, None)["simulations"]
    """
    check_on_error(on_error)
    simulator = as_simulator(world_model, actions=actions, observe=observe, followup=followup)
    default = settings or PlanningContext()

    async def asimulate(state: SimulateInput, runtime: Runtime[Any] | None) -> dict[str, Any]:
        try:
            outcomes = await simulator.asimulate(_request(state, settings_for(runtime, default)))
        except Exception as exc:
            if on_error == "raise":
                raise SimulationError(f"simulation failed: {exc}") from exc
            outcomes = failed_simulations(state, exc, simulator.name)
        return simulated_update(outcomes, runtime)

    def simulate(state: SimulateInput, runtime: Runtime[Any] | None) -> dict[str, Any]:
        try:
            outcomes = simulator.simulate(_request(state, settings_for(runtime, default)))
        except Exception as exc:
            if on_error == "raise":
                raise SimulationError(f"simulation failed: {exc}") from exc
            outcomes = failed_simulations(state, exc, simulator.name)
        return simulated_update(outcomes, runtime)

    return dual_node(simulate, asimulate, name=SIMULATE, asynchronous=asynchronous)


# ----------------------------------------------------------------------------------------------
# Score and choose


def rank_outcomes(
    candidates: Sequence[str], simulations: Sequence[Outcome], settings: PlanningContext
) -> tuple[list[Ranked], list[str]]:
    """Score every simulated candidate with ``settings.scorer()`` over its sample returns (the
    scoring half of :func:`agentwm.planning.rank`); best first, ties to the earlier candidate.
    Returns the ranking and notes on left-out candidates.

    Raises:
        ValueError: ``score="disagreement_penalized"`` with a world model that reports no
            disagreement, or a NaN score (a NaN disagreement).
    """
    latest: dict[int, Outcome] = {}
    for outcome in simulations:
        i = outcome.get("index")
        if isinstance(i, int) and 0 <= i < len(candidates) and outcome.get("candidate") == candidates[i]:
            latest[i] = outcome
    notes: list[str] = []
    usable: list[tuple[int, torch.Tensor, float | None]] = []
    for i, candidate in enumerate(candidates):
        found = latest.get(i)
        if found is None:
            notes.append(f"score: candidate {i} ({candidate[:60]!r}) was not simulated (over llm_budget or not sent)")
            continue
        if found.get("error"):
            continue  # the simulate node recorded why
        try:
            returns = torch.tensor(found.get("returns") or [], dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            returns = torch.empty(0)
        if returns.dim() != 1 or returns.numel() == 0 or not bool(torch.isfinite(returns).all()):
            notes.append(f"score: candidate {i} ({candidate[:60]!r}) has no finite returns; left out")
            continue
        dis = found.get("disagreement")
        usable.append((i, returns, None if dis is None else float(dis)))
    scorer = settings.scorer()
    scores: list[float] = []
    if usable and len({r.numel() for _, r, _ in usable}) == 1:  # one batched scorer call
        returns_t = torch.stack([r for _, r, _ in usable])
        dis_t = None
        if all(d is not None for _, _, d in usable):
            dis_t = torch.tensor([[d] for _, _, d in usable], dtype=torch.float64).expand_as(returns_t)
        scores = score_samples(returns_t, dis_t, scorer)[0].tolist()
    else:
        for _, r, d in usable:
            dis_t = None if d is None else torch.full_like(r[None], d)
            scores.append(float(score_samples(r[None], dis_t, scorer)[0][0]))
    ranked = [Ranked(index=i, candidate=candidates[i], score=s) for (i, _, _), s in zip(usable, scores)]
    ranked.sort(key=lambda r: (-r["score"], r["index"]))
    return ranked, notes


def tie_notes(ranking: Sequence[Ranked], simulations: Sequence[Outcome]) -> list[str]:
    """Notes on what makes the choice arbitrary: the best candidate imagined the very same text as
    other candidates (the world model ignored the action, e.g. a junk LLM answer that still parsed),
    or its score is shared with other candidates (the choice then falls to candidate order)."""
    notes: list[str] = []
    if not ranking:
        return notes
    best = ranking[0]["index"]
    groups: dict[tuple[str, ...], list[int]] = {}
    for outcome in simulations:
        steps = tuple(outcome.get("steps") or [])
        if not outcome.get("error") and any(s.strip() for s in steps):
            groups.setdefault(steps, []).append(int(outcome.get("index", -1)))
    for steps, indices in groups.items():
        if len(set(indices)) > 1 and best in indices:
            shown = " / ".join(s[:60] for s in steps[:2])
            notes.append(
                f"score: candidates {sorted(set(indices))} imagined the same outcome ({shown!r}):"
                " the world model ignored the action"
            )
    if len(ranking) > 1 and ranking[1]["score"] == ranking[0]["score"]:
        tied = [r["index"] for r in ranking if r["score"] == ranking[0]["score"]]
        notes.append(f"choose: best score {ranking[0]['score']:.4g} tied between candidates {tied}; took the first")
    return notes


def make_score_node(*, settings: PlanningContext | None = None) -> GraphNode:
    """A node that scores the simulations (mean, lower quantile or disagreement-penalized sample
    return, per ``score`` in the run's settings) into ``ranking`` and totals ``llm_calls``.

    Example:
        >>> make_score_node()({"candidates": ["a"], "simulations": [{"candidate": "a", "index": 0, "returns": [1.0]}]}, None)
        {'ranking': [{'index': 0, 'candidate': 'a', 'score': 1.0}], 'llm_calls': 0}
    """
    default = settings or PlanningContext()

    def score(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        settings_ = settings_for(runtime, default)
        simulations = state.get("simulations") or []
        ranked, notes = rank_outcomes(list(state.get("candidates") or []), simulations, settings_)
        notes += tie_notes(ranked, simulations)
        calls = int((state.get("proposal") or {}).get("llm_calls", 0))
        calls += sum(int(o.get("llm_calls") or 0) for o in simulations)
        update: dict[str, Any] = {"ranking": ranked, "llm_calls": calls}
        if notes:
            update["fallbacks"] = notes
        return update

    async def ascore(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        return score(state, runtime)

    return GraphNode(score, ascore, name=SCORE)


def choose_from(ranking: Sequence[Ranked], candidates: Sequence[str]) -> tuple[Choice, list[str]]:
    """The best-ranked candidate; else the first candidate; else none (with notes on fallbacks)."""
    if ranking:
        best = ranking[0]
        return Choice(candidate=best["candidate"], index=best["index"], score=best["score"], reason="best_score"), []
    if candidates:
        choice = Choice(candidate=candidates[0], index=0, score=None, reason="fallback_first")
        return choice, ["choose: no candidate could be scored; took the first candidate"]
    return Choice(candidate=None, index=None, score=None, reason="no_candidates"), ["choose: no candidates to choose from"]


def end_of_decision(state: Mapping[str, Any], chosen: str | None) -> dict[str, Any]:
    """The update that closes a decision on a thread: input candidates and ``admissible`` are
    cleared (they belonged to this step) and ``(observation, chosen)`` is appended to ``history``."""
    update: dict[str, Any] = {"admissible": []}
    if (state.get("proposal") or {}).get("source") == "state":
        update["candidates"] = []
    observation = state.get("observation")
    if chosen is not None and isinstance(observation, str):
        update["history"] = [*list(state.get("history") or []), {"observation": observation, "action": chosen}]
    return update


def make_choose_node(*, end_decision: bool = False) -> GraphNode:
    """A node that takes the best-ranked candidate into ``choice``/``chosen``.

    Fallbacks (recorded in ``fallbacks``): no candidate could be scored -> the first candidate
    (``reason="fallback_first"``); no candidates at all -> ``chosen=None``
    (``reason="no_candidates"``). Streams a ``{"type": "choice", ...}`` custom event.

    With ``end_decision`` (what :func:`~agentwm.graph.build_planning_graph` sets when the state
    schema has ``history`` and ``admissible``) it also closes the decision (:func:`end_of_decision`):
    candidates given in the input and ``admissible`` are cleared, so a later input on the thread
    never reuses them, and ``history`` gains ``{"observation", "action": chosen}``.

    Example:
        >>> make_choose_node()({"candidates": ["a", "b"], "ranking": [{"index": 1, "candidate": "b", "score": 2.0}]}, None)["chosen"]
        'b'
    """

    def choose(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        choice, notes = choose_from(state.get("ranking") or [], list(state.get("candidates") or []))
        writer_for(runtime)({"type": "choice", **choice})
        update: dict[str, Any] = {"choice": choice, "chosen": choice["candidate"]}
        if end_decision:
            update.update(end_of_decision(state, choice["candidate"]))
        if notes:
            update["fallbacks"] = notes
        return update

    async def achoose(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        return choose(state, runtime)

    return GraphNode(choose, achoose, name=CHOOSE)
