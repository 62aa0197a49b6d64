"""TextWorld games on the :class:`~agentwm.envs.text.TextEnv` protocol, and the game generator.

Games are made offline with TextWorld's own generator, exactly as ``tw-make custom`` makes them at
two settings: ``quest5`` (``--world-size 5 --nb-objects 10 --quest-length 5``) and ``quest8``
(``--world-size 6 --nb-objects 12 --quest-length 8``). Seeds 0-3999 are split by seed into
``train`` (0-2999), ``validation`` (3000-3499) and ``test`` (3500-3999), so a model trained on
train games is always evaluated on games it has never seen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from agentwm.envs.text import TextStep, match_action

Setting = Literal["quest5", "quest8", "tiny"]
Split = Literal["train", "validation", "test"]

SETTINGS: dict[str, dict[str, int]] = {
    "quest5": {"world_size": 5, "nb_objects": 10, "quest_length": 5},
    "quest8": {"world_size": 6, "nb_objects": 12, "quest_length": 8},
    "tiny": {"world_size": 2, "nb_objects": 2, "quest_length": 2},
}
"""The ``tw-make custom`` flags of each setting (``tiny`` is for tests and smoke runs)."""

SPLITS: dict[str, range] = {
    "train": range(3000),
    "validation": range(3000, 3500),
    "test": range(3500, 4000),
}
"""Seeds of each split; every game anywhere in agentwm uses a seed in 0-3999."""


def _textworld() -> Any:
    try:
        import textworld
    except ModuleNotFoundError as err:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError("TextWorld games need the 'text' extra: pip install 'agentwm[text]'") from err
    return textworld


def game_path(folder: str | Path, setting: str, seed: int) -> Path:
    """Where :func:`make_game` puts the game of ``setting`` and ``seed`` inside ``folder``."""
    return Path(folder) / f"{setting}-{seed:04d}.z8"


def make_game(setting: str, seed: int, folder: str | Path, *, force: bool = False) -> Path:
    """Generate one game as ``tw-make custom`` would at ``setting`` with ``--seed seed``.

    Writes ``<setting>-<seed>.z8`` and its ``.json`` into ``folder``; an existing game is kept
    unless ``force``. Returns the ``.z8`` path.
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {sorted(SETTINGS)}")
    if not 0 <= seed < 4000:
        raise ValueError(f"seed must be in 0-3999 (split by seed: {', '.join(f'{k} {v.start}-{v.stop - 1}' for k, v in SPLITS.items())}), got {seed}")
    out = game_path(folder, setting, seed)
    if out.is_file() and out.with_suffix(".json").is_file() and not force:
        return out
    textworld = _textworld()
    spec = SETTINGS[setting]
    options = textworld.GameOptions()
    options.seeds = seed
    options.path = str(out.resolve())
    options.file_ext = ".z8"
    options.force_recompile = True
    options.nb_rooms = spec["world_size"]
    options.nb_objects = spec["nb_objects"]
    # tw-make custom's defaults, then --quest-length N sets min/max length and max depth to N.
    options.nb_parallel_quests = 1
    options.chaining.min_breadth, options.chaining.max_breadth = 1, 5
    options.chaining.min_depth = 1
    options.chaining.min_length = options.chaining.max_length = spec["quest_length"]
    options.chaining.max_depth = spec["quest_length"]
    options.grammar.theme = "house"
    out.parent.mkdir(parents=True, exist_ok=True)
    path, _ = textworld.make(options)
    return Path(path)


def split_seeds(split: str, count: int, start: int = 0) -> list[int]:
    """The first ``count`` seeds of ``split`` after skipping ``start`` of them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    seeds = list(SPLITS[split])[start : start + count]
    if len(seeds) < count:
        raise ValueError(f"split {split!r} has {len(SPLITS[split])} seeds; asked for {count} from {start}")
    return seeds



_STATUS = re.compile(r"-=\s*[^=]+=-\s*\d+/\d+\s*$")


def clean_text(text: str) -> str:
    """TextWorld feedback without the prompt, the status line and runs of blank space."""
    lines = []
    for line in text.splitlines():
        line = _STATUS.sub("", line).strip()
        if line in (">", "") or line.startswith("> "):
            continue
        lines.append(line)
    return " ".join(lines).strip()


_ROOM = re.compile(r"^\s*-=\s*(.+?)\s*=-")


def room_name(observation: str) -> str | None:
    """The room an observation describes (TextWorld's ``-= Kitchen =-`` header), ``None`` for feedback
    that is not a room description ("You open the chest.")."""
    found = _ROOM.match(observation)
    return found.group(1).strip() if found else None


def is_move(command: str) -> bool:
    """Whether a TextWorld command leaves the room (``go <direction>``); the only verbs that do."""
    return command.strip().lower().startswith("go ")


_DROP = re.compile(r"^drop (.+)$")
_PUT = re.compile(r"^put (.+) on (.+)$")
_INSERT = re.compile(r"^insert (.+) into (.+)$")
_TAKE_FROM = re.compile(r"^take (.+) from (.+)$")


def carried(menu: Sequence[str]) -> set[str]:
    """The objects the player carries, read from a TextWorld menu (it offers ``drop X`` for each)."""
    return {m.group(1) for c in menu if (m := _DROP.match(c))}


def rebase_menu(then: Sequence[str], now: Sequence[str]) -> list[str]:
    """The commands a room last seen with menu ``then`` should offer when the player carries what menu
    ``now`` shows (TextWorld's grammar): commands naming objects no longer carried are dropped, and each
    newly carried object gets ``drop``, ``put X on S`` for the room's supporters and ``insert X into C``
    for its containers (those the old menu put, inserted or took things on, into or from)."""
    held_then, held_now = carried(then), carried(now)
    gone, new = held_then - held_now, sorted(held_now - held_then)
    supports: dict[str, None] = {}
    containers: dict[str, None] = {}
    unknown: dict[str, None] = {}
    out = []
    for c in then:
        if (m := _PUT.match(c)) is not None:
            supports[m.group(2)] = None
        elif (m := _INSERT.match(c)) is not None:
            containers[m.group(2)] = None
        elif (m := _TAKE_FROM.match(c)) is not None:
            unknown[m.group(2)] = None
        if not any(c == f"drop {x}" or c.startswith((f"put {x} on ", f"insert {x} into ")) for x in gone):
            out.append(c)
    for target in unknown:  # taken from: a supporter or a container (an open one is offered with "close")
        if target not in supports and target not in containers:
            (containers if f"close {target}" in then else supports)[target] = None
    for x in new:
        out += [f"drop {x}", *(f"put {x} on {s}" for s in supports), *(f"insert {x} into {t}" for t in containers)]
    return list(dict.fromkeys(out))


class TextWorldEnv:
    """One TextWorld game file as a :class:`~agentwm.envs.text.TextEnv`.

    The observation is the game's feedback (the room description after a move). ``reward`` is
    the change of the game's score, ``won`` its win flag. ``info`` holds ``score``, ``moves``,
    ``inventory`` and, with ``labels=True``, the privileged training labels ``policy`` (the
    shortest winning command list from here, as TextWorld computes it) and ``remaining``
    (its length); agents must not read those when playing.

    Args:
        game_file: a ``.z8``/``.ulx`` game made by TextWorld (its ``.json`` beside it).
        max_steps: the episode ends (not won) after this many commands.
        tolerant: match commands to the menu tolerantly (:func:`~agentwm.envs.text.match_action`).
        labels: ask TextWorld for the winning policy after every step (slower; for training data).

    Example:
        >>> env = TextWorldEnv("games/quest5-3500.z8")  # doctest: +SKIP
        >>> first = env.reset(); step = env.step(first.admissible[0])  # doctest: +SKIP
    """

    def __init__(self, game_file: str | Path, *, max_steps: int = 50, tolerant: bool = True, labels: bool = False) -> None:
        path = Path(game_file)
        if path.suffix not in (".z8", ".ulx"):
            raise ValueError(f"not a TextWorld game file (.z8 or .ulx): {path}")
        if not path.is_file():
            raise FileNotFoundError(f"no TextWorld game at {path}")
        if not path.with_suffix(".json").is_file():
            raise FileNotFoundError(f"TextWorld game {path} has no {path.with_suffix('.json').name} beside it (made by tw-make?)")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        textworld = _textworld()
        infos = textworld.EnvInfos(
            admissible_commands=True, objective=True, won=True, lost=True, score=True,
            max_score=True, moves=True, inventory=True, description=True, policy_commands=labels,
        )
        self.path = path
        self.max_steps = max_steps
        self.tolerant = tolerant
        self.labels = labels
        self._env = textworld.start(str(path), request_infos=infos)
        self._steps = 0
        self._score = 0.0
        self._done = True
        self._objective = ""
        self._menu: tuple[str, ...] = ()

    def _to_step(self, state: Any, observation: str, reward: float, done: bool) -> TextStep:
        menu = tuple(state["admissible_commands"] or ())
        self._menu = menu
        info: dict[str, Any] = {
            "score": float(state["score"] or 0), "max_score": float(state["max_score"] or 0),
            "moves": self._steps, "inventory": clean_text(state["inventory"] or ""),
            "lost": bool(state["lost"]), "game": self.path.name,
        }
        if self.labels:
            policy = list(state["policy_commands"] or [])
            info["policy"] = policy
            info["remaining"] = 0 if state["won"] else len(policy)
        return TextStep(observation, self._objective, menu, reward, done, bool(state["won"]), info)

    def reset(self) -> TextStep:
        """Start the game over."""
        state = self._env.reset()
        self._steps, self._score, self._done = 0, 0.0, False
        self._objective = str(state["objective"] or "").strip()
        return self._to_step(state, clean_text(state["description"] or state.feedback), 0.0, False)

    def step(self, action: str) -> TextStep:
        """Play one command of the menu (matched tolerantly unless ``tolerant=False``)."""
        if self._done:
            raise RuntimeError("the episode is over; call reset() to play again")
        command = match_action(action, self._menu, tolerant=self.tolerant)
        state, score, done = self._env.step(command)
        self._steps += 1
        reward = float(score or 0) - self._score
        self._score = float(score or 0)
        done = bool(done or state["won"] or state["lost"] or self._steps >= self.max_steps)
        self._done = done
        return self._to_step(state, clean_text(state.feedback), reward, done)

    @property
    def menu(self) -> tuple[str, ...]:
        """The admissible commands now."""
        return self._menu

    def close(self) -> None:
        """Close the game interpreter."""
        self._env.close()


def walkthrough_wins(game_file: str | Path, max_steps: int = 50) -> bool:
    """Whether TextWorld's own winning policy, followed from the start, wins within ``max_steps``.

    Some generated games cannot be won through the parser: with a ``box`` and a ``Henderson's box``
    in one room, ``take latchkey from box`` only ever gets "Which do you mean ...?" back. A win rate
    is best read beside the games that pass this check (``benchmarks/textworld.py`` reports both).
    """
    env = TextWorldEnv(game_file, max_steps=max_steps, labels=True)
    try:
        step = env.reset()
        while not step.done and step.info.get("policy"):
            step = env.step(step.info["policy"][0])
        return step.won
    finally:
        env.close()
