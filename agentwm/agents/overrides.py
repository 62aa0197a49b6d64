"""``--set key=value`` overrides shared by the training commands: one parser for every config."""

from __future__ import annotations

import json
from typing import Any


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)`` with the value parsed as JSON when it parses, else kept as text.

    Raises:
        ValueError: no ``=``, or an empty key.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set takes key=value (e.g. train_ratio=256 or model.deter=128), got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
