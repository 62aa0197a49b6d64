"""MuZero: the model's protocol and losses, n-step value targets, checkpoints, MCTS over the
learned model, and a small self-play run that learns CartPole a bit."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from agentwm.agents.muzero.agent import EpisodeReplay, MuZeroConfig, load_muzero, save_muzero, train_muzero
from agentwm.planning.mcts import MCTS
from agentwm.worldmodels.base import ActionSpec, LearnableWorldModel
from agentwm.worldmodels.muzero import LOSS_KEYS, MuZeroModel, MuZeroNetConfig

SPEC = ActionSpec("discrete", 2)


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model() -> MuZeroModel:
    torch.manual_seed(0)
    return MuZeroModel(4, SPEC, MuZeroNetConfig(latent=8, units=16, bins=21))


def test_protocol_shapes_and_values() -> None:
    model = small_model()
    assert isinstance(model, LearnableWorldModel)
    state = model.observe(torch.randn(3, 4))
    assert state["latent"].shape == (3, 8) and state["policy_logits"].shape == (3, 2)
    assert float(state["latent"].min()) >= 0.0 and float(state["latent"].max()) <= 1.0
    actions = SPEC.one_hot(torch.randint(2, (5, 3)))
    rollout = model.imagine(state, actions, 5)
    assert rollout.rewards.shape == (5, 3) and rollout.values is not None and rollout.values.shape == (5, 3)
    assert torch.equal(rollout.values, rollout.states["value"][1:])
    assert torch.equal(rollout.continues, torch.ones(5, 3))
    by_policy = model.imagine(state, lambda s: SPEC.one_hot(torch.zeros(len(s["latent"]), dtype=torch.long)), 2)
    assert by_policy.actions is not None and by_policy.actions[..., 0].eq(1).all()
    with pytest.raises(ValueError, match="obs"):
        model.observe(torch.randn(3, 5))
    with pytest.raises(ValueError, match="latent"):
        model.imagine({"obs": torch.zeros(1, 4)}, actions, 5)
    with pytest.raises(ValueError, match="discrete"):
        MuZeroModel(4, ActionSpec("continuous", 1))


def batch(model: MuZeroModel, B: int = 16, K: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(B, 4, generator=g)
    action = SPEC.one_hot(torch.randint(2, (B, K), generator=g))
    # A learnable rule: reward = 1 for action 1, value = 2 + obs[0], policy prefers action 1.
    return {
        "obs": obs,
        "action": action,
        "target_value": (2.0 + obs[:, :1]).expand(B, K + 1).contiguous(),
        "target_reward": action[..., 1],
        "target_policy": torch.tensor([0.2, 0.8]).expand(B, K + 1, 2).contiguous(),
        "policy_mask": torch.ones(B, K + 1),
    }


def test_losses_are_unreduced_and_fit_a_fixed_batch() -> None:
    model = small_model()
    data = batch(model)
    losses, metrics = model.loss(data)
    assert set(losses) == set(LOSS_KEYS) and "wm/value_error" in metrics
    assert losses["value"].shape == (16, 4) and losses["reward"].shape == (16, 3) and losses["policy"].shape == (16, 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        losses, _ = model.loss(data)
        total = sum(v.mean() for v in losses.values())
        first = float(total.detach()) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert float(total.detach()) < 0.5 * first
    rollout = model.imagine(model.observe(data["obs"]), data["action"].transpose(0, 1), 3)
    assert torch.allclose(rollout.rewards, data["target_reward"].T, atol=0.2)
    assert float(torch.softmax(model.observe(data["obs"])["policy_logits"], -1)[:, 1].mean()) == pytest.approx(0.8, abs=0.1)
    # a masked policy target contributes nothing
    data["policy_mask"][:, 2:] = 0
    assert model.loss(data)[0]["policy"][:, 2:].abs().sum() == 0


def test_n_step_value_targets() -> None:
    replay = EpisodeReplay()
    reward = np.array([1.0, 2.0, 3.0])
    search = np.array([10.0, 20.0, 30.0])
    replay.add(np.zeros((3, 4), np.float32), np.array([0, 1, 0]), reward, np.full((3, 2), 0.5, np.float32),
               search, last_value=0.0, gamma=0.5, n=2)
    # z_0 = 1 + 0.5*2 + 0.25*v_2 ; z_1 = 2 + 0.5*3 + 0.25*v_3(=0, terminal) ; z_2 = 3 + 0.5*0
    assert replay.value[0].tolist() == [1 + 1 + 0.25 * 30, 2 + 1.5, 3.0]
    replay.add(np.ones((2, 4), np.float32), np.array([1, 1]), np.array([1.0, 1.0]), np.full((2, 2), 0.5, np.float32),
               np.array([5.0, 5.0]), last_value=8.0, gamma=0.5, n=5)  # cut by a time limit: bootstrap 8
    assert replay.value[1].tolist() == [1 + 0.5 + 0.25 * 8, 1 + 0.5 * 8]
    b = replay.sample(64, 3, 2, np.random.default_rng(0))
    assert b["action"].shape == (64, 3, 2) and b["target_policy"].shape == (64, 4, 2)
    past_end = b["policy_mask"] == 0
    assert past_end.any() and (b["target_reward"][past_end[:, :3]] == 0).all()
    assert set(b["target_value"][past_end].tolist()) <= {0.0, 8.0}


def test_mcts_runs_over_the_learned_model_and_checkpoint_round_trips(tmp_path: Path) -> None:
    model = small_model()
    config = MuZeroConfig(net=model.config)
    save_muzero(tmp_path / "mz", model, config)
    loaded, loaded_config = load_muzero(tmp_path / "mz")
    obs = torch.randn(1, 4)
    assert torch.equal(loaded.observe(obs)["latent"], model.observe(obs)["latent"])
    assert loaded_config == config
    result = MCTS(loaded, simulations=10, generator=0).plan(loaded.observe(obs))
    assert result.policy.shape == (1, 2) and result.chosen[0] in (0, 1)


@pytest.mark.slow
def test_self_play_learns_cartpole_a_bit() -> None:
    """Untrained, noise-free search always pushes one way (~9 steps) and random play lasts ~22;
    after a short self-play run, search over the learned model must balance clearly longer.

    One seeded run is luck, and luck that changes with the CPU kind (float summation order): seed 0
    of this recipe gave 28.6 on an AVX-512 machine and 111.6 on another. So three seeds are run and
    their median is held to a bar well under the typical run (docs/reliability.md has the table)."""
    full = bool(os.environ.get("AGENTWM_FULL"))
    finals = []
    for seed in (0, 1, 2):
        config = MuZeroConfig(env_steps=5000 if full else 1500, simulations=16 if full else 8, updates_per_step=1.0,
                              warmup_steps=200, eval_every=10_000, eval_episodes=5, seed=seed)
        _, summary = train_muzero(config)
        assert summary["updates"] > 0
        finals.append(summary["final_eval_return"])
    assert statistics.median(finals) >= (150 if full else 35), finals


def test_cli_train_muzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from agentwm.cli import main

    argv = ["train", "muzero", "--steps", "40", "--simulations", "3", "--set", "warmup_steps=10",
            "--set", "eval_episodes=1", "--set", 'net={"latent": 8, "units": 16}', "--logdir", str(tmp_path / "mz")]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["env_steps"] == 40 and summary["updates"] > 0 and (tmp_path / "mz" / "config.json").is_file()
    assert load_muzero(tmp_path / "mz")[1].simulations == 3
    assert main(["train", "muzero", "--set", "td_steps=0"]) == 2
    assert "td_steps" in capsys.readouterr().err
