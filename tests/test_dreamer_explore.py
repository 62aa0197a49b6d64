"""Epsilon exploration (``explore_epsilon``): after prefill, that share of training actions is random."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from agentwm.agents.dreamer import DreamerConfig, resolve_config, train
from agentwm.agents.dreamer.agent import DreamerAgent

# The module, not the function the package exports under the same name.
train_module = importlib.import_module("agentwm.agents.dreamer.train")


def _env_actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epsilon: float) -> tuple[np.ndarray, int]:
    """Actions sent to the env in a short CartPole run whose policy always pushes left (action 0)."""
    original_act = DreamerAgent.act

    def always_left(self: DreamerAgent, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        action, carry = original_act(self, *args, **kwargs)
        left = torch.zeros_like(action)
        left[:, 0] = 1.0
        return left, {**carry, "action": left}

    sent: list[np.ndarray] = []
    original_to_env = train_module.action_to_env

    def recording(action: torch.Tensor, spec: Any) -> np.ndarray:
        out: np.ndarray = original_to_env(action, spec)
        sent.append(out.copy())
        return out

    monkeypatch.setattr(DreamerAgent, "act", always_left)
    monkeypatch.setattr(train_module, "action_to_env", recording)
    # A few updates only (train_ratio 4: one per 16 frames): what is tested is acting, not learning.
    cfg = resolve_config(["debug"], explore_epsilon=epsilon, steps=1_000, train_ratio=4, eval_every=10_000,
                         checkpoint_every=10_000, device="cpu")  # fmt: skip
    train(cfg, tmp_path / f"run{epsilon}", progress=False)
    return np.concatenate(sent), cfg.prefill


def test_a_share_of_the_actions_after_prefill_is_random(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actions, prefill = _env_actions(tmp_path, monkeypatch, 0.5)
    after = actions[prefill:]
    # Half the actions are replaced by a uniform draw over two actions: a quarter push right (800 draws:
    # the binomial's standard deviation is 0.015, so 0.17-0.33 fails by chance once in ~10^4 runs).
    assert 0.17 < (after == 1).mean() < 0.33
    assert 0.35 < (actions[:prefill] == 1).mean() < 0.65  # prefill: all uniform, as before


def test_off_by_default_and_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DreamerConfig().explore_epsilon == 0.0
    actions, prefill = _env_actions(tmp_path, monkeypatch, 0.0)
    assert (actions[prefill:] == 0).all()  # the policy's own actions, untouched
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="explore_epsilon"):
            DreamerConfig(explore_epsilon=bad)
