"""``build_planning_graph``: propose candidates, simulate each with a world model, score, choose.

::

    START -> propose --Send per candidate (or one batched Send)--> simulate -> score -> choose -> END
                     \\------------------ nothing to simulate -----------------^

The graph is returned UNCOMPILED, so the caller picks the checkpointer (``SqliteSaver``,
``PostgresSaver``), interrupts and store, or adds it as a subgraph node of a larger graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast, get_type_hints

from langchain_core.tools import BaseTool
from langgraph.errors import NodeError
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, RetryPolicy

from agentwm.graph._common import GraphNode
from agentwm.graph.checkpoint import PlanningStateGraph
from agentwm.graph.context import PlanningContext
from agentwm.graph.nodes import (
    CHOOSE,
    ON_ERROR,
    PROPOSE,
    SCORE,
    SIMULATE,
    OnError,
    PromptFn,
    ProposerError,
    SimulationError,
    failed_simulations,
    is_retryable,
    make_choose_node,
    make_fan_out,
    make_score_node,
    make_simulate_node,
    simulated_update,
)
from agentwm.graph.propose import ChatModel, ProposeLogic, propose_node_from
from agentwm.graph.simulators import ActionMap, LatentSimulator, WorldModelLike, as_simulator, split_actions
from agentwm.graph.state import PlanningState
from agentwm.planning.ranking import Followup
from agentwm.worldmodels.base import State

DEFAULT_RETRY = RetryPolicy(initial_interval=0.25, backoff_factor=2.0, max_interval=4.0, max_attempts=3, retry_on=is_retryable)
"""Retry a failed LLM call (proposer or LLM world model) twice, 0.25 s then 0.5 s later (with jitter);
programming and input errors (``ValueError``, ``TypeError``, …) are not retried."""

_REQUIRED_KEYS = ("observation", "goal", "candidates", "proposal", "simulations", "ranking", "choice", "chosen", "fallbacks")


def _check_state_schema(schema: Any) -> None:
    try:
        hints = get_type_hints(schema, include_extras=True)
    except Exception as exc:
        raise TypeError(f"state_schema must be a TypedDict extending PlanningState, got {schema!r}") from exc
    missing = [k for k in _REQUIRED_KEYS if k not in hints]
    if missing:
        raise ValueError(
            f"state_schema {getattr(schema, '__name__', schema)} lacks the planning keys {missing};"
            " subclass agentwm.graph.PlanningState to add your own keys"
        )


def build_planning_graph(
    *,
    world_model: WorldModelLike,
    proposer: ChatModel | None = None,
    actions: ActionMap | Sequence[str | BaseTool] | None = None,
    observe: Callable[[Any], State] | None = None,
    followup: Followup = "random",
    fallback_candidates: Sequence[str] = (),
    settings: PlanningContext | None = None,
    prompt: PromptFn | None = None,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY,
    on_failure: OnError = "fallback",
    asynchronous: bool | None = None,
    state_schema: type[Any] = PlanningState,
    context_schema: type[PlanningContext] = PlanningContext,
) -> StateGraph[Any, Any, Any, Any]:
    """Build a graph that chooses among candidate actions by their discounted imagined return.

    ``propose`` fixes the decision's candidates (given in the input state, proposed by
    ``proposer``, or the ``actions`` menu); the fan-out sends them to ``simulate`` with ``Send``
    (one task per candidate for text world models, so their LLM calls run concurrently; one
    batched task for latent models, which imagine all candidates × samples in one call);
    ``score`` applies the run's scoring rule to the imagined returns; ``choose`` takes the best.
    Per-run settings (horizon, gamma, candidates, samples, llm_budget, score) come from
    ``context=`` at invoke time, validated by ``context_schema``. Simulations stream as custom
    events (``stream_mode="custom"``): ``{"type": "proposal" | "simulation" | "choice", ...}``.

    Failures: LLM calls in ``propose`` and ``simulate`` are retried by ``retry_policy``; after the
    last attempt, with ``on_failure="fallback"``, the proposer falls back to the action menu (else
    ``fallback_candidates``, else nothing) and a failed simulation is recorded and never chosen;
    when nothing could be scored the first candidate is chosen. Every fallback is written to
    ``state["fallbacks"]``. With ``on_failure="raise"`` the error ends the run after the retries.

    Args:
        world_model: a tensor ``WorldModel`` (needs ``actions`` as a mapping or function), a
            ``TextWorldModel`` (e.g. ``LLMWorldModel``) or a ``Simulator``.
        proposer: a LangChain ``BaseChatModel`` or ``LLMClient`` that proposes candidates; ``None``:
            candidates come from the input state or the ``actions`` menu.
        actions: ``{text: action tensor}`` (latent models; its keys are the menu), a function
            ``text -> tensor`` (latent, no menu), or a list of texts or LangChain tools (a menu of
            names for text models).
        observe: observation -> start carry, for latent models (default ``model.observe``).
        followup: what follows a first action in latent simulations (``"random"``, ``"repeat"`` or
            a policy).
        fallback_candidates: candidates to simulate when the proposer fails and there is no menu.
        settings: defaults of the per-run settings (an instance of ``context_schema``).
        prompt: ``(state, settings, menu) -> messages`` for the proposer.
        retry_policy: LangGraph retry policy of the propose and simulate nodes; ``None``: no retry.
        on_failure: ``"fallback"`` or ``"raise"``, see above.
        asynchronous: deprecated and ignored: every node holds a sync and an async body, so the
            compiled graph serves ``invoke``/``stream`` (parallel sync tasks run in a thread pool
            of ``config["max_concurrency"]`` workers, default ``min(32, cores + 4)``: pass
            ``{"max_concurrency": K}`` to simulate more candidates at once) and
            ``ainvoke``/``astream`` (text simulations overlap on the event loop).
        state_schema: a TypedDict extending :class:`~agentwm.graph.PlanningState`.
        context_schema: :class:`~agentwm.graph.PlanningContext` or a subclass.

    Returns:
        An uncompiled ``StateGraph`` with nodes ``propose``, ``simulate``, ``score``, ``choose``.

    Raises:
        TypeError, ValueError: an unusable world model or proposer, a latent model without an
            action mapping, an unknown mode, or a schema that does not extend the planning ones.

    Example:
        >>> import torch
        >>> from agentwm.graph import build_planning_graph
        >>> from agentwm.worldmodels import EnsembleDynamics, ActionSpec
        >>> model = EnsembleDynamics(obs_dim=4, action_spec=ActionSpec("discrete", 2))
        >>> graph = build_planning_graph(
        ...     world_model=model, actions={"push left": torch.tensor([1.0, 0.0]), "push right": torch.tensor([0.0, 1.0])}
        ... ).compile()
        >>> out = graph.invoke({"observation": [0.0, 0.0, 0.05, 0.0]}, context={"horizon": 15, "samples": 32})
        >>> out["chosen"] in ("push left", "push right")
        True
    """
    if on_failure not in ON_ERROR:
        raise ValueError(f"on_failure must be one of {ON_ERROR}, got {on_failure!r}")
    if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
        raise TypeError(f"retry_policy must be a langgraph.types.RetryPolicy or None, got {type(retry_policy).__name__}")
    if not (isinstance(context_schema, type) and issubclass(context_schema, PlanningContext)):
        raise TypeError(f"context_schema must be PlanningContext or a subclass, got {context_schema!r}")
    _check_state_schema(state_schema)
    defaults = settings if settings is not None else context_schema()
    if not isinstance(defaults, context_schema):
        raise TypeError(f"settings must be a {context_schema.__name__}, got {type(defaults).__name__}")

    action_map, menu = split_actions(actions)
    simulator = as_simulator(world_model, actions=action_map, observe=observe, followup=followup)
    if isinstance(simulator, LatentSimulator) and not menu:
        menu = simulator.menu

    node_error: OnError = "raise"  # failures surface to the RetryPolicy; the handlers below fall back
    if asynchronous is not None:
        warnings.warn(
            "build_planning_graph(asynchronous=...) is deprecated and ignored: the graph's nodes serve both"
            " invoke and ainvoke", DeprecationWarning, stacklevel=2,
        )
    logic = ProposeLogic(proposer, menu, fallback_candidates, defaults, prompt, retries=0)
    propose: GraphNode = propose_node_from(logic, node_error)
    simulate = make_simulate_node(simulator, settings=defaults, on_error=node_error)
    fan_out = make_fan_out(simulator, settings=defaults, simulate_node=SIMULATE, skip_to=SCORE)

    def propose_failed(state: dict[str, Any], error: NodeError, runtime: Runtime[Any]) -> Command[str]:
        if not isinstance(error.error, ProposerError):
            raise error.error  # input or programming errors are not LLM failures: no fallback
        attempts = retry_policy.max_attempts if retry_policy else 1
        update = logic.failed(error.error, attempts=attempts, menu=logic.menu_for(state))
        routed = {**state, "candidates": update["candidates"], "proposal": update["proposal"]}
        return Command(update=update, goto=fan_out(routed, runtime))

    def simulate_failed(inp: dict[str, Any], error: NodeError, runtime: Runtime[Any]) -> Command[str]:
        if not isinstance(error.error, SimulationError):
            raise error.error
        # go on to score explicitly: when every simulation failed, no normal edge triggers it
        return Command(update=simulated_update(failed_simulations(inp, error.error, simulator.name), runtime), goto=SCORE)

    builder: StateGraph[Any, Any, Any, Any] = PlanningStateGraph(state_schema, context_schema=context_schema)
    handlers = on_failure == "fallback"
    builder.add_node(
        PROPOSE,
        cast(Any, propose),
        retry_policy=retry_policy,
        error_handler=cast(Any, propose_failed) if handlers else None,
        # no destinations=: the conditional edges below already draw propose -> simulate | score,
        # and a second, unlabelled copy of those edges makes get_graph() fail (TypeError)
    )
    builder.add_node(
        SIMULATE,
        cast(Any, simulate),
        destinations=(SCORE,),
        retry_policy=retry_policy,
        error_handler=cast(Any, simulate_failed) if handlers else None,
    )
    builder.add_node(SCORE, cast(Any, make_score_node(settings=defaults)))
    keys = get_type_hints(state_schema, include_extras=True)
    builder.add_node(CHOOSE, cast(Any, make_choose_node(end_decision="history" in keys and "admissible" in keys)))
    builder.add_edge(START, PROPOSE)
    builder.add_conditional_edges(PROPOSE, fan_out, [SIMULATE, SCORE])
    builder.add_edge(SIMULATE, SCORE)
    builder.add_edge(SCORE, CHOOSE)
    builder.add_edge(CHOOSE, END)
    return builder
