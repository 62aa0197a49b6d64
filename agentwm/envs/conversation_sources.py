"""Adapters that write public corpora as outcome-labelled conversation logs.

* **Deal or No Deal** (Lewis et al. 2017; CC BY-NC 4.0): two people split books, hats and balls,
  each seeing only their own values. Every dialogue appears twice in ``data.txt``, once from each
  side; each becomes one conversation whose ``role`` is ``YOU``. Outcomes: ``points`` (this side's
  points, 0 without agreement), ``partner_points``, ``agreement`` and, with agreement, the split
  this side took (``take_book``, ``take_hat``, ``take_ball``). Private context: ``counts``
  and ``values``; the partner's values go to ``meta`` (the agent never sees them). Splits: a
  dialogue that appears in ``val.txt`` / ``test.txt`` (matched on its utterances) belongs there,
  every other dialogue is ``train``.
* **Chit-Chat** (PyPI ``chitchat-dataset``): outcomes are the participants' ratings
  (``interesting``, ``upbeat``, ``witty`` and their mean ``rating``), splits the fixed hash split
  of :mod:`agentwm.text.chitchat`; unrated conversations carry no outcomes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from agentwm.envs.conversations import ConversationLog, Turn

DOND_ROLE, DOND_PARTNER = "YOU", "THEM"
ITEMS = ("book", "hat", "ball")
_TURN = re.compile(r"(YOU|THEM):\s*(.*?)\s*<eos>")


def _dialogue_turns(text: str) -> list[tuple[str, str]]:
    """``YOU: ... <eos> THEM: ... <eos>`` -> (speaker, utterance) pairs, without the selection."""
    return [(s, u) for s, u in _TURN.findall(text) if not u.startswith("<selection>")]


def dialogue_key(turns: list[tuple[str, str]]) -> str:
    """A key of a dialogue that is the same from both sides (its utterances only)."""
    return hashlib.sha1("\x00".join(u for _, u in turns).encode("utf-8")).hexdigest()[:20]


def _split_keys(path: Path) -> set[str]:
    """Keys of the dialogues in a tagged val/test file."""
    keys = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.search(r"<dialogue>(.*)</dialogue>", line)
        if m:
            keys.add(dialogue_key(_dialogue_turns(m.group(1) + " <eos>")))
    return keys


def parse_dond_line(line: str, number: int, split: str = "train") -> ConversationLog:
    """One ``data.txt`` line as a conversation seen from ``YOU``.

    Raises:
        ValueError: the line does not have the data.txt layout (the message names the line).
    """
    m = re.match(r"^((?:\d+ ){6})(.*<selection>(.*?)<eos>)\s*reward=(\d+|[a-z ]+?)\s+(agree|disagree)\s+((?:\d+ ?){6})$",
                 line.strip())
    if m is None:
        raise ValueError(f"data.txt line {number}: not '<6 numbers> <dialogue> reward=R agree|disagree <6 numbers>'")
    mine = [int(x) for x in m.group(1).split()]
    theirs = [int(x) for x in m.group(6).split()]
    counts, values, partner_values = mine[0::2], mine[1::2], theirs[1::2]
    turns = _dialogue_turns(m.group(2))
    if not turns:
        raise ValueError(f"data.txt line {number}: no utterances before the selection")
    agreed = m.group(4).isdigit() and m.group(5) == "agree"  # "no agreement", "disconnect": no deal
    picks = [int(x) for x in re.findall(r"item\d=(\d+)", m.group(3))]
    points = int(m.group(4)) if agreed else 0
    partner_points = 0
    if agreed and len(picks) == 3:
        partner_points = sum((c - p) * v for c, p, v in zip(counts, picks, partner_values))
    outcomes: dict[str, float | bool] = {"points": float(points), "partner_points": float(partner_points),
                                         "agreement": agreed}
    if agreed and len(picks) == 3:  # the split this side took, so a model can also say what was agreed
        outcomes.update({f"take_{item}": float(p) for item, p in zip(ITEMS, picks)})
    return ConversationLog(
        id=f"dond-{number}", role=DOND_ROLE, split=split,
        turns=[Turn(speaker=s, text=u) for s, u in turns],
        outcomes=outcomes,
        context={"counts": [float(c) for c in counts], "values": [float(v) for v in values]},
        meta={"partner_values": partner_values, "selection": picks if agreed else None,
              "dialogue": dialogue_key(turns)},
    )


def dealornodeal_logs(folder: str | Path) -> Iterator[ConversationLog]:
    """Every ``data.txt`` dialogue (both sides) as a conversation with its split.

    Raises:
        FileNotFoundError: ``folder`` lacks data.txt, val.txt or test.txt.
    """
    folder = Path(folder)
    for name in ("data.txt", "val.txt", "test.txt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}; expected the Deal or No Deal folder")
    test, val = _split_keys(folder / "test.txt"), _split_keys(folder / "val.txt")
    with open(folder / "data.txt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            conv = parse_dond_line(line, number)
            key = conv.meta["dialogue"]
            conv.split = "test" if key in test else "val" if key in val else "train"
            yield conv


def dond_points(counts: list[int], values: list[int], picks: list[int]) -> int:
    """Points of taking ``picks`` of each item at ``values``."""
    return sum(min(max(p, 0), c) * v for c, p, v in zip(counts, picks, values))


def chitchat_logs(path: str | Path | None = None) -> Iterator[ConversationLog]:
    """Chit-Chat conversations with their ratings as outcomes; speakers ``A`` (opened) and ``B``."""
    from agentwm.text.chitchat import RATING_KEYS, load_chitchat

    for conv in load_chitchat(path):
        outcomes: dict[str, float | bool] = {}
        if conv.ratings is not None:
            outcomes = {k: float(v) for k, v in zip(RATING_KEYS, conv.ratings)}
            outcomes["rating"] = sum(conv.ratings) / len(conv.ratings)
        yield ConversationLog(
            id=conv.id, role="B", split=conv.split, outcomes=outcomes,
            turns=[Turn(speaker="AB"[s], text=t) for s, t in zip(conv.speakers, conv.turns)],
            meta={"prompt": conv.prompt} if conv.prompt else {},
        )
