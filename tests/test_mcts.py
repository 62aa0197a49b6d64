"""MCTS over world models: pUCT finds delayed rewards past greedy traps, uses model values,
runs over a scripted text world model, adds reproducible root noise, and rejects bad settings."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from agentwm.planning.mcts import MCTS
from agentwm.worldmodels.base import ActionSpec, Rollout, State, TextWorldModel
from tests.toy_models import RIGHT, STAY, Chain


def test_finds_the_delayed_reward_past_a_greedy_trap() -> None:
    # From goal-2: jump pays 0.9 now and ends; right, right then stay pays 1 per step at the goal.
    model = Chain(length=7, goal=3)
    mcts = MCTS(model, simulations=200, gamma=0.9, exploration_fraction=0.0)
    result = mcts.plan(model.state([1]))
    assert result.chosen == [RIGHT]
    assert result.action.argmax(-1).tolist() == [RIGHT]
    assert result.policy.shape == (1, 4) and result.policy.sum().item() == pytest.approx(1.0)
    assert result.policy[0, RIGHT] == result.policy.max()
    # At the goal, staying beats everything, and the root value is a discounted stream of 1s.
    at_goal = mcts.plan(model.state([3]))
    assert at_goal.chosen == [STAY]
    assert 3.0 < at_goal.root_value.item() < 1 / (1 - 0.9)


def test_several_roots_are_searched_independently() -> None:
    model = Chain(length=7, goal=3)
    result = MCTS(model, simulations=150, gamma=0.9, exploration_fraction=0.0).plan(model.state([1, 3, 5]))
    assert result.chosen == [RIGHT, STAY, 0]  # 0 = LEFT from goal+2


class ValuedFork:
    """Two actions, no rewards; the model's value head says action 1 leads somewhere worth 3,
    action 0 somewhere worth 1. Only ``Rollout.values`` tells them apart."""

    action_spec = ActionSpec("discrete", 2)

    def imagine(self, state: State, actions: torch.Tensor, horizon: int) -> Rollout:
        idx = actions.argmax(-1).float()  # [H, B]
        return Rollout(
            states={"x": torch.cat([state["x"][None], idx], 0)},
            rewards=torch.zeros_like(idx), continues=torch.ones_like(idx), values=1.0 + 2.0 * idx,
        )


def test_leaf_values_come_from_the_rollout() -> None:
    result = MCTS(ValuedFork(), simulations=10, gamma=0.9, exploration_fraction=0.0).plan({"x": torch.zeros(1)})
    assert result.chosen == [1]
    assert result.root_value.item() == pytest.approx(0.9 * 3.0, rel=0.35)


def test_rollouts_score_leaves_of_models_without_values() -> None:
    model = Chain(length=7, goal=3)
    mcts = MCTS(model, simulations=8, gamma=0.9, exploration_fraction=0.0, rollout_horizon=4, generator=0)
    calls = model.calls
    mcts.plan(model.state([1]))
    assert model.calls > calls + 8  # expansions plus leaf rollouts


def test_root_noise_is_reproducible_and_matters() -> None:
    model = Chain(length=7, goal=3)

    def policy(seed: int, fraction: float) -> torch.Tensor:
        mcts = MCTS(model, simulations=12, gamma=0.9, exploration_fraction=fraction, dirichlet_alpha=0.3,
                    generator=seed)
        return mcts.plan(model.state([1])).policy

    assert torch.equal(policy(1, 0.5), policy(1, 0.5))
    noisy = {tuple(policy(seed, 0.9).tolist()[0]) for seed in range(6)}
    assert len(noisy) > 1
    assert len({tuple(policy(seed, 0.0).tolist()[0]) for seed in range(3)}) == 1


def test_temperature_samples_in_proportion_to_visits() -> None:
    model = Chain(length=7, goal=3)
    mcts = MCTS(model, simulations=30, gamma=0.9, exploration_fraction=0.0, temperature=1.0, generator=0)
    picks = {mcts.plan(model.state([1])).chosen[0] for _ in range(30)}
    assert RIGHT in picks and len(picks) > 1


class ScriptedSupport:
    """A text world model of a support chat. Apologising first earns little, but then offering a
    refund resolves the ticket (+10, episode over). Offering the refund at once earns +2 and the
    customer stays annoyed; escalating pays 3 now and ends the episode. Greedy picks escalate."""

    REWARDS: ClassVar[dict[tuple[str, str], float]] = {("start", "apologise"): 0.5, ("start", "refund"): 2.0, ("start", "escalate"): 3.0,
               ("calm", "refund"): 10.0, ("annoyed", "refund"): 0.0}
    NEXT: ClassVar[dict[tuple[str, str], str]] = {("start", "apologise"): "calm", ("start", "refund"): "annoyed", ("calm", "refund"): "resolved"}
    ENDS: ClassVar[set[str]] = {"escalate", "resolved"}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def observe(self, obs: Any, state: State | None = None, action: Any | None = None) -> State:
        return {"observation": [obs] if isinstance(obs, str) else list(obs)}

    def imagine(self, state: State, actions: Any, horizon: int) -> Rollout:
        obs = list(state["observation"])
        path, rewards, conts, texts = [obs], [], [], []
        for t in range(horizon):
            acts = actions[t] if t < len(actions) else ["refund"] * len(obs)  # the model's own follow-up
            self.calls.append(list(acts))
            rewards.append([self.REWARDS.get((o, a), 0.0) for o, a in zip(obs, acts)])
            obs = [self.NEXT.get((o, a), "escalate" if a == "escalate" else o) for o, a in zip(obs, acts)]
            conts.append([0.0 if o in self.ENDS else 1.0 for o in obs])
            texts.append([f"customer is {o}" for o in obs])
            path.append(obs)
        return Rollout(
            states={"observation": path}, rewards=torch.tensor(rewards), continues=torch.tensor(conts),
            extras={"text": texts, "actions": actions},
        )

    async def aimagine(self, state: State, actions: Any, horizon: int) -> Rollout:
        return self.imagine(state, actions, horizon)


def test_searches_a_text_world_model() -> None:
    model = ScriptedSupport()
    assert isinstance(model, TextWorldModel)
    replies = ["escalate", "refund", "apologise"]
    mcts = MCTS(model, actions=replies, fixed_actions=True, simulations=30, gamma=0.95, exploration_fraction=0.0)
    result = mcts.plan(model.observe("start"))
    assert result.chosen == ["apologise"]
    assert result.policy.shape == (1, 3) and result.policy[0, 2] == result.policy.max()
    assert all(len(call) == 3 for call in model.calls)  # one imagine call per expansion, all replies batched
    # candidates can depend on the node: with refund not on offer at the start, escalate wins
    def offered(state: State) -> list[str]:
        return ["escalate", "apologise"] if state["observation"] == ["start"] else ["refund"]

    assert MCTS(model, actions=offered, simulations=20, gamma=0.95).plan(model.observe("start")).chosen == [
        "apologise"
    ]
    # a text model without values can still be scored by its own follow-ups
    look = MCTS(model, actions=["escalate", "apologise"], fixed_actions=True, simulations=2, gamma=0.95, rollout_horizon=1)
    assert look.plan(model.observe("start")).chosen == ["apologise"]


def test_bad_settings_are_named() -> None:
    model = Chain()
    with pytest.raises(ValueError, match="simulations"):
        MCTS(model, simulations=0)
    with pytest.raises(ValueError, match="gamma"):
        MCTS(model, gamma=1.5)
    with pytest.raises(ValueError, match="dirichlet_alpha"):
        MCTS(model, dirichlet_alpha=0.0)
    with pytest.raises(ValueError, match="list of strings"):
        MCTS(ScriptedSupport(), actions="refund")
    with pytest.raises(ValueError, match="discrete ActionSpec"):
        MCTS(ScriptedSupport())
    with pytest.raises(TypeError, match="imagine"):
        MCTS(object())
