"""Prompt templates and answer schemas of the LLM world model and the LLM judge.

Each template is a LangChain ``ChatPromptTemplate``, so a user can replace one with their own
(same input variables) without touching the model code. Each has a small pydantic schema for the
answer; :class:`agentwm.text.client.LLMClient` asks for it natively where the chat model can and
parses it tolerantly otherwise. The wording asks for a ``Field: value`` answer as well as JSON,
because small local models follow line formats far more reliably than JSON.

Input variables:

* ``OUTCOME_PROMPT``: ``goal``, ``history``, ``observation``, ``action``.
* ``NEXT_ACTION_PROMPT``: ``goal``, ``history``, ``observation``.
* ``JUDGE_PROMPT``: ``goal``, ``observation``.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field, field_validator


class Outcome(BaseModel):
    """What the world looks like after the action, and whether the episode is over."""

    observation: str = Field(description="the new state of the world after the action, in one or two sentences")
    done: bool = Field(default=False, description="true when the episode or task is over after this action")

    @field_validator("observation")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("observation is empty")
        return value


class NextAction(BaseModel):
    """The action the agent would take next."""

    action: str = Field(description="the next action, as a short imperative phrase")

    @field_validator("action")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("action is empty")
        return value


class Progress(BaseModel):
    """How far the state is towards the goal, from 0 (none) to 1 (reached)."""

    score: float = Field(ge=0.0, le=1.0, description="progress towards the goal between 0 and 1")


OUTCOME_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            ("You simulate the world for an agent. Given the current state and an action, predict what "
            "happens next. Be concrete and brief. Answer in the form\n"
            "Observation: <the new state, one or two sentences>\nDone: <yes or no>"),
        ),
        (
            "human",
            ("Goal: {goal}\nRecent history:\n{history}\nCurrent state: {observation}\nAction: {action}\n"
            "What happens?"),
        ),
    ]
)

NEXT_ACTION_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            ("You are an agent pursuing a goal. Given the current state, say the single next action you "
            "would take. Answer in the form\nAction: <a short imperative phrase>"),
        ),
        ("human", "Goal: {goal}\nRecent history:\n{history}\nCurrent state: {observation}\nWhat do you do next?"),
    ]
)

JUDGE_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            ("You judge how close a state is to achieving a goal. Answer in the form\n"
            "Score: <a number between 0 and 1, where 1 means the goal is achieved>"),
        ),
        ("human", "Goal: {goal}\nState: {observation}\nHow close is this state to the goal?"),
    ]
)


def format_history(steps: Sequence[str], max_steps: int = 4) -> str:
    """The last ``max_steps`` history lines as a bulleted block, or ``(none)``."""
    recent = [s for s in steps if s][-max_steps:] if max_steps > 0 else []
    return "\n".join(f"- {s}" for s in recent) if recent else "(none)"
