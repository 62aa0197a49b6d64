"""``make_plan_node``: a whole planning decision in ONE node, to drop into an existing graph.

:func:`~agentwm.graph.build_planning_graph` spreads a decision over four nodes so that LangGraph
retries, checkpoints and streams each part. A graph that only needs the answer (a ReAct agent's
"pick the best tool call" step, a latency-critical control loop) can use this node instead: it
runs the same logic (propose, simulate, score, choose) in one call, simulating text candidates
concurrently (threads for sync graphs, ``asyncio.gather`` for async ones) and latent candidates in
one batched ``imagine``. It never raises on LLM or simulation failures: it degrades to the same
documented fallbacks as the nodes, recorded in ``fallbacks``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from agentwm.graph._common import GraphNode, dual_node, settings_for, writer_for
from agentwm.graph.context import PlanningContext
from agentwm.graph.nodes import (
    affordable,
    choose_from,
    end_of_decision,
    failed_simulations,
    rank_outcomes,
    simulated_update,
    tie_notes,
)
from agentwm.graph.propose import ChatModel, PromptFn, ProposeLogic
from agentwm.graph.simulators import (
    ActionMap,
    LatentSimulator,
    SimulationRequest,
    WorldModelLike,
    as_simulator,
    split_actions,
)
from agentwm.graph.state import Outcome, PlanningState
from agentwm.planning.ranking import Followup
from agentwm.worldmodels.base import State


def make_plan_node(
    world_model: WorldModelLike,
    *,
    proposer: ChatModel | None = None,
    actions: ActionMap | Sequence[str | BaseTool] | None = None,
    observe: Callable[[Any], State] | None = None,
    followup: Followup = "random",
    fallback_candidates: Sequence[str] = (),
    settings: PlanningContext | None = None,
    prompt: PromptFn | None = None,
    end_decision: bool = False,
    asynchronous: bool | None = None,
) -> GraphNode:
    """A node that makes one planning decision: it writes ``candidates``, ``simulations``,
    ``ranking``, ``choice``/``chosen``, ``llm_calls`` and ``fallbacks`` of
    :class:`~agentwm.graph.PlanningState` in a single update.

    Arguments are those of :func:`~agentwm.graph.build_planning_graph`; per-run settings come from
    ``runtime.context`` as there. With ``end_decision`` (a state schema with ``history`` and
    ``admissible``, e.g. :class:`~agentwm.graph.PlanningState`) the decision ends as the graph's
    does (:func:`~agentwm.graph.nodes.end_of_decision`): input candidates and ``admissible`` cleared,
    ``history`` extended. The node serves ``invoke`` (text candidates simulated in threads)
    and ``ainvoke`` (``asyncio.gather``); ``asynchronous`` is deprecated.

    Example:
        >>> import torch
        >>> from agentwm.worldmodels import ActionSpec, EnsembleDynamics
        >>> model = EnsembleDynamics(obs_dim=4, action_spec=ActionSpec("discrete", 2))
        >>> plan = make_plan_node(model, actions={"left": torch.tensor([1.0, 0.0]), "right": torch.tensor([0.0, 1.0])})
        >>> plan({"observation": [0.0, 0.0, 0.05, 0.0]}, None)["chosen"] in ("left", "right")
        True
    """
    action_map, menu = split_actions(actions)
    simulator = as_simulator(world_model, actions=action_map, observe=observe, followup=followup)
    if isinstance(simulator, LatentSimulator) and not menu:
        menu = simulator.menu
    defaults = settings or PlanningContext()
    logic = ProposeLogic(proposer, menu, fallback_candidates, defaults, prompt)

    def requests(state: PlanningState, update: dict[str, Any], settings_: PlanningContext) -> list[SimulationRequest]:
        candidates = update["candidates"]
        n = affordable(len(candidates), settings_, update["llm_calls"], simulator.llm_calls_per_candidate(settings_))
        observation, goal = state.get("observation"), state.get("goal") or ""
        history, menu = list(state.get("history") or []), logic.menu_for(state)
        if simulator.batched:
            return [SimulationRequest(observation, goal, candidates[:n], list(range(n)), settings_, history, menu)] if n else []
        return [SimulationRequest(observation, goal, [c], [i], settings_, history, menu) for i, c in enumerate(candidates[:n])]

    def finish(state: PlanningState, update: dict[str, Any], outcomes: list[Outcome], settings_: PlanningContext, runtime: Any) -> dict[str, Any]:
        simulated = simulated_update(outcomes, runtime)
        ranked, score_notes = rank_outcomes(update["candidates"], outcomes, settings_)
        score_notes += tie_notes(ranked, outcomes)
        choice, choose_notes = choose_from(ranked, update["candidates"])
        writer_for(runtime)({"type": "choice", **choice})
        notes = [*update["fallbacks"].value, *simulated.get("fallbacks", []), *score_notes, *choose_notes]
        calls = update["llm_calls"] + sum(int(o.get("llm_calls") or 0) for o in outcomes)
        out = {
            **update,
            "simulations": Overwrite(outcomes),
            "fallbacks": Overwrite(notes),
            "ranking": ranked,
            "choice": choice,
            "chosen": choice["candidate"],
            "llm_calls": calls,
        }
        if end_decision:
            out.update(end_of_decision({**state, "proposal": update["proposal"]}, choice["candidate"]))
        return out

    def run_one(request: SimulationRequest) -> list[Outcome]:
        try:
            return simulator.simulate(request)
        except Exception as exc:  # noqa: BLE001 - a failed simulation is recorded, never raised
            return failed_simulations({"candidates": request.candidates, "indices": request.indices}, exc, simulator.name)

    async def arun_one(request: SimulationRequest) -> list[Outcome]:
        try:
            return await simulator.asimulate(request)
        except Exception as exc:  # noqa: BLE001
            return failed_simulations({"candidates": request.candidates, "indices": request.indices}, exc, simulator.name)

    async def aplan(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        settings_ = settings_for(runtime, defaults)
        update, messages = logic.plan(state, settings_)
        if update is None:
            assert logic.llm is not None
            try:
                answer, calls = await logic.llm.acomplete(messages)
            except Exception as exc:  # noqa: BLE001 - any LLM failure degrades to the fallback
                update = logic.failed(exc, menu=logic.menu_for(state))
            else:
                update = logic.parse(answer, calls, settings_, logic.menu_for(state))
        batches = await asyncio.gather(*(arun_one(r) for r in requests(state, update, settings_)))
        return finish(state, update, [o for batch in batches for o in batch], settings_, runtime)

    def plan(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        settings_ = settings_for(runtime, defaults)
        update, messages = logic.plan(state, settings_)
        if update is None:
            assert logic.llm is not None
            try:
                answer, calls = logic.llm.complete(messages)
            except Exception as exc:  # noqa: BLE001 - any LLM failure degrades to the fallback
                update = logic.failed(exc, menu=logic.menu_for(state))
            else:
                update = logic.parse(answer, calls, settings_, logic.menu_for(state))
        todo = requests(state, update, settings_)
        if len(todo) <= 1:
            batches = [run_one(r) for r in todo]
        else:  # text candidates: overlap their LLM latency
            with ThreadPoolExecutor(max_workers=len(todo)) as pool:
                batches = list(pool.map(run_one, todo))
        return finish(state, update, [o for batch in batches for o in batch], settings_, runtime)

    return dual_node(plan, aplan, name="plan", asynchronous=asynchronous)

