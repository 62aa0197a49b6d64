"""Learning rates can fall linearly over a run (``wm_lr_final``, ``ac_lr_final``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from agentwm.agents.dreamer import DreamerConfig, resolve_config, train
from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.train import _update_function


def test_learning_rates_fall_linearly_to_the_final_fraction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[float, float, float, float, float]] = []
    original = DreamerAgent.scale_lr

    def recording(self: DreamerAgent, wm_scale: float, ac_scale: float) -> None:
        original(self, wm_scale, ac_scale)
        lrs = [opt.param_groups[0]["lr"] for opt in (self.wm_opt, self.actor_opt, self.critic_opt)]
        seen.append((wm_scale, ac_scale, *lrs))

    monkeypatch.setattr(DreamerAgent, "scale_lr", recording)
    cfg = resolve_config(["debug"], ac_lr_final=0.25, wm_lr_final=0.5, eval_every=10_000, checkpoint_every=10_000,
                         device="cpu")
    train(cfg, tmp_path / "run", progress=False)
    logged = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    actor_lrs = [r["charts/actor_lr"] for r in logged if "charts/actor_lr" in r]
    assert actor_lrs and actor_lrs == sorted(actor_lrs, reverse=True) and actor_lrs[-1] < cfg.actor_lr
    wm_scales, ac_scales = [r[0] for r in seen], [r[1] for r in seen]
    assert seen and ac_scales == sorted(ac_scales, reverse=True)  # never rises
    assert ac_scales[0] > 0.95 and ac_scales[-1] == pytest.approx(0.25, abs=0.01)
    assert wm_scales[-1] == pytest.approx(0.5, abs=0.01)
    for wm_s, ac_s, wm_lr, actor_lr, critic_lr in seen:
        assert wm_lr == pytest.approx(cfg.wm_lr * wm_s)
        assert actor_lr == pytest.approx(cfg.actor_lr * ac_s) and critic_lr == pytest.approx(cfg.critic_lr * ac_s)


def test_constant_by_default_and_bounded() -> None:
    assert DreamerConfig().ac_lr_final == 1.0 and DreamerConfig().wm_lr_final == 1.0
    for bad in (0.0, 1.5):
        with pytest.raises(ValidationError, match="ac_lr_final"):
            DreamerConfig(ac_lr_final=bad)
        with pytest.raises(ValidationError, match="wm_lr_final"):
            DreamerConfig(wm_lr_final=bad)


def test_a_captured_cuda_graph_refuses_a_schedule() -> None:
    """A CUDA graph replays the learning rates it was captured with, so the pair is refused by name."""
    agent = SimpleNamespace(device=torch.device("cuda"), update=None)
    for schedule in ({"ac_lr_final": 0.5}, {"wm_lr_final": 0.5}):
        with pytest.raises(ValueError, match="cuda_graph=off"):
            _update_function(agent, DreamerConfig(**schedule), data_parallel=False)  # type: ignore[arg-type]
    assert _update_function(agent, DreamerConfig(ac_lr_final=0.5, cuda_graph="off"), data_parallel=False) is None  # type: ignore[arg-type]
