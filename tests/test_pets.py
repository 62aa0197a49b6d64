"""PETS acting: the agreement gate (threshold from data, fallbacks, logging) and a short PETS loop
with trajectory sampling that balances CartPole from 1,000 random steps."""

from __future__ import annotations

import os

import pytest
import torch

from agentwm.agents.envs import collect_random_transitions
from agentwm.agents.pets import AgreementGate, PETSConfig, calibrate_threshold, fit_ensemble, run_pets
from agentwm.worldmodels.base import ActionSpec
from agentwm.worldmodels.ensemble import EnsembleDynamics

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cartpole() -> tuple[EnsembleDynamics, dict[str, torch.Tensor]]:
    data = collect_random_transitions("CartPole-v1", 1000, seed=0)
    config = PETSConfig(members=5, epochs=20, seed=0)
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
    far = torch.tensor([[2.0, 4.0, 0.1, -4.0]])  # velocities never reached by random play
    planned = torch.tensor([[1.0, 0.0]])
    safe = gate.decide(far, planned)
    assert safe.fell_back and safe.disagreement > threshold
    explore = AgreementGate(model, threshold, "explore").decide(far, planned)
    # safe picks the action the members agree on most, explore the one they disagree on most
    spread = [AgreementGate(model, 0.0, "safe").decide(far, torch.eye(2)[i : i + 1]).disagreement for i in range(2)]
    assert safe.action.argmax().item() == int(torch.tensor(spread).argmin())
    assert explore.action.argmax().item() == int(torch.tensor(spread).argmax())
    with pytest.raises(ValueError, match="fallback"):
        AgreementGate(model, threshold, "panic")  # type: ignore[arg-type]


@pytest.mark.slow
def test_pets_with_trajectory_sampling_balances_cartpole(
    cartpole: tuple[EnsembleDynamics, dict[str, torch.Tensor]],
) -> None:
    model, data = cartpole
    full = bool(os.environ.get("AGENTWM_FULL"))
    config = PETSConfig(planner="cem", samples=100, horizon=30, iterations=2, particles=5, epochs=20,
                        score="disagreement_penalized", kappa=5.0, max_episodes=3 if full else 1,
                        max_steps=None if full else 200, target_return=475.0 if full else None)
    summary = run_pets(config, data=data, model=model)
    first = summary["episodes"][0]
    best = max(summary["episode_returns"])
    assert best >= (475 if full else 150), summary  # random play lasts ~22 steps
    assert 0.0 <= first["fallback_rate"] < 0.5 and first["disagreement_max"] >= first["disagreement_mean"]
    assert summary["real_steps"] == 1000 + sum(e["steps"] for e in summary["episodes"])


def test_cli_train_pets(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from agentwm.cli import main

    argv = ["train", "pets", "--planner", "mppi", "--particles", "2", "--max-episodes", "1", "--set",
            "initial_transitions=200", "--set", "epochs=2", "--set", "max_steps=15", "--set", "samples=16",
            "--set", "horizon=5"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["planner"] == "mppi" and summary["real_steps"] == 200 + summary["episodes"][0]["steps"]
    assert "fallback_rate" in summary["episodes"][0]
    assert main(["train", "pets", "--set", "particles=0"]) == 2
