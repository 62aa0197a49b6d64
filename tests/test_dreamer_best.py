"""The best-evaluated checkpoint of a Dreamer run: kept through pruning and resume, loaded by
``agentwm eval dreamer --checkpoint best``, and a one-line error where a run has none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from agentwm.agents.dreamer import DreamerAgent, evaluate_logdir, load_agent, resolve_config, train
from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.agents.dreamer.best import BestKeeper, best_folder, read_best
from agentwm.agents.dreamer.evaluation import env_specs
from agentwm.agents.dreamer.report import run_summary

torch.set_num_threads(1)

# The tiny agent on CartPole, an eval every 100 frames, one rolling checkpoint kept: pruning deletes
# every checkpoint but the newest, so an early best survives only if pruning spares it.
SETS = ["log_every=100", "eval_every=100", "eval_episodes=2", "train_ratio=16", "prefill=100",
        "checkpoint_every=100", "keep_checkpoints=1", "threads=1"]  # fmt: skip


def _evals(logdir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(ln) for ln in (logdir / "metrics.jsonl").read_text().splitlines() if ln]
    return [(r["frames"], r["eval/return"]) for r in rows if "eval/return" in r]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    logdir = tmp_path_factory.mktemp("best") / "run"
    summary = train(resolve_config(["tiny"], [*SETS, "steps=800"], env="CartPole-v1"), logdir, progress=False)
    return logdir, summary


def test_best_checkpoint_holds_the_highest_eval_and_survives_pruning(run: tuple[Path, dict[str, Any]]) -> None:
    logdir, summary = run
    evals = _evals(logdir)
    assert len(evals) == 8
    top = max(r for _, r in evals)
    first_top = next(f for f, r in evals if r == top)  # strictly better replaces: the first of equals stays
    record = read_best(logdir)
    assert record is not None and record["eval_return"] == top and record["frames"] == first_top
    assert (summary["best_eval_return"], summary["best_eval_frames"]) == (top, first_top)
    assert summary["best_checkpoint"] == str(logdir / "checkpoints" / "best")
    # Pruning kept one rolling checkpoint (the last frame) and the best, evaluated before it.
    rolling = [p.name for p in ckpt.complete_checkpoints(logdir)]
    assert rolling == ["ckpt_0000000800"] and record["frames"] < 800
    folder = best_folder(logdir)
    assert folder is not None and folder.name == f"best-{record['frames']:010d}"
    assert [p.name for p in (logdir / "checkpoints").glob("best-*")] == [folder.name]
    report = run_summary(logdir)
    assert (report["best"], report["best_frames"], report["best_checkpoint_frames"]) == (top, first_top, first_top)


def test_eval_checkpoint_best_loads_the_best_weights_and_reproduces_its_return(
    run: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from agentwm.cli import main

    logdir, _ = run
    record = read_best(logdir)
    assert record is not None
    agent, frames = load_agent(logdir, checkpoint="best")
    saved = load_file(str(logdir / "checkpoints" / f"best-{record['frames']:010d}" / "model.safetensors"))
    assert frames == record["frames"]
    assert all(torch.equal(agent.state_dict()[k].cpu(), v) for k, v in saved.items())
    latest, latest_frames = load_agent(logdir)  # the default is still the newest checkpoint
    assert latest_frames == 800
    assert not all(torch.equal(latest.state_dict()[k], v) for k, v in agent.state_dict().items())
    # The same episodes as the training run's evaluation give the same return (greedy, seeded).
    again = evaluate_logdir(logdir, episodes=record["eval_episodes"], seed=record["eval_seed"], checkpoint="best")
    assert again["mean_return"] == record["eval_return"] and again["checkpoint"] == "best"
    args = ["eval", "dreamer", "--logdir", str(logdir), "--episodes", str(record["eval_episodes"]),
            "--seed", str(record["eval_seed"]), "--checkpoint", "best"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["frames"], out["mean_return"]) == (record["frames"], record["eval_return"])


def test_a_resumed_run_knows_the_best_so_far(run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    import shutil

    logdir = tmp_path / "run"
    shutil.copytree(run[0], logdir)
    before = read_best(logdir)
    more = train(resolve_config(["tiny"], [*SETS, "steps=1000"], env="CartPole-v1"), logdir, resume=True,
                 progress=False)  # fmt: skip
    assert more["resumed_from"] == 800
    evals = _evals(logdir)
    assert len(evals) == 10
    record = read_best(logdir)
    assert record is not None and record["eval_return"] == max(r for _, r in evals)
    # Here the evaluations after the resume are all below the earlier best, so that one stays.
    assert max(r for f, r in evals if f > 800) < before["eval_return"] and record == before  # type: ignore[index]


def test_eval_best_of_a_run_without_one_names_the_missing_file(
    run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from agentwm.cli import main

    logdir = tmp_path / "old"
    shutil.copytree(run[0], logdir)
    (logdir / "checkpoints" / "best").unlink()  # as a run trained before best checkpoints existed
    assert main(["eval", "dreamer", "--logdir", str(logdir), "--episodes", "1", "--checkpoint", "best"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(logdir / "checkpoints" / "best") in err and "Traceback" not in err
    assert main(["eval", "dreamer", "--logdir", str(logdir), "--episodes", "1"]) == 0  # latest still works
    capsys.readouterr()
    (logdir / "checkpoints" / "best").write_text("best-0000099999")  # a pointer to a folder that is gone
    assert main(["eval", "dreamer", "--logdir", str(logdir), "--episodes", "1", "--checkpoint", "best"]) == 2
    assert "names a folder that is missing or incomplete" in capsys.readouterr().err
    with pytest.raises(ValueError, match="checkpoint must be one of latest, best"):
        load_agent(logdir, checkpoint="newest")  # type: ignore[arg-type]


def test_keeper_drops_bests_past_the_resumed_checkpoint_and_beats_only_the_record(tmp_path: Path) -> None:
    cfg = resolve_config(["debug"])
    obs_shape, spec = env_specs(cfg)
    agent = DreamerAgent(obs_shape, spec, cfg)
    keeper = BestKeeper(tmp_path)
    loop: dict[str, Any] = {"frames": 100}
    assert keeper.offer(agent, loop, [10.0, 12.0], seed=1)
    keeper.commit(loop)  # a rolling checkpoint records the best at 100 frames
    committed = dict(loop)
    loop["frames"] = 200
    assert not keeper.offer(agent, loop, [11.0, 11.0], seed=2)  # equal: the earlier one stays
    loop["frames"] = 300
    assert keeper.offer(agent, loop, [20.0, 20.0], seed=3)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("best-*"))
    assert names == ["best-0000000100", "best-0000000300"]  # the committed best stays until the next checkpoint
    assert read_best(tmp_path)["frames"] == 300  # type: ignore[index]
    # Killed before the next rolling checkpoint: the resume drops the best of the abandoned frames.
    resumed = BestKeeper(tmp_path)
    loop = dict(committed)
    resumed.resume(loop)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("best-*")) == ["best-0000000100"]
    assert read_best(tmp_path)["eval_return"] == 11.0  # type: ignore[index]
    loop["frames"] = 200
    assert not resumed.offer(agent, loop, [10.0], seed=2) and resumed.offer(agent, loop, [15.0], seed=2)
    assert read_best(tmp_path)["frames"] == 200  # type: ignore[index]
    # Ranks other than 0 write nothing.
    assert not BestKeeper(tmp_path / "rank1", enabled=False).offer(agent, {"frames": 100}, [99.0], seed=0)
    assert not (tmp_path / "rank1").exists()
