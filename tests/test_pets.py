"""PETS acting: the agreement gate (thresholds from training data and from its own planned actions,
fallbacks, logging), the margin planning reward, and a short PETS loop with trajectory sampling that
balances CartPole from 1,000 random steps."""

from __future__ import annotations

import os
import statistics

import pytest
import torch

from agentwm.agents.mpc.loop import MPCConfig, planning_model
from agentwm.agents.mpc.pets import AgreementGate, PETSConfig, calibrate_threshold, fit_ensemble, run_pets
from agentwm.envs.gym import collect_random_transitions
from agentwm.planning import RandomShooting
from agentwm.worldmodels.base import ActionSpec
from agentwm.worldmodels.ensemble import EnsembleDynamics

pytestmark = pytest.mark.usefixtures("one_thread")

FAR = torch.tensor([[2.0, 4.0, 0.1, -4.0]])  # velocities never reached by random play


@pytest.fixture(scope="module")
def cartpole() -> tuple[EnsembleDynamics, dict[str, torch.Tensor]]:
    torch.set_num_threads(1)  # the module fixture runs before the function-scoped one_thread
    data = collect_random_transitions("CartPole-v1", 1000, seed=0)
    config = PETSConfig(members=5, epochs=12, seed=0)
    return fit_ensemble(data, ActionSpec("discrete", 2), config), data


def test_gate_acts_in_distribution_and_falls_back_far_from_the_data(
    cartpole: tuple[EnsembleDynamics, dict[str, torch.Tensor]],
) -> None:
    model, data = cartpole
    threshold = calibrate_threshold(model, data, quantile=0.99, scale=1.0)
    assert threshold > 0
    gate = AgreementGate(model, threshold, "safe")
    seen = gate.decide(data["obs"][:1], data["action"][:1])
    assert not seen.fell_back and torch.equal(seen.action, data["action"][:1])
    planned = torch.tensor([[1.0, 0.0]])
    safe = gate.decide(FAR, planned)
    assert safe.fell_back and safe.disagreement > threshold
    explore = AgreementGate(model, threshold, "explore").decide(FAR, planned)
    # safe picks the action the members agree on most, explore the one they disagree on most
    spread = [AgreementGate(model, 0.0, "safe").decide(FAR, torch.eye(2)[i : i + 1]).disagreement for i in range(2)]
    assert safe.action.argmax().item() == int(torch.tensor(spread).argmin())
    assert explore.action.argmax().item() == int(torch.tensor(spread).argmax())
    with pytest.raises(ValueError, match="fallback"):
        AgreementGate(model, threshold, "panic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cautious"):
        AgreementGate(model, threshold, "cautious")  # nothing to re-plan with

    def worst_member() -> RandomShooting:  # each candidate imagined once per member, low-quantile score
        return RandomShooting(model, horizon=5, samples=16, particles=5, score="lower_quantile", generator=0)

    cautious = AgreementGate(model, threshold, "cautious", cautious=worst_member()).decide(FAR, planned)
    assert cautious.fell_back and cautious.disagreement == safe.disagreement
    assert torch.equal(cautious.action, worst_member().plan(model.observe(FAR)).action)
    with pytest.raises(ValueError, match="quantile"):
        AgreementGate(model, threshold, relative=True, quantile=0.0)


def test_relative_gate_learns_its_threshold_from_its_own_planned_actions(
    cartpole: tuple[EnsembleDynamics, dict[str, torch.Tensor]],
) -> None:
    model, data = cartpole
    floor = calibrate_threshold(model, data, quantile=0.99, scale=1.0)
    gate = AgreementGate(model, 0.0, "safe", relative=True, quantile=0.9, scale=2.0, warmup=5)
    states, actions = data["obs"][:12], data["action"][:12]
    decisions = [gate.decide(states[i : i + 1], actions[i : i + 1]) for i in range(12)]
    assert all(d.fell_back for d in decisions[:5])  # warm-up: only the floor (0 here) applies
    assert len(gate.seen) == 12 and gate.seen == [d.disagreement for d in decisions]
    expected = 2.0 * float(torch.tensor(gate.seen, dtype=torch.float64).quantile(0.9))
    assert gate.threshold == pytest.approx(expected, rel=1e-6)
    assert expected < floor  # on its own in-distribution plans the relative threshold is tighter
    spike = gate.decide(FAR, torch.tensor([[1.0, 0.0]]))  # far beyond what the plan usually meets
    assert spike.fell_back and spike.disagreement > expected
    assert not gate.decide(states[:1], actions[:1]).fell_back
    # The floor is never undercut: with a huge floor nothing falls back.
    lenient = AgreementGate(model, 1e9, relative=True, warmup=1)
    assert not any(lenient.decide(FAR, torch.eye(2)[i : i + 1]).fell_back for i in range(2))
    assert lenient.threshold == 1e9


def test_margin_planning_reward_prefers_the_upright_centred_pole(
    cartpole: tuple[EnsembleDynamics, dict[str, torch.Tensor]],
) -> None:
    model, _ = cartpole
    world, rules = planning_model(model, "CartPole-v1", MPCConfig(rules="known", planning_reward="margin"))
    assert rules == "known+margin"
    starts = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.5, 0.0, 0.15, 0.0]])
    rollout = world.imagine(model.observe(starts), torch.eye(2)[torch.tensor([[0, 1]] * 3)], 3)
    assert bool((rollout.rewards[:, 0] > 0.9).all()) and bool((rollout.rewards[:, 1] < rollout.rewards[:, 0]).all())
    _, task = planning_model(model, "CartPole-v1", MPCConfig(rules="known"))
    assert task == "known"  # `agentwm plan` keeps the task reward unless asked
    with pytest.raises(ValueError, match="margin reward"):
        planning_model(model, "Pendulum-v1", MPCConfig(env="Pendulum-v1", planning_reward="margin"))


@pytest.mark.slow
def test_pets_with_trajectory_sampling_and_gate_balances_cartpole(
    cartpole: tuple[EnsembleDynamics, dict[str, torch.Tensor]],
) -> None:
    """Three seeds of data, ensemble and planner; the median best return clears random play (~22
    steps) by far. Seeds 0-4 gave 170, 147, 200, 200, ... of a 200-step cap (docs/reliability.md)."""
    full = bool(os.environ.get("AGENTWM_FULL"))
    bests = []
    for seed in (0, 1, 2):
        model, data = cartpole  # the fixture is seed 0's data and ensemble
        if seed:
            data = collect_random_transitions("CartPole-v1", 1000, seed=seed)
            model = fit_ensemble(data, ActionSpec("discrete", 2), PETSConfig(members=5, epochs=12, seed=seed))
        # The benchmark's gated controller: random shooting 50 x 20, 5 particles (one per member).
        config = PETSConfig(planner="shooting", samples=50, horizon=20, particles=5, rules="known", epochs=12,
                            max_episodes=3 if full else 1, max_steps=None if full else 200,
                            target_return=475.0 if full else None, seed=seed)
        torch.manual_seed(seed)  # the ensemble's particle noise comes from the global RNG
        summary = run_pets(config, data=data, model=model)
        first = summary["episodes"][0]
        assert summary["rules"] == "known+margin"
        assert summary["gate_reference"] == "planned" and 0.0 <= first["fallback_rate"] < 0.2 and first["disagreement_max"] >= first["disagreement_q90"]
        assert first["threshold"] >= first["threshold_floor"] > 0
        assert summary["real_steps"] == 1000 + sum(e["steps"] for e in summary["episodes"])
        bests.append(max(summary["episode_returns"]))
    assert statistics.median(bests) >= (475 if full else 100), bests


def test_cli_train_pets(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from agentwm.cli import main

    argv = ["train", "pets", "--planner", "mppi", "--particles", "2", "--steps", "1", "--set",
            "initial_transitions=200", "--set", "epochs=2", "--set", "max_steps=15", "--set", "samples=16",
            "--set", "horizon=5"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["planner"] == "mppi" and summary["real_steps"] == 200 + summary["episodes"][0]["steps"]
    assert "fallback_rate" in summary["episodes"][0]
    assert main(["train", "pets", "--set", "particles=0"]) == 2
