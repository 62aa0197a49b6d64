"""A control without a learned model: the objective matched to commands, with the same episodic memory for walking.

:class:`MemoryExplorerAgent` answers "does the learned model matter, or just the memory?". It reads
the objective as :class:`~agentwm.agents.textworld.agents.ObjectiveMatchAgent` does (the next
unfinished sentence, matched to commands by MiniLM similarity) and keeps the same
:class:`~agentwm.worldmodels.text_memory.TransitionMemory` as the memory planner. Each step:

1. if a command here matches the next unfinished sentence (similarity >= ``threshold``), play it;
2. else, if a command last offered in a remembered room (rebased on what the player now carries)
   matches it, walk the shortest remembered route there;
3. else play the earliest later sentence that is actionable here (objective_match's rule);
4. else explore: an exit here not taken yet, or the walk to the nearest room that has one, or the
   command nearest the sentence.

No value, no imagination: it searches the remembered map with the objective's words alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentwm.agents.textworld.agents import _Embed, _LoopMemory
from agentwm.envs.text import TextStep, split_objective
from agentwm.envs.textworld import is_move, rebase_menu, room_name
from agentwm.worldmodels.text_memory import TransitionMemory


class MemoryExplorerAgent:
    """Objective matching plus walks over the remembered map (module docstring)."""

    def __init__(
        self, embedder: _Embed, threshold: float = 0.45, depth: int = 6,
        room_of: Callable[[str], str | None] = room_name, is_move: Callable[[str], bool] = is_move,
        rebase: Callable[[Sequence[str], Sequence[str]], Sequence[str]] = rebase_menu,
    ) -> None:
        self.embedder, self.threshold, self.depth, self.rebase = embedder, threshold, depth, rebase
        self.memory = TransitionMemory(room_of, is_move)
        self.llm_calls = 0
        self.sentences: list[str] = []
        self.done = 0
        self.loops = _LoopMemory()
        self.last: tuple[str, str] | None = None

    def reset(self, first: TextStep) -> None:
        self.sentences = split_objective(first.objective)
        self.done = 0
        self.loops = _LoopMemory()
        self.last = None

    def _best(self, commands: Sequence[str], sentence: str, observation: str | None = None) -> tuple[str, float]:
        sims = (self.embedder.embed(list(commands)) @ self.embedder.embed([sentence]).T)[:, 0]
        if observation is not None:
            sims = sims - 0.5 * self.loops.penalty(observation, commands)
        i = int(sims.argmax())
        return commands[i], float(sims[i])

    def act(self, step: TextStep) -> str:
        menu = list(step.admissible)
        if self.last is None:
            self.memory.start(step.observation, menu)
        else:
            self.memory.record(self.last[0], self.last[1], step.observation, menu)
        choice = self._choose(step.observation, menu)
        self.loops.add(step.observation, choice)
        self.last = (step.observation, choice)
        return choice

    def _choose(self, observation: str, menu: list[str]) -> str:
        rest = self.sentences[self.done :]
        if not rest:
            return menu[0]
        here, sim = self._best(menu, rest[0], observation)
        if sim >= self.threshold:  # 1. the next step is possible here
            self.done += 1
            return here
        room = self.memory.room
        routes = self.memory.routes(room, self.depth) if room is not None else {}
        targets = [(len(walk), self._best(self.rebase(self.memory.menu(dest), menu), rest[0]), walk)
                   for dest, walk in routes.items() if self.memory.menu(dest)]
        found = [(n, walk) for n, (_, s), walk in targets if s >= self.threshold]
        if found:  # 2. it is possible in a remembered room: walk there
            return min(found, key=lambda x: x[0])[1][0]
        for j, sentence in enumerate(rest[1:], start=1):  # 3. a later step possible here
            cmd, s = self._best(menu, sentence, observation)
            if s >= self.threshold:
                self.done += j + 1
                return cmd
        if room is not None:  # 4. explore
            fresh = self.memory.unexplored(room)
            if fresh:
                return fresh[0]
            frontier = [walk for dest, walk in routes.items() if self.memory.unexplored(dest)]
            if frontier:
                return min(frontier, key=len)[0]
        return here
