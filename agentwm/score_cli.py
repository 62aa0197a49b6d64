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


def _turn_texts(items: Any, what: str, *, pairs: bool = False) -> list[Any]:
    """A list of turns as strings; chat-message dicts give their ``content`` or ``text``. With
    ``pairs``, ``{"speaker", "text"}`` dicts and ``[speaker, text]`` lists become ``(speaker, text)``."""
    if not isinstance(items, list):
        raise TypeError(f"{what} must be a JSON list, got {type(items).__name__}")
    out: list[Any] = []
    for i, item in enumerate(items):
        if pairs and isinstance(item, dict) and "speaker" in item:
            item = [item["speaker"], item.get("text", item.get("content"))]
        if pairs and isinstance(item, list):
            if len(item) != 2 or not all(isinstance(x, str) for x in item):
                raise TypeError(f"{what}[{i}] must be [speaker, text] strings, got {item!r}")
            out.append((item[0], item[1]))
            continue
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
    gamma: float | None = None,
    samples: int | None = None,
    seed: int = 0,
    role: str | None = None,
    private_context: str | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    """``agentwm score dialogue``: read the inputs, score, and return JSON-ready results (best first).

    The model kind comes from the ``--model`` folder's config: the Chit-Chat model (the default)
    ranks by the discounted imagined return, an outcome model (``agentwm train dialogue --data``)
    by the expected final outcome (see :func:`agentwm.planning.replies.score_replies`).
    Candidates come from ``candidates`` (strings, or one string holding a JSON list), else
    ``candidates_file``, else the ``"candidates"`` key of the context file. Outcome models also
    read ``"private_context"`` and ``"role"`` from the context file (the flags win), and turns as
    ``[speaker, text]`` or ``{"speaker", "text"}``.
    """
    from agentwm.planning.outcome_replies import OutcomeScorer
    from agentwm.planning.replies import score_replies, scorer_of

    raw = _read_json(context_file, "context")
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
    fields = raw if isinstance(raw, dict) else {}
    private: Any = fields.get("private_context")
    if private_context is not None:
        try:
            private = json.loads(private_context)
        except json.JSONDecodeError as err:
            raise ValueError(f"--private-context is not valid JSON: {err}") from err
    role = role if role is not None else fields.get("role")
    scorer = scorer_of(model, role=role) if model else scorer_of(None)
    kind = "outcome" if isinstance(scorer, OutcomeScorer) else "chitchat"
    context = _turn_texts(raw.get("context") if isinstance(raw, dict) else raw, "context", pairs=kind == "outcome")
    extra: dict[str, Any] = {}
    if kind == "outcome":
        if private is not None and not isinstance(private, dict):
            raise TypeError(f"private_context must be a JSON object, got {type(private).__name__}")
        extra = {"private_context": private, "outcome": outcome}
    elif private is not None or outcome is not None or role is not None:
        raise ValueError("--private-context, --outcome and --role are for outcome models; --model is a Chit-Chat model")
    results: list[Any] = score_replies(context, cand_texts, horizon, gamma, model=scorer, samples=samples, seed=seed, **extra)
    ranked = sorted(results, key=lambda r: r.rank)
    summary: dict[str, Any] = {"model_kind": kind, "context": context, "horizon": horizon}
    if isinstance(scorer, OutcomeScorer):
        summary.update(outcome=outcome or scorer.model.config.target, role=scorer.role,
                       samples=8 if samples is None else samples)
    else:
        summary.update(gamma=0.9 if gamma is None else gamma, samples=1 if samples is None else samples)
    return {**summary, "best": ranked[0].reply, "results": [r.model_dump() for r in ranked]}
