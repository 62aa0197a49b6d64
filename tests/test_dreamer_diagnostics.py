"""The Dreamer diagnostics in benchmarks/ run on a trained run and report what they promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentwm.agents.dreamer import resolve_config, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logdir = tmp_path_factory.mktemp("run")
    cfg = resolve_config(["debug"], ["steps=400", "prefill=100", "train_ratio=16", "eval_episodes=1"],
                         env="CartPole-v1")  # fmt: skip
    train(cfg, logdir)
    return logdir


def _bench(script: str, *args: str, results: Path) -> dict[str, Any]:
    env = {**os.environ, "AGENTWM_RESULTS_DIR": str(results), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_open_loop_reports_error_and_real_change_per_dimension(cartpole_run: Path, tmp_path: Path) -> None:
    args = ["--episodes", "2", "--every", "2", "--ahead", "2", "4"]
    out = _bench("dreamer_open_loop.py", "--logdir", str(cartpole_run), *args, results=tmp_path)
    assert out["windows"] > 0 and len(out["episode_lengths"]) == 2
    for k, row in out["ahead"].items():
        assert int(k) <= min(out["episode_lengths"]) and len(row["error"]) == len(row["real_change"]) == 4
        assert all(v >= 0 for v in row["error"] + row["real_change"])
    assert list(tmp_path.glob("dreamer_open_loop*.json"))  # and it kept the result
    for script in ("dreamer_open_loop.py", "dreamer_episode_ends.py"):  # no run there: one line, no traceback
        bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--logdir", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and "config.json" in bad.stderr, script


def test_episode_ends_reports_the_continue_head_at_the_ends(cartpole_run: Path, tmp_path: Path) -> None:
    out = _bench("dreamer_episode_ends.py", "--logdir", str(cartpole_run), "--episodes", "2", results=tmp_path)
    assert len(out["episodes"]) == 2 and out["replay"]["rows"] >= 400
    for episode in out["episodes"]:
        assert 0.0 <= episode["continue_at_last_obs"] <= 1.0 and episode["ended"] in ("terminated", "truncated")


def test_wm_fit_scores_a_setting_on_the_runs_held_out_replay(cartpole_run: Path, tmp_path: Path) -> None:
    args = ["--logdir", str(cartpole_run), "--updates", "4", "--test-rows", "100", "--context", "4",
            "--ahead", "2", "4", "--windows", "20"]  # fmt: skip
    out = _bench("dreamer_wm_fit.py", *args, "--set", 'model.loss_scales={"dec": 100}', results=tmp_path)
    assert out["loss_scales"]["dec"] == 100.0 and out["loss_scales"]["dyn"] == 1.0  # the rest as the run had
    assert out["train_rows"] == 300 and 0 < out["windows"] <= 20 and len(out["curve"]) == 4
    final = out["final"]
    assert len(final["recon"]) == 4 and set(final["ahead"]) == {"2", "4"}
    assert all(v >= 0 for row in final["ahead"].values() for v in row["error"] + row["real_change"])
    env = {**os.environ, "AGENTWM_RESULTS_DIR": str(tmp_path)}
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dreamer_wm_fit.py"), *args, "--set", "model.bogus=1"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "bogus" in bad.stderr
