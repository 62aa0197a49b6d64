"""Outcome-labelled conversation logs: the JSONL format, a streaming loader and a writer.

One conversation per line::

    {"id": "c1", "role": "agent", "split": "train",
     "turns": [{"speaker": "user", "text": "my order is late"},
               {"speaker": "agent", "text": "sorry! let me check", "labels": {"polite": true}}],
     "outcomes": {"csat": 4, "resolved": true},
     "context": {"values": [1, 4, 2]}, "meta": {"source": "helpdesk"}}

``role`` names the speaker the model plays (the one whose replies are ranked); ``outcomes`` are
named numbers or booleans of the whole conversation; ``context`` is private numeric context the
agent knows (a negotiator's item values, a customer tier), numbers or lists of numbers; ``meta``
is free-form and never read by models. Consecutive turns of one speaker are joined into one turn.

The loader streams (a 1 GB file is read a line at a time) and never stops on a bad line unless
asked: blank lines, lines that are not JSON, lines that fail validation and lines without the
requested outcome are skipped and counted in :class:`LoadStats`; ``strict=True`` raises
:class:`LogError` naming the line and the field instead.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentwm.checkpoint import atomic_write

Outcome = float | bool
MAX_TURN_CHARS = 4000
"""Longer turns are clipped: sentence encoders read ~256 word pieces."""
SKIP_REASONS = ("blank", "not_json", "invalid", "no_outcome", "no_role_turn")
"""Why a line was skipped: empty line, not a JSON object, failed validation, lacks the requested
outcome, or the agent (``role``) never speaks in it."""


class Turn(BaseModel):
    """One turn: who spoke, what they said, optional per-turn labels."""

    model_config = ConfigDict(extra="forbid")

    speaker: str = Field(min_length=1, description="who spoke this turn")
    text: str = Field(description="what was said (non-empty after stripping)")
    labels: dict[str, Outcome] = Field(default_factory=dict, description="optional per-turn labels")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("turn text is empty")
        return value[:MAX_TURN_CHARS]


class ConversationLog(BaseModel):
    """One outcome-labelled conversation (one JSONL line)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="conversation id (default: the line number)")
    role: str = Field(min_length=1, description="the speaker the model plays, whose replies are ranked")
    turns: list[Turn] = Field(min_length=1, description="the turns, oldest first")
    outcomes: dict[str, Outcome] = Field(default_factory=dict, description="named outcomes of the conversation")
    context: dict[str, float | list[float]] = Field(
        default_factory=dict, description="private numeric context the agent knows (e.g. item values)"
    )
    split: str | None = Field(None, description="optional fixed split: train, val or test")
    meta: dict[str, Any] = Field(default_factory=dict, description="free-form data no model reads")

    @field_validator("split")
    @classmethod
    def _split(cls, value: str | None) -> str | None:
        if value is not None and value not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {value!r}")
        return value

    @model_validator(mode="after")
    def _join_runs(self) -> ConversationLog:
        """Join consecutive turns of one speaker (a message burst is one turn)."""
        joined: list[Turn] = []
        for turn in self.turns:
            if joined and joined[-1].speaker == turn.speaker:
                prev = joined[-1]
                joined[-1] = Turn(speaker=prev.speaker, text=f"{prev.text} {turn.text}",
                                  labels={**prev.labels, **turn.labels})
            else:
                joined.append(turn)
        self.turns = joined
        return self

    def outcome(self, name: str) -> float:
        """The named outcome as a float (booleans as 0/1); KeyError names the ones present."""
        if name not in self.outcomes:
            raise KeyError(f"conversation {self.id!r} has no outcome {name!r}; it has {sorted(self.outcomes)}")
        return float(self.outcomes[name])


class LogError(ValueError):
    """A bad line of a conversation log: the message names the file, the line and the field."""

    def __init__(self, path: str, line: int, message: str, reason: str = "invalid") -> None:
        super().__init__(f"{path} line {line}: {message}")
        self.path, self.line, self.reason = path, line, reason


@dataclass
class LoadStats:
    """What a pass over a log file read: conversations loaded and lines skipped by reason."""

    lines: int = 0
    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    """The first few skip messages (line and field), to show the user."""
    roles: Counter[str] = field(default_factory=Counter)
    """The agent's speaker name (``role``) of the loaded conversations, counted."""

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 5:
            self.examples.append(message)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"lines": self.lines, "loaded": self.loaded, "skipped": dict(self.skipped),
                "examples": list(self.examples), "roles": dict(self.roles)}

    def skip_line(self) -> str:
        """One line for the user: how many lines were skipped and why, with the first example."""
        total = sum(self.skipped.values())
        if not total:
            return f"read {self.loaded} conversations from {self.lines} lines, none skipped"
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        first = f"; first: {self.examples[0]}" if self.examples else ""
        return f"read {self.loaded} conversations from {self.lines} lines, skipped {total} ({why}){first}"


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "<line>"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"field '{where}': {first['msg']}{more}"


def parse_line(raw: str, *, path: str = "<logs>", line: int = 0) -> ConversationLog:
    """Parse one JSONL line; :class:`LogError` names the line and the first bad field."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise LogError(path, line, f"not valid JSON ({err.msg} at column {err.colno})", "not_json") from None
    if not isinstance(data, dict):
        raise LogError(path, line, f"expected a JSON object, got {type(data).__name__}", "not_json")
    try:
        conv = ConversationLog.model_validate(data)
    except ValidationError as err:
        raise LogError(path, line, _describe(err)) from None
    if conv.id is None:
        conv.id = f"line-{line}"
    return conv


def read_conversations(
    path: str | Path,
    *,
    outcome: str | None = None,
    role: str | None = None,
    split: str | None = None,
    strict: bool = False,
    stats: LoadStats | None = None,
) -> Iterator[ConversationLog]:
    """Stream the conversations of a JSONL log, one line at a time.

    Args:
        path: the ``.jsonl`` file.
        outcome: keep only conversations that carry this outcome (others count as ``no_outcome``).
        role: override every line's ``role`` (e.g. train the other side of the same logs).
        split: keep only conversations of this split (lines without a split are kept).
        strict: raise :class:`LogError` at the first bad line instead of skipping it.
        stats: filled with line, load and skip counts (see :data:`SKIP_REASONS`).

    Raises:
        FileNotFoundError: no such file.
        LogError: with ``strict``, the first bad line (its number and field in the message).
    """
    stats = stats if stats is not None else LoadStats()
    name = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"no conversation log at {name}")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, start=1):
            stats.lines += 1
            if not raw.strip():
                stats.skipped["blank"] += 1
                continue
            try:
                conv = parse_line(raw, path=name, line=number)
                if role is not None:
                    conv.role = role
                if outcome is not None and outcome not in conv.outcomes:
                    raise LogError(name, number, f"field 'outcomes.{outcome}': missing (has {sorted(conv.outcomes)})",
                                   "no_outcome")
                if not any(t.speaker == conv.role for t in conv.turns):
                    raise LogError(name, number, f"field 'role': {conv.role!r} never speaks in this conversation",
                                   "no_role_turn")
            except LogError as err:
                if strict:
                    raise
                stats.skip(err.reason, str(err))
                continue
            if split is not None and conv.split is not None and conv.split != split:
                continue
            stats.loaded += 1
            stats.roles[conv.role] += 1
            yield conv


def write_conversations(conversations: Iterable[ConversationLog], path: str | Path) -> int:
    """Write conversations as JSONL atomically (a reader never sees half a file); returns the count."""
    count = 0

    def write(tmp: str) -> None:
        nonlocal count
        with open(tmp, "w", encoding="utf-8") as fh:
            for conv in conversations:
                fh.write(conv.model_dump_json(exclude_defaults=True) + "\n")
                count += 1

    atomic_write(path, write)
    return count


def convert_main(argv: list[str] | None = None) -> int:
    """``python -m agentwm.envs.conversations {dealornodeal,chitchat} OUT.jsonl [--source DIR]``."""
    import argparse

    from agentwm.envs import conversation_sources as sources

    p = argparse.ArgumentParser(prog="python -m agentwm.envs.conversations",
                                description="write a public corpus as outcome-labelled conversation logs (JSONL)")
    p.add_argument("corpus", choices=["dealornodeal", "chitchat"])
    p.add_argument("out", help="JSONL file to write")
    p.add_argument("--source", default=None, help="Deal or No Deal folder (with data.txt, val.txt, test.txt)")
    args = p.parse_args(argv)
    try:
        if args.corpus == "dealornodeal":
            if args.source is None:
                p.error("--source DIR is required for dealornodeal (the folder holding data.txt)")
            convs: Iterable[ConversationLog] = sources.dealornodeal_logs(args.source)
        else:
            convs = sources.chitchat_logs()
        n = write_conversations(convs, args.out)
    except (OSError, ValueError, ModuleNotFoundError) as err:
        print(f"error: {err}")
        return 2
    print(json.dumps({"wrote": n, "out": os.fspath(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(convert_main())
