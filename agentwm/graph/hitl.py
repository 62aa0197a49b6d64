"""Human in the loop: pause a planning graph before ``choose``, show the ranking, let a person
approve the best candidate or pick another.

::

    ... -> score -> review --approve--> choose -> END
                          \\--pick-----------------> END

``review`` calls LangGraph's ``interrupt`` with the ranking; the run resumes with
``Command(resume=answer)`` on the same thread (a checkpointer is required, as for any interrupt).
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from agentwm.graph._common import CHOOSE, SCORE, GraphNode
from agentwm.graph.state import Choice, PlanningState, Ranked

__all__ = ["REVIEW", "Review", "add_review_before_choose", "make_review_node"]

REVIEW = "review"


class Review(TypedDict, total=False):
    """What the interrupt shows (``interrupt.value``): the decision so far, best candidate first;
    ``error`` says why the previous answer was refused (the review then asks again)."""

    type: str
    observation: Any
    goal: str
    candidates: list[str]
    ranking: list[Ranked]
    proposed: str | None
    error: str


def _decide(state: PlanningState, answer: Any) -> Command[str] | str:
    """The route for ``answer`` (``None``/``True``/``"approve"`` keeps the best-ranked candidate; a
    candidate's text or index, or ``{"choose": ...}``, picks that one), or what is wrong with it."""
    if answer is None or answer is True or answer == "approve":
        return Command(goto=CHOOSE)
    candidates = list(state.get("candidates") or [])
    if isinstance(answer, dict):
        answer = answer.get("choose", answer.get("candidate"))
    if isinstance(answer, bool) or not isinstance(answer, (str, int)):
        return f"answer 'approve', a candidate or its index, not {answer!r}"
    index = answer if isinstance(answer, int) else (candidates.index(answer) if answer in candidates else -1)
    if not 0 <= index < len(candidates):
        return f"{answer!r} is not one of the candidates {candidates}"
    score = next((r["score"] for r in state.get("ranking") or [] if r["index"] == index), None)
    choice = Choice(candidate=candidates[index], index=index, score=score, reason="human")
    return Command(update={"choice": choice, "chosen": candidates[index]}, goto=END)


def make_review_node() -> GraphNode:
    """A node that interrupts with a :class:`Review` and routes on the answer: ``"approve"`` (or
    ``None``) goes on to ``choose``; a candidate's text or index is chosen with reason ``"human"``;
    anything else is refused and the review asks again with an ``error``.

    Example:
        >>> builder.add_node(REVIEW, make_review_node(), destinations=(CHOOSE, END))  # doctest: +SKIP
    """

    def review(state: PlanningState, runtime: Runtime[Any] | None) -> Any:
        ranking = list(state.get("ranking") or [])
        shown = Review(
            type="review",
            observation=state.get("observation"),
            goal=str(state.get("goal") or ""),
            candidates=list(state.get("candidates") or []),
            ranking=ranking,
            proposed=ranking[0]["candidate"] if ranking else None,
        )
        decision = _decide(state, interrupt(shown))
        while isinstance(decision, str):  # an unusable answer: ask again, saying why
            decision = _decide(state, interrupt({**shown, "error": decision}))
        return decision

    async def areview(state: PlanningState, runtime: Runtime[Any] | None) -> Any:
        return review(state, runtime)

    return GraphNode(review, areview, name=REVIEW)


def add_review_before_choose(builder: StateGraph[Any, Any, Any, Any]) -> StateGraph[Any, Any, Any, Any]:
    """Insert a :func:`make_review_node` between ``score`` and ``choose`` of a planning graph from
    :func:`~agentwm.graph.build_planning_graph` (uncompiled); returns the same builder.

    Raises:
        ValueError: ``builder`` has no ``score -> choose`` edge (not a planning graph).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from langgraph.types import Command
        >>> app = add_review_before_choose(build_planning_graph(...)).compile(checkpointer=InMemorySaver())  # doctest: +SKIP
        >>> app.invoke({"observation": "..."}, cfg)["__interrupt__"][0].value["ranking"]  # doctest: +SKIP
        >>> app.invoke(Command(resume="approve"), cfg)["chosen"]  # doctest: +SKIP
    """
    if (SCORE, CHOOSE) not in builder.edges:
        raise ValueError("add_review_before_choose needs a planning graph with a score -> choose edge")
    builder.edges.discard((SCORE, CHOOSE))
    builder.add_node(REVIEW, make_review_node(), destinations=(CHOOSE, END))
    builder.add_edge(SCORE, REVIEW)
    return builder
