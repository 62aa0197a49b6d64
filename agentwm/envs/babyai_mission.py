"""BabyAI missions in words, parsed: "put the red ball next to a grey key" -> what to reach, pick up
or place next to what, with BabyAI's location words ("on your left") kept as a half-plane."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MissionKind = Literal["goto", "pickup", "putnext"]
Location = Literal["front", "behind", "left", "right"]

# ----------------------------------------------------------------------------------------------
# Missions


@dataclass(frozen=True)
class ObjectRef:
    """An object as the mission names it: type (``None`` = any object), colour, location words."""

    type: str | None
    color: str | None = None
    loc: Location | None = None

    def matches(self, obj_type: str, color: str) -> bool:
        return (self.type is None or self.type == obj_type) and (self.color is None or self.color == color)

    def words(self) -> str:
        return " ".join(w for w in (self.color, self.type or "object") if w)


@dataclass(frozen=True)
class Mission:
    """A parsed single-room BabyAI mission: ``kind`` with the object to act on and, for
    ``putnext``, the object to put it next to."""

    kind: MissionKind
    target: ObjectRef
    fixed: ObjectRef | None = None
    text: str = ""


_OBJ = r"(?:the|a) (?:(red|green|blue|purple|yellow|grey) )?(ball|box|key|door|object)"
_LOC = r"(?: (in front of you|behind you|on your left|on your right))?"
_LOC_WORDS: dict[str, Location] = {
    "in front of you": "front",
    "behind you": "behind",
    "on your left": "left",
    "on your right": "right",
}


def _ref(color: str | None, obj_type: str, loc: str | None = None) -> ObjectRef:
    return ObjectRef(None if obj_type == "object" else obj_type, color, _LOC_WORDS[loc] if loc else None)


def parse_mission(text: str) -> Mission:
    """Parse "go to ...", "pick up ..." and "put ... next to ..." missions.

    Raises:
        ValueError: the mission is of another kind (open, unlock, sequences): this adapter covers
            the single-room go-to / pick-up / put-next levels.
    """
    mission = text.strip().lower()
    if m := re.fullmatch(rf"go to {_OBJ}{_LOC}", mission):
        return Mission("goto", _ref(m[1], m[2], m[3]), text=text)
    if m := re.fullmatch(rf"pick up {_OBJ}{_LOC}", mission):
        return Mission("pickup", _ref(m[1], m[2], m[3]), text=text)
    if m := re.fullmatch(rf"put {_OBJ}{_LOC} next to {_OBJ}{_LOC}", mission):
        return Mission("putnext", _ref(m[1], m[2], m[3]), _ref(m[4], m[5], m[6]), text=text)
    raise ValueError(
        f"unsupported BabyAI mission {text!r}: expected 'go to ...', 'pick up ...' or 'put ... next to ...'"
    )
