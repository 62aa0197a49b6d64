"""LLMWorldModel: outcomes, follow-up proposals, done flags, rewards, fallbacks, deduplication and
sampling, concurrency of aimagine, input checks, and 1,000 adversarial answers that never crash it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import BaseMessage

from agentwm.text.client import LLMClient
from agentwm.worldmodels.base import Rollout, TextWorldModel, repeat_state
from agentwm.worldmodels.llm_outcome import LLMWorldModel, LLMWorldModelSettings
from tests.text_fakes import KeywordScorer, ScriptedChat, field, first_human

GOAL = "open the door"


def door_world(messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
    """A scripted LLM that knows a tiny door world.

    Outcome prompts: "open the door" in front of a door opens it (done); "walk to the door" from
    the corridor reaches it; anything else changes nothing. Proposal prompts: walk to the door
    from the corridor, else open it.
    """
    prompt = first_human(messages)
    state, action = field(prompt, "Current state"), field(prompt, "Action")
    if not action:  # "what would I do next?"
        return "Action: walk to the door" if "corridor" in state else "Action: open the door"
    if action == "open the door" and "in front of a door" in state:
        return '{"observation": "the door is open", "done": true}'
    if action == "walk to the door" and "corridor" in state:
        return "Observation: you stand in front of a door\nDone: no"
    return f"Observation: {state}\nDone: no"


def make(script: Any = door_world, **kwargs: Any) -> tuple[LLMWorldModel, ScriptedChat, KeywordScorer]:
    chat = ScriptedChat(script=script, latency=kwargs.pop("latency", 0.0), fail_first=kwargs.pop("fail_first", 0))
    scorer = KeywordScorer("open")
    client = LLMClient(chat, retries=kwargs.pop("retries", 1), backoff=0.0)
    return LLMWorldModel(client, scorer=scorer, goal=GOAL, **kwargs), chat, scorer


def test_protocol_and_one_step_outcome() -> None:
    wm, chat, _ = make()
    assert isinstance(wm, TextWorldModel)
    state = wm.observe(["you stand in front of a door", "a corridor"])
    rollout = wm.imagine(state, [["open the door", "open the door"]], horizon=1)
    assert isinstance(rollout, Rollout)
    assert rollout.extras["text"] == [["the door is open", "a corridor"]]
    assert torch.equal(rollout.rewards, torch.tensor([[1.0, 0.0]]))
    assert torch.equal(rollout.continues, torch.tensor([[0.0, 1.0]]))
    assert rollout.extras["done"].tolist() == [[True, False]]
    assert rollout.extras["llm_calls"] == 2 == chat.calls
    assert rollout.states["observation"][0] == state["observation"]


def test_followups_are_proposed_and_returns_rank_candidates() -> None:
    wm, chat, _ = make()
    state = repeat_state(wm.observe("a corridor"), 3)
    candidates = ["walk to the door", "dance", "open the door"]
    rollout = wm.imagine(state, [candidates], horizon=3)
    assert rollout.extras["actions"][0] == candidates
    # Item 0 walks, then the LLM proposes opening the door; done at step 2.
    assert rollout.extras["actions"][1][0] == "open the door"
    assert rollout.extras["text"][1][0] == "the door is open"
    assert rollout.continues[:, 0].tolist() == [1.0, 0.0, 0.0]
    assert rollout.extras["actions"][2][0] == ""  # done items are not simulated further
    returns = rollout.returns(gamma=0.9)
    assert int(returns.argmax()) == 0
    assert returns[0] == pytest.approx(0.9)
    # Items 1 and 2 stay in the corridor: the LLM proposes "walk to the door" at step 1.
    assert rollout.extras["actions"][1][1] == "walk to the door"
    per_item = rollout.extras["llm_calls_per_item"]
    assert sum(per_item) == rollout.extras["llm_calls"] == chat.calls


def test_identical_rows_are_asked_once_unless_sampling() -> None:
    wm, chat, _ = make()
    state = repeat_state(wm.observe("a corridor"), 4)
    rollout = wm.imagine(state, [["walk to the door"] * 4], horizon=1)
    assert chat.calls == 1 and rollout.extras["llm_calls_per_item"] == [1, 0, 0, 0]
    assert rollout.extras["text"][0] == ["you stand in front of a door"] * 4

    temperatures: list[Any] = []
    counter = iter(range(1000))

    def sampled(messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        temperatures.append(kwargs.get("temperature"))
        return f"Observation: outcome {next(counter)}"

    wm, chat, _ = make(sampled, samples_temperature=0.8)
    state = repeat_state(wm.observe("a corridor"), 3)
    rollout = wm.imagine(state, [["x", "x", "x"]], horizon=1)
    assert chat.calls == 3 and set(temperatures) == {0.8}
    assert len(set(rollout.extras["text"][0])) == 3
    again = wm.imagine(state, [["x", "x", "x"]], horizon=1)  # each sample has its own cache slot
    assert again.extras["text"] == rollout.extras["text"] and chat.calls == 3


def test_unreadable_or_failed_outcomes_fall_back_without_raising() -> None:
    def script(messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        return "```\n```" if "Action: broken" in first_human(messages) else "Observation: it is open now"

    wm, _, scorer = make(script, retries=1)
    state = wm.observe(["a wall", "a door"])
    rollout = wm.imagine(state, [["broken", "push"]], horizon=1)
    assert rollout.extras["text"] == [["a wall", "it is open now"]]
    assert rollout.extras["fallback_mask"].tolist() == [[True, False]]
    assert rollout.extras["fallbacks"] == 1
    assert rollout.continues.tolist() == [[1.0, 1.0]]
    assert scorer.seen[-2:] == ["a wall", "it is open now"]  # fallback rewarded on the unchanged state
    assert rollout.extras["llm_calls_per_item"][0] == 2  # one retry

    down, chat, _ = make(fail_first=100, retries=1)
    rollout = down.imagine(down.observe("a corridor"), [["walk to the door"]], horizon=2)
    assert rollout.extras["fallback_mask"].all() and rollout.extras["fallbacks"] == 2  # (step, item) cells
    assert rollout.extras["text"] == [["a corridor"], ["a corridor"]]
    assert rollout.extras["actions"][1] == ["walk to the door"]  # failed proposal repeats the last action
    assert rollout.extras["llm_calls"] == chat.calls


def test_reward_modes_bonus_and_done_detectors() -> None:
    wm, _, _ = make(reward="progress", terminal_bonus=2.0)
    state = wm.observe("you stand in front of a door")
    rollout = wm.imagine(state, [["open the door"]], horizon=2)
    assert rollout.rewards[:, 0].tolist() == [3.0, 0.0]  # 1 - 0 progress + bonus; nothing after done

    never, _, _ = make(done_detector="never")
    rollout = never.imagine(never.observe("you stand in front of a door"), [["open the door"]], horizon=2)
    assert rollout.continues[:, 0].tolist() == [1.0, 1.0]

    custom, _, _ = make(done_detector=lambda obs, goal: "front" in obs)
    rollout = custom.imagine(custom.observe("a corridor"), [["walk to the door"]], horizon=3)
    assert rollout.continues[:, 0].tolist() == [0.0, 0.0, 0.0]


def test_observe_builds_history_and_goals() -> None:
    wm, _, _ = make()
    state = wm.observe({"observation": ["a", "b"], "goal": ["g1", "g2"]})
    assert state["goal"] == ["g1", "g2"] and state["history"] == [[], []]
    nxt = wm.observe(["c", "d"], state, ["go", "stay"])
    assert nxt["goal"] == ["g1", "g2"]
    assert nxt["history"] == [["in 'a' did 'go'"], ["in 'b' did 'stay'"]]
    assert wm.observe("x", goal="other")["goal"] == ["other"]
    with pytest.raises(ValueError, match="no goal"):
        LLMWorldModel(wm.client, scorer=KeywordScorer()).observe("x")


@pytest.mark.parametrize(
    ("actions", "horizon", "error", "match"),
    [
        (["a", "b"], 1, TypeError, "time-major"),
        ([["a"]], 1, ValueError, "batch 2"),
        ([["a", 3]], 1, TypeError, r"actions\[0\]\[1\]"),
        ([["a", "b"], ["a", "b"]], 1, ValueError, "more than horizon"),
        ([["a", "b"]], 0, ValueError, "horizon"),
    ],
)
def test_bad_actions_are_named(actions: Any, horizon: int, error: type[Exception], match: str) -> None:
    wm, _, _ = make()
    with pytest.raises(error, match=match):
        wm.imagine(wm.observe(["x", "y"]), actions, horizon)


def test_missing_rows_need_followups_and_settings_are_validated() -> None:
    wm, _, _ = make(propose_followups=False)
    with pytest.raises(ValueError, match="propose_followups"):
        wm.imagine(wm.observe("x"), [["a"]], 2)
    with pytest.raises(ValueError):
        LLMWorldModelSettings(samples_temperature=-1.0)
    with pytest.raises(ValueError):
        make(reward="sum")
    with pytest.raises(ValueError, match="foo"):
        make(foo=1)
    with pytest.raises(TypeError, match="state"):
        wm.imagine({"observation": ["x"]}, [["a"]], 1)


def test_aimagine_runs_items_concurrently_and_sync_works_inside_a_loop() -> None:
    wm, chat, _ = make(latency=0.05)
    state = wm.observe([f"room {i}" for i in range(8)])
    rollout = asyncio.run(wm.aimagine(state, [["look"] * 8], horizon=2))
    assert chat.max_in_flight == 8 and chat.calls == 24  # outcome, then proposal + outcome
    assert rollout.rewards.shape == (2, 8)

    limited, chat, _ = make(latency=0.01, max_concurrency=3)
    asyncio.run(limited.aimagine(limited.observe([f"r{i}" for i in range(8)]), [["look"] * 8], 1))
    assert chat.max_in_flight <= 3

    async def inside() -> Rollout:
        return wm.imagine(wm.observe("a corridor"), [["walk to the door"]], 1)  # sync call in a loop

    assert asyncio.run(inside()).extras["text"] == [["you stand in front of a door"]]


ADVERSARIAL = st.one_of(
    st.text(max_size=120),
    st.sampled_from([
        "", "```", "{", '{"observation": ', '{"observation": null, "done": "maybe"}', "Observation:",
        "Observation: \nDone: yes", "Done: yes", '{"done": true}', "[]", "null", "Action:", "\x00\x00",
        '{"observation": ' + '"x' * 50, "Observation: " + "{" * 300, "NaN", "<|im_end|>", "   \n\t ",
    ]),
    st.lists(st.sampled_from(["{", "}", '"', "Observation:", "Done:", "yes", "```", "\n", "Action:", "x"]),
             max_size=30).map("".join),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ADVERSARIAL, min_size=4, max_size=6))
def test_adversarial_answers_never_crash_imagine(answers: list[str]) -> None:
    """250 examples of 4-6 answers, each consumed by the 6 calls of a rollout: over 1,000 outputs."""
    replies = iter(answers * 20)
    wm, _, _ = make(lambda m, k: next(replies, ""), retries=0)
    rollout = wm.imagine(wm.observe(["a corridor", "a hall"]), [["walk", "look"]], horizon=2)
    assert rollout.rewards.shape == rollout.continues.shape == (2, 2)
    assert torch.isfinite(rollout.rewards).all()
    assert all(isinstance(t, str) for row in rollout.extras["text"] for t in row)
    assert all(isinstance(a, str) for row in rollout.extras["actions"] for a in row)
