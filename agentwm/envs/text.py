"""One protocol for text environments, and tolerant matching of a command to the action menu.

A text environment hands out a ``TextStep`` (observation text, objective, admissible commands,
reward, done, won) on ``reset`` and after every ``step(command)``. Agents, planners and the
LangGraph planning graph only rely on this protocol, so any text game (TextWorld, a BabyAI
test bed rendered as text, your own simulator) plugs in by implementing two methods.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class UnknownActionError(ValueError):
    """A command names no entry of the admissible menu (or names several equally well)."""


@dataclass(frozen=True)
class TextStep:
    """What a text environment returns on ``reset`` and ``step``.

    Attributes:
        observation: the text the agent reads after the step (room, feedback).
        objective: the task, in words; the same for the whole episode.
        admissible: the commands the game accepts now (the action menu).
        reward: reward of the step that led here (0 on reset).
        done: the episode is over (won, lost, or out of steps).
        won: the objective was reached.
        info: anything else the adapter reports (score, moves, privileged labels for training).
    """

    observation: str
    objective: str
    admissible: tuple[str, ...]
    reward: float = 0.0
    done: bool = False
    won: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class TextEnv(Protocol):
    """A text game: ``reset()`` starts an episode, ``step(command)`` plays one command."""

    def reset(self) -> TextStep:
        """Start a new episode; returns its first step (reward 0, not done)."""
        ...

    def step(self, action: str) -> TextStep:
        """Play ``action`` (an entry of the current menu, matched tolerantly); raises
        :class:`UnknownActionError` for a command that is not on the menu and ``RuntimeError``
        after the episode ended."""
        ...

    def close(self) -> None:
        """Release the game's resources."""
        ...


_FILLER = {"the", "a", "an", "to", "some", "your", "my", "please"}
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _FILLER]


def match_action(action: str, menu: Sequence[str], *, tolerant: bool = True) -> str:
    """The menu entry ``action`` names.

    Exact (case and spacing ignored) first. With ``tolerant``, then the entries whose words
    contain all of the command's words (articles and fillers such as "the" ignored), e.g.
    ``"take the passkey"`` → ``"take passkey from bar"``; the shortest such entry wins, and a tie
    between entries of the same length is an error rather than a guess.

    Raises:
        UnknownActionError: nothing on the menu matches, or the match is ambiguous.
    """
    norm = " ".join(action.lower().split())
    for entry in menu:
        if " ".join(entry.lower().split()) == norm:
            return entry
    if tolerant:
        words = _words(action)
        if words:
            hits = [e for e in menu if _contains_in_order(_words(e), words)]
            if hits:
                shortest = min(len(_words(e)) for e in hits)
                best = [e for e in hits if len(_words(e)) == shortest]
                if len(best) == 1:
                    return best[0]
                raise UnknownActionError(f"command {action!r} is ambiguous on the menu: {best}")
    shown = ", ".join(repr(m) for m in list(menu)[:12]) + (" ..." if len(menu) > 12 else "")
    raise UnknownActionError(f"command {action!r} is not on the menu: [{shown}]")


def _contains_in_order(entry: list[str], words: list[str]) -> bool:
    """Every word of ``words`` appears in ``entry`` in the same order (verb first must match)."""
    if not entry or entry[0] != words[0]:
        return False
    pos = 0
    for w in words:
        try:
            pos = entry.index(w, pos) + 1
        except ValueError:
            return False
    return True


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def split_objective(objective: str, max_steps: int | None = None) -> list[str]:
    """The objective's sentences in order (a task given in words is usually a list of steps)."""
    parts = [p.strip() for p in _SENTENCE.split(objective.strip()) if p.strip()]
    return parts if max_steps is None else parts[:max_steps]
