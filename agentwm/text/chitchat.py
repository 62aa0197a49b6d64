"""The Chit-Chat dataset (PyPI ``chitchat-dataset``): loading, a fixed split by conversation, turns.

7,168 real two-person text conversations (about 138k turns). Each conversation is a list of
*turns*; a turn is one or more consecutive messages of one speaker, which we join into one text.
5,988 conversations carry the participants' ratings (``interesting``, ``upbeat``, ``witty``, 1-10)
and most carry the prompt the pair was given.

The split is fixed by conversation id (a hash, not the file order), so the same conversation is
always in the same part whatever else changes: 80 % train, 10 % validation, 10 % test.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Split = Literal["train", "val", "test"]
RATING_KEYS: tuple[str, ...] = ("interesting", "upbeat", "witty")
MAX_TURN_CHARS = 1000
"""Turn texts are clipped here: MiniLM reads at most 256 word pieces, and a handful of turns are
pasted walls of text (the longest is 95k characters) that would only cost encoding time."""

_SPLIT_BOUNDS = (80, 90)  # hash bucket (0..99) < 80: train, < 90: val, else test


@dataclass(frozen=True)
class Conversation:
    """One conversation as a list of turns.

    Attributes:
        id: the dataset's conversation id.
        turns: the text of each turn (consecutive messages of one speaker joined by spaces).
        speakers: 0 for the speaker who opened the conversation, 1 for the other, per turn.
        ratings: ``interesting``, ``upbeat``, ``witty`` on 1-10, or ``None`` when unrated.
        prompt: the conversation starter the pair was shown ("" when none).
    """

    id: str
    turns: tuple[str, ...]
    speakers: tuple[int, ...]
    ratings: tuple[float, float, float] | None
    prompt: str

    @property
    def split(self) -> Split:
        return split_of(self.id)


def split_of(conversation_id: str) -> Split:
    """The fixed split of a conversation, from a hash of its id."""
    bucket = int(hashlib.sha1(conversation_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < _SPLIT_BOUNDS[0]:
        return "train"
    if bucket < _SPLIT_BOUNDS[1]:
        return "val"
    return "test"


def dataset_path() -> Path:
    """Where the installed ``chitchat-dataset`` package keeps ``dataset.json``.

    Raises:
        ModuleNotFoundError: the package is not installed; the message says how to install it.
    """
    spec = importlib.util.find_spec("chitchat_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the dialogue data needs the package 'chitchat-dataset' (pip install chitchat-dataset)")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"chitchat-dataset is installed but {path} is missing")
    return path


def clean_text(text: str) -> str:
    """Collapse whitespace and clip to :data:`MAX_TURN_CHARS`."""
    return " ".join(text.split())[:MAX_TURN_CHARS]


def _conversation(cid: str, raw: dict[str, Any]) -> Conversation | None:
    turns: list[str] = []
    speakers: list[int] = []
    first_sender: str | None = None
    for turn in raw.get("messages") or []:
        text = clean_text(" ".join(str(m.get("text", "")) for m in turn))
        if not turn or not text:
            continue
        sender = str(turn[0].get("sender"))
        first_sender = sender if first_sender is None else first_sender
        speaker = 0 if sender == first_sender else 1
        if speakers and speakers[-1] == speaker:  # an emptied turn between two: merge the neighbours
            turns[-1] = clean_text(turns[-1] + " " + text)
            continue
        turns.append(text)
        speakers.append(speaker)
    if not turns:
        return None
    r = raw.get("ratings")
    ratings = tuple(float(r[k]) for k in RATING_KEYS) if isinstance(r, dict) and all(k in r for k in RATING_KEYS) else None
    return Conversation(
        id=cid, turns=tuple(turns), speakers=tuple(speakers),
        ratings=ratings,  # type: ignore[arg-type]
        prompt=str(raw.get("prompt") or ""),
    )


def load_chitchat(path: str | Path | None = None, *, min_turns: int = 1) -> list[Conversation]:
    """All conversations with at least ``min_turns`` turns, sorted by id (deterministic order)."""
    if min_turns < 1:
        raise ValueError(f"min_turns must be >= 1, got {min_turns}")
    data = json.loads(Path(path or dataset_path()).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError("dataset.json must map conversation ids to conversations")
    convs = (_conversation(cid, raw) for cid, raw in sorted(data.items()))
    return [c for c in convs if c is not None and len(c.turns) >= min_turns]


def by_split(conversations: Iterable[Conversation]) -> dict[Split, list[Conversation]]:
    """Group conversations into their fixed train / val / test parts."""
    out: dict[Split, list[Conversation]] = {"train": [], "val": [], "test": []}
    for c in conversations:
        out[c.split].append(c)
    return out


def unique_texts(conversations: Sequence[Conversation]) -> list[str]:
    """Every distinct turn text, in first-seen order (what the embedding cache holds)."""
    return list(dict.fromkeys(t for c in conversations for t in c.turns))
