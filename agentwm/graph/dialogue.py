"""Dialogue nodes and graph: take K candidate replies, imagine where each leads, reply with the best.

::

    START -> propose -> reply -> END

``propose`` keeps the candidates given in the state, or asks a chat model for K of them (falling
back to ``fallback_candidates`` when the call fails or nothing usable comes back); ``reply`` scores
them with the dialogue world model (discounted imagined return of engagement, topic relevance and
predicted rating over ``horizon`` imagined exchanges), optionally blended with an LLM's prediction
of the user's reaction, and appends the best one to ``messages`` as an ``AIMessage``.

State is plain data (messages, texts, numbers), so any checkpointer (``SqliteSaver``) stores a
thread; the world model and chat models live in the node closures; per-run settings come from the
runtime context (:class:`DialogueContext`).
"""

from __future__ import annotations

import asyncio
import operator
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import torch
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from pydantic import Field
from typing_extensions import TypedDict

from agentwm.core.returns import discounted_return
from agentwm.graph._common import GraphNode
from agentwm.graph.checkpoint import PlanningStateGraph
from agentwm.graph.context import PlanningContext, resolve_settings
from agentwm.graph.nodes import choose_from
from agentwm.graph.propose import ChatModel
from agentwm.graph.state import Choice, Proposal, Ranked
from agentwm.planning.outcome_replies import OutcomeScorer
from agentwm.planning.replies import DialogueScorer, ReplyModel, score_replies, scorer_of
from agentwm.text.parsing import extract_list, extract_score
from agentwm.worldmodels.dialogue import MAX_TEXT_CHARS

__all__ = [
    "DEFAULT_FALLBACK_REPLIES",
    "DialogueContext",
    "DialogueState",
    "build_dialogue_graph",
    "make_dialogue_node",
    "make_reply_proposer",
]

PROPOSE_REPLIES = "propose"
REPLY = "reply"
DEFAULT_FALLBACK_REPLIES = (
    "That's interesting! Tell me more.",
    "How did that make you feel?",
    "What do you usually like to do for fun?",
)
"""Candidates used when the chat model fails and the state gave none."""


class DialogueContext(PlanningContext):
    """Per-run settings of the dialogue graph (``graph.invoke(..., context={...})``).

    Attributes:
        horizon: imagined exchanges (our turn + the user's reply) per candidate; outcome models:
            imagined turns, the candidate included.
        gamma: discount per exchange (Chit-Chat model; an outcome model ranks by the undiscounted
            expected final outcome and ignores it).
        candidates: how many replies to ask the chat model for (given candidates are all scored).
        samples: futures per candidate; ``None``: 1 (the most likely future) for the Chit-Chat
            model, 8 sampled futures for an outcome model.
        seed: seed of the sampled futures.
        reaction_weight: weight in [0, 1] of the LLM-predicted user reaction in the blended score
            (0: the world model alone; needs a ``reaction_model``).
        context_turns: most recent turns the world model reads.
    """

    horizon: int = Field(default=3, ge=1, le=16, description="imagined exchanges per candidate")
    gamma: float = Field(default=0.9, ge=0.0, le=1.0, description="discount per exchange (Chit-Chat model)")
    samples: int | None = Field(default=None, ge=1, le=4096,  # type: ignore[assignment]
                                description="futures per candidate (None: 1 Chit-Chat, 8 outcome models)")
    reaction_weight: float = Field(default=0.0, ge=0.0, le=1.0, description="weight of the LLM-predicted reaction")
    context_turns: int = Field(default=12, ge=1, le=512, description="recent turns the world model reads")


class DialogueState(TypedDict, total=False):
    """State of the dialogue graph (extend it by subclassing).

    Attributes:
        messages: the conversation (LangChain messages, merged by ``add_messages``).
        candidates: candidate replies; given in the input they are scored as they are, else proposed.
            Cleared after each reply so the next turn starts fresh.
        proposal: where the candidates came from and what it cost.
        private_context: what the agent privately knows (outcome models: the context fields the
            model was trained with, e.g. ``{"values": [4, 1, 4]}``); absent for the Chit-Chat model.
        scores: per candidate (input order): ``reply``, ``score`` (blended), ``return`` (world
            model), ``components`` (Chit-Chat: the discounted sums of the reward parts; outcome
            models: ``ends_within_horizon``, ``after_horizon``, ``p_end``), ``p_reply`` (``None``
            for outcome models), ``reaction`` (0-1 or ``None``) and ``imagined``
            (``[{"ours", "reply"}]``; outcome models ``[{"speaker", "text"}]``).
        ranking: candidates by score, best first.
        choice: the decision; ``chosen``: its text.
        llm_calls: chat-model calls this turn made.
        fallbacks: every fallback taken, in words.
    """

    messages: Annotated[list[AnyMessage], add_messages]
    candidates: list[str]
    private_context: dict[str, Any]
    proposal: Proposal
    scores: list[dict[str, Any]]
    ranking: list[Ranked]
    choice: Choice | None
    chosen: str | None
    llm_calls: int
    fallbacks: Annotated[list[str], operator.add]


# ----------------------------------------------------------------------------------------------
# Helpers


def _text(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text parts
        return " ".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                        if isinstance(b, (str, dict))).strip()
    return str(content)


def conversation_turns(messages: Sequence[Any], limit: int) -> list[str]:
    """The last ``limit`` turns of a conversation: human and AI messages, consecutive messages of
    one side joined into one turn (as in the training data); system and tool messages skipped.

    Raises:
        ValueError: no human or AI message with text.
    """
    turns: list[str] = []
    sides: list[str] = []
    for m in messages:
        if not isinstance(m, (HumanMessage, AIMessage)):
            continue
        text = " ".join(_text(m).split())[:MAX_TEXT_CHARS]
        if not text:
            continue
        side = "ai" if isinstance(m, AIMessage) else "human"
        if sides and sides[-1] == side:
            turns[-1] = (turns[-1] + " " + text)[:MAX_TEXT_CHARS]
        else:
            turns.append(text)
            sides.append(side)
    if not turns:
        raise ValueError("the dialogue graph needs at least one human or AI message with text in state['messages']")
    return turns[-limit:]


def _transcript(turns: Sequence[str]) -> str:
    # the last turn is the user's; label backwards so the roles alternate correctly
    n = len(turns)
    return "\n".join(f"{'User' if (n - 1 - i) % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def _clean_candidates(items: Sequence[Any], limit: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            continue
        text = " ".join(item.split())[:MAX_TEXT_CHARS]
        if text and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
        if len(out) >= limit:
            break
    return out


def _settings(runtime: Any, default: DialogueContext) -> DialogueContext:
    settings = resolve_settings(getattr(runtime, "context", None), default)
    return cast(DialogueContext, settings)


def _client(model: ChatModel | None) -> Any:
    if model is None:
        return None
    from agentwm.text.client import LLMClient

    if isinstance(model, LLMClient):
        return model
    if isinstance(model, BaseChatModel):
        return LLMClient(model)
    raise TypeError(f"expected a LangChain BaseChatModel or an LLMClient, got {type(model).__name__}")


# ----------------------------------------------------------------------------------------------
# Nodes


def make_reply_proposer(
    *,
    chat_model: ChatModel | None = None,
    fallback_candidates: Sequence[str] = DEFAULT_FALLBACK_REPLIES,
    settings: DialogueContext | None = None,
) -> GraphNode:
    """A node that fixes this turn's candidate replies.

    Candidates given in ``state["candidates"]`` are kept; otherwise ``chat_model`` is asked for
    ``candidates`` replies (one call, a numbered list). A failed call (after the client's retries)
    or an answer with nothing usable falls back to ``fallback_candidates`` (recorded in
    ``fallbacks``).

    Args:
        chat_model: a LangChain chat model or ``LLMClient``; ``None``: candidates must be given.
        fallback_candidates: replies used when proposing fails.
        settings: defaults of the per-run settings.
    """
    client = _client(chat_model)
    default = settings or DialogueContext()
    fallback = _clean_candidates(list(fallback_candidates), 64)

    def propose(state: dict[str, Any], runtime: Runtime[Any] | None) -> dict[str, Any]:
        s = _settings(runtime, default)
        given = state.get("candidates") or []
        if given:
            cands = _clean_candidates(given, 1024)
            if len(cands) != len(given):
                raise ValueError("state['candidates'] must be non-empty strings")
            return {"candidates": cands, "proposal": Proposal(source="state", llm_calls=0, candidates=cands),
                    "llm_calls": 0}
        turns = conversation_turns(state.get("messages") or [], s.context_turns)
        if client is None:
            if not fallback:
                raise ValueError("no candidates in the state, no chat model and no fallback candidates")
            return {"candidates": fallback, "llm_calls": 0,
                    "proposal": Proposal(source="fallback", llm_calls=0, candidates=fallback),
                    "fallbacks": ["propose: no chat model and no candidates given; used the fallback replies"]}
        prompt: list[BaseMessage] = [
            SystemMessage(f"You are a warm, curious conversation partner. Write {s.candidates} different short replies "
                          "to the user's last message, one per line, numbered 1., 2., ..."),
            HumanMessage(_transcript(turns) + "\n\nCandidate replies:"),
        ]
        raw, note = "", ""
        try:
            raw = client.complete(prompt)
            cands = _clean_candidates(extract_list(raw, limit=s.candidates * 2), s.candidates)
            if not cands:
                note = "propose: the chat model's answer held no candidate reply; used the fallback replies"
        except Exception as exc:  # noqa: BLE001 - the client already retried; any failure degrades to the fallback
            cands, note = [], f"propose: chat model failed ({type(exc).__name__}: {exc}); used the fallback replies"
        if not cands:
            return {"candidates": fallback, "llm_calls": 1, "fallbacks": [note],
                    "proposal": Proposal(source="fallback", llm_calls=1, raw=raw, candidates=fallback)}
        return {"candidates": cands, "llm_calls": 1,
                "proposal": Proposal(source="llm", llm_calls=1, raw=raw, candidates=cands)}

    return _both(propose, PROPOSE_REPLIES)


def _reaction_prompt(turns: Sequence[str], candidate: str) -> list[BaseMessage]:
    return [
        SystemMessage("You predict how a user will react in a casual chat. Answer with 'Score: N' where N is 0-10: "
                      "10 = delighted and eager to keep talking, 0 = annoyed or leaving."),
        HumanMessage(f"{_transcript(turns)}\nAssistant (candidate): {candidate}\n\nHow will the user react?"),
    ]


def make_dialogue_node(
    *,
    world_model: ReplyModel | None = None,
    reaction_model: ChatModel | None = None,
    settings: DialogueContext | None = None,
) -> GraphNode:
    """A node that scores ``state["candidates"]`` and replies with the best one.

    Each candidate is imagined ``horizon`` exchanges ahead by the dialogue world model and scored by
    its discounted imagined return. With a ``reaction_model`` and ``reaction_weight > 0`` the score
    blends in the LLM's predicted user reaction r in [0, 1], put on the scale of a return as the
    return of a constant reward r (``r * sum_t gamma^t``):
    ``score = (1 - w) * return + w * r * sum_t gamma^t``; with an outcome model the return is the
    expected final outcome and r is put on the outcome's scale instead (1 for a yes/no outcome,
    else the training mean + 2 std). A failed reaction call leaves that candidate on the world
    model's score alone (recorded in ``fallbacks``).

    Args:
        world_model: a Chit-Chat :class:`DialogueWorldModel`, an outcome model
            (:class:`~agentwm.worldmodels.dialogue_outcome.DialogueOutcomeModel`), a scorer of
            either, or a checkpoint folder (see :func:`~agentwm.planning.replies.scorer_of`);
            ``None`` loads the shipped Chit-Chat checkpoint on the first call.
        reaction_model: a LangChain chat model or ``LLMClient`` that predicts the user's reaction.
        settings: defaults of the per-run settings.

    Returns:
        ``node(state, runtime) -> update`` with ``messages`` (the chosen reply as an ``AIMessage``),
        ``scores``, ``ranking``, ``choice``, ``chosen`` and ``candidates`` reset to ``[]``.

    Example:
        >>> from langgraph.graph import StateGraph, START, END
        >>> builder = StateGraph(DialogueState, context_schema=DialogueContext)
        >>> builder.add_node("reply", make_dialogue_node(world_model=DialogueWorldModel.load()))
        >>> _ = builder.add_edge(START, "reply").add_edge("reply", END)
        >>> out = builder.compile().invoke({"messages": [("user", "I just got a puppy!")],
        ...                                 "candidates": ["Congrats! What breed?", "ok"]})
        >>> out["chosen"]  # doctest: +SKIP
        'Congrats! What breed?'
    """
    client = _client(reaction_model)
    default = settings or DialogueContext()
    holder: dict[str, DialogueScorer | OutcomeScorer] = {}
    if isinstance(world_model, (str, Path)) and not Path(world_model).is_dir():
        raise TypeError(f"world_model: {world_model!r} is neither a loaded model nor a checkpoint folder")
    if world_model is not None:
        try:
            holder["scorer"] = scorer_of(world_model)  # before the graph runs
        except TypeError as err:
            raise TypeError(f"world_model: {err}") from None

    def scorer() -> DialogueScorer | OutcomeScorer:
        if "scorer" not in holder:
            holder["scorer"] = scorer_of(None)
        return holder["scorer"]

    def reply(state: dict[str, Any], runtime: Runtime[Any] | None) -> dict[str, Any]:
        s = _settings(runtime, default)
        candidates = list(state.get("candidates") or [])
        if not candidates:
            raise ValueError("the dialogue node needs state['candidates'] (add a proposer node before it)")
        turns = conversation_turns(state.get("messages") or [], s.context_turns)
        wm = scorer()
        if isinstance(wm, OutcomeScorer):
            results: list[Any] = score_replies(turns, candidates, s.horizon, model=wm, samples=s.samples,
                                               seed=s.seed or 0, private_context=state.get("private_context"))
        else:
            results = score_replies(turns, candidates, s.horizon, s.gamma, model=wm, samples=s.samples, seed=s.seed or 0)
        notes: list[str] = []
        calls = 0
        reactions: list[float | None] = [None] * len(candidates)
        if client is not None and s.reaction_weight > 0:
            for i, cand in enumerate(candidates):
                calls += 1
                try:
                    value = extract_score(client.complete(_reaction_prompt(turns, cand)), scale=10)
                except Exception as exc:  # noqa: BLE001 - retried by the client; degrade to the world model score
                    notes.append(f"reaction[{i}]: chat model failed ({type(exc).__name__}); world model score only")
                    continue
                if value is None:
                    notes.append(f"reaction[{i}]: unreadable answer; world model score only")
                else:
                    reactions[i] = min(1.0, max(0.0, float(value)))
        scale = _reaction_scale(wm, s)
        w = s.reaction_weight
        scores: list[dict[str, Any]] = []
        for r, reaction in zip(results, reactions):
            blended = r.score if reaction is None else (1 - w) * r.score + w * reaction * scale
            scores.append({"reply": r.reply, "score": blended, "return": r.score, "reaction": reaction, **_record(r)})
        order = sorted(range(len(scores)), key=lambda i: -scores[i]["score"])
        ranking = [Ranked(index=i, candidate=scores[i]["reply"], score=scores[i]["score"]) for i in order]
        choice, _ = choose_from(ranking, candidates)  # the planning graph's choice rule
        chosen = str(choice["candidate"])
        update: dict[str, Any] = {
            "messages": [AIMessage(content=chosen)],
            "scores": scores,
            "ranking": ranking,
            "choice": choice,
            "chosen": chosen,
            "candidates": [],
            "llm_calls": int(state.get("llm_calls") or 0) + calls,
        }
        if notes:
            update["fallbacks"] = notes
        return update

    return _both(reply, REPLY)


def _reaction_scale(wm: DialogueScorer | OutcomeScorer, s: DialogueContext) -> float:
    """What a reaction of 1 is worth on the scale of the world model's score."""
    if isinstance(wm, OutcomeScorer):
        cfg = wm.model.config
        i = cfg.outcomes.index(cfg.target)
        return 1.0 if cfg.binary[i] else cfg.outcome_mean[i] + 2 * cfg.outcome_std[i]
    ones = torch.ones(s.horizon, 1)
    return float(discounted_return(ones, ones, s.gamma)[0])  # return of a constant reward of 1


def _record(r: Any) -> dict[str, Any]:
    """The plain-data parts of one scored reply, whichever the model kind."""
    if hasattr(r, "components"):  # Chit-Chat ReplyScore
        return {"components": r.components, "p_reply": r.p_reply, "imagined": [e.model_dump() for e in r.imagined]}
    return {"components": r.parts, "p_reply": None, "imagined": [{"speaker": a, "text": b} for a, b in r.imagined]}


# ----------------------------------------------------------------------------------------------
# Graph


def build_dialogue_graph(
    *,
    world_model: ReplyModel | None = None,
    chat_model: ChatModel | None = None,
    reaction_model: ChatModel | None = None,
    fallback_candidates: Sequence[str] = DEFAULT_FALLBACK_REPLIES,
    settings: DialogueContext | None = None,
    asynchronous: bool | None = None,
    state_schema: type[Any] = DialogueState,
    context_schema: type[DialogueContext] = DialogueContext,
) -> StateGraph[Any, Any, Any, Any]:
    """Build a graph that answers with the candidate reply leading to the best imagined conversation.

    Args:
        world_model: the dialogue world model, any kind :func:`make_dialogue_node` takes (``None``: the
            shipped Chit-Chat checkpoint, loaded on first use).
        chat_model: proposes candidate replies when the input gives none (any LangChain chat model).
        reaction_model: predicts the user's reaction to each candidate, blended in with
            ``reaction_weight`` (default: none; pass ``chat_model`` again to reuse it).
        fallback_candidates: replies used when proposing fails or no chat model is given.
        settings: defaults of the per-run settings (an instance of ``context_schema``).
        asynchronous: deprecated and ignored: the nodes serve ``invoke`` and ``ainvoke`` (async
            callers run the work in a worker thread).
        state_schema: :class:`DialogueState` or a subclass.
        context_schema: :class:`DialogueContext` or a subclass.

    Returns:
        An uncompiled ``StateGraph``: ``START -> propose -> reply -> END``.

    Raises:
        TypeError: an unusable model, settings or schema.

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from langchain_core.messages import AIMessage
        >>> llm = GenericFakeChatModel(messages=iter([AIMessage("1. Congrats! What breed?\\n2. ok")]))
        >>> graph = build_dialogue_graph(chat_model=llm).compile()
        >>> out = graph.invoke({"messages": [("user", "I just got a puppy!")]}, context={"horizon": 3})
        >>> out["messages"][-1].content in ("Congrats! What breed?", "ok")
        True
    """
    if not (isinstance(context_schema, type) and issubclass(context_schema, DialogueContext)):
        raise TypeError(f"context_schema must be DialogueContext or a subclass, got {context_schema!r}")
    defaults = settings if settings is not None else context_schema()
    if not isinstance(defaults, context_schema):
        raise TypeError(f"settings must be a {context_schema.__name__}, got {type(defaults).__name__}")
    propose = make_reply_proposer(chat_model=chat_model, fallback_candidates=fallback_candidates, settings=defaults)
    reply = make_dialogue_node(world_model=world_model, reaction_model=reaction_model, settings=defaults)
    builder: StateGraph[Any, Any, Any, Any] = PlanningStateGraph(state_schema, context_schema=context_schema)
    if asynchronous is not None:
        warnings.warn(
            "build_dialogue_graph(asynchronous=...) is deprecated and ignored: the graph's nodes serve both"
            " invoke and ainvoke", DeprecationWarning, stacklevel=2,
        )
    builder.add_node(PROPOSE_REPLIES, propose)
    builder.add_node(REPLY, reply)
    builder.add_edge(START, PROPOSE_REPLIES)
    builder.add_edge(PROPOSE_REPLIES, REPLY)
    builder.add_edge(REPLY, END)
    return builder


def _both(node: Callable[[Any, Runtime[Any] | None], dict[str, Any]], name: str) -> GraphNode:
    """A node whose async body runs the sync one in a worker thread (the model is torch, not I/O)."""

    async def run(state: dict[str, Any], runtime: Runtime[Any] | None) -> dict[str, Any]:
        return await asyncio.to_thread(node, state, runtime)

    return GraphNode(node, run, name=name)
