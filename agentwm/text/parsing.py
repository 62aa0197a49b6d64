"""Tolerant extraction of JSON, fields, numbers, flags and choices from messy LLM output.

Chat models, small local ones above all, wrap JSON in code fences, add prose before and after it,
use single quotes and Python literals, stop half way through an object, or ignore the format and
write ``"Score: 7/10"``. Every function here takes whatever text came back and returns the value it
can recover, or ``None`` (an empty result) when there is none. None of them raises on any input
string: a planning node must degrade, not crash, on a bad answer.

Why by hand: ``json`` and ``ast.literal_eval`` do the actual parsing; what no library does is find
the candidate span in surrounding prose and repair the usual slips (fences, quotes, trailing commas,
unclosed brackets) before handing it to them. LangChain's JSON output parser covers fences and
partial objects but raises on prose-only answers and knows nothing of scores, flags or choices.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_MAX_CHARS = 20_000
"""Longer answers are cut before parsing; a world-model answer is a few hundred characters."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_FRACTION = re.compile(rf"({_NUMBER})\s*(?:/|out of|of)\s*({_NUMBER})", re.IGNORECASE)
_PERCENT = re.compile(rf"({_NUMBER})\s*%")
_NUM = re.compile(_NUMBER)
_SCORE_LABEL = re.compile(r"\b(?:score|progress|rating)\b[\s*\"']*(?:is|of|[:=])?[\s*\"']*([^\n]{0,40})", re.IGNORECASE)
_TRUE = {"true", "yes", "y", "1", "done", "finished", "complete", "completed", "success", "succeeded"}
_FALSE = {"false", "no", "n", "0", "not done", "ongoing", "continue", "continues", "incomplete", "none"}


def _clip(text: Any) -> str:
    if not isinstance(text, str):
        return "" if text is None else str(text)
    return text[:_MAX_CHARS]


def strip_fences(text: str) -> str:
    """The body of the first fenced code block, or the text itself when it has no fence."""
    text = _clip(text)
    match = _FENCE.search(text)
    return match.group(2).strip() if match else text.strip()


# ----------------------------------------------------------------------------------------------
# JSON


def _balanced_spans(text: str) -> list[str]:
    """Spans that start at ``{`` or ``[`` and run to their matching close (or to the end, when the
    answer was cut off), scanning strings so brackets inside them do not count."""
    spans: list[str] = []
    i = 0
    while i < len(text) and len(spans) < 8:
        if text[i] not in "{[":
            i += 1
            continue
        stack: list[str] = []
        quote: str | None = None
        escaped = False
        j = i
        while j < len(text):
            ch = text[j]
            if quote is not None:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                # An apostrophe inside a word ("don't") is not a quote.
                if ch == '"' or not (j > 0 and text[j - 1].isalnum()):
                    quote = ch
            elif ch in "{[":
                stack.append("}" if ch == "{" else "]")
            elif ch in "}]":
                if stack and stack[-1] == ch:
                    stack.pop()
                if not stack:
                    break
            j += 1
        spans.append(text[i : j + 1])
        i = j + 1
    return spans


def _close_partial(span: str) -> str:
    """Close an answer that stopped mid-object: an open string, dangling comma/colon, open brackets."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for ch in span:
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch == '"':
            quote = ch
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack and stack[-1] == ch:
            stack.pop()
    out = span + (quote or "")
    out = re.sub(r"[,:\s]+$", "", out)
    # A key with no value ('{"a": 1, "b"') cannot be completed; drop it.
    out = re.sub(r',\s*"[^"]*"$', "", out)
    return out + "".join(reversed(stack))


def _repairs(span: str) -> list[str]:
    fixed = re.sub(r",\s*([}\]])", r"\1", span)  # trailing commas
    fixed = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:", r'\1"\2":', fixed)  # bare keys
    lits = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", re.sub(r"\bNone\b", "null", fixed)))
    return [span, fixed, lits, _close_partial(lits)]


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except (ValueError, RecursionError):
        pass
    try:
        # Python-literal style answers: single quotes, True/False/None.
        value = ast.literal_eval(candidate)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def extract_json(text: str) -> dict[str, Any] | list[Any] | None:
    """The first JSON object or array found in ``text`` (fenced, embedded in prose, single-quoted,
    with trailing commas or bare keys, or cut off part way), or ``None``.

    Example:
        >>> extract_json('Sure! ```json\\n{"a": 1,}\\n``` hope that helps')
        {'a': 1}
    """
    text = _clip(text)
    for source in dict.fromkeys((strip_fences(text), text)):
        for span in _balanced_spans(source):
            candidates = _repairs(span)
            for i, candidate in enumerate(candidates):
                value = _loads(candidate)
                # A closed-off fragment must hold something: a lone "{" is not an answer.
                if isinstance(value, (dict, list)) and (value or i < len(candidates) - 1):
                    return value
    return None


def extract_object(text: str) -> dict[str, Any] | None:
    """Like :func:`extract_json`, but only an object (a one-element list holding one counts)."""
    value = extract_json(text)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, dict) else None


# ----------------------------------------------------------------------------------------------
# Fields, numbers, flags, choices, lists


def _norm_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def extract_fields(text: str, names: Sequence[str]) -> dict[str, str]:
    """``Name: value`` lines (also ``**Name**: value``, ``- name = value``) for the wanted ``names``;
    matching ignores case, spaces and underscores. A value runs to the end of its line; an empty
    value takes the next non-empty line. Only names found are returned.

    Example:
        >>> extract_fields("Observation: the door opens\\nDone: no", ["observation", "done"])
        {'observation': 'the door opens', 'done': 'no'}
    """
    text = strip_fences(_clip(text))
    wanted = {_norm_key(n): n for n in names if isinstance(n, str) and _norm_key(n)}
    found: dict[str, str] = {}
    if not wanted:
        return found
    # Another wanted label later on the same line ends a value: "Observation: x Done: yes".
    inline = re.compile(
        r"\s*\**\b(" + "|".join(
            "[ _-]?".join(re.escape(ch) for ch in key) for key in sorted(wanted, key=len, reverse=True)
        ) + r")\b\**\s*[:=]\s*",
        re.IGNORECASE,
    )
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^[\s>*#\-\d.)]*\**\s*([A-Za-z][A-Za-z0-9 _-]{0,40}?)\s*\**\s*[:=]\s*(.*)$", line)
        if not match:
            continue
        key = _norm_key(match.group(1))
        if key not in wanted:
            continue
        parts = inline.split(match.group(2))
        pairs = [(key, parts[0])] + [(_norm_key(parts[j]), parts[j + 1]) for j in range(1, len(parts) - 1, 2)]
        for k, raw in pairs:
            if k not in wanted or wanted[k] in found:
                continue
            value = raw.strip().strip("*").strip()
            if not value and len(pairs) == 1:
                value = next((ln.strip() for ln in lines[i + 1 :] if ln.strip()), "")
            found[wanted[k]] = value.strip().rstrip(",;").strip().strip("\"'").strip()
    return found


def extract_number(text: str, low: float | None = None, high: float | None = None) -> float | None:
    """The first finite number in ``text`` (within ``[low, high]`` when given), or ``None``."""
    for match in _NUM.finditer(_clip(text)):
        try:
            value = float(match.group(0))
        except ValueError:
            continue
        if not math.isfinite(value):
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            continue
        return value
    return None


def extract_score(text: str, scale: float | None = None) -> float | None:
    """A score normalised to ``[0, 1]``, or ``None``.

    Reads, in this order: ``"7/10"`` or ``"7 out of 10"`` (7 / 10), ``"70%"`` (0.7), then a bare number.
    A bare number is divided by ``scale`` when given; otherwise it is taken as is in ``[0, 1]``, as
    out of 10 up to 10 and as out of 100 up to 100. A field named score/progress/rating is
    preferred over other numbers in the text. Results are clipped to ``[0, 1]``.

    Example:
        >>> extract_score("Reasoning: step 2 of 5 done. Score: 7/10")
        0.7
    """
    text = _clip(text)
    obj = extract_object(text)
    if obj is not None:
        for key, value in obj.items():
            if _norm_key(str(key)) in ("score", "progress", "rating") and isinstance(value, (int, float, str)):
                score = _score_in(str(value), scale)
                if score is not None:
                    return score
    labelled = [re.split(r"[,;]", m.group(1))[0] for m in _SCORE_LABEL.finditer(text)]
    for source in [*labelled, text]:
        value = _score_in(source, scale)
        if value is not None:
            return value
    return None


def _score_in(text: str, scale: float | None) -> float | None:
    frac = _FRACTION.search(text)
    if frac:
        try:
            num, den = float(frac.group(1)), float(frac.group(2))
        except ValueError:
            num, den = math.nan, math.nan
        if math.isfinite(num) and math.isfinite(den) and den > 0:
            return min(max(num / den, 0.0), 1.0)
    pct = _PERCENT.search(text)
    if pct:
        value = extract_number(pct.group(1))
        if value is not None:
            return min(max(value / 100.0, 0.0), 1.0)
    value = extract_number(text)
    if value is None:
        return None
    if scale is not None and scale > 0:
        value /= scale
    elif value > 10.0:
        value /= 100.0
    elif value > 1.0:
        value /= 10.0
    return min(max(value, 0.0), 1.0)


def extract_bool(text: str) -> bool | None:
    """A yes/no answer: ``true/yes/done/...`` → True, ``false/no/not done/...`` → False, else None.
    The first word decides; a longer answer is searched for a decisive word."""
    text = strip_fences(_clip(text)).strip().strip("\"'.*").lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if re.match(r"^(not|no|false|never)\b", text) or re.search(r"\bnot (yet )?(done|finished|complete)", text):
        return False
    first = re.split(r"[\s,.;:!]+", text, maxsplit=1)[0]
    if first in _TRUE:
        return True
    if first in _FALSE:
        return False
    return None


def extract_choice(text: str, choices: Sequence[str]) -> str | None:
    """Which of ``choices`` the answer picks: an exact (case-insensitive) match, a 1-based number
    (``"2"``, ``"option 2"``), a letter (``"B)"``), or the choice mentioned earliest; else None."""
    options = [c for c in choices if isinstance(c, str)]
    if not options:
        return None
    text = strip_fences(_clip(text)).strip()
    bare = text.strip("\"'`*. ").lower()
    for option in options:
        if bare == option.lower():
            return option
    index = re.match(r"^#?\s*(\d+)\b", bare) or re.search(r"\b(?:option|choice|candidate)\s*#?\s*(\d+)\b", bare)
    if index and 1 <= int(index.group(1)) <= len(options):
        return options[int(index.group(1)) - 1]
    letter = re.match(r"^(?:option|choice|answer)?\s*\(?([a-z])[).:]?(?:\s|$)", bare)
    if letter and len(options) <= 26 and ord(letter.group(1)) - 97 < len(options) and len(bare) <= 3:
        return options[ord(letter.group(1)) - 97]
    lower = text.lower()
    hits = [(lower.find(o.lower()), -len(o), o) for o in options if o and o.lower() in lower]
    return min(hits)[2] if hits else None


def extract_list(text: str, limit: int = 20) -> list[str]:
    """Items of a bulleted or numbered list (or a JSON array of strings), in order; at most ``limit``."""
    value = extract_json(text)
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()][:limit]
    items = []
    for line in strip_fences(_clip(text)).splitlines():
        match = re.match(r"^\s*(?:[-*•]|\d+[.)]|\(\d+\))\s+(.+)$", line)
        if match:
            items.append(match.group(1).strip())
    return items[:limit]


def first_line(text: str, max_chars: int = 500) -> str:
    """The first non-empty line of the answer (fences and a ``Label:`` prefix removed), or ''."""
    for line in strip_fences(_clip(text)).splitlines():
        line = re.sub(r"^[\s>*#\-]*(?:[A-Za-z ]{1,20}:\s*)?", "", line).strip().strip("\"'*").strip()
        if line:
            return line[:max_chars]
    return ""


# ----------------------------------------------------------------------------------------------
# Pydantic models


def parse_model(text: str, schema: type[M], *, text_field: str | None = None) -> M | None:
    """Validate an answer into ``schema``, or ``None``.

    Tries, in order: a JSON object (keys matched ignoring case and underscores); ``Field: value``
    lines for the schema's fields (pydantic's lax mode turns ``"0.7"`` into a float and ``"yes"``
    into a bool); and, when ``text_field`` names a string field, the first line of the answer as
    that field with the other fields at their defaults (for small models that ignore the format).
    """
    try:
        return _parse_model(_clip(text), schema, text_field)
    except Exception:  # noqa: BLE001 - any slip in a validator is a parse failure, never a crash
        return None


def _parse_model(text: str, schema: type[M], text_field: str | None) -> M | None:
    fields = list(schema.model_fields)
    keys = {_norm_key(f): f for f in fields}
    obj = extract_object(text)
    if obj is not None:
        data = {keys[_norm_key(str(k))]: v for k, v in obj.items() if _norm_key(str(k)) in keys}
        model = _validate(schema, data)
        if model is not None:
            return model
    lines = extract_fields(text, fields)
    if lines:
        data = dict(lines)
        model = _validate(schema, data)
        if model is not None:
            return model
    if text_field is not None and text_field in schema.model_fields:
        line = first_line(text)
        if line:
            data = {k: v for k, v in lines.items() if k != text_field}
            data[text_field] = line
            model = _validate(schema, data) or _validate(schema, {text_field: line})
            if model is not None:
                return model
    return None


def _coerce(schema: type[BaseModel], field: str, value: Any) -> Any:
    """Turn a text value into what the field's type wants, where pydantic's lax mode would not
    ("Yes." → True for a bool, "about 0.7 I think" → 0.7 for a float)."""
    if not isinstance(value, str):
        return value
    annotation = schema.model_fields[field].annotation
    kinds = set(getattr(annotation, "__args__", ())) or {annotation}
    if bool in kinds:
        flag = extract_bool(value)
        return value if flag is None else flag
    if float in kinds or int in kinds:
        number = extract_number(value)
        if number is None:
            return value
        return int(number) if int in kinds and float not in kinds and number.is_integer() else number
    return value


def _validate(schema: type[M], data: Mapping[str, Any]) -> M | None:
    try:
        return schema.model_validate({k: _coerce(schema, k, v) for k, v in data.items()})
    except (ValidationError, ValueError, TypeError):
        return None
