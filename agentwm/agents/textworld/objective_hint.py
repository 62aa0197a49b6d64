"""The objective's next unfinished step as a score: ``objective_match``'s rule, offered to learned agents.

TextWorld objectives spell the walkthrough out in paraphrase ("take a trip east", "retrieve the
monitor from the floor"). :class:`ObjectiveHint` keeps which sentences are done and gives each
menu command its similarity to the next actionable one, so a learned agent can lean on the text
where its value is unsure between two moves. It imagines nothing: the ``objective_match`` agent is
this rule alone, and ``direct`` with the same hint is the control for any planner that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from agentwm.envs.text import split_objective


class _Embed(Protocol):
    def embed(self, texts: Sequence[str]) -> Tensor: ...


class ObjectiveHint:
    """Which objective sentences are done, and each command's similarity to the next actionable one.

    A sentence is actionable when some menu command is at least ``threshold`` similar to it; the
    earliest actionable sentence not yet done is the next step. Playing a command that matches it
    (``played``) marks it and every earlier sentence done.
    """

    def __init__(self, embedder: _Embed, threshold: float = 0.45) -> None:
        self.embedder, self.threshold = embedder, threshold
        self.sentences: list[str] = []
        self.done = 0
        self._next: tuple[list[str], int, Tensor] | None = None

    def reset(self, objective: str) -> None:
        """Start an episode with this objective text."""
        self.sentences, self.done, self._next = split_objective(objective), 0, None

    def similarity(self, menu: Sequence[str]) -> Tensor:
        """``[len(menu)]``: each command's similarity to the next actionable sentence (zeros when none is)."""
        rest = self.sentences[self.done :]
        if not rest or not menu:
            self._next = None
            return torch.zeros(len(menu))
        sims = self.embedder.embed(list(menu)).float() @ self.embedder.embed(rest).float().T  # [M, S]
        actionable = (sims.max(0).values >= self.threshold).nonzero()
        if not len(actionable):
            self._next = None
            return torch.zeros(len(menu))
        j = int(actionable[0])
        self._next = (list(menu), j, sims[:, j])
        return sims[:, j].clamp(min=0.0)

    def played(self, command: str) -> None:
        """The agent played ``command`` from the menu last scored: a match to the next step marks it done."""
        if self._next is None:
            return
        menu, j, sims = self._next
        if command in menu and float(sims[menu.index(command)]) >= self.threshold:
            self.done += j + 1
        self._next = None
