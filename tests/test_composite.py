"""HybridWorldModel: who gets consulted in each mode, the blend, the text↔latent bridge, settings
validation, and a run with a real EnsembleDynamics."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from agentwm.text.client import LLMClient
from agentwm.worldmodels.base import ActionSpec, Rollout, State, TextWorldModel, repeat_state
from agentwm.worldmodels.composite import HybridSettings, HybridWorldModel
from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics
from agentwm.worldmodels.llm_outcome import LLMWorldModel
from tests.text_fakes import KeywordScorer, ScriptedChat, field, first_human

ACTIONS = {"left": torch.tensor([1.0, 0.0]), "right": torch.tensor([0.0, 1.0])}


class Line:
    """x' = x - left + right; reward x'; the model "knows" |x'| <= 2 (disagreement 0) and
    disagrees (1.0) beyond. Records the actions it imagined."""

    action_spec = ActionSpec("discrete", 2)

    def __init__(self) -> None:
        self.seen: list[Tensor] = []
        self.observed: list[Any] = []

    def observe(self, obs: Tensor, state: State | None = None, action: Tensor | None = None) -> State:
        self.observed.append(action)
        return {"obs": obs.float().reshape(-1, 1)}

    def imagine(self, state: State, actions: Any, horizon: int, *, disagreement: bool = False) -> Rollout:
        x = state["obs"]
        xs, taken = [x], []
        for t in range(horizon):
            a = actions({"obs": x}) if callable(actions) else actions[t]
            taken.append(a)
            x = x + a[:, 1:2] - a[:, 0:1]
            xs.append(x)
        obs = torch.stack(xs)
        acts = torch.stack(taken)
        self.seen.append(acts)
        rewards = obs[1:, :, 0]
        dis = (rewards.abs() > 2).float()
        return Rollout({"obs": obs}, rewards, torch.ones_like(rewards), acts,
                       extras={"disagreement": dis} if disagreement else {})


def llm_script(messages: list[Any], kwargs: dict[str, Any]) -> str:
    prompt = first_human(messages)
    action = field(prompt, "Action")
    if not action:
        return "Action: right"
    return "Observation: the door is open" if action == "open" else f"Observation: moved {action}"


def build(**settings: Any) -> tuple[HybridWorldModel, Line, ScriptedChat]:
    line = Line()
    chat = ScriptedChat(script=llm_script)
    llm = LLMWorldModel(LLMClient(chat), scorer=KeywordScorer("open"), goal="open the door")
    hybrid = HybridWorldModel(
        line, llm,
        action_of=lambda text: ACTIONS.get(text.strip().lower()),
        encode_obs=lambda text: torch.tensor([float(text.split()[-1])]),
        describe=lambda vec: f"at {float(vec[0]):g}",
        **settings,
    )
    return hybrid, line, chat


def test_latent_first_consults_only_uncertain_or_unmappable_items() -> None:
    hybrid, line, chat = build(threshold=0.3, llm_weight=0.5)
    assert isinstance(hybrid, TextWorldModel)
    state = repeat_state(hybrid.observe("position 0"), 3)
    assert state["latent:obs"].shape == (3, 1)
    rows = [["right", "left", "open"], ["right", "right", "open"], ["right", "left", "open"]]
    rollout = hybrid.imagine(state, rows, horizon=3)
    # Item 0 reaches x=3 (disagreement 1/3 on average), item 1 stays within [-2, 2], item 2's first
    # action cannot be mapped, so only the LLM can score it.
    assert rollout.extras["consulted"].tolist() == [True, False, True]
    assert rollout.extras["llm_weight"].tolist() == [0.5, 0.0, 1.0]
    assert chat.calls == 6  # 3 steps for items 0 and 2, none for item 1
    assert rollout.extras["llm_calls"] == 6
    lat = rollout.extras["latent_rewards"]
    assert torch.equal(rollout.rewards[:, 1], lat[:, 1])
    assert rollout.rewards[:, 0].tolist() == pytest.approx((0.5 * lat[:, 0]).tolist())  # LLM reward 0 here
    assert rollout.rewards[:, 2].tolist() == [1.0, 1.0, 1.0]  # the LLM alone: "open" opens the door
    assert rollout.extras["text"][2][1] == "at -1"  # described latent state of an unconsulted item
    assert rollout.extras["text"][0][2] == "the door is open"
    assert rollout.extras["text"][2][0] == "moved right"
    assert rollout.extras["disagreement"].shape == (3, 3)
    assert torch.equal(line.seen[-1][:, 1], torch.stack([ACTIONS[a] for a in ("left", "right", "left")]))


def test_max_consults_keeps_the_most_uncertain() -> None:
    hybrid, _, chat = build(threshold=0.0, max_consults=1)
    state = repeat_state(hybrid.observe("position 2"), 3)
    rollout = hybrid.imagine(state, [["right", "left", "right"], ["right", "left", "right"]], horizon=2)
    # Disagreement: item 0 at 3, 4 (1.0); item 1 at 1, 0 (0.0); item 2 at 3, 4 (1.0): first max wins.
    assert rollout.extras["consulted"].tolist() == [True, False, False]
    assert chat.calls == 2


def test_llm_first_lets_the_latent_model_verify_the_llm_plan() -> None:
    hybrid, line, chat = build(mode="llm_first", threshold=0.3, llm_weight=0.25)
    state = repeat_state(hybrid.observe("position 0"), 2)
    rollout = hybrid.imagine(state, [["left", "right"]], horizon=3)
    # The LLM proposed "right" for the follow-ups; the latent model replayed exactly that.
    assert rollout.extras["actions"][1] == ["right", "right"]
    replayed = line.seen[-1]
    assert torch.equal(replayed[0], torch.stack([ACTIONS["left"], ACTIONS["right"]]))
    assert torch.equal(replayed[1:], ACTIONS["right"].expand(2, 2, 2))
    # Item 0 ends at 1 (confident: latent only); item 1 reaches 3 (uncertain: 0.25 LLM).
    assert rollout.extras["llm_weight"].tolist() == [0.0, 0.25]
    assert torch.equal(rollout.rewards[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert chat.calls == 10  # 2 first outcomes + 2 × 2 × (proposal + outcome)


def test_latent_policy_fills_missing_rows() -> None:
    hybrid, line, _ = build(threshold=10.0, latent_policy=lambda s: ACTIONS["left"].expand(s["obs"].shape[0], 2))
    hybrid.imagine(hybrid.observe("position 0"), [["right"]], horizon=3)
    assert torch.equal(line.seen[-1][:, 0], torch.stack([ACTIONS["right"], ACTIONS["left"], ACTIONS["left"]]))
    repeat, line, _ = build(threshold=10.0)
    repeat.imagine(repeat.observe("position 0"), [["right"]], horizon=3)
    assert torch.equal(line.seen[-1][:, 0], ACTIONS["right"].expand(3, 2))


def test_observe_accepts_vectors_and_maps_actions() -> None:
    hybrid, line, _ = build()
    state = hybrid.observe({"observation": ["a", "b"], "latent": torch.tensor([[1.0], [2.0]]), "goal": "g"})
    assert state["latent:obs"].tolist() == [[1.0], [2.0]] and state["goal"] == ["g", "g"]
    nxt = hybrid.observe(["position 5", "position 6"], state, ["left", "dance"])
    assert nxt["history"][0] == ["in 'a' did 'left'"]
    assert torch.equal(line.observed[-1], torch.stack([ACTIONS["left"], torch.zeros(2)]))
    bare = HybridWorldModel(Line(), hybrid.llm, action_of=lambda t: None)
    with pytest.raises(ValueError, match="encode_obs"):
        bare.observe("position 0")


def test_settings_and_inputs_are_validated() -> None:
    with pytest.raises(ValidationError):
        build(mode="both")
    with pytest.raises(ValidationError):
        build(llm_weight=1.5)
    with pytest.raises(ValidationError):
        HybridSettings(threshold=-1.0)
    with pytest.raises(TypeError, match="LLMWorldModel"):
        HybridWorldModel(Line(), object(), action_of=lambda t: None)  # type: ignore[arg-type]

    class Silent(Line):
        def imagine(self, state: State, actions: Any, horizon: int) -> Rollout:  # type: ignore[override]
            return super().imagine(state, actions, horizon)

    hybrid, _, _ = build()
    silent = HybridWorldModel(Silent(), hybrid.llm, action_of=hybrid.action_of, encode_obs=hybrid.encode_obs)
    with pytest.raises(ValueError, match="disagreement"):
        silent.imagine(silent.observe("position 0"), [["left"]], 1)
    with pytest.raises(TypeError, match="time-major"):
        hybrid.imagine(hybrid.observe("position 0"), ["left"], 1)  # type: ignore[arg-type]


def test_with_a_real_ensemble() -> None:
    torch.manual_seed(0)
    ensemble = EnsembleDynamics(1, ActionSpec("discrete", 2), EnsembleConfig(members=3, units=16, layers=1))
    hybrid, _, chat = build(threshold=0.0, llm_weight=0.5)
    real = HybridWorldModel(
        ensemble, hybrid.llm, action_of=hybrid.action_of, encode_obs=hybrid.encode_obs, threshold=0.0
    )
    state = repeat_state(real.observe("position 0"), 4)
    rollout = real.imagine(state, [["left", "right", "left", "right"]], horizon=4)
    assert rollout.rewards.shape == (4, 4) and torch.isfinite(rollout.rewards).all()
    assert (rollout.extras["disagreement"] > 0).all()  # untrained members disagree everywhere
    assert rollout.extras["consulted"].all() and chat.calls > 0
