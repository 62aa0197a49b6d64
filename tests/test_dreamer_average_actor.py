"""The averaged actor (``actor_average``): an EMA of the actor's weights that evaluation acts with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from dreamer_fakes import vector_batch
from pydantic import ValidationError

from agentwm.agents.dreamer import DreamerConfig, resolve_config, train
from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.worldmodels.base import ActionSpec


def _agent(average: float) -> DreamerAgent:
    torch.manual_seed(0)
    return DreamerAgent((4,), ActionSpec("discrete", 2), resolve_config(["debug"], [f"actor_average={average}"]))


def test_the_average_follows_the_actor_by_its_ema_step() -> None:
    agent, batch = _agent(0.25), vector_batch()
    expected = [p.detach().clone() for p in agent.actor.parameters()]
    for _ in range(3):
        agent.update(batch)
        expected = [e.lerp(p.detach(), 0.25) for e, p in zip(expected, agent.actor.parameters())]
    assert agent.average_actor is not None
    for avg, exp, p in zip(agent.average_actor.parameters(), expected, agent.actor.parameters()):
        torch.testing.assert_close(avg, exp)
        assert not avg.requires_grad
    assert any(not torch.equal(a, p) for a, p in zip(agent.average_actor.parameters(), agent.actor.parameters()))


def test_the_average_changes_nothing_the_agent_learns() -> None:
    plain, averaged, batch = _agent(0.0), _agent(0.1), vector_batch()
    assert plain.average_actor is None
    runs = []
    for agent in (plain, averaged):  # each from the same RNG state (imagination samples from torch's)
        torch.manual_seed(1)
        runs.append([agent.update(batch) for _ in range(3)])
    for a, b in zip(*runs):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for p, q in zip(plain.actor.parameters(), averaged.actor.parameters()):
        assert torch.equal(p, q)


def test_greedy_acting_uses_the_average_and_exploring_the_actor() -> None:
    agent = _agent(0.1)
    assert agent.average_actor is not None
    with torch.no_grad():  # the actor prefers action 0, its average action 1, whatever the state
        for actor, preferred in ((agent.actor, 0), (agent.average_actor, 1)):
            last = actor.net.out
            last.weight.zero_()
            last.bias.copy_(torch.tensor([10.0, -10.0]) if preferred == 0 else torch.tensor([-10.0, 10.0]))
    obs, first = torch.zeros(1, 4), torch.ones(1, dtype=torch.bool)

    def action(mode: str) -> int:
        act, _ = agent.act(obs, first, agent.initial_carry(1), mode)  # type: ignore[arg-type]
        return int(act.argmax(-1))

    assert action("eval") == 1
    assert action("explore") == 0  # unimix 1%: a sample against +-10 logits is action 0 almost surely
    agent.eval_online = True
    assert action("eval") == 0


def test_weights_load_across_a_change_of_the_setting() -> None:
    plain, averaged = _agent(0.0), _agent(0.1)
    with torch.no_grad():
        for p in plain.actor.parameters():
            p.add_(1.0)
    averaged.load_state_dict(plain.state_dict())  # saved without an average: it starts at the saved actor
    assert averaged.average_actor is not None
    for avg, p in zip(averaged.average_actor.parameters(), plain.actor.parameters()):
        assert torch.equal(avg, p)
    plain.load_state_dict(averaged.state_dict())  # saved with one this agent does not keep: dropped
    assert plain.average_actor is None


def test_a_run_logs_both_evaluations_and_is_bounded(tmp_path: Path) -> None:
    cfg = resolve_config(["debug"], actor_average=0.05, steps=600, eval_every=300, eval_episodes=1,
                         checkpoint_every=10_000, device="cpu")  # fmt: skip
    train(cfg, tmp_path, progress=False)
    evals = [row for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if "eval/return" in (row := json.loads(line))]  # fmt: skip
    assert evals and all("eval/online_return" in row for row in evals)
    assert DreamerConfig().actor_average == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="actor_average"):
            DreamerConfig(actor_average=bad)
