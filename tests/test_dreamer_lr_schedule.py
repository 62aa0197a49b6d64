"""The actor's and critic's learning rates can fall linearly over a run (``ac_lr_final``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from agentwm.agents.dreamer import DreamerConfig, resolve_config, train
from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.train import _update_function


def test_learning_rates_fall_linearly_to_the_final_fraction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[float, float, float]] = []
    original = DreamerAgent.scale_ac_lr

    def recording(self: DreamerAgent, scale: float) -> None:
        original(self, scale)
        seen.append((scale, self.actor_opt.param_groups[0]["lr"], self.critic_opt.param_groups[0]["lr"]))

    monkeypatch.setattr(DreamerAgent, "scale_ac_lr", recording)
    cfg = resolve_config(["debug"], ac_lr_final=0.25, eval_every=10_000, checkpoint_every=10_000, device="cpu")
    train(cfg, tmp_path / "run", progress=False)
    scales = [s for s, _, _ in seen]
    assert scales and scales == sorted(scales, reverse=True)  # never rises
    assert scales[0] > 0.95 and scales[-1] == pytest.approx(0.25, abs=0.01)
    assert all(a == pytest.approx(cfg.actor_lr * s) and c == pytest.approx(cfg.critic_lr * s) for s, a, c in seen)


def test_constant_by_default_and_bounded() -> None:
    assert DreamerConfig().ac_lr_final == 1.0
    for bad in (0.0, 1.5):
        with pytest.raises(ValidationError, match="ac_lr_final"):
            DreamerConfig(ac_lr_final=bad)


def test_a_captured_cuda_graph_refuses_a_schedule() -> None:
    """A CUDA graph replays the learning rates it was captured with, so the pair is refused by name."""
    agent = SimpleNamespace(device=torch.device("cuda"), update=None)
    with pytest.raises(ValueError, match="cuda_graph=off"):
        _update_function(agent, DreamerConfig(ac_lr_final=0.5), data_parallel=False)  # type: ignore[arg-type]
    assert _update_function(agent, DreamerConfig(ac_lr_final=0.5, cuda_graph="off"), data_parallel=False) is None  # type: ignore[arg-type]
