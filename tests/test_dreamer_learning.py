"""Dreamer end to end: resume after SIGKILL, Ctrl-C, and a small real learning check on CartPole.

The learning check is marked slow; CI runs its small form, ``AGENTWM_FULL=1`` a longer one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from agentwm.agents.dreamer import DreamerAgent, SequenceReplay, resolve_config, train
from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.worldmodels.base import ActionSpec

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
EVERY = 100  # checkpoint interval (frames) of the killed run
RANDOM_CARTPOLE_RETURN = 22.0  # CartPole-v1 under uniform random actions (mean episode length ~22)
SETS = ["prefill=100", "train_ratio=16", "log_every=25", f"checkpoint_every={EVERY}", "eval_every=100000"]


def _frames_logged(logdir: Path) -> list[int]:
    path = logdir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return [r["frames"] for r in rows if "charts/updates" in r]  # the periodic log lines


def _load_newest(logdir: Path, sets: list[str]) -> tuple[DreamerAgent, SequenceReplay, dict[str, Any], int]:
    """The newest checkpoint of a CartPole run with the ``debug`` preset and ``sets``, loaded."""
    cfg = resolve_config(["debug"], sets)
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    replay = SequenceReplay(cfg.replay_capacity, cfg.num_envs, (4,), 2)
    loaded = ckpt.load_latest(logdir, agent, replay)
    assert loaded is not None
    return agent, replay, *loaded


def test_resume_after_sigkill_loses_at_most_one_interval(tmp_path: Path) -> None:
    logdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "agentwm.cli", "train", "dreamer", "--preset", "debug", "--steps", "100000",
           "--logdir", str(logdir), "--quiet"] + [x for s in SETS for x in ("--set", s)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while len(ckpt.complete_checkpoints(logdir)) < 2:  # two written: the rotation has run too
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "trainer died"
            assert time.monotonic() < deadline, "no checkpoints within 180 s"
            time.sleep(0.05)
        time.sleep(random.uniform(0.0, 1.5))  # an arbitrary moment: mid-update, mid-write, ...
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    reached = max(_frames_logged(logdir))

    # The newest checkpoint is complete and loads; at most one interval behind the killed run.
    agent, replay, state, frames = _load_newest(logdir, SETS)
    assert frames % EVERY == 0 and frames >= reached - EVERY
    assert state["loop"]["frames"] == frames and int(replay.count.sum()) == frames
    assert all(torch.isfinite(p).all() for p in agent.parameters())

    # Resume: continues from that checkpoint and finishes; the metric log has no duplicates.
    summary = train(resolve_config(["debug"], [*SETS, f"steps={frames + EVERY}"]), logdir, resume=True,
                    progress=False)  # fmt: skip
    assert summary["resumed_from"] == frames and summary["frames"] == frames + EVERY
    assert not list((logdir / "checkpoints").glob(".tmp-*"))  # torn leftovers swept
    logged = _frames_logged(logdir)
    assert logged == sorted(logged) and len(logged) == len(set(logged))
    assert logged[-1] == frames + EVERY


def test_ctrl_c_checkpoints_the_frame_reached_with_env_workers_running(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group: the trainer and its env worker
    processes, caught here mostly inside a (slow) step."""
    logdir = tmp_path / "run"
    sets = [*SETS, "async_envs=true", "num_envs=2"]
    cmd = [sys.executable, "-m", "agentwm.cli", "train", "dreamer", "--preset", "debug", "--steps", "100000",
           "--env", "tests.slow_env:SlowCartPole-v1", "--logdir", str(logdir), "--quiet"]
    cmd += [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    # A terminal's program starts with SIGINT at its default, a shell's background job with it
    # ignored, and an ignored signal stays ignored across exec. A handled one is reset to the default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 180
        while not ckpt.complete_checkpoints(logdir):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "trainer died"
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.05)
        time.sleep(random.uniform(0.2, 1.5))
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGINT, err.decode()
    assert "--resume" in err.decode() and "Traceback" not in err.decode()
    summary = json.loads(out.decode().splitlines()[-1])
    assert summary["stopped_by"] == "SIGINT"
    _, replay, state, frames = _load_newest(logdir, sets)
    assert frames == summary["frames"] == state["loop"]["frames"] == int(replay.count.sum())  # nothing lost


@pytest.mark.slow
def test_tiny_dreamer_learns_cartpole(tmp_path: Path) -> None:
    """The CLI's CartPole agent beats the random policy (~22) clearly within a bounded number of
    frames: the median greedy return over three seeds, so one unlucky seed cannot fail it and one
    lucky seed cannot pass it. With the cartpole preset as it is (train_ratio 64, the averaged actor
    evaluated), seeds 0-4 at 4k frames gave 451, 500, 491, 324, 328 on an AVX-512 Xeon (docs/reliability.md)."""
    full = bool(os.environ.get("AGENTWM_FULL"))
    steps, target = (15_000, 150.0) if full else (4_000, 100.0)
    finals = []
    for seed in (0, 1, 2):
        cfg = resolve_config(
            ["tiny", "cartpole"], [f"steps={steps}", "eval_episodes=10", f"eval_every={steps}", f"seed={seed}"]
        )
        summary = train(cfg, tmp_path / f"seed{seed}", progress=False)
        assert summary["frames"] == steps
        assert summary["eval_return"] is not None, summary
        finals.append(summary["eval_return"])
    assert statistics.median(finals) >= target, finals
    assert statistics.median(finals) > 4 * RANDOM_CARTPOLE_RETURN, finals
