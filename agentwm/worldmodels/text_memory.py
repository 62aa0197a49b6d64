"""An episodic transition memory of a deterministic text game: the map and the outcomes seen this episode.

Text games are deterministic: the same command in the same situation gives the same text. What
one episode showed is therefore a model of the game, exact where it reaches:

* the **room graph**: a move (``is_move``) from room A that arrived in room B is an edge
  ``(A, command) -> B``; rooms are named by ``room_of`` (TextWorld: the ``-= Kitchen =-`` header);
* each room's **latest description and menu** (what was seen there: objects, containers, exits,
  and the commands the game accepted there);
* every other **exact outcome**: ``(observation text, command) -> next observation text`` and the
  reward it gave, and per room the best reward each command gave there (a command seen not to win
  in a room is not imagined to win there);
* **no-ops**: commands that, in a room, gave no reward and left the menu as it was (``examine``,
  ``look``, a command the parser misread): the game's state did not change, so playing them again
  there only costs a step, as long as nothing they name has changed since (a command is taken to
  depend only on the things it names: ``take key from safe`` still does nothing after a door opens);
* **visits**: each room (or feedback text) seen, with the task progress at the time (a model's
  coverage vector), so coming back somewhere with no progress since is recognised exactly.

:meth:`TransitionMemory.next` answers "what would this command show from here" where the memory
knows it, and :meth:`TransitionMemory.routes` gives the shortest remembered walk to every room, so
a planner can imagine going back to a room seen earlier, or to a room with exits not tried yet.
Only real steps are recorded (:meth:`TransitionMemory.record`); imagination never writes to it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor


@dataclass(frozen=True)
class Place:
    """A room as last seen: its description text and the commands its menu offered."""

    description: str
    menu: tuple[str, ...]


class Outcome(NamedTuple):
    """A remembered outcome: the next observation, the room after it, and the reward the step gave."""

    text: str
    room: str | None
    reward: float


_LINKS = frozenset({"from", "on", "into", "in", "with", "to", "at", "the", "a", "an"})


def _named(command: str) -> set[str]:
    """The words a command names things with: all but its verb and linking words (``take key from safe``
    → ``{key, safe}``)."""
    return set(command.lower().split()[1:]) - _LINKS


class TransitionMemory:
    """The map and the exact outcomes of one episode (see the module docstring).

    Args:
        room_of: the room an observation describes, ``None`` for feedback that is not a room description.
        is_move: whether a command leaves the room (only those are graph edges).

    Example:
        >>> from agentwm.envs.textworld import is_move, room_name
        >>> memory = TransitionMemory(room_name, is_move)
        >>> memory.start("-= Hall =- An exit east.", ["go east", "look"])
        >>> memory.record("-= Hall =- An exit east.", "go east", "-= Den =- An exit west.", ["go west"])
        >>> memory.next("Hall", None, "go east")
        Outcome(text='-= Den =- An exit west.', room='Den', reward=0.0)
    """

    def __init__(self, room_of: Callable[[str], str | None], is_move: Callable[[str], bool]) -> None:
        self.room_of, self.is_move = room_of, is_move
        self.room: str | None = None
        self.rooms: dict[str, Place] = {}
        self.edges: dict[tuple[str, str], str] = {}
        self.exact: dict[tuple[str, str], tuple[str, float]] = {}
        self.visits: dict[str, list[Tensor]] = {}
        self.tried: dict[tuple[str, str], float] = {}
        self.noops: dict[tuple[str, str], frozenset[str]] = {}

    def key(self, observation: str) -> str:
        """What a visit is: the room an observation describes (its contents may change), else the exact text."""
        return self.room_of(observation) or observation

    def visit(self, observation: str, progress: Tensor) -> None:
        """Remember that ``observation`` was really seen with task ``progress`` (any vector, e.g. a model's coverage)."""
        self.visits.setdefault(self.key(observation), []).append(progress.detach().flatten())

    def revisited(self, observation: str, progress: Tensor, tolerance: float) -> bool:
        """Whether ``observation`` was seen before with ``progress`` equal within ``tolerance`` (no progress since:
        coming back there wastes the steps)."""
        flat = progress.detach().flatten()
        return any(bool((flat - p).abs().max() <= tolerance) for p in self.visits.get(self.key(observation), ()))

    def start(self, observation: str, menu: Sequence[str]) -> None:
        """Forget everything and begin an episode at ``observation`` with ``menu``."""
        self.room, self.rooms, self.edges, self.exact, self.visits, self.tried = None, {}, {}, {}, {}, {}
        self.noops = {}
        self._arrive(observation, menu)

    def _arrive(self, observation: str, menu: Sequence[str]) -> None:
        room = self.room_of(observation)
        if room is not None:
            self.room = room
            self.rooms[room] = Place(observation, tuple(menu))
        elif self.room is not None:  # feedback in the same room: the menu changed, the description is the last one seen
            self.rooms[self.room] = Place(self.rooms[self.room].description, tuple(menu))

    def record(self, before: str, command: str, after: str, menu: Sequence[str], reward: float = 0.0) -> None:
        """Remember one real step: ``command`` played at observation ``before`` showed ``after`` and ``menu``
        and gave ``reward``."""
        origin = self.room
        menu_before = self.menu(origin) if origin is not None else None
        self._arrive(after, menu)
        dest = self.room_of(after)
        if self.is_move(command):
            if origin is not None and dest is not None:
                self.edges[(origin, command)] = dest
        else:
            self.exact[(before, command)] = (after, float(reward))
            if origin is not None:
                self.tried[(origin, command)] = max(float(reward), self.tried.get((origin, command), float(reward)))
                same_place = self.room_of(after) in (None, origin)
                if reward <= 0 and same_place and menu_before is not None and frozenset(menu) == frozenset(menu_before):
                    self.noops[(origin, command)] = frozenset(menu)

    def next(self, room: str | None, observation: str | None, command: str) -> Outcome | None:
        """The remembered outcome of ``command`` from ``room`` (a move along a remembered edge: the room's latest
        description) or from the exact ``observation`` text; ``None`` where the memory does not know it."""
        if room is not None and self.is_move(command):
            dest = self.edges.get((room, command))
            return None if dest is None else Outcome(self.rooms[dest].description, dest, 0.0)
        if observation is not None:
            seen = self.exact.get((observation, command))
            if seen is not None:
                return Outcome(seen[0], self.room_of(seen[0]) or room, seen[1])
        return None

    def reward(self, room: str | None, command: str) -> float | None:
        """The best reward ``command`` (not a move) ever gave in ``room``, ``None`` if never tried there: in a
        deterministic game a command that did not win there is unlikely to win there later."""
        return None if room is None else self.tried.get((room, command))

    def noop(self, room: str | None, command: str, menu: Sequence[str]) -> bool:
        """Whether ``command`` was seen to change nothing in ``room`` (no reward, the same menu after) and no
        command that names the same things has come or gone from the menu since: in a deterministic game
        it changes nothing there again."""
        then = None if room is None else self.noops.get((room, command))
        if then is None:
            return False
        names = _named(command)
        return not any(names & _named(c) for c in then.symmetric_difference(menu))

    def menu(self, room: str) -> tuple[str, ...]:
        """The commands last offered in ``room`` (empty for a room never seen)."""
        place = self.rooms.get(room)
        return place.menu if place is not None else ()

    def routes(self, start: str, max_steps: int) -> dict[str, list[str]]:
        """The shortest remembered walk (commands) from ``start`` to every other room at most
        ``max_steps`` moves away; ties go to the earlier-recorded edge."""
        out: dict[str, list[str]] = {start: []}
        queue = deque([start])
        while queue:
            room = queue.popleft()
            if len(out[room]) >= max_steps:
                continue
            for (origin, command), dest in self.edges.items():
                if origin == room and dest not in out:
                    out[dest] = [*out[room], command]
                    queue.append(dest)
        del out[start]
        return out

    def unexplored(self, room: str) -> list[str]:
        """The moves offered in ``room`` whose destination the memory does not know yet."""
        return [c for c in self.menu(room) if self.is_move(c) and (room, c) not in self.edges]
