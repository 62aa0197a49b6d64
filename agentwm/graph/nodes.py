"""Node factories of the planning graph: propose, simulate, score, choose (sync and async).

Each factory returns a plain function ``node(state, runtime)`` (``async def`` with
``asynchronous=True``) that reads only the keys of :class:`~agentwm.graph.state.PlanningState` it
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

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import torch
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, Send

from agentwm.graph.context import PlanningContext, resolve_settings
from agentwm.graph.simulators import (
    ActionMap,
    SimulationRequest,
    Simulator,
    as_simulator,
    failed_outcome,
    mean_return,
)
from agentwm.graph.state import (
    Choice,
    Outcome,
    PlanningState,
    Proposal,
    ProposalSource,
    Ranked,
    SimulateInput,
)
from agentwm.planning.ranking import Followup
from agentwm.text import parsing
from agentwm.text.client import LLMClient
from agentwm.worldmodels.base import State

OnError = Literal["fallback", "raise"]
"""What a node does when its LLM or world model fails: degrade to the documented fallback and
record it, or raise (:class:`ProposerError`/:class:`SimulationError`) for a ``RetryPolicy``."""

ON_ERROR: tuple[str, ...] = get_args(OnError)

PROPOSE, SIMULATE, SCORE, CHOOSE = "propose", "simulate", "score", "choose"
"""Node names used by :func:`~agentwm.graph.build_planning_graph` and by :func:`make_fan_out`."""

Node = Callable[[Any, Runtime[Any]], dict[str, Any]]
AsyncNode = Callable[[Any, Runtime[Any]], Awaitable[dict[str, Any]]]
PromptFn = Callable[[Mapping[str, Any], PlanningContext, Sequence[str]], list[BaseMessage]]
"""``(state, settings, menu) -> messages`` asking a chat model for candidate actions."""

_MAX_CANDIDATE_CHARS = 500
_NON_RETRYABLE = (ValueError, TypeError, LookupError, ArithmeticError, NotImplementedError, AssertionError)


class ProposerError(RuntimeError):
    """The proposer's LLM call failed (raised with ``on_error="raise"``; the cause is chained)."""


class SimulationError(RuntimeError):
    """A simulation failed (raised with ``on_error="raise"``; the cause is chained)."""


def is_retryable(exc: BaseException) -> bool:
    """``retry_on`` of the planning graph's ``RetryPolicy``: retry a :class:`ProposerError` or
    :class:`SimulationError` unless its cause is a programming or input error (``ValueError``,
    ``TypeError``, ``LookupError``, …), which a retry cannot fix."""
    if not isinstance(exc, (ProposerError, SimulationError)):
        return False
    return not isinstance(exc.__cause__, _NON_RETRYABLE)


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def _settings(runtime: Any, default: PlanningContext) -> PlanningContext:
    return resolve_settings(getattr(runtime, "context", None), default)


def _writer(runtime: Any) -> Callable[[Any], None]:
    writer = getattr(runtime, "stream_writer", None)
    return writer if callable(writer) else (lambda _chunk: None)


# ----------------------------------------------------------------------------------------------
# Propose


def default_prompt(state: Mapping[str, Any], settings: PlanningContext, menu: Sequence[str]) -> list[BaseMessage]:
    """Ask for ``settings.candidates`` distinct next actions as a JSON list of strings."""
    k = settings.candidates
    lines = [f"Situation: {state.get('observation', '')}"]
    if state.get("goal"):
        lines.append(f"Goal: {state['goal']}")
    if menu:
        lines.append("Allowed actions: " + "; ".join(menu))
    lines.append(f"Propose {k} distinct candidate next action{'s' if k > 1 else ''}.")
    system = (
        "You propose candidate next actions for an agent. Each action is one short imperative sentence."
        ' Answer with a JSON list of strings only, e.g. ["open the door", "ask for help"].'
    )
    return [SystemMessage(content=system), HumanMessage(content="\n".join(lines))]


class _LLM:
    """A chat model or an :class:`~agentwm.text.client.LLMClient`, seen as text completion that
    reports how many model calls it made (cache hits cost none).

    A bare ``BaseChatModel`` is wrapped in an ``LLMClient`` with ``retries`` (the planning graph
    passes 0: its ``RetryPolicy`` retries instead, visibly, at the node); an ``LLMClient`` is used
    with its own settings.
    """

    def __init__(self, llm: Any, *, retries: int = 2) -> None:
        if isinstance(llm, LLMClient):
            self.client = llm
        elif isinstance(llm, BaseChatModel):
            self.client = LLMClient(llm, retries=retries)
        else:
            raise TypeError(
                f"proposer must be a LangChain BaseChatModel or an agentwm LLMClient, got {type(llm).__name__}"
            )

    def complete(self, messages: list[BaseMessage]) -> tuple[str, int]:
        done = self.client.request(messages)
        return done.text, done.calls

    async def acomplete(self, messages: list[BaseMessage]) -> tuple[str, int]:
        done = await self.client.arequest(messages)
        return done.text, done.calls


def parse_candidates(text: str, *, limit: int, menu: Sequence[str] = ()) -> list[str]:
    """Candidate actions in an LLM answer: a JSON list, an object with a ``candidates``/``actions``
    list, or a bulleted/numbered list; stripped, de-duplicated (case-insensitive), at most ``limit``.
    With a ``menu``, only items naming a menu entry are kept (mapped to the entry's spelling): the
    same words ignoring case and punctuation, or an entry quoted whole inside a longer item.
    Never raises on any string."""
    found = parsing.extract_json(text)
    items: list[Any] = []
    if isinstance(found, dict):
        for key in ("candidates", "actions", "options", "proposals"):
            if isinstance(found.get(key), list):
                items = found[key]
                break
    elif isinstance(found, list):
        items = found
    if not items:
        items = parsing.extract_list(text, limit=max(limit * 4, 20))
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            item = next((v for v in item.values() if isinstance(v, str)), "")
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            continue
        candidate = " ".join(str(item).split())[:_MAX_CANDIDATE_CHARS]
        if menu:
            candidate = _match_menu(candidate, menu)
        key = candidate.lower()
        if candidate and key not in seen:
            seen.add(key)
            out.append(candidate)
        if len(out) >= limit:
            break
    return out


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _match_menu(candidate: str, menu: Sequence[str]) -> str:
    """The menu entry a proposed candidate names: the same words ignoring case and punctuation, or
    else the longest entry that appears in it as a whole phrase; ``""`` when none does. Deliberately
    strict (no "option 2", no single letters): junk must not turn into a valid action."""
    text = _normal(candidate)
    if not text:
        return ""
    best = ""
    for entry in menu:
        norm = _normal(entry)
        if not norm:
            continue
        if norm == text:
            return entry
        if re.search(rf"(?<!\w){re.escape(norm)}(?!\w)", text) and len(norm) > len(_normal(best)):
            best = entry
    return best


def _clean_given(candidates: Any) -> list[str]:
    if not isinstance(candidates, (list, tuple)):
        raise TypeError(f"state['candidates'] must be a list of strings, got {type(candidates).__name__}")
    out: list[str] = []
    for i, c in enumerate(candidates):
        if not isinstance(c, str):
            raise TypeError(f"state['candidates'][{i}] must be a string, got {type(c).__name__}")
        if c.strip() and c not in out:
            out.append(c)
    return out


class _Proposer:
    """The propose logic shared by the node and the graph's error handler."""

    def __init__(
        self,
        proposer: Any,
        menu: Sequence[str],
        fallback_candidates: Sequence[str],
        settings: PlanningContext,
        prompt: PromptFn | None,
        retries: int = 2,
    ) -> None:
        self.llm = None if proposer is None else _LLM(proposer, retries=retries)
        self.menu = list(menu)
        self.fallback_candidates = list(fallback_candidates)
        self.settings = settings
        self.prompt = prompt or default_prompt

    def given(self, state: Mapping[str, Any]) -> list[str] | None:
        """Candidates the caller put in the state; ``None`` when there are none, or when they are
        the ones this node wrote for the previous decision (then it proposes afresh)."""
        raw = state.get("candidates") or []
        if not raw:
            return None
        candidates = _clean_given(raw)
        previous = state.get("proposal") or {}
        if previous.get("source") in ("llm", "actions", "fallback") and previous.get("candidates") == raw:
            return None
        return candidates or None

    def fallback(self, reason: str) -> tuple[list[str], ProposalSource, list[str]]:
        if self.menu:
            return list(self.menu), "fallback", [f"propose: {reason}; used the action menu"]
        if self.fallback_candidates:
            return list(self.fallback_candidates), "fallback", [f"propose: {reason}; used fallback_candidates"]
        return [], "none", [f"propose: {reason}; no fallback candidates, nothing to simulate"]

    def plan(self, state: Mapping[str, Any], settings: PlanningContext) -> tuple[dict[str, Any] | None, list[BaseMessage]]:
        """An update that needs no LLM call, or ``None`` and the messages to send."""
        given = self.given(state)
        if given is not None:
            return self.update(given, "state", 0, ""), []
        if self.llm is None:
            if self.menu:
                return self.update(list(self.menu), "actions", 0, ""), []
            if self.fallback_candidates:
                cands, source, notes = self.fallback("no candidates given and no proposer")
                return self.update(cands, source, 0, "", notes), []
            return self.update([], "none", 0, "", ["propose: no candidates given and no proposer"]), []
        if settings.llm_budget is not None and settings.llm_budget < 1:
            cands, source, notes = self.fallback(f"llm_budget {settings.llm_budget} leaves no call for the proposer")
            return self.update(cands, source, 0, "", notes), []
        return None, self.prompt(state, settings, self.menu)

    def parse(self, answer: str, calls: int, settings: PlanningContext) -> dict[str, Any]:
        candidates = parse_candidates(answer, limit=settings.candidates, menu=self.menu)
        if not candidates:
            snippet = " ".join(answer.split())[:80]
            cands, source, notes = self.fallback(f"no usable candidate in the model's answer {snippet!r}")
            return self.update(cands, source, calls, answer, notes)
        return self.update(candidates, "llm", calls, answer)

    def failed(self, exc: BaseException, attempts: int = 1) -> dict[str, Any]:
        """The fallback after the LLM failed ``attempts`` times (each attempt includes the client's retries)."""
        cands, source, notes = self.fallback(f"LLM call failed ({type(exc).__name__}: {str(exc)[:200]})")
        per_attempt = self.llm.client.retries + 1 if self.llm is not None else 0
        return self.update(cands, source, attempts * per_attempt, "", notes)

    @staticmethod
    def update(
        candidates: list[str], source: ProposalSource, calls: int, raw: str, notes: Sequence[str] = ()
    ) -> dict[str, Any]:
        """A new decision: its candidates, and every per-decision key reset."""
        proposal = Proposal(source=source, llm_calls=calls, raw=raw[:2000], candidates=list(candidates))
        return {
            "candidates": candidates,
            "proposal": proposal,
            "simulations": Overwrite([]),
            "fallbacks": Overwrite(list(notes)),
            "ranking": [],
            "choice": None,
            "chosen": None,
            "llm_calls": calls,
        }


def make_propose_node(
    *,
    proposer: Any = None,
    actions: Sequence[str] | None = None,
    fallback_candidates: Sequence[str] = (),
    settings: PlanningContext | None = None,
    prompt: PromptFn | None = None,
    on_error: OnError = "fallback",
    asynchronous: bool = False,
) -> Node | AsyncNode:
    """A node that starts a decision: it fixes the candidates and resets the per-decision keys.

    Candidates come from, in order: ``state["candidates"]`` when the caller gave them; the
    ``proposer`` (an LLM asked for ``settings.candidates`` actions, restricted to ``actions`` when
    a menu is given); the ``actions`` menu itself when there is no proposer.

    Args:
        proposer: a LangChain ``BaseChatModel`` or an ``LLMClient``; ``None``: no LLM.
        actions: a fixed menu of candidate actions (tool names, replies, moves).
        fallback_candidates: used when the LLM fails and there is no menu.
        settings: defaults when the run's context gives none.
        prompt: ``(state, settings, menu) -> messages``; default :func:`default_prompt`.
        on_error: ``"fallback"`` (degrade and record) or ``"raise"`` (:class:`ProposerError`, for a
            ``RetryPolicy``).
        asynchronous: return an ``async def`` node (for ``ainvoke``/``astream`` graphs).

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> node = make_propose_node(proposer=FakeListChatModel(responses=['["wait", "go"]']))
        >>> node({"observation": "a red light"}, None)["candidates"]
        ['wait', 'go']
    """
    _check_on_error(on_error)
    logic = _Proposer(proposer, actions or (), fallback_candidates, settings or PlanningContext(), prompt)
    return _propose_node(logic, on_error, asynchronous)


def _propose_node(logic: _Proposer, on_error: OnError, asynchronous: bool) -> Node | AsyncNode:
    def done(update: dict[str, Any], runtime: Any) -> dict[str, Any]:
        proposal = update["proposal"]
        _writer(runtime)({"type": "proposal", "source": proposal["source"], "candidates": update["candidates"]})
        return update

    def failed(exc: Exception) -> dict[str, Any]:
        if on_error == "raise":
            raise ProposerError(f"the proposer's LLM call failed: {exc}") from exc
        return logic.failed(exc)

    if asynchronous:

        async def apropose(state: PlanningState, runtime: Runtime[Any]) -> dict[str, Any]:
            settings = _settings(runtime, logic.settings)
            update, messages = logic.plan(state, settings)
            if update is None:
                assert logic.llm is not None
                try:
                    answer, calls = await logic.llm.acomplete(messages)
                except Exception as exc:  # noqa: BLE001 - any LLM failure degrades to the fallback
                    update = failed(exc)
                else:
                    update = logic.parse(answer, calls, settings)
            return done(update, runtime)

        return apropose

    def propose(state: PlanningState, runtime: Runtime[Any]) -> dict[str, Any]:
        settings = _settings(runtime, logic.settings)
        update, messages = logic.plan(state, settings)
        if update is None:
            assert logic.llm is not None
            try:
                answer, calls = logic.llm.complete(messages)
            except Exception as exc:  # noqa: BLE001 - any LLM failure degrades to the fallback
                update = failed(exc)
            else:
                update = logic.parse(answer, calls, settings)
        return done(update, runtime)

    return propose


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
        settings_ = _settings(runtime, default)
        candidates = list(state.get("candidates") or [])
        calls = int((state.get("proposal") or {}).get("llm_calls", 0))
        n = affordable(len(candidates), settings_, calls, simulator.llm_calls_per_candidate(settings_))
        if n == 0:
            return skip_to
        observation, goal = state.get("observation"), state.get("goal", "")
        if simulator.batched:
            batch = SimulateInput(observation=observation, goal=goal, candidates=candidates[:n], indices=list(range(n)))
            return [Send(simulate_node, batch)]
        return [
            Send(simulate_node, SimulateInput(observation=observation, goal=goal, candidates=[c], indices=[i]))
            for i, c in enumerate(candidates[:n])
        ]

    return fan_out


def _request(inp: Mapping[str, Any], settings: PlanningContext) -> SimulationRequest:
    candidates = list(inp.get("candidates") or [])
    indices = list(inp.get("indices") or range(len(candidates)))
    return SimulationRequest(inp.get("observation"), inp.get("goal") or "", candidates, indices, settings)


def _simulated(outcomes: list[Outcome], runtime: Any) -> dict[str, Any]:
    write = _writer(runtime)
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
    world_model: Any,
    *,
    actions: ActionMap | None = None,
    observe: Callable[[Any], State] | None = None,
    followup: Followup = "random",
    settings: PlanningContext | None = None,
    on_error: OnError = "fallback",
    asynchronous: bool = False,
) -> Node | AsyncNode:
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
        asynchronous: return an ``async def`` node.

    Example:
        >>> node = make_simulate_node(model, actions={"left": torch.tensor([1.0, 0.0]), "right": torch.tensor([0.0, 1.0])})
        >>> node({"observation": [0.0, 0.0, 0.1, 0.0], "candidates": ["left", "right"]}, None)["simulations"]
    """
    _check_on_error(on_error)
    simulator = as_simulator(world_model, actions=actions, observe=observe, followup=followup)
    default = settings or PlanningContext()

    if asynchronous:

        async def asimulate(inp: SimulateInput, runtime: Runtime[Any]) -> dict[str, Any]:
            try:
                outcomes = await simulator.asimulate(_request(inp, _settings(runtime, default)))
            except Exception as exc:
                if on_error == "raise":
                    raise SimulationError(f"simulation failed: {exc}") from exc
                outcomes = failed_simulations(inp, exc, simulator.name)
            return _simulated(outcomes, runtime)

        return asimulate

    def simulate(inp: SimulateInput, runtime: Runtime[Any]) -> dict[str, Any]:
        try:
            outcomes = simulator.simulate(_request(inp, _settings(runtime, default)))
        except Exception as exc:
            if on_error == "raise":
                raise SimulationError(f"simulation failed: {exc}") from exc
            outcomes = failed_simulations(inp, exc, simulator.name)
        return _simulated(outcomes, runtime)

    return simulate


# ----------------------------------------------------------------------------------------------
# Score and choose


def rank_outcomes(
    candidates: Sequence[str], simulations: Sequence[Outcome], settings: PlanningContext
) -> tuple[list[Ranked], list[str]]:
    """Score every simulated candidate with ``settings.scorer()`` over its sample returns; best
    first, ties to the earlier candidate. Returns the ranking and notes on left-out candidates.

    Raises:
        ValueError: ``score="disagreement_penalized"`` with a world model that reports no disagreement.
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
        scores = scorer(returns_t, dis_t).tolist()
    else:
        for _, r, d in usable:
            dis_t = None if d is None else torch.full_like(r[None], d)
            scores.append(float(scorer(r[None], dis_t)[0]))
    ranked = [Ranked(index=i, candidate=candidates[i], score=s) for (i, _, _), s in zip(usable, scores)]
    ranked.sort(key=lambda r: (-r["score"], r["index"]))
    return ranked, notes


def make_score_node(*, settings: PlanningContext | None = None) -> Node:
    """A node that scores the simulations (mean, lower quantile or disagreement-penalized sample
    return, per ``score`` in the run's settings) into ``ranking`` and totals ``llm_calls``.

    Example:
        >>> make_score_node()({"candidates": ["a"], "simulations": [{"candidate": "a", "index": 0, "returns": [1.0]}]}, None)
        {'ranking': [{'index': 0, 'candidate': 'a', 'score': 1.0}], 'llm_calls': 0}
    """
    default = settings or PlanningContext()

    def score(state: PlanningState, runtime: Runtime[Any]) -> dict[str, Any]:
        settings_ = _settings(runtime, default)
        simulations = state.get("simulations") or []
        ranked, notes = rank_outcomes(list(state.get("candidates") or []), simulations, settings_)
        calls = int((state.get("proposal") or {}).get("llm_calls", 0))
        calls += sum(int(o.get("llm_calls") or 0) for o in simulations)
        update: dict[str, Any] = {"ranking": ranked, "llm_calls": calls}
        if notes:
            update["fallbacks"] = notes
        return update

    return score


def choose_from(ranking: Sequence[Ranked], candidates: Sequence[str]) -> tuple[Choice, list[str]]:
    """The best-ranked candidate; else the first candidate; else none (with notes on fallbacks)."""
    if ranking:
        best = ranking[0]
        return Choice(candidate=best["candidate"], index=best["index"], score=best["score"], reason="best_score"), []
    if candidates:
        choice = Choice(candidate=candidates[0], index=0, score=None, reason="fallback_first")
        return choice, ["choose: no candidate could be scored; took the first candidate"]
    return Choice(candidate=None, index=None, score=None, reason="no_candidates"), ["choose: no candidates to choose from"]


def make_choose_node() -> Node:
    """A node that takes the best-ranked candidate into ``choice``/``chosen``.

    Fallbacks (recorded in ``fallbacks``): no candidate could be scored -> the first candidate
    (``reason="fallback_first"``); no candidates at all -> ``chosen=None``
    (``reason="no_candidates"``). Streams a ``{"type": "choice", ...}`` custom event.

    Example:
        >>> make_choose_node()({"candidates": ["a", "b"], "ranking": [{"index": 1, "candidate": "b", "score": 2.0}]}, None)["chosen"]
        'b'
    """

    def choose(state: PlanningState, runtime: Runtime[Any]) -> dict[str, Any]:
        choice, notes = choose_from(state.get("ranking") or [], list(state.get("candidates") or []))
        _writer(runtime)({"type": "choice", **choice})
        update: dict[str, Any] = {"choice": choice, "chosen": choice["candidate"]}
        if notes:
            update["fallbacks"] = notes
        return update

    return choose
