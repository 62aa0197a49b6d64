"""Fault injection, CI-sized (``benchmarks/faults.py`` runs the full form: 20+ kills): SIGKILLs of a
training run (some inside checkpoint writes) each followed by a resume, every checkpoint file
damaged three ways, a planted pickle, a full disk, the non-finite guard, and the bad-input corpus."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from agentwm.agents.dreamer import DreamerAgent, SequenceReplay, resolve_config
from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.checkpoint import CheckpointError, decode_tree, encode_tree
from agentwm.core.finite import FiniteGuard, NonFiniteError, check_positive_finite
from agentwm.worldmodels.base import ActionSpec
from tests.benchmark_module import load_benchmark


def _benchmark(name: str) -> ModuleType:
    return load_benchmark(name)


fault_inputs = _benchmark("_fault_inputs")
faults = _benchmark("faults")

torch.set_num_threads(1)


@pytest.mark.slow
def test_sigkill_at_random_moments_and_inside_checkpoint_writes_then_resume(tmp_path: Path) -> None:
    """CI form: one kill at a random moment and one inside a checkpoint write (the benchmark: 24)."""
    kills = 6 if os.environ.get("AGENTWM_FULL") else 2
    result = faults.kill_trials(kills, seed=0, work=tmp_path)
    assert result["kills_survived"] == result["kills"] == kills, result
    assert result["frames_lost_max"] <= faults.EVERY + 10 and result["final_run_finished"], result


def test_every_checkpoint_file_damaged_falls_back_and_names_the_file(tmp_path: Path) -> None:
    result = faults.corruption_trials(tmp_path)
    assert result["corruptions_handled"] == result["corruptions"] >= 20, result


def test_a_damaged_newest_checkpoint_is_reported_moved_aside_and_the_previous_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = faults._two_checkpoints(tmp_path / "run")
    newest = run / "checkpoints" / f"ckpt_{2 * faults.EVERY:010d}"
    data = (newest / "model.safetensors").read_bytes()
    (newest / "model.safetensors").write_bytes(data[: len(data) // 2])
    frames, warnings = faults._resume_load(run)
    assert frames == faults.EVERY and "model.safetensors" in warnings and "unusable" in warnings
    assert (run / "checkpoints" / f"corrupt-{newest.name}").is_dir() and not newest.exists()
    # Both damaged: one error naming each file, no traceback.
    older = run / "checkpoints" / f"ckpt_{faults.EVERY:010d}"
    (older / "state.json").write_text("{")
    with pytest.raises(CheckpointError, match="state.json"):
        faults._resume_load(run)


def test_no_pickle_runs_from_a_run_folder(tmp_path: Path) -> None:
    assert faults._planted_pickle(tmp_path)


def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    assert faults.disk_full_trial(tmp_path)


def test_state_trees_round_trip_through_json_and_safetensors() -> None:
    import random

    opt = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    opt.zero_grad()
    torch.nn.Linear(3, 2)(torch.ones(1, 3)).sum().backward()
    tree = {"np": np.random.get_state(), "py": random.getstate(), "torch": torch.get_rng_state(),
            "pcg": np.random.default_rng(3).bit_generator.state, "opt": opt.state_dict(),
            "arr": np.arange(5, dtype=np.uint32), "flags": np.array([True, False]), "none": None}  # fmt: skip
    skeleton, tensors = encode_tree(tree)
    back = decode_tree(json.loads(json.dumps(skeleton)), tensors)
    np.random.set_state(back["np"])
    random.setstate(back["py"])
    assert back["np"][1].dtype == np.uint32 and np.array_equal(back["np"][1], tree["np"][1])
    assert back["py"] == tree["py"] and torch.equal(back["torch"], tree["torch"]) and back["pcg"] == tree["pcg"]
    assert back["arr"].dtype == np.uint32 and back["flags"].dtype == bool
    with pytest.raises(TypeError, match="cannot store"):
        encode_tree({"f": lambda: 0})


def test_guard_skips_counts_and_stops_after_k_in_a_row() -> None:
    guard = FiniteGuard("unit", limit=3)
    assert not guard.skip("loss", torch.tensor(1.0))
    assert guard.skip("loss", torch.tensor(math.nan)) and guard.skip("grad", math.inf)
    guard.passed()
    assert guard.skip("loss", torch.tensor(math.nan)) and guard.skip("loss", torch.tensor(math.nan))
    with pytest.raises(NonFiniteError, match="unit: loss was NaN/inf in 3 updates in a row"):
        guard.skip("loss", torch.tensor(math.inf))
    assert guard.skipped == 5
    for bad in (math.inf, math.nan, 0.0, -1e-3, True):
        with pytest.raises(ValueError, match="lr must be a finite number > 0"):
            check_positive_finite("lr", bad)


def test_diverging_dreamer_stops_with_one_line_and_no_nonfinite_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentwm.cli import main

    sets = ["wm_lr=1e10", "actor_lr=1e10", "critic_lr=1e10", "prefill=40", "train_ratio=16", "log_every=8",
            "checkpoint_every=40", "eval_every=100000", "nonfinite_limit=8"]  # fmt: skip
    argv = ["train", "dreamer", "--preset", "debug", "--steps", "2000", "--logdir", str(tmp_path), "--quiet"]
    assert main(argv + [x for s in sets for x in ("--set", s)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN/inf in 8 updates in a row" in err[0] and "dreamer update" in err[0], err
    for path in ckpt.complete_checkpoints(tmp_path):  # whatever was written holds finite weights only
        from safetensors.torch import load_file

        assert all(torch.isfinite(t).all() for t in load_file(str(path / "model.safetensors")).values())
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("guard/skipped_updates", 0) > 0 for r in rows)
    assert main(["train", "dreamer", "--logdir", str(tmp_path / "x"), "--set", "wm_lr=inf"]) == 2


def test_checkpoint_refuses_nonfinite_weights(tmp_path: Path) -> None:
    cfg = resolve_config(["debug"])
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    with torch.no_grad():
        next(agent.parameters()).fill_(math.nan)
    replay = SequenceReplay(1000, 1, (4,), 2)
    with pytest.raises(NonFiniteError, match="not writing a checkpoint"):
        ckpt.save(tmp_path, 10, agent, {"loop": {}}, replay, keep=2)
    assert ckpt.latest(tmp_path) is None


def test_enospc_from_safetensors_is_reported_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = resolve_config(["debug"])
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    replay = SequenceReplay(1000, 1, (4,), 2)

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(CheckpointError, match="checkpoint at 10 frames not written: no space left on device"):
        ckpt.save(tmp_path, 10, agent, {"loop": {}}, replay, keep=2)
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_bad_inputs_are_refused_in_one_clean_line(tmp_path: Path) -> None:
    result = fault_inputs.bad_input_trials(tmp_path)
    assert result["bad_inputs"] >= 50 and result["bad_inputs_refused_cleanly"] == result["bad_inputs"], result


def test_float64_actions_are_cast_in_imagine() -> None:
    from agentwm.worldmodels.rssm import RSSM, RSSMConfig

    rssm = RSSM((4,), ActionSpec("discrete", 2), RSSMConfig.preset("debug"))
    state = rssm.observe(torch.zeros(2, 4))
    roll = rssm.imagine(state, torch.nn.functional.one_hot(torch.zeros(3, 2, dtype=torch.long), 2).double())
    assert roll.rewards.shape == (3, 2) and roll.rewards.dtype == torch.float32


def test_checkpoints_of_the_earlier_format_still_load_without_unpickling_code(tmp_path: Path) -> None:
    """Before this format: ``state.pt`` (torch.save of tensors, numbers and numpy arrays) and ``.npz``
    replay chunks. They load with ``weights_only=True``; their pickled env state is dropped."""
    from safetensors.numpy import load_file as load_numpy

    from agentwm.checkpoint import read_json, read_safetensors

    run = faults._two_checkpoints(tmp_path / "run")
    root = run / "checkpoints"
    for path in ckpt.complete_checkpoints(run):
        state = decode_tree(read_json(path / "state.json"), read_safetensors(path / "state.safetensors"))
        torch.save({**state, "envs": b"pickled envs"}, path / "state.pt")
        (path / "state.json").unlink()
        (path / "state.safetensors").unlink()
        manifest = json.loads((path / "manifest.json").read_text())
        for key in ("format", "files", "replay_sha256"):
            manifest.pop(key)
        (path / "manifest.json").write_text(json.dumps(manifest))
    for chunk in (root / "replay").glob("*.safetensors"):
        np.savez(chunk.with_suffix(".npz"), **load_numpy(str(chunk)))
        chunk.unlink()
    frames, warnings = faults._resume_load(run)
    assert frames == 2 * faults.EVERY and not warnings


def test_rank_candidates_refuses_nan_scores_instead_of_picking_the_first() -> None:
    from agentwm.planning import rank_candidates
    from agentwm.worldmodels.ensemble import EnsembleDynamics

    model = EnsembleDynamics(4, ActionSpec("discrete", 2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(math.nan)
    with pytest.raises(ValueError, match=r"candidate\(s\) \[0, 1\] is NaN or infinite"):
        rank_candidates(model, model.observe(torch.zeros(1, 4)), torch.eye(2), horizon=2)
