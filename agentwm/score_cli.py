"""What the ``agentwm score`` commands run: read the inputs, rank through the one ranking path
(:func:`agentwm.planning.rank`), and return plain JSON-ready data for the CLI to print."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentwm.planning.ranking import rank
from agentwm.worldmodels.base import TextWorldModel

__all__ = ["rank_text_candidates", "score_dialogue"]


def rank_text_candidates(
    model: TextWorldModel,
    observation: str,
    candidates: Sequence[str],
    *,
    goal: str | None = None,
    horizon: int = 1,
    gamma: float = 0.9,
    samples: int = 1,
) -> dict[str, Any]:
    """Imagine each candidate action ``samples`` times from one text observation and rank them by
    mean discounted return; a plain-data summary (what ``agentwm score llm`` prints).

    Args:
        model: an :class:`~agentwm.worldmodels.LLMWorldModel` or any text world model whose
            ``observe`` takes ``goal=``.
        observation / goal: the start state and the goal.
        candidates: the text actions to compare; the model proposes follow-ups after them.
        horizon / gamma / samples: imagined steps, discount, imaginations per candidate.

    Returns:
        ``{"best", "ranking": [{"candidate", "score", "returns", "imagined", "actions"}] best first,
        "llm_calls", "fallbacks"}``; ``imagined``/``actions`` follow the first sample.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    names = [candidates] if isinstance(candidates, str) else list(candidates)
    start = model.observe(observation, goal=goal)  # type: ignore[call-arg]  # LLMWorldModel.observe takes a goal
    ranking = rank(model, start, names, horizon=horizon, samples=samples, gamma=gamma)
    extras = ranking.rollout.extras
    text, acts = extras.get("text", []), extras.get("actions", [])
    order = [int(k) for k in ranking.order]
    return {
        "best": names[ranking.best],
        "ranking": [
            {
                "candidate": names[k],
                "score": round(float(ranking.scores[k]), 6),
                "returns": [round(float(r), 6) for r in ranking.returns[k]],
                "imagined": [row[k * samples] for row in text],
                "actions": [row[k * samples] for row in acts],
            }
            for k in order
        ],
        "llm_calls": extras.get("llm_calls"),
        "fallbacks": extras.get("fallbacks"),
    }


def _read_json(path: str, what: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} file {path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err


def _turn_texts(items: Any, what: str) -> list[str]:
    """A list of turns as strings; chat-message dicts give their ``content`` or ``text``."""
    if not isinstance(items, list):
        raise TypeError(f"{what} must be a JSON list, got {type(items).__name__}")
    out: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            item = item.get("content", item.get("text"))
        if not isinstance(item, str):
            raise TypeError(f"{what}[{i}] must be a string or a message with 'content'/'text', got {type(item).__name__}")
        out.append(item)
    return out


def score_dialogue(
    *,
    context_file: str,
    candidates: Sequence[str] | None = None,
    candidates_file: str | None = None,
    model: str | None = None,
    horizon: int = 3,
    gamma: float = 0.9,
    samples: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """``agentwm score dialogue``: read the inputs, score, and return JSON-ready results (best first).

    Candidates come from ``candidates`` (strings, or one string holding a JSON list), else
    ``candidates_file``, else the ``"candidates"`` key of the context file.
    """
    from agentwm.planning.replies import score_replies
    from agentwm.worldmodels.dialogue import DialogueWorldModel

    raw = _read_json(context_file, "context")
    context_items = raw.get("context") if isinstance(raw, dict) else raw
    context = _turn_texts(context_items, "context")
    cands: Any = None
    if candidates:
        cands = list(candidates)
        if len(cands) == 1 and cands[0].lstrip().startswith("["):
            try:
                cands = json.loads(cands[0])
            except json.JSONDecodeError as err:
                raise ValueError(f"--candidates looks like JSON but is not valid: {err}") from err
    elif candidates_file:
        cands = _read_json(candidates_file, "candidates")
    elif isinstance(raw, dict) and "candidates" in raw:
        cands = raw["candidates"]
    if cands is None:
        raise ValueError("no candidates: pass --candidates, --candidates-file, or a 'candidates' key in the context file")
    cand_texts = _turn_texts(cands, "candidates")
    world_model = DialogueWorldModel.load(model) if model else None
    results = score_replies(context, cand_texts, horizon, gamma, model=world_model, samples=samples, seed=seed)
    ranked = sorted(results, key=lambda r: r.rank)
    return {
        "context": context, "horizon": horizon, "gamma": gamma, "samples": samples,
        "best": ranked[0].reply, "results": [r.model_dump() for r in ranked],
    }
