"""The Dreamer diagnostics in benchmarks/ run on a trained run and report what they promise; a seed
table combines runs done apart."""

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
    flip = _bench("dreamer_open_loop.py", "--logdir", str(cartpole_run), *args, "--flip", "1", results=tmp_path)
    assert flip["ahead"] == out["ahead"]  # the flipped windows draw their own copy of the same noise
    effect = flip["action_effect"]["2"]
    assert effect["windows"] > 0 and all(len(effect[key]) == 4 for key in ("imagined", "real", "slope", "correlation"))
    assert 0.3 < effect["real"][1] < 0.5  # CartPole: the other push changes the cart's speed by 2 x 0.195
    for script in ("dreamer_open_loop.py", "dreamer_episode_ends.py"):  # no run there: one line, no traceback
        bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--logdir", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and "config.json" in bad.stderr, script


def test_episode_ends_reports_the_continue_head_at_the_ends(cartpole_run: Path, tmp_path: Path) -> None:
    out = _bench("dreamer_episode_ends.py", "--logdir", str(cartpole_run), "--episodes", "2", results=tmp_path)
    assert len(out["episodes"]) == 2 and out["replay"]["rows"] >= 400
    for episode in out["episodes"]:
        assert 0.0 <= episode["continue_at_last_obs"] <= 1.0 and episode["ended"] in ("terminated", "truncated")


def test_imagined_control_rates_actor_and_controller_from_the_same_states(cartpole_run: Path, tmp_path: Path) -> None:
    args = ["--logdir", str(cartpole_run), "--every", "5", "--horizon", "4", "--samples", "3"]
    out = _bench("dreamer_imagined_control.py", *args, results=tmp_path)
    windows = out["windows"]
    assert len(windows) == (out["episode_length"] - 1) // 5 + 1 and out["horizon"] == 4
    assert out["windows_controller_rated_below_actor"].endswith(f"of {len(windows)}")
    for w in windows:
        for who in ("actor", "controller"):
            assert len(w[who]["obs_end"]) == 4 and 0.0 <= w[who]["min_continue"] <= 1.0
        assert 0 < w["controller_real"]["reward"] <= 4  # CartPole: one per step, for at most the horizon
    for bad, why in ((["--gains", "1", "2"], "--gains needs 4"), (["--logdir", str(tmp_path / "none")], "config.json")):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dreamer_imagined_control.py"), *args, *bad],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and why in proc.stderr, proc.stderr


def test_wm_fit_scores_a_setting_on_the_runs_held_out_replay(cartpole_run: Path, tmp_path: Path) -> None:
    args = ["--logdir", str(cartpole_run), "--updates", "4", "--test-rows", "100", "--context", "4",
            "--ahead", "2", "4", "--windows", "20"]  # fmt: skip
    out = _bench("dreamer_wm_fit.py", *args, "--set", 'model.loss_scales={"dec": 100}', results=tmp_path)
    assert out["loss_scales"]["dec"] == 100.0 and out["loss_scales"]["dyn"] == 1.0  # the rest as the run had
    assert out["train_rows"] == 300 and 0 < out["windows"] <= 20 and len(out["curve"]) == 4
    final = out["final"]
    assert len(final["recon"]) == 4 and set(final["ahead"]) == {"2", "4"}
    assert all(v >= 0 for row in final["ahead"].values() for v in row["error"] + row["real_change"])
    # each sample is at least as far off as the samples' mean (the triangle inequality)
    assert all(e >= m - 1e-3 for row in final["ahead"].values() for e, m in zip(row["error_per_sample"], row["error"]))
    env = {**os.environ, "AGENTWM_RESULTS_DIR": str(tmp_path)}
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dreamer_wm_fit.py"), *args, "--set", "model.bogus=1"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "bogus" in bad.stderr


def _seed_file(folder: Path, seed: int, curve: list[list[float]], *, sets: list[str], cpu: str, old: bool = False,
               complete: bool = True) -> Path:
    """A per-seed dreamer_learn result as the script writes it; ``old`` as written before it kept the
    seed and the second-half counts (the seed only in its command)."""
    result: dict[str, Any] = {
        "benchmark": "dreamer_learn", "task": "cartpole", "frames": 30_000, "frame_budget": 30_000,
        "complete": complete, "final_eval_return": curve[-1][1], "best_eval_return": max(r for _, r in curve),
        "wall_s": 10.0, "eval_curve": curve, "config": {"presets": ["tiny", "cartpole"], "sets": sets},
    }  # fmt: skip
    if not old:
        result.update({"seed": seed, "late_at_target": -1, "late_evals": -1})  # recomputed, never trusted
    doc = {"benchmark": "dreamer_learn", "command": f"python benchmarks/dreamer_learn.py --seed {seed} --threads 1",
           "commit": "abc", "date_utc": "2026-12-05T00:00:00Z", "machine": {"cpu": cpu}, "result": result}  # fmt: skip
    path = folder / f"seed{seed}{'-old' if old else ''}.json"
    path.write_text(json.dumps(doc))
    return path


def test_combine_builds_one_seed_table_from_runs_done_apart(tmp_path: Path) -> None:
    sets = ["train_ratio=64", "threads=1"]
    holds = [[3000, 300.0], [6000, 500.0], [9000, 500.0], [12000, 475.0]]  # second half: 6k, 9k, 12k (from half the last)
    drifts = [[3000, 500.0], [6000, 500.0], [9000, 474.9], [12000, 500.0]]
    files = [_seed_file(tmp_path, 3, holds, sets=sets, cpu="Xeon"),
             _seed_file(tmp_path, 1, drifts, sets=sets, cpu="EPYC", old=True)]  # fmt: skip
    out = _bench("dreamer_learn.py", "--combine", *map(str, files), "--name", "t", results=tmp_path / "res")
    assert out["seeds"] == [1, 3] and out["combined"] and out["cpus"] == ["EPYC", "Xeon"]
    assert [(r["seed"], r["met"], r["late_at_target"], r["late_evals"]) for r in out["rows"]] == [
        (1, True, 2, 3), (3, True, 3, 3)]  # fmt: skip
    assert out["met_at_final"] == 2 and out["late_at_target"] == 5 and out["late_evals"] == 6
    assert out["rows"][0]["frames_to_target"] == 3000 and out["rows"][1]["frames_to_target"] == 6000
    assert (tmp_path / "res" / "dreamer_learn-cartpole-table-combined-t.json").is_file()
    refused = {
        "other settings": _seed_file(tmp_path, 5, holds, sets=["threads=2"], cpu="Xeon"),
        "repeats seed 3": _seed_file(tmp_path, 3, holds, sets=sets, cpu="EPYC", old=True),
        "stopped before its frame budget": _seed_file(tmp_path, 7, holds, sets=sets, cpu="Xeon", complete=False),
        "not a per-seed dreamer_learn result": tmp_path / "torn.json",
    }
    (tmp_path / "torn.json").write_text('{"benchmark": "dreamer_learn", "result": {"eval_curve": 3}}')
    for why, bad in refused.items():  # one line naming the file and what is wrong, no traceback
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dreamer_learn.py"), "--combine",
                               str(files[0]), str(bad)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "AGENTWM_RESULTS_DIR": str(tmp_path / "res")}, check=False)  # fmt: skip
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert why in proc.stderr and bad.name in proc.stderr, (why, proc.stderr)


def test_replay_tail_reproduces_the_run_and_changes_only_what_it_evaluates_with(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = resolve_config(["debug"], ["steps=600", "prefill=100", "train_ratio=16", "eval_every=150", "eval_episodes=1",
                                     "checkpoint_every=300", "threads=1"], env="CartPole-v1")  # fmt: skip
    train(cfg, run, progress=False)
    args = ["--logdir", str(run), "--from", "300", "--out", str(tmp_path / "replays"), "--target", "20"]
    out = _bench("dreamer_replay_tail.py", *args, "--set", "actor_average=0.2", results=tmp_path)
    (row,) = out["runs"]
    assert [f for f, _ in row["original"]] == [450, 600] == [f for f, _ in row["eval"]]
    assert row["reproduced"] and out["reproduced"] == 1 and row["online"] == row["original"]
    assert out["finals_at_target_online"] == out["finals_at_target_original"]
    env = {**os.environ, "AGENTWM_RESULTS_DIR": str(tmp_path)}
    script = str(ROOT / "benchmarks" / "dreamer_replay_tail.py")
    for bad, said in ((["--from", "200"], "no complete checkpoint at 200"),
                      (["--from", "300", "--set", "bogus=1"], "bogus")):  # fmt: skip
        proc = subprocess.run([sys.executable, script, "--logdir", str(run), *bad, "--out", str(tmp_path / "bad")],
                              capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and said in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
