"""The propose node: fix a decision's candidates (given, proposed by an LLM, or a menu).

The proposer is any LangChain chat model (wrapped in :class:`~agentwm.text.client.LLMClient`
for caching and call counting) or an ``LLMClient``. Its answer is read tolerantly
(:func:`parse_candidates`); an answer with no usable candidate, or a failed call, falls back to
the action menu, else to ``fallback_candidates``, else to no candidates, and the fallback is
recorded in ``fallbacks``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from agentwm.envs.text import UnknownActionError, match_action
from agentwm.graph._common import (
    GraphNode,
    OnError,
    ProposerError,
    check_on_error,
    dual_node,
    settings_for,
    writer_for,
)
from agentwm.graph.context import PlanningContext
from agentwm.graph.state import PlanningState, Proposal, ProposalSource
from agentwm.text import parsing
from agentwm.text.client import LLMClient

ChatModel = BaseChatModel | LLMClient
"""A proposer or reaction model: any LangChain chat model, or an :class:`~agentwm.text.client.LLMClient`."""

PromptFn = Callable[[Mapping[str, Any], PlanningContext, Sequence[str]], list[BaseMessage]]
"""``(state, settings, menu) -> messages`` asking a chat model for candidate actions."""

_MAX_CANDIDATE_CHARS = 500


def default_prompt(state: Mapping[str, Any], settings: PlanningContext, menu: Sequence[str]) -> list[BaseMessage]:
    """Ask for ``settings.candidates`` distinct next actions as a JSON list of strings (or a
    numbered list, which small local models write more reliably; both parse)."""
    k = settings.candidates
    lines = [f"Situation: {state.get('observation', '')}"]
    if state.get("goal"):
        lines.append(f"Goal: {state['goal']}")
    if menu:
        lines.append("Allowed actions: " + "; ".join(menu))
    lines.append(f"Propose {k} distinct candidate next action{'s' if k > 1 else ''}.")
    system = (
        "You propose candidate next actions for an agent. Each action is one short imperative sentence."
        ' Answer with the actions only: a JSON list of strings, e.g. ["open the door", "ask for help"],'
        " or a numbered list with one action per line."
    )
    return [SystemMessage(content=system), HumanMessage(content="\n".join(lines))]


class _LLM:
    """A chat model or an :class:`~agentwm.text.client.LLMClient`, seen as text completion that
    reports how many model calls it made (cache hits cost none).

    A bare ``BaseChatModel`` is wrapped in an ``LLMClient`` with ``retries`` (the planning graph
    passes 0: its ``RetryPolicy`` retries instead, visibly, at the node); an ``LLMClient`` is used
    with its own settings.
    """

    def __init__(self, llm: ChatModel, *, retries: int = 2) -> None:
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
    else the longest entry that appears in it as a whole phrase, or else the one entry holding all
    its words in order, verb first (:func:`agentwm.envs.text.match_action`: "take the passkey" names
    "take passkey from bar"); ``""`` when none does or the match is ambiguous. Deliberately strict
    (no "option 2", no single letters): junk must not turn into a valid action."""
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
    if best:
        return best
    try:
        return match_action(candidate, menu)
    except UnknownActionError:
        return ""


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


class ProposeLogic:
    """The propose logic shared by the propose node, the one-node planner and the graph's error handler."""

    def __init__(
        self,
        proposer: ChatModel | None,
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

    def menu_for(self, state: Mapping[str, Any]) -> list[str]:
        """This decision's menu: ``state["admissible"]`` (the environment's, per step) or the graph's ``actions``."""
        raw = state.get("admissible")
        if not raw:
            return list(self.menu)
        if not isinstance(raw, (list, tuple)) or not all(isinstance(a, str) for a in raw):
            raise TypeError("state['admissible'] must be a list of strings (this step's action menu)")
        return [a for a in dict.fromkeys(raw) if a.strip()]

    def given(self, state: Mapping[str, Any]) -> tuple[list[str] | None, list[str]]:
        """Candidates the caller put in the state (matched to this step's menu, with notes on those
        that name no entry); ``None`` when there are none, or when they are the ones this node
        wrote for the previous decision (then it proposes afresh)."""
        raw = state.get("candidates") or []
        if not raw:
            return None, []
        candidates = _clean_given(raw)
        previous = state.get("proposal") or {}
        if previous.get("source") in ("llm", "actions", "fallback") and previous.get("candidates") == raw:
            return None, []
        notes: list[str] = []
        if state.get("admissible"):
            menu, matched = self.menu_for(state), []
            for c in candidates:
                entry = _match_menu(c, menu)
                if entry:
                    matched.append(entry)
                else:
                    notes.append(f"propose: candidate {c[:60]!r} names no entry of state['admissible']; left out")
            candidates = list(dict.fromkeys(matched))
        return candidates or None, notes

    def fallback(self, reason: str, menu: Sequence[str] | None = None) -> tuple[list[str], ProposalSource, list[str]]:
        menu = self.menu if menu is None else menu
        if menu:
            return list(menu), "fallback", [f"propose: {reason}; used the action menu"]
        if self.fallback_candidates:
            return list(self.fallback_candidates), "fallback", [f"propose: {reason}; used fallback_candidates"]
        return [], "none", [f"propose: {reason}; no fallback candidates, nothing to simulate"]

    def plan(self, state: Mapping[str, Any], settings: PlanningContext) -> tuple[dict[str, Any] | None, list[BaseMessage]]:
        """An update that needs no LLM call, or ``None`` and the messages to send."""
        given, notes = self.given(state)
        if given is not None:
            return self.update(given, "state", 0, "", notes), []
        menu = self.menu_for(state)
        if self.llm is None:
            if menu:
                return self.update(menu, "actions", 0, "", notes), []
            if self.fallback_candidates:
                cands, source, notes = self.fallback("no candidates given and no proposer")
                return self.update(cands, source, 0, "", notes), []
            return self.update([], "none", 0, "", ["propose: no candidates given and no proposer"]), []
        if settings.llm_budget is not None and settings.llm_budget < 1:
            cands, source, more = self.fallback(f"llm_budget {settings.llm_budget} leaves no call for the proposer", menu)
            return self.update(cands, source, 0, "", [*notes, *more]), []
        return None, self.prompt(state, settings, menu)

    def parse(
        self, answer: str, calls: int, settings: PlanningContext, menu: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The update for the proposer's ``answer``, its candidates matched to ``menu`` (default: the graph's)."""
        menu = self.menu if menu is None else menu
        candidates = parse_candidates(answer, limit=settings.candidates, menu=menu)
        if not candidates:
            snippet = " ".join(answer.split())[:80]
            cands, source, notes = self.fallback(f"no usable candidate in the model's answer {snippet!r}", menu)
            return self.update(cands, source, calls, answer, notes)
        return self.update(candidates, "llm", calls, answer)

    def failed(self, exc: BaseException, attempts: int = 1, menu: Sequence[str] | None = None) -> dict[str, Any]:
        """The fallback after the LLM failed ``attempts`` times (each attempt includes the client's retries)."""
        cands, source, notes = self.fallback(f"LLM call failed ({type(exc).__name__}: {str(exc)[:200]})", menu)
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
    proposer: ChatModel | None = None,
    actions: Sequence[str] | None = None,
    fallback_candidates: Sequence[str] = (),
    settings: PlanningContext | None = None,
    prompt: PromptFn | None = None,
    on_error: OnError = "fallback",
    asynchronous: bool | None = None,
) -> GraphNode:
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
        asynchronous: deprecated (every node serves ``invoke`` and ``ainvoke``).

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> node = make_propose_node(proposer=FakeListChatModel(responses=['["wait", "go"]']))
        >>> node({"observation": "a red light"}, None)["candidates"]
        ['wait', 'go']
    """
    check_on_error(on_error)
    logic = ProposeLogic(proposer, actions or (), fallback_candidates, settings or PlanningContext(), prompt)
    return propose_node_from(logic, on_error, asynchronous)


def propose_node_from(logic: ProposeLogic, on_error: OnError, asynchronous: bool | None = None) -> GraphNode:
    """The propose node over ``logic`` (the planning graph builds its error handler on the same logic)."""

    def done(update: dict[str, Any], runtime: Any) -> dict[str, Any]:
        proposal = update["proposal"]
        writer_for(runtime)({"type": "proposal", "source": proposal["source"], "candidates": update["candidates"]})
        return update

    def failed(exc: Exception, state: PlanningState) -> dict[str, Any]:
        if on_error == "raise":
            raise ProposerError(f"the proposer's LLM call failed: {exc}") from exc
        return logic.failed(exc, menu=logic.menu_for(state))

    async def apropose(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        settings = settings_for(runtime, logic.settings)
        update, messages = logic.plan(state, settings)
        if update is None:
            assert logic.llm is not None
            try:
                answer, calls = await logic.llm.acomplete(messages)
            except Exception as exc:  # noqa: BLE001 - any LLM failure degrades to the fallback
                update = failed(exc, state)
            else:
                update = logic.parse(answer, calls, settings, logic.menu_for(state))
        return done(update, runtime)

    def propose(state: PlanningState, runtime: Runtime[Any] | None) -> dict[str, Any]:
        settings = settings_for(runtime, logic.settings)
        update, messages = logic.plan(state, settings)
        if update is None:
            assert logic.llm is not None
            try:
                answer, calls = logic.llm.complete(messages)
            except Exception as exc:  # noqa: BLE001 - any LLM failure degrades to the fallback
                update = failed(exc, state)
            else:
                update = logic.parse(answer, calls, settings, logic.menu_for(state))
        return done(update, runtime)

    return dual_node(propose, apropose, name="propose", asynchronous=asynchronous)
