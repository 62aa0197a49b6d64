"""The actor's lookahead objective: one-step values of every discrete action (agents/dreamer/lookahead.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

import agentwm.agents.dreamer.agent as agent_module
from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.agents.dreamer.lookahead import action_values
from agentwm.core import sample_indices
from agentwm.worldmodels.base import ActionSpec
from agentwm.worldmodels.block_gru import scale_actions


def _agent(*sets: str, actions: int = 3) -> DreamerAgent:
    torch.manual_seed(0)
    return DreamerAgent((3,), ActionSpec("discrete", actions), resolve_config(["debug"], list(sets)))


def _batch(B: int = 4, T: int = 8, actions: int = 3) -> dict[str, torch.Tensor]:
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    return {"obs": torch.randn(B, T, 3), "reward": torch.ones(B, T), "is_first": first,
            "is_terminal": torch.zeros(B, T, dtype=torch.bool),
            "action": F.one_hot(torch.randint(actions, (B, T)), actions).float()}  # fmt: skip


def test_action_values_are_one_prior_step_per_action_with_shared_latent_noise() -> None:
    agent = _agent()
    wm, cfg = agent.wm, agent.wm.config
    with torch.no_grad():  # a few distinct states: one imagined step from the initial state
        start = wm.initial(5)
        roll = wm.imagine(
            start,
            torch.eye(3)[torch.tensor([0, 1, 2, 0, 1])][None],
            generator=torch.Generator().manual_seed(3),
        )
    deter, stoch = roll.states["deter"][1], roll.states["stoch"][1]
    q = action_values(wm, agent.critic.value, deter, stoch, 0.9, torch.Generator().manual_seed(7))
    assert q.shape == (5, 3)
    noise = torch.rand((5, cfg.stoch, 1), generator=torch.Generator().manual_seed(7))  # the one draw, shared
    with torch.no_grad():
        for a in range(3):
            action = torch.eye(3)[a].expand(5, 3)
            new, logit = wm.prior_step(
                deter, wm.core.in_stoch(stoch.flatten(1)), wm.core.in_action(scale_actions(action))
            )
            reached = {
                "deter": new,
                "stoch": F.one_hot(sample_indices(logit, noise=noise), cfg.classes).float(),
            }
            expected = wm.predict_reward(reached) + 0.9 * wm.predict_continue(reached) * agent.critic.value(
                wm.feat(reached)
            )
            torch.testing.assert_close(q[:, a], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("better", [0, 2])
def test_the_lookahead_objective_moves_the_policy_towards_the_better_action(
    monkeypatch: pytest.MonkeyPatch, better: int
) -> None:
    """With REINFORCE and the entropy bonus off, the actor follows the action values alone: made
    to favour one action at every start, a few updates raise that action's probability there."""
    batch = _batch()

    def fixed_values(
        wm: Any, value: Any, deter: torch.Tensor, stoch: torch.Tensor, *args: Any
    ) -> torch.Tensor:
        q = torch.zeros(deter.shape[0], 3)
        q[:, better] = 1.0
        return q

    monkeypatch.setattr(agent_module, "action_values", fixed_values)
    agent = _agent("actor_lookahead=1", "actor_entropy=0", "actor_lr=1e-2")
    agent.generator = torch.Generator().manual_seed(0)

    def chance() -> float:
        with torch.no_grad():
            agent.wm.loss(batch)
            post = agent.wm.last_post
            assert post is not None
            feat = agent.wm.feat({k: v.flatten(0, 1) for k, v in post.items()})
            return float(agent.actor.log_probs(feat).exp()[:, better].mean())

    before = chance()
    for _ in range(5):
        metrics = agent.update(batch)
    assert "ac/lookahead_spread" in metrics
    assert chance() > before + 0.05


def test_the_lookahead_is_refused_where_it_cannot_apply() -> None:
    with pytest.raises(ValidationError, match="actor_dynamics \\+ actor_lookahead"):
        resolve_config(["debug"], ["actor_lookahead=0.6", "actor_dynamics=0.6"])
    with pytest.raises(ValueError, match="actor_lookahead needs discrete actions"):
        DreamerAgent((3,), ActionSpec("continuous", 2), resolve_config(["debug"], ["actor_lookahead=0.5"]))
    with pytest.raises(ValueError, match="discrete"):
        action_values(
            DreamerAgent((3,), ActionSpec("continuous", 2), resolve_config(["debug"])).wm,
            lambda f: f.sum(-1),
            torch.zeros(1, 1),
            torch.zeros(1, 1, 1),
            0.9,
        )
