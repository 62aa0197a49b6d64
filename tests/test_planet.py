"""PlaNet: online RSSM training + CEM planning on DeepMind Control cartpole-swingup (proprio and
pixels), checkpoints, and that the learned model predicts rewards of unseen episodes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("dm_control")

from agentwm.agents.planet.agent import PlaNetConfig, load_planet, make_env, run_episode, train_planet
from agentwm.agents.replay import SequenceReplay
from agentwm.envs.gym import action_spec_of

SMALL = {"seed_episodes": 1, "episodes": 1, "train_steps": 3, "samples": 20, "elites": 4, "iterations": 2,
         "horizon": 5, "batch_size": 4, "seq_len": 8}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_proprio_run_and_checkpoint(tmp_path: Path) -> None:
    config = PlaNetConfig(**{**SMALL, "episodes": 2}, max_steps=20, eval_episodes=1, eval_every=1)
    reports: list[dict[str, object]] = []
    model, summary = train_planet(config, out=tmp_path / "planet", progress=reports.append)
    assert len(summary["episode_returns"]) == 2 and len(summary["eval_returns"]) == 1
    assert summary["env_steps"] == 3 * 21 * 8  # seed + 2 planned episodes (eval is not stored), 21 rows each
    # the return curve: one noise-free evaluation per planning episode, at growing env steps
    assert [p["env_steps"] for p in summary["eval_curve"]] == [2 * 21 * 8, 3 * 21 * 8]
    assert summary["eval_curve"][-1]["eval_mean_return"] == summary["eval_returns"][0]
    assert len(summary["random_eval_returns"]) == 10 and min(summary["random_eval_returns"]) >= 0
    assert [r["episode"] for r in reports] == [1, 2] and "eval_returns" in reports[0]
    loaded, loaded_config = load_planet(tmp_path / "planet")
    assert loaded_config == config
    obs = torch.randn(1, 5)
    torch.manual_seed(0)
    a = loaded.observe(obs)["deter"]
    torch.manual_seed(0)
    assert torch.equal(a, model.observe(obs)["deter"])


def test_pixels_run(tmp_path: Path) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    _, summary = train_planet(PlaNetConfig(**SMALL, pixels=True, max_steps=10, eval_episodes=0))
    assert summary["pixels"] is True and summary["metrics"]["loss/dec"] > 0


def test_cli_train_planet(capsys: pytest.CaptureFixture[str]) -> None:
    from agentwm.cli import main

    overrides = [item for k, v in SMALL.items() if k != "episodes" for item in ("--set", f"{k}={v}")]
    argv = ["train", "planet", "--steps", "1", *overrides, "--set", "max_steps=8", "--set", "eval_episodes=0"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "planet"
    assert main(["train", "planet", "--set", "elites=0"]) == 2


@pytest.mark.slow
def test_learned_model_predicts_rewards_of_unseen_episodes() -> None:
    """After online training, the RSSM's reward predictions on fresh random episodes beat the
    best constant predictor (their mean reward) by a clear margin."""
    full = bool(os.environ.get("AGENTWM_FULL"))
    config = PlaNetConfig(seed_episodes=3, episodes=4 if full else 1, train_steps=200, lr=3e-3,
                          samples=50, elites=5, iterations=2, max_steps=60, eval_episodes=0)
    model, _ = train_planet(config)
    env = make_env(config, seed=999)
    spec = action_spec_of(env.action_space)
    fresh = SequenceReplay(10_000, 1, (5,), spec.dim, seed=1)
    rng = np.random.default_rng(1)
    for i in range(2):
        run_episode(env, model, None, spec, fresh, 0.0, rng, 999 + i, "cpu")
    batch = fresh.sample(16, 40)
    with torch.no_grad():
        post, _ = model.observe_sequence(batch["obs"], batch["action"], batch["is_first"])
        predicted = model.twohot.decode(model.reward_head(model.feat(post)))
    reward = batch["reward"][:, 1:]
    mse = (predicted[:, 1:] - reward).pow(2).mean()
    baseline = (reward - reward.mean()).pow(2).mean()
    assert float(mse) < 0.5 * float(baseline), (float(mse), float(baseline))
