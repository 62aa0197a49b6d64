"""Tolerant parsing of LLM output: golden cases for each slip small models make, and a property
test that no input string makes a parse function raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from agentwm.text.parsing import (
    extract_bool,
    extract_choice,
    extract_fields,
    extract_json,
    extract_list,
    extract_number,
    extract_object,
    extract_score,
    first_line,
    parse_model,
    strip_fences,
)
from agentwm.text.prompts import NextAction, Outcome, Progress


class Plan(BaseModel):
    action: str
    confidence: float = Field(ge=0.0, le=1.0)
    done: bool = False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure!\n```json\n{"a": 1, "b": [1, 2]}\n```\nAnything else?', {"a": 1, "b": [1, 2]}),
        ("```\n{'a': 'x', 'ok': True, 'n': None}\n```", {"a": "x", "ok": True, "n": None}),
        ('{"a": 1, "b": 2,}', {"a": 1, "b": 2}),
        ("{a: 1, b: 'two'}", {"a": 1, "b": "two"}),
        ('The answer is {"observation": "the door opens", "done": false} as requested.',
         {"observation": "the door opens", "done": False}),
        ('{"observation": "the door op', {"observation": "the door op"}),
        ('{"a": {"b": [1, 2', {"a": {"b": [1, 2]}}),
        ("I don't think so. {\"x\": \"it's fine\"}", {"x": "it's fine"}),
        ('{"text": "a } inside"} trailing', {"text": "a } inside"}),
        ("[1, 2, 3]", [1, 2, 3]),
    ],
)
def test_extract_json_recovers_messy_objects(text: str, expected: object) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", "{", "}{", "{{{{", "[[[", "{:}", "```", "``` ```"])
def test_extract_json_gives_none_without_an_object(text: str) -> None:
    value = extract_json(text)
    assert value is None or isinstance(value, (dict, list))
    if text in ("", "no json here", "}{", "```", "``` ```"):
        assert value is None


def test_extract_object_unwraps_a_single_item_list() -> None:
    assert extract_object('[{"a": 1}]') == {"a": 1}
    assert extract_object("[1, 2]") is None


def test_strip_fences_and_first_line() -> None:
    assert strip_fences("hi\n```python\nx = 1\n```\nbye") == "x = 1"
    assert strip_fences("plain") == "plain"
    assert first_line("\n\n  Observation: the box moves\nmore") == "the box moves"
    assert first_line("   ") == ""


def test_extract_fields_variants() -> None:
    text = "**Observation**: the door opens\n- done = Yes\nScore:\n  0.8\nirrelevant: z"
    assert extract_fields(text, ["observation", "done", "score"]) == {
        "observation": "the door opens", "done": "Yes", "score": "0.8",
    }
    assert extract_fields("next_action: go left", ["Next Action"]) == {"Next Action": "go left"}
    assert extract_fields("nothing here", ["observation"]) == {}


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Score: 7/10", 0.7),
        ("Reasoning: step 2 of 5 is done. Score: 7/10", 0.7),
        ("I'd say 3 out of 4", 0.75),
        ("progress is 60%", 0.6),
        ("0.25", 0.25),
        ("8", 0.8),
        ("85", 0.85),
        ('{"score": 0.9, "reason": "3 of 4 parts"}', 0.9),
        ("Score: 12/10", 1.0),
        ("score -3", 0.0),
    ],
)
def test_extract_score_normalises_to_unit_interval(text: str, score: float) -> None:
    assert extract_score(text) == pytest.approx(score)


def test_extract_score_and_number_without_numbers() -> None:
    assert extract_score("no idea") is None
    assert extract_number("x = 1e999 or 3.5") == 3.5  # inf is skipped
    assert extract_number("between 5 and 50", low=10) == 50
    assert extract_score("7", scale=20) == pytest.approx(0.35)


@pytest.mark.parametrize(
    ("text", "flag"),
    [("yes", True), ("Yes.", True), ("TRUE", True), ("Done: yes", True), ("done", True),
     ("no", False), ("Not yet done", False), ("false", False), ("not done", False),
     ("It is not finished", False), ("maybe", None), ("", None)],
)
def test_extract_bool(text: str, flag: bool | None) -> None:
    assert extract_bool(text) is flag


def test_extract_choice() -> None:
    options = ["go left", "go right", "pick up"]
    assert extract_choice("Go Right", options) == "go right"
    assert extract_choice("2", options) == "go right"
    assert extract_choice("I pick option 3.", options) == "pick up"
    assert extract_choice("b)", options) == "go right"
    assert extract_choice("first go left, then pick up", options) == "go left"
    assert extract_choice("fly", options) is None
    assert extract_choice("7", options) is None
    assert extract_choice("anything", []) is None


def test_extract_list() -> None:
    assert extract_list("Plan:\n1. open door\n2) walk\n- pick up key\ntext") == ["open door", "walk", "pick up key"]
    assert extract_list('["a", "b"]') == ["a", "b"]
    assert extract_list("nothing") == []


def test_parse_model_json_fields_and_text_fallback() -> None:
    assert parse_model('{"Action": "go", "Confidence": "0.5"}', Plan) == Plan(action="go", confidence=0.5)
    assert parse_model("Action: open it\nConfidence: about 0.9\nDone: Yes.", Plan) == Plan(
        action="open it", confidence=0.9, done=True
    )
    # Out of range confidence fails validation: no model, no exception.
    assert parse_model('{"action": "go", "confidence": 7}', Plan) is None
    assert parse_model("The door swings open.\nIt creaks.", Outcome, text_field="observation") == Outcome(
        observation="The door swings open.", done=False
    )
    assert parse_model("The door swings open.", Outcome) is None
    assert parse_model("Observation: door open\nDone: yes", Outcome) == Outcome(observation="door open", done=True)
    assert parse_model("```\n```", NextAction, text_field="action") is None
    assert parse_model("Score: 0.4", Progress) == Progress(score=0.4)


# ----------------------------------------------------------------------------------------------
# Property: no string makes any parse function raise.

_PIECES = st.sampled_from([
    "{", "}", "[", "]", '"', "'", ":", ",", "```", "```json\n", "\n", "\\", "null", "True", "NaN",
    "Infinity", "1e999", "-0", "7/10", "0/0", "%", "Score:", "Observation:", "Done:", "Action:",
    "yes", "no", "not done", "option 2", "\x00", "é", "🙂", " " * 3, "{{", "}}", "<|im_end|>",
])
MESSY = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=40).map("".join),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=10)),
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)),
        max_leaves=12,
    ).map(lambda v: repr(v)[: max(1, len(repr(v)) * 3 // 4)]),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSY)
def test_parse_functions_never_raise(text: str) -> None:
    extract_json(text)
    extract_object(text)
    strip_fences(text)
    first_line(text)
    extract_fields(text, ["observation", "done", "score"])
    number = extract_number(text)
    assert number is None or math.isfinite(number)
    score = extract_score(text)
    assert score is None or 0.0 <= score <= 1.0
    assert extract_bool(text) in (True, False, None)
    assert extract_choice(text, ["a", "b", "go left"]) in ("a", "b", "go left", None)
    assert isinstance(extract_list(text), list)
    for schema, field_name in ((Outcome, "observation"), (NextAction, "action"), (Progress, None), (Plan, None)):
        result = parse_model(text, schema, text_field=field_name)
        assert result is None or isinstance(result, schema)
