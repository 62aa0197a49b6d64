"""The device-side NaN/inf guard that lets a Dreamer update be captured as a CUDA graph, on the CPU:
it steps exactly as the host guard does, skips a non-finite update without touching any weight or
optimiser state, stops a diverged run, checkpoints and resumes, and never asks the device for a
value. (The capture itself needs a GPU: tests/test_cuda.py.)"""

from __future__ import annotations

import copy

import pytest
import torch

from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.core.finite import NonFiniteError
from agentwm.worldmodels.base import ActionSpec
from tests.dreamer_fakes import vector_batch
from tests.test_dreamer_syncs import _count_syncs

pytestmark = pytest.mark.usefixtures("one_thread")


def _agent(limit: int = 20) -> DreamerAgent:
    torch.manual_seed(0)
    # with an averaged actor, so that it too is held to every rule below (skips, syncs, checkpoints)
    cfg = resolve_config(["debug"], ["device=cpu", "horizon=4", f"nonfinite_limit={limit}", "actor_average=0.1"])
    return DreamerAgent((4,), ActionSpec("discrete", 2), cfg)


def _state(agent: DreamerAgent) -> dict[str, torch.Tensor]:
    """Every weight, buffer and Adam moment of the agent, by name."""
    out = {f"module.{k}": v.detach().clone() for k, v in agent.state_dict().items()}
    for name, opt in (("wm", agent.wm_opt), ("actor", agent.actor_opt), ("critic", agent.critic_opt)):
        for i, state in enumerate(opt.state.values()):
            for key in ("exp_avg", "exp_avg_sq", "step"):
                out[f"{name}.{i}.{key}"] = state[key].detach().clone().float()
    return out


def test_device_guard_steps_as_the_host_guard_does() -> None:
    host, device = _agent(), _agent()
    device.use_device_guard()
    batch = vector_batch()
    for _ in range(3):
        torch.manual_seed(1)  # the same imagined actions in both
        m_host = host.update(batch)
        torch.manual_seed(1)
        m_dev = device.update(batch)
    # Fused and foreach Adam round differently; nothing else differs.
    for (name, a), b in zip(_state(host).items(), _state(device).values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert m_host.keys() == m_dev.keys()
    torch.testing.assert_close(m_dev["loss/critic"], m_host["loss/critic"], rtol=1e-4, atol=1e-5)
    assert host.updates == device.updates == 3 and m_dev["guard/skipped_updates"].item() == 0


def test_a_nonfinite_update_changes_nothing_and_is_counted() -> None:
    agent = _agent()
    agent.use_device_guard()
    batch = vector_batch()
    agent.update(batch)
    before = _state(agent)
    bad = copy.copy(batch)
    bad["reward"] = batch["reward"].clone()
    bad["reward"][0, 3] = float("nan")
    metrics = agent.update(bad)
    after = _state(agent)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [], changed  # weights, slow critic, return normaliser, Adam moments and steps
    assert metrics["guard/skipped_updates"].item() == 1 and agent.updates == 2
    agent.guard.settle()
    assert agent.guard.skipped == 1 and agent.guard.streak == 1
    agent.update(batch)  # a good update resets the streak, and steps again
    agent.guard.settle()
    assert agent.guard.streak == 0 and not torch.equal(after["module.wm.core.in_stoch.weight"],
                                                       agent.wm.core.in_stoch.weight)


def test_a_diverged_run_stops_at_the_next_settle() -> None:
    agent = _agent(limit=3)
    agent.use_device_guard()
    bad = vector_batch()
    bad["reward"] = torch.full_like(bad["reward"], float("nan"))
    for _ in range(3):
        agent.update(bad)  # counted on the device, not raised: the host is not asked
    with pytest.raises(NonFiniteError, match="3 updates in a row"):
        agent.guard.settle()


def test_device_guard_update_asks_the_host_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _agent()
    agent.use_device_guard()
    batch = vector_batch()
    agent.update(batch)
    seen = _count_syncs(monkeypatch, lambda: agent.update(batch))
    # check_tensor's input checks are host reads on the CPU only (an async assert on CUDA).
    assert {k: v for k, v in seen.items() if "check_tensor" not in k} == {}


def test_checkpoint_round_trip_keeps_the_optimiser_kind() -> None:
    graphed, plain = _agent(), _agent()
    graphed.use_device_guard()
    batch = vector_batch()
    graphed.update(batch)
    plain.update(batch)
    resumed = _agent()
    resumed.use_device_guard()
    resumed.load_optim_state(plain.optim_state())  # a plain run's checkpoint, resumed graphed
    assert all(g["fused"] and not g["foreach"] for g in resumed.wm_opt.param_groups)
    resumed.update(batch)
    back = _agent()
    back.load_optim_state(graphed.optim_state())  # and the other way
    assert all(g["foreach"] and not g["fused"] for g in back.wm_opt.param_groups)
    assert all(s["step"].device.type == "cpu" for s in back.wm_opt.state.values())
    back.update(batch)
    assert back.updates == 2


def test_graphed_update_needs_cuda_and_one_process() -> None:
    from agentwm.agents.dreamer.graphed import GraphedUpdate

    with pytest.raises(ValueError, match="CUDA device, it is on cpu"):
        GraphedUpdate(_agent())
