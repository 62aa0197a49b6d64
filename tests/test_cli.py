"""The command line: help texts, a real (small) plan run, save/eval/score round trip, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agentwm.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_every_subcommand():
    proc = subprocess.run([sys.executable, "-m", "agentwm.cli", "--help"], capture_output=True, text=True, check=True)
    for name in ("plan", "train", "eval", "score", "bench"):
        assert name in proc.stdout


def test_plan_controls_cartpole_better_than_random(capsys):
    # Small but real: 600 random transitions, short episodes. A random policy lasts ~22 steps.
    code, out, _ = run_cli(
        capsys, "plan", "--env", "CartPole-v1", "--transitions", "600", "--episodes", "1",
        "--samples", "32", "--horizon", "15", "--quiet", "--seed", "1",
    )
    assert code == 0
    result = json.loads(out)
    assert result["planner"] == "shooting"
    assert len(result["episode_returns"]) == 1
    assert result["mean_return"] >= 100, result


def test_train_eval_score_round_trip(tmp_path, capsys):
    folder = tmp_path / "cartpole-ensemble"
    code, out, _ = run_cli(capsys, "train", "ensemble", "--steps", "400", "--logdir", str(folder), "--quiet")
    assert code == 0 and (folder / "model.safetensors").is_file()
    assert json.loads(out)["fit_metrics"]
    code, out, _ = run_cli(
        capsys, "eval", "ensemble", "--model", str(folder), "--episodes", "1", "--planner", "cem",
        "--samples", "24", "--horizon", "10", "--iterations", "2", "--quiet",
    )
    assert code == 0 and json.loads(out)["planner"] == "cem"
    # A pole leaning right: pushing right (1) keeps it up longer than pushing left (0).
    code, out, _ = run_cli(
        capsys, "score", "ensemble", "--model", str(folder), "--obs", "[0.0, 0.0, 0.12, 0.5]",
        "--candidates", "[0, 1]", "--horizon", "10", "--samples", "16",
    )
    assert code == 0
    ranked = json.loads(out)
    assert len(ranked["scores"]) == 2 and ranked["best"] == 1, ranked


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plan", "--transitions", "3", "--quiet"], "transitions"),
        (["plan", "--gamma", "1.5", "--quiet"], "gamma"),
        (["eval", "ensemble", "--model", "/nonexistent/folder", "--quiet"], "--model: no folder /nonexistent/folder"),
    ],
)
def test_bad_settings_give_a_clear_error(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err


def test_bench_runs_a_benchmark_script(capsys, monkeypatch, tmp_path):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("AGENTWM_RESULTS_DIR", str(tmp_path))  # a smoke run must not overwrite the measurement
    code, out, _ = run_cli(capsys, "bench", "plan_latency", "--repeats", "3", "--samples", "4")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["benchmark"] == "plan_latency" and result["cpu"]["p50_ms"] > 0
    assert (tmp_path / "plan_latency.json").is_file()
