"""Dreamer agent: the known pitfalls (bootstrap off-by-one, action alignment, episode-boundary
leakage, determinism), config validation, continuous/pixel/DMC smoke runs and the CLI.

Learning and kill/resume checks live in tests/test_dreamer_learning.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentwm.agents.dreamer import (
    Actor,
    DreamerAgent,
    DreamerConfig,
    SequenceReplay,
    evaluate,
    imagination_targets,
    replay_targets,
    resolve_config,
    train,
)
from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.agents.dreamer.evaluation import env_specs
from agentwm.checkpoint import sha256_file
from agentwm.envs.gym import make_env
from agentwm.worldmodels.base import ActionSpec

torch.set_num_threads(1)

# Small, fast runs: the tiny RSSM, 4 x 16 batches, few updates.
FAST = ["log_every=50", "eval_episodes=1", "train_ratio=16", "prefill=100"]


# ------------------------------------------------------------------------------------------------
# λ-return bootstrap and weights


def test_imagination_targets_bootstrap_from_next_state() -> None:
    rewards = torch.ones(3, 1)
    continues = torch.ones(3, 1)
    values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # V(s_0) .. V(s_3)
    # λ = 1: discounted rewards bootstrapped by V(s_3) only.
    ret, _ = imagination_targets(rewards, continues, values, torch.ones(1), gamma=0.5, lam=1.0)
    assert torch.allclose(ret[:, 0], torch.tensor([6.75, 11.5, 21.0]))
    # λ = 0: one-step targets r_t + γ V(s_{t+1}); an off-by-one would use V(s_t) = 10, 20, 30.
    ret, _ = imagination_targets(rewards, continues, values, torch.ones(1), gamma=0.5, lam=0.0)
    assert torch.allclose(ret[:, 0], torch.tensor([11.0, 16.0, 21.0]))


def test_imagination_targets_cut_at_episode_end_and_terminal_starts() -> None:
    rewards = torch.ones(3, 2)
    continues = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])  # column 0 ends after step 1
    values = torch.full((4, 2), 100.0)
    ret, weights = imagination_targets(rewards, continues, values, torch.tensor([1.0, 0.0]), 0.9, 0.0)
    assert ret[1, 0] == pytest.approx(1.0)  # the last reward counts, nothing after it
    assert torch.allclose(weights[:, 0], torch.tensor([1.0, 0.9, 0.0]))
    assert torch.all(weights[:, 1] == 0)  # a terminal start state teaches nothing
    with pytest.raises(ValueError, match=r"H\+1"):
        imagination_targets(rewards, continues, values[1:], torch.ones(2), 0.9, 0.9)


def test_replay_targets_follow_the_real_episode_ends() -> None:
    # One window of 5 rows: an episode ends in a terminal at row 2, a new one starts at row 3.
    reward = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]])
    first = torch.tensor([[True, False, False, True, False]])
    terminal = torch.tensor([[False, False, True, False, False]])
    boot = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0]])  # imagined returns of rows 0..4
    ret, weights = replay_targets(reward, first, terminal, boot, gamma=0.9, lam=0.5)
    # row 1 -> its terminal successor: the real reward and nothing after it (not 0.9 * 30)
    # row 0: 1 + 0.9 * (0.5 * boot_1 + 0.5 * R_1); row 2 is terminal and row 3's successor is
    # the same episode: 1 + 0.9 * boot_4. Row 2 bootstraps from itself (its successor is another
    # episode) and, like every terminal row, teaches nothing.
    assert torch.allclose(ret[:, 0], torch.tensor([1 + 0.9 * (10 + 0.5), 1.0, 30.0, 1 + 0.9 * 50]))
    assert torch.equal(weights[:, 0], torch.tensor([1.0, 1.0, 0.0, 1.0]))
    # λ = 1 across a longer real stretch is the discounted real return bootstrapped at the end.
    ret, _ = replay_targets(torch.ones(1, 4), torch.tensor([[True, False, False, False]]),
                            torch.zeros(1, 4, dtype=torch.bool), torch.full((1, 4), 7.0), 0.5, 1.0)  # fmt: skip
    assert ret[0, 0] == pytest.approx(1 + 0.5 + 0.25 + 0.125 * 7)
    with pytest.raises(ValueError, match="boot"):
        replay_targets(reward, first, terminal, boot[:, 1:], 0.9, 0.5)


def test_critic_replay_scale_changes_the_critic_step_only() -> None:
    B, T = 4, 8
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    terminal = torch.zeros(B, T, dtype=torch.bool)
    terminal[:, 3] = True  # every window fails at row 3; rows 4.. start over
    first[:, 4] = True
    torch.manual_seed(1)
    batch = {"obs": torch.randn(B, T, 3), "reward": torch.ones(B, T), "is_first": first,
             "is_terminal": terminal,
             "action": torch.nn.functional.one_hot(torch.randint(2, (B, T)), 2).float()}  # fmt: skip
    agents = {}
    for scale in (0.0, 1.0):
        torch.manual_seed(0)
        agent = DreamerAgent((3,), ActionSpec("discrete", 2), resolve_config(["debug"], [f"critic_replay_scale={scale}"]))
        agent.generator = torch.Generator().manual_seed(0)
        metrics = agent.update(batch)
        agents[scale] = (agent, metrics)
    plain, grounded = agents[0.0][0], agents[1.0][0]
    other = dict(grounded.named_parameters())
    changed = {name for name, p in plain.named_parameters() if not torch.equal(p, other[name])}
    critics = ("critic.", "slow_critic.")  # the slow critic follows the critic
    assert changed and all(name.startswith(critics) for name in changed), changed  # world model, actor untouched
    assert "ac/replay_return" in agents[1.0][1] and "ac/replay_return" not in agents[0.0][1]


# ------------------------------------------------------------------------------------------------
# Replay: windows across episode boundaries


def _fill(replay: SequenceReplay, lengths: list[int]) -> None:
    """One stream of episodes; obs = [episode, step]; the action that led to obs encodes the step."""
    for ep, n in enumerate(lengths):
        for t in range(n):
            first = t == 0
            replay.add(
                np.array([[ep, t]], np.float32), np.array([[0.0 if first else float(t)]], np.float32),
                np.array([0.0 if first else 1.0]), np.array([first]), np.array([t == n - 1]),
            )


def test_replay_marks_every_episode_start_in_windows() -> None:
    replay = SequenceReplay(1000, 1, (2,), 1, seed=0)
    _fill(replay, [5, 3, 7, 4, 9])
    batch = replay.sample(64, 6)
    obs, first = batch["obs"], batch["is_first"]
    assert first[:, 0].all()  # the learner starts each window from the initial carry
    starts = obs[:, :, 1] == 0
    assert torch.equal(first[:, 1:], starts[:, 1:])  # inside a window: exactly at episode starts
    assert torch.equal(batch["action"][..., 0], obs[..., 1] * ~starts)  # action[t] led to obs[t]
    # consecutive rows: same episode and step + 1, or a new episode at step 0
    same = (obs[:, 1:, 0] == obs[:, :-1, 0]) & (obs[:, 1:, 1] == obs[:, :-1, 1] + 1)
    assert torch.all(same | starts[:, 1:])


def test_replay_places_the_asked_share_of_windows_over_rare_terminals() -> None:
    replay = SequenceReplay(2000, 2, (1,), 1, seed=0)
    ends = {150, 420}  # stream 0: two terminals in 600 rows; stream 1: none
    for t in range(600):
        term = np.array([t in ends, False])
        first = np.array([t == 0 or t - 1 in ends, t == 0])
        obs = np.array([[t], [1000 + t]], np.float32)  # stream 1's rows read 1000 and up
        replay.add(obs, np.zeros((2, 1), np.float32), np.zeros(2), first, term)
    batch = replay.sample(200, 16, terminal_fraction=0.5)
    rows = batch["obs"][..., 0]
    assert torch.all(rows[:, 1:] == rows[:, :-1] + 1)  # still windows of consecutive rows
    has_term = batch["is_terminal"].any(1)
    placed = slice(0, 100)
    on_stream0 = rows[placed, 0] < 1000
    assert torch.equal(has_term[placed], on_stream0)  # placed windows of stream 0 all cover a terminal
    assert 30 < int(on_stream0.sum()) < 70  # and stream 1's fall back to uniform windows
    slots = batch["is_terminal"][placed][has_term[placed]].float().argmax(1)
    assert len(set(slots.tolist())) > 4  # the terminal sits anywhere in the window, not only at its end
    assert int(has_term[100:].sum()) < 15  # uniform windows: 2 terminals in 600 rows, ~5% of windows
    with pytest.raises(ValueError, match="terminal_fraction"):
        replay.sample(4, 16, terminal_fraction=1.5)


def test_replay_fifo_wraps_and_state_roundtrip() -> None:
    replay = SequenceReplay(20, 1, (2,), 1, seed=3)
    _fill(replay, [8, 8, 8])  # 24 rows into 20
    assert len(replay) == 20
    batch = replay.sample(32, 20)
    assert batch["obs"][:, 0, 0].min() >= 0 and torch.all(batch["obs"][:, 0] == torch.tensor([0.0, 4.0]))
    clone = SequenceReplay(20, 1, (2,), 1, seed=99)
    clone.load_state_dict(replay.state_dict())
    a, b = replay.sample(8, 5), clone.sample(8, 5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="no stream"):
        replay.sample(1, 21)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(2, 40), adds=st.lists(st.integers(0, 30), min_size=1, max_size=6))
def test_replay_rows_exported_in_pieces_rebuild_the_buffer(capacity: int, adds: list[int]) -> None:
    replay = SequenceReplay(2 * capacity, 2, (3,), 2, seed=1)
    pieces, saved, value = [], 0, 0.0
    for n in adds:  # a checkpoint after each batch of rows: export what came since the last one
        for _ in range(n):
            value += 1
            replay.add(np.full((2, 3), value), np.full((2, 2), value), np.full(2, value), np.zeros(2, bool),
                       np.ones(2, bool))  # fmt: skip
        pieces.append((max(saved, replay.rows - replay.size), replay.export_rows(saved)))
        saved = replay.rows
    rebuilt = SequenceReplay(2 * capacity, 2, (3,), 2, seed=1)
    for start, arrays in pieces:
        rebuilt.import_rows(start, arrays, replay.rows)
    held = np.arange(max(0, replay.rows - replay.size), replay.rows) % replay.size  # slots holding rows
    assert all(np.array_equal(rebuilt.data[k][:, held], replay.data[k][:, held]) for k in replay.data)
    assert np.array_equal(rebuilt.ptr, replay.ptr) and np.array_equal(rebuilt.count, replay.count)


def test_replay_checkpoints_write_only_new_rows_and_restore_the_buffer(tmp_path: Path) -> None:
    cfg = resolve_config(["debug"], ["replay_capacity=300"])  # 2 streams x 150 rows
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    replay = SequenceReplay(300, 2, (4,), 2, seed=0)
    rng = np.random.default_rng(0)
    chunk_dir = tmp_path / "checkpoints" / "replay"

    def listed() -> list[list[int]]:
        newest = ckpt.latest(tmp_path)
        assert newest is not None
        return list(json.loads((newest / "manifest.json").read_text())["replay_chunks"])

    stamps = {}
    for step in range(1, 5):  # checkpoints at 100, 200, 300, 400 rows per stream
        for _ in range(100):
            replay.add(rng.normal(size=(2, 4)), np.eye(2)[rng.integers(2, size=2)], rng.normal(size=2),
                       rng.random(2) < 0.1, rng.random(2) < 0.05)  # fmt: skip
        ckpt.save(tmp_path, 200 * step, agent, {"loop": {"frames": 200 * step}}, replay, keep=2)
        assert listed()[-1] == [100 * (step - 1), 100 * step]  # one new chunk: the rows since the last
        stamps.update({p.name: p.stat().st_mtime_ns for p in chunk_dir.glob("*.safetensors") if p.name not in stamps})
    # 400 rows written, 150 held (250..399): the newest lists only chunks holding those; chunks that
    # no kept checkpoint (300, 400) lists are gone, and no chunk was ever written twice.
    assert listed() == [[200, 300], [300, 400]]
    names = sorted(p.name for p in chunk_dir.glob("*.safetensors"))
    assert names == [f"{a:012d}-{b:012d}.safetensors" for a, b in ((100, 200), (200, 300), (300, 400))]
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in chunk_dir.glob("*.safetensors"))

    restored = SequenceReplay(300, 2, (4,), 2, seed=5)
    loaded = ckpt.load_latest(tmp_path, DreamerAgent((4,), ActionSpec("discrete", 2), cfg), restored)
    assert loaded is not None and loaded[1] == 800
    assert all(np.array_equal(restored.data[k], replay.data[k]) for k in replay.data)  # every ring slot
    assert np.array_equal(restored.ptr, replay.ptr) and np.array_equal(restored.count, replay.count)
    a, b = replay.sample(8, 16), restored.sample(8, 16)
    assert all(torch.equal(a[k], b[k]) for k in a)

    # A checkpoint written before incremental replay (the whole buffer in replay.npz) still loads.
    newest = ckpt.latest(tmp_path)
    assert newest is not None
    manifest = json.loads((newest / "manifest.json").read_text())
    del manifest["replay_chunks"], manifest["replay_rows"]
    (newest / "manifest.json").write_text(json.dumps(manifest))
    old_format = {k: v for k, v in replay.state_dict().items() if k != "rng"}
    np.savez(newest / "replay.npz", **old_format)
    legacy = SequenceReplay(300, 2, (4,), 2, seed=5)
    ckpt.load_latest(tmp_path, DreamerAgent((4,), ActionSpec("discrete", 2), cfg), legacy)
    assert all(np.array_equal(legacy.data[k], replay.data[k]) for k in replay.data)


def test_no_leakage_across_episode_boundary() -> None:
    cfg = resolve_config(["debug"])
    agent = DreamerAgent((3,), ActionSpec("discrete", 2), cfg)
    B, T, k = 2, 8, 4
    obs = torch.randn(B, T, 3)
    act = torch.nn.functional.one_hot(torch.randint(2, (B, T)), 2).float()
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = first[:, k] = True
    other_obs, other_act = obs.clone(), act.clone()
    other_obs[:, :k] = torch.randn(B, k, 3) * 5  # a different previous episode
    other_act[:, :k] = 1 - other_act[:, :k]
    with torch.no_grad():
        post_a, _ = agent.wm.observe_sequence(obs, act, first, generator=torch.Generator().manual_seed(0))
        post_b, _ = agent.wm.observe_sequence(
            other_obs, other_act, first, generator=torch.Generator().manual_seed(0)
        )
    assert not torch.allclose(post_a["deter"][:, :k], post_b["deter"][:, :k])
    assert torch.equal(post_a["deter"][:, k:], post_b["deter"][:, k:])
    assert torch.equal(post_a["stoch"][:, k:], post_b["stoch"][:, k:])


# ------------------------------------------------------------------------------------------------
# The loop stores what the env did: an echo env whose observation is the last action taken


class EchoEnv(gym.Env[np.ndarray, np.int64]):
    """obs = [one-hot of the action that led here (zeros at reset), step / 10]; reward = action;
    episodes end (terminated) after 3..7 steps (never, with ``endless``)."""

    endless = False

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        self.t, self.n = 0, int(self.np_random.integers(3, 8))
        return np.zeros(4, np.float32), {}

    def step(self, action: Any) -> Any:
        self.t += 1
        obs = np.zeros(4, np.float32)
        obs[int(action)] = 1.0
        obs[3] = self.t / 10
        return obs, float(action), self.t >= self.n and not self.endless, False, {}


class EndlessEchoEnv(EchoEnv):
    endless = True


gym.register("AgentwmEcho-v0", entry_point=EchoEnv)
gym.register("AgentwmEchoEndless-v0", entry_point=EndlessEchoEnv)


def test_loop_stores_actions_with_the_observations_they_produced(tmp_path: Path) -> None:
    cfg = resolve_config(["debug"], [*FAST, "num_envs=2", "steps=240", "prefill=120", "checkpoint_every=240"],
                         env="AgentwmEcho-v0")
    train(cfg, tmp_path, progress=False)
    obs_shape, spec = (4,), ActionSpec("discrete", 3)
    agent = DreamerAgent(obs_shape, spec, cfg)
    replay = SequenceReplay(cfg.replay_capacity, 2, obs_shape, 3, np.float32)
    assert ckpt.load_latest(tmp_path, agent, replay) is not None
    used = int(replay.count[0])
    assert used >= 100
    data = {k: v[:, :used] for k, v in replay.data.items()}
    obs, act, rew = data["obs"], data["action"], data["reward"]
    first, term = data["is_first"], data["is_terminal"]
    step = np.round(obs[..., 3] * 10).astype(int)
    assert np.array_equal(first, step == 0)  # first rows are exactly the reset observations
    later = ~first
    assert np.array_equal(act[later], obs[later][:, :3])  # action[t] is the one that led to obs[t]
    assert np.array_equal(rew[later], act[later].argmax(-1).astype(np.float32))
    assert np.all(act[first] == 0) and np.all(rew[first] == 0) and not term[first].any()
    # every episode end is marked terminal and is followed by a first row
    ends = np.flatnonzero(term[0][:-1])
    assert len(ends) > 5 and first[0][ends + 1].all()
    # the second half came from the policy, not the prefill's uniform actions: still one-hot
    assert np.all(act[later].sum(-1) == 1)


def test_time_limit_truncation_is_stored_as_a_boundary_not_a_terminal(tmp_path: Path) -> None:
    """CartPole's 500-step limit is a truncation: treating it as a terminal would teach the continue
    head (and through it the critic) that balancing for long ends the episode."""
    sets = [*FAST, "steps=160", "prefill=80", "checkpoint_every=160", "time_limit=5"]
    cfg = resolve_config(["debug"], sets, env="AgentwmEchoEndless-v0")
    train(cfg, tmp_path, progress=False)
    agent = DreamerAgent((4,), ActionSpec("discrete", 3), cfg)
    replay = SequenceReplay(cfg.replay_capacity, 1, (4,), 3, np.float32)
    assert ckpt.load_latest(tmp_path, agent, replay) is not None
    used = int(replay.count[0])
    first, term = replay.data["is_first"][0, :used], replay.data["is_terminal"][0, :used]
    step = np.round(replay.data["obs"][0, :used, 3] * 10).astype(int)
    assert not term.any()  # every episode was cut by the time limit, none terminated
    assert np.array_equal(first, step == 0) and first.sum() >= 20
    ends = np.flatnonzero(first[1:])  # the row before each new episode
    assert np.all(step[ends] == 5)  # ... is the truncated episode's last observation
    # The sampled batches the learner sees agree: continue targets are 1 at truncations.
    batch = replay.sample(16, 12)
    assert not batch["is_terminal"].any() and batch["is_first"][:, 1:].any()


# ------------------------------------------------------------------------------------------------
# Determinism and exact resume


def _weights(logdir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = ckpt.latest(logdir)
    assert path is not None
    return load_file(str(path / "model.safetensors"))


def _learning_metrics(logdir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(ln) for ln in (logdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("charts/fps") and k != "charts/ups"} for r in rows]


def test_same_seed_same_run_and_resume_continues_exactly(tmp_path: Path) -> None:
    base = ["debug"]
    sets = [*FAST, "checkpoint_every=100", "eval_every=100"]
    full = resolve_config(base, [*sets, "steps=200"])
    train(full, tmp_path / "a", progress=False)
    train(full, tmp_path / "b", progress=False)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _learning_metrics(tmp_path / "a") == _learning_metrics(tmp_path / "b")
    # Stop at 100 frames, resume to 200: the same weights as the uninterrupted run.
    train(resolve_config(base, [*sets, "steps=100"]), tmp_path / "c", progress=False)
    summary = train(full, tmp_path / "c", resume=True, progress=False)
    assert summary["resumed_from"] == 100 and summary["frames"] == 200
    wc = _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    # a different seed gives a different run
    train(resolve_config(base, [*sets, "steps=200", "seed=1"]), tmp_path / "d", progress=False)
    wd = _weights(tmp_path / "d")
    assert not all(torch.equal(wa[k], wd[k]) for k in wa)


def test_sigterm_checkpoints_the_frame_reached_and_resume_matches_the_whole_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = resolve_config(["debug"], [*FAST, "checkpoint_every=100", "eval_every=100", "steps=200"])
    train(full, tmp_path / "whole", progress=False)

    def unhandled(signum: int, frame: Any) -> None:
        raise AssertionError("SIGTERM reached the handler outside train")

    update, calls = DreamerAgent.update, []

    def update_then_sigterm(self: DreamerAgent, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        calls.append(1)
        if len(calls) == 10:  # mid-step, between two periodic checkpoints
            os.kill(os.getpid(), signal.SIGTERM)
        return update(self, batch)

    monkeypatch.setattr(DreamerAgent, "update", update_then_sigterm)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        cut = train(full, tmp_path / "cut", progress=False)
        assert signal.getsignal(signal.SIGTERM) is unhandled  # put back on the way out
    finally:
        signal.signal(signal.SIGTERM, previous)
    # The step finished and that exact frame was checkpointed, not the last periodic one (100).
    assert cut["stopped_by"] == "SIGTERM" and 100 < cut["frames"] < 200 and len(calls) < 25
    path = ckpt.latest(tmp_path / "cut")
    assert path is not None and path.name.endswith(f"{cut['frames']:010d}")
    monkeypatch.undo()
    done = train(full, tmp_path / "cut", resume=True, progress=False)
    assert done["resumed_from"] == cut["frames"] and done["frames"] == 200 and done["stopped_by"] is None
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_async_envs_step_while_the_agent_learns_and_give_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sets = [*FAST, "num_envs=2", "steps=200", "checkpoint_every=200", "eval_every=200"]
    train(resolve_config(["debug"], sets), tmp_path / "sync", progress=False)
    events: list[str] = []
    update, step_async, step_wait = (
        DreamerAgent.update,
        gym.vector.AsyncVectorEnv.step_async,
        gym.vector.AsyncVectorEnv.step_wait,
    )

    def spy(name: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            events.append(name)
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(DreamerAgent, "update", spy("update", update))
    monkeypatch.setattr(gym.vector.AsyncVectorEnv, "step_async", spy("send", step_async))
    monkeypatch.setattr(gym.vector.AsyncVectorEnv, "step_wait", spy("wait", step_wait))
    train(resolve_config(["debug"], [*sets, "async_envs=true"]), tmp_path / "async", progress=False)
    # The same weights and metrics as with in-process envs ...
    ws, wa = _weights(tmp_path / "sync"), _weights(tmp_path / "async")
    assert ws.keys() == wa.keys() and all(torch.equal(ws[k], wa[k]) for k in ws)
    assert _learning_metrics(tmp_path / "sync") == _learning_metrics(tmp_path / "async")
    # ... with the updates run while the worker processes step (between send and wait).
    assert events.count("send") == events.count("wait") == 100 and events.count("update") > 10
    stepping = False
    for event in events:
        assert event != "update" or stepping, "an update ran while no env step was in flight"
        stepping = event == "send" or (stepping and event == "update")


# ------------------------------------------------------------------------------------------------
# Config


def test_presets_apply_in_order_and_overrides_are_validated() -> None:
    cfg = resolve_config(["tiny", "debug"], ["train_ratio=8", "model.deter=48", "env=Pendulum-v1"])
    assert cfg.model_preset == "debug" and cfg.batch_size == 4  # debug came last
    assert cfg.model["deter"] == 48 and cfg.rssm_config().deter == 48 and cfg.rssm_config().units == 64
    assert cfg.train_ratio == 8.0 and cfg.env == "Pendulum-v1"
    cartpole = resolve_config(["tiny", "cartpole"])  # a task preset changes only what it names
    assert cartpole.critic_lr == 1e-3 and cartpole.actor_lr == resolve_config(["tiny"]).actor_lr
    assert cfg.updates_per_frame == pytest.approx(8 / 64)
    with pytest.raises(ValueError, match="unknown Dreamer setting 'trian_ratio'"):
        resolve_config([], ["trian_ratio=3"])
    with pytest.raises(ValueError, match="unknown Dreamer preset"):
        resolve_config(["nope"])
    with pytest.raises(ValidationError, match="batch_size"):
        resolve_config([], ["batch_size=0"])
    with pytest.raises(ValueError, match="divisible"):
        resolve_config(["debug"], ["model.deter=33"])
    with pytest.raises(ValueError, match="key=value"):
        resolve_config([], ["train_ratio"])


@pytest.mark.parametrize(
    ("obs_shape", "spec"), [((3, 64, 64), ActionSpec("discrete", 3)), ((5,), ActionSpec("continuous", 2))]
)
def test_bf16_update_learns_on_cpu_as_on_the_cuda_default(
    obs_shape: tuple[int, ...], spec: ActionSpec
) -> None:
    # amp=bf16 is CUDA's default (amp=auto) and the fast CPU setting; CPU autocast runs the same path.
    torch.manual_seed(0)
    agent = DreamerAgent(obs_shape, spec, resolve_config(["debug"], ["amp=bf16"]))
    B, T = 3, 8
    obs = torch.rand(B, T, *obs_shape)
    if spec.kind == "discrete":
        action = torch.nn.functional.one_hot(torch.randint(3, (B, T)), 3).float()
    else:
        action = torch.rand(B, T, 2) * 2 - 1
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    batch = {"obs": obs, "action": action, "reward": torch.rand(B, T), "is_first": first,
             "is_terminal": torch.zeros(B, T, dtype=torch.bool)}  # fmt: skip
    before = {n: p.detach().clone() for n, p in agent.named_parameters()}
    losses = [agent.update(batch)["loss/world_model"].item() for _ in range(5)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    for name, p in agent.named_parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all(), name  # fp32 master weights
    changed = [n for n, p in agent.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("actor.") for n in changed) and any(n.startswith("critic.") for n in changed)


# ------------------------------------------------------------------------------------------------
# Continuous actions, pixels, DMC, CLI


def test_continuous_actions_stay_in_bounds_and_learn_step(tmp_path: Path) -> None:
    cfg = resolve_config(["debug"], [*FAST, "steps=150", "time_limit=50"], env="Pendulum-v1")
    summary = train(cfg, tmp_path, progress=False)
    assert summary["updates"] > 0 and np.isfinite(summary["eval_return"])
    agent = DreamerAgent((3,), ActionSpec("continuous", 1, -2.0, 2.0), cfg)
    carry = agent.initial_carry(64)
    action, _ = agent.act(torch.randn(64, 3), torch.ones(64, dtype=torch.bool), carry)
    assert action.shape == (64, 1) and action.abs().max() <= 1.0
    assert action.std() > 0.05  # exploration samples
    greedy, _ = agent.act(torch.zeros(64, 3), torch.ones(64, dtype=torch.bool), carry, "eval")
    assert greedy.shape == (64, 1)
    # In imagination the REINFORCE term needs log pi of the sample itself: no clipping there.
    feat = torch.zeros(512, agent.wm.feat_dim)
    raw = agent.actor.sample(feat)
    assert (raw.abs() > 1).any()
    logp, _ = agent.actor.log_prob_entropy(feat, raw)
    mean, std = torch.tanh(torch.zeros(())), agent.actor._params(feat)[1]
    expected = torch.distributions.Normal(mean, std).log_prob(raw).sum(-1)
    assert torch.allclose(logp, expected, atol=1e-5)


def test_pixel_cartpole_writes_openloop_gif(tmp_path: Path) -> None:
    pytest.importorskip("imageio", reason="needs the plot extra")
    pytest.importorskip("matplotlib", reason="needs the plot extra")
    cfg = resolve_config(["debug"], [*FAST, "steps=120", "pixels=true", "batch_length=8"])
    train(cfg, tmp_path, progress=False)
    import imageio.v3 as iio

    frames = iio.imread(tmp_path / "openloop.gif")
    assert frames.shape[1:3] == (128, 4 * 64)  # real over imagined, 4 videos side by side
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000


def test_dmc_proprio_and_pixels() -> None:
    pytest.importorskip("dm_control", reason="needs the dmc extra")
    from agentwm.envs.dmc import make_dmc, parse_dmc_name

    assert parse_dmc_name("dmc:ball_in_cup-catch") == ("ball_in_cup", "catch")
    with pytest.raises(ValueError, match="domain-task"):
        parse_dmc_name("cartpole-swingup")
    env = make_dmc("dmc:cartpole-swingup", action_repeat=2, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (5,) and obs.dtype == np.float32
    steps, done = 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert 0.0 <= reward <= 2.0  # two summed per-frame rewards in [0, 1]
        steps, done = steps + 1, terminated or truncated
    assert steps == 500 and truncated and not terminated  # 1,000 frames, action repeat 2
    pix = make_dmc("dmc:cartpole-swingup", pixels=True, seed=0, render_size=96)
    frame, _ = pix.reset()
    assert frame.shape == (3, 64, 64) and frame.dtype == np.uint8 and frame.std() > 1
    assert pix.render().shape == (96, 96, 3)  # video frames at their own size, observations unchanged
    video_env = make_env("dmc:cartpole-swingup", render=True, seed=0)
    video_env.reset()
    assert video_env.render().shape == (256, 256, 3) and video_env.observation_space.shape == (5,)


def test_cli_default_presets_per_task() -> None:
    from agentwm.cli import dreamer_presets

    assert dreamer_presets(None, None) == ["tiny", "cartpole"]
    assert dreamer_presets(None, "CartPole-v1") == ["tiny", "cartpole"]
    assert dreamer_presets(None, "Pendulum-v1") == ["tiny"]
    assert dreamer_presets(None, "dmc:walker-walk") == ["tiny", "dmc_cpu"]
    # dmc_cpu is the measured CPU recipe: dmc_proprio's conventions at train ratio 128.
    cpu = resolve_config(["tiny", "dmc_cpu"], env="dmc:cartpole-swingup")
    assert cpu == resolve_config(["tiny", "dmc_proprio"], ["train_ratio=128"], env="dmc:cartpole-swingup")
    assert dreamer_presets(["size1m"], "CartPole-v1") == ["size1m"]


def test_cli_train_and_eval_dreamer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentwm.cli import main

    logdir = str(tmp_path / "run")
    args = ["train", "dreamer", "--preset", "debug", "--steps", "120", "--logdir", logdir, "--quiet"]
    assert main([*args, *[x for s in FAST for x in ("--set", s)]]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == 120
    assert main(["eval", "dreamer", "--logdir", logdir, "--episodes", "2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["episodes"] == 2 and out["mean_return"] >= 8 and len(out["returns"]) == 2
    assert main(["eval", "dreamer", "--logdir", logdir, "--episodes", "2", "--mode", "explore"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 2
    assert main(["eval", "dreamer", "--logdir", str(tmp_path / "missing")]) == 2
    assert main(["eval", "dreamer", "--logdir", logdir, "--video", str(tmp_path / "ep.avi")]) == 2
    assert not (tmp_path / "ep.avi").exists()


def test_cli_resume_keeps_the_runs_settings_and_refuses_what_the_checkpoint_cannot_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentwm.cli import main

    logdir = str(tmp_path / "run")
    sets = [x for s in [*FAST, "horizon=3"] for x in ("--set", s)]
    assert main(["train", "dreamer", "--preset", "debug", "--steps", "120", "--logdir", logdir, "--quiet", *sets]) == 0
    capsys.readouterr()
    # --resume alone: the run's own presets and overrides (not the CLI's defaults), with the new budget.
    assert main(["train", "dreamer", "--logdir", logdir, "--steps", "160", "--resume", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["resumed_from"] == 120
    cfg = ckpt.saved_config(logdir)
    assert cfg is not None and (cfg.model_preset, cfg.horizon, cfg.prefill, cfg.steps) == ("debug", 3, 100, 160)
    assert "steps: 120 -> 160" in err
    # Changed learning settings are allowed and reported; a model or env that does not fit is refused,
    # naming what differs, before anything is written.
    more = ["train", "dreamer", "--logdir", logdir, "--steps", "200", "--resume", "--quiet"]
    assert main([*more, "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "different model" in err and "deter=" in err and "Traceback" not in err
    assert main([*more, "--env", "Acrobot-v1"]) == 2
    assert "env='Acrobot-v1'" in capsys.readouterr().err
    assert ckpt.saved_config(logdir) == cfg
    assert main([*more, "--set", "train_ratio=8"]) == 0
    assert "train_ratio: 16.0 -> 8.0" in capsys.readouterr().err
    # --print-config shows what a command would run with, and runs nothing.
    assert main([*more, "--set", "horizon=4", "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["model_preset"], shown["horizon"], shown["train_ratio"], shown["steps"]) == ("debug", 4, 8.0, 200)
    assert ckpt.saved_config(logdir).horizon == 3  # type: ignore[union-attr]
    # The first command again, --resume forgotten: refused, the run kept; --overwrite starts over.
    first = ["train", "dreamer", "--preset", "debug", "--steps", "120", "--logdir", logdir, "--quiet", *sets]
    assert main(first) == 2
    assert "already holds a run (200 frames" in capsys.readouterr().err
    assert ckpt.saved_config(logdir).steps == 200  # type: ignore[union-attr]
    assert main([*first, "--overwrite"]) == 0
    fresh = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert fresh["resumed_from"] is None and fresh["frames"] == 120


def test_eval_video_during_training_records_each_evaluation_without_changing_the_run(tmp_path: Path) -> None:
    pytest.importorskip("imageio", reason="needs the plot extra")
    import imageio.v3 as iio

    sets = [*FAST, "steps=200", "eval_every=100", "checkpoint_every=200"]
    train(resolve_config(["debug"], sets), tmp_path / "plain", progress=False)
    train(resolve_config(["debug"], [*sets, "eval_video=true"]), tmp_path / "filmed", progress=False)
    videos = sorted((tmp_path / "filmed" / "videos").glob("*.gif"))
    assert [v.name for v in videos] == ["eval_0000000100.gif", "eval_0000000200.gif"]
    assert all(iio.imread(v).shape[0] >= 2 for v in videos)  # a played episode, not a still
    assert not (tmp_path / "plain" / "videos").exists()
    evals = [[r for r in _learning_metrics(tmp_path / run) if "eval/return" in r] for run in ("plain", "filmed")]
    assert evals[0] == evals[1] and len(evals[0]) == 2
    wa, wb = _weights(tmp_path / "plain"), _weights(tmp_path / "filmed")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA does")
def test_a_gpu_run_evaluates_and_resumes_on_a_machine_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentwm.cli import main

    logdir = tmp_path / "run"
    sets = [x for s in FAST for x in ("--set", s)]
    assert main(["train", "dreamer", "--preset", "debug", "--steps", "120", "--logdir", str(logdir), "--quiet", *sets]) == 0
    newest = ckpt.latest(logdir)
    assert newest is not None
    for path in (logdir / "config.json", newest / "config.json"):  # as if trained on a GPU
        path.write_text(json.dumps({**json.loads(path.read_text()), "device": "cuda"}))
    manifest = json.loads((newest / "manifest.json").read_text())  # ... and checkpointed there
    manifest["files"]["config.json"] = sha256_file(newest / "config.json")
    (newest / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    # Evaluation falls back to the CPU, saying so; an explicit device that is not here is refused.
    assert main(["eval", "dreamer", "--logdir", str(logdir), "--episodes", "1"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["episodes"] == 1 and "using the CPU" in err
    assert main(["eval", "dreamer", "--logdir", str(logdir), "--device", "cuda:0"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    # Training on it needs --device cpu, named in the error; resuming with it continues the run.
    assert main(["train", "dreamer", "--logdir", str(logdir), "--steps", "160", "--resume", "--quiet"]) == 2
    assert "--device cpu" in capsys.readouterr().err
    assert main(["train", "dreamer", "--logdir", str(logdir), "--steps", "160", "--resume", "--quiet",
                 "--device", "cpu"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["resumed_from"] == 120
    assert main(["train", "dreamer", "--logdir", str(tmp_path / "x"), "--device", "gpu"]) == 2
    assert "not a torch device: 'gpu'" in capsys.readouterr().err


def test_eval_video_shows_the_whole_first_episode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("imageio", reason="needs the plot extra")
    import imageio.v3 as iio

    from agentwm.cli import main

    logdir = str(tmp_path / "run")
    args = ["train", "dreamer", "--preset", "debug", "--steps", "120", "--logdir", logdir, "--quiet"]
    assert main([*args, *[x for s in FAST for x in ("--set", s)]]) == 0
    capsys.readouterr()
    video = tmp_path / "videos" / "episode.gif"
    assert main(["eval", "dreamer", "--logdir", logdir, "--episodes", "2", "--video", str(video)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["video"] == str(video) and len(out["returns"]) == 2
    gif = iio.imread(video)  # Pillow merges identical consecutive frames: count them below
    assert gif.shape[0] >= 2 and gif.shape[1:] == (213, 320, 3) and gif.std() > 1  # 600 x 400 shrunk

    cfg = DreamerConfig(**json.loads((Path(logdir) / "config.json").read_text()))
    agent = DreamerAgent(*env_specs(cfg), cfg)
    frames: list[np.ndarray] = []
    returns = evaluate(agent, lambda: make_env(cfg.env, seed=3, render=True), 2, 3, frames=frames)
    # CartPole pays +1 per step: the first episode is its reset frame plus one frame per step.
    assert len(frames) == int(returns[0]) + 1 and frames[0].shape == (213, 320, 3)
    assert main(["train", "dreamer", "--logdir", logdir, "--set", "horizon=0"]) == 2


def test_compare_runs_sums_up_seeds_from_their_eval_curves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentwm.agents.dreamer.report import compare_runs
    from agentwm.cli import main

    curves = {0: [(10, 100.0), (20, 480.0), (30, 500.0)], 1: [(10, 90.0), (20, 300.0), (30, 410.0)],
              2: [(10, 50.0), (20, 476.0), (30, 475.0)]}  # fmt: skip
    for seed, curve in curves.items():
        run = tmp_path / f"s{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"env": "CartPole-v1", "seed": seed}))
        lines = [json.dumps({"frames": f, "charts/fps": 1.0}) + "\n" + json.dumps({"frames": f, "eval/return": r})
                 for f, r in curve]  # fmt: skip
        (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"frames": 40, "eval/ret')  # torn last line
    dirs = [tmp_path / f"s{s}" for s in curves]
    out = compare_runs(dirs, target=475)
    assert [r["final"] for r in out["runs"]] == [500.0, 410.0, 475.0]
    assert [r["frames_to_target"] for r in out["runs"]] == [20, None, 20]
    assert [r["met"] for r in out["runs"]] == [True, False, True] and out["runs"][1]["best"] == 410.0
    agg = out["aggregate"]
    assert (agg["reached"], agg["met_at_final"], agg["median_frames_to_target"]) == (2, 2, 20)
    # the second half: the evals at frames 20 and 30 (at or past 15, half the last): 4 of 6 at the target
    assert [(r["late_at_target"], r["late_evals"]) for r in out["runs"]] == [(2, 2), (0, 2), (2, 2)]
    assert (agg["late_at_target"], agg["late_evals"]) == (4, 6)
    assert agg["final_mean"] == pytest.approx(1385 / 3) and (agg["final_min"], agg["final_max"]) == (410.0, 500.0)
    assert "target" not in compare_runs(dirs)["aggregate"]
    argv = ["compare", "dreamer", *map(str, dirs), "--target", "475"]
    if importlib.util.find_spec("matplotlib") is not None:
        argv += ["--plot", str(tmp_path / "seeds.png")]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["aggregate"] == agg
    assert "--plot" not in argv or (tmp_path / "seeds.png").stat().st_size > 1000
    assert main(["compare", "dreamer", str(tmp_path / "none")]) == 2


def test_dreamer_example_trains_resumes_and_acts_in_its_own_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runpy

    example = str(Path(__file__).resolve().parent.parent / "examples" / "dreamer_cartpole.py")
    monkeypatch.setattr("sys.argv", [example, "--quick", "--logdir", str(tmp_path / "run")])
    runpy.run_path(example, run_name="__main__")
    first = capsys.readouterr().out
    assert "trained to 1000 frames" in first and "greedy eval over 5 episodes" in first
    assert "own loop with the 1000-frame agent: return" in first
    newest = ckpt.latest(tmp_path / "run")
    assert newest is not None
    written = (newest / "manifest.json").stat().st_mtime_ns
    runpy.run_path(example, run_name="__main__")  # again: the finished run is resumed, not retrained
    assert "trained to 1000 frames" in capsys.readouterr().out
    assert ckpt.latest(tmp_path / "run") == newest and (newest / "manifest.json").stat().st_mtime_ns == written


def test_dmc_training_checkpoints_and_resumes_with_fresh_episodes(tmp_path: Path) -> None:
    pytest.importorskip("dm_control", reason="needs the dmc extra")
    sets = ["prefill=40", "train_ratio=8", "log_every=40", "eval_every=1000", "eval_episodes=1",
            "checkpoint_every=40", "batch_length=8"]  # fmt: skip
    cfg = resolve_config(["dmc_proprio", "debug"], [*sets, "steps=80"], env="dmc:cartpole-swingup")
    assert cfg.action_repeat == 2 and cfg.model_preset == "debug"
    summary = train(cfg, tmp_path, progress=False)
    assert summary["frames"] == 80 and summary["updates"] > 0
    state = json.loads((ckpt.latest(tmp_path) / "state.json").read_text())  # type: ignore[operator]
    assert state["envs"] is None  # MuJoCo state is not plain data: a resumed run starts fresh episodes
    more = train(resolve_config(["dmc_proprio", "debug"], [*sets, "steps=120"], env="dmc:cartpole-swingup"),
                 tmp_path, resume=True, progress=False)  # fmt: skip
    assert more["resumed_from"] == 80 and more["frames"] == 120


def test_actor_rsample_is_a_sample_that_gradients_pass_through() -> None:
    actor = Actor(5, ActionSpec("discrete", 3), 16, 1, resolve_config(["debug"]))
    feat = torch.randn(64, 5, requires_grad=True)
    action = actor.rsample(feat, torch.Generator().manual_seed(0))
    assert torch.allclose(action.detach().sum(-1), torch.ones(64)) and set(action.detach().round().unique().tolist()) <= {0.0, 1.0}
    (action * torch.arange(3.0)).sum().backward()
    assert feat.grad is not None and feat.grad.abs().sum() > 0  # straight-through: the probabilities' gradient
    continuous = Actor(5, ActionSpec("continuous", 2), 16, 1, resolve_config(["debug"]))
    feat.grad = None
    continuous.rsample(feat).sum().backward()
    assert feat.grad.abs().sum() > 0


def test_actor_dynamics_backpropagates_the_return_into_the_actor_only() -> None:
    """With the REINFORCE share and the entropy bonus at 0, the actor's gradient comes from the
    return differentiated through the model alone; the world model's step is the plain one."""
    torch.manual_seed(1)
    B, T = 4, 8
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    batch = {"obs": torch.randn(B, T, 3), "reward": torch.ones(B, T), "is_first": first,
             "is_terminal": torch.zeros(B, T, dtype=torch.bool),
             "action": torch.nn.functional.one_hot(torch.randint(2, (B, T)), 2).float()}  # fmt: skip
    runs = {}
    for share in (0.0, 1.0):
        torch.manual_seed(0)
        cfg = resolve_config(["debug"], [f"actor_dynamics={share}", "actor_entropy=0"])
        agent = DreamerAgent((3,), ActionSpec("discrete", 2), cfg)
        agent.generator = torch.Generator().manual_seed(0)
        runs[share] = (agent, agent.update(batch))
    (plain, _), (dyn, dyn_m) = runs[0.0], runs[1.0]
    assert float(dyn_m["grad/actor"]) > 0 and torch.isfinite(dyn_m["grad/actor"])
    for (name, p), q in zip(plain.wm.named_parameters(), dyn.wm.parameters()):
        assert torch.equal(p, q), name  # the actor's objective never steps the world model ...
        assert (p.grad is None) == (q.grad is None) and (p.grad is None or torch.equal(p.grad, q.grad)), name  # ... nor adds to its gradients
    changed = {n for (n, p), q in zip(plain.actor.named_parameters(), dyn.actor.parameters()) if not torch.equal(p, q)}
    assert changed


def test_a_cuda_graph_update_refuses_what_it_cannot_replay() -> None:
    from types import SimpleNamespace

    from agentwm.agents.dreamer.train import _update_function

    on_gpu = SimpleNamespace(device=torch.device("cuda"))  # never touched: the refusal comes first
    for sets, field in ((["actor_dynamics=0.5"], "actor_dynamics"), (["ac_lr_final=0.1"], "ac_lr_final")):
        with pytest.raises(ValueError, match=field):
            _update_function(on_gpu, resolve_config(["debug"], sets), data_parallel=False)  # type: ignore[arg-type]
