"""Metric sinks of a Dreamer run: JSONL always, TensorBoard and Weights & Biases (offline) by choice."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from agentwm.agents.dreamer import resolve_config, train

FAST = ["steps=240", "prefill=120", "eval_every=240", "log_every=120", "checkpoint_every=240", "device=cpu",
        "train_ratio=16"]


def test_loggers_setting_parses_and_rejects() -> None:
    assert resolve_config(["debug"]).loggers == ("tensorboard",)
    assert resolve_config(["debug"], ["loggers=tensorboard,wandb"]).loggers == ("tensorboard", "wandb")
    assert resolve_config(["debug"], ['loggers=["wandb"]']).loggers == ("wandb",)
    assert resolve_config(["debug"], ["loggers=none"]).loggers == ()
    with pytest.raises(ValueError, match="unknown logger 'mlflow'"):
        resolve_config(["debug"], ["loggers=mlflow"])


def test_jsonl_only(tmp_path: Path) -> None:
    train(resolve_config(["debug"], [*FAST, "loggers=none"]), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").stat().st_size > 0
    assert not (tmp_path / "run" / "tb").exists()


def test_missing_wandb_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'agentwm\[wandb\]'"):
        train(resolve_config(["debug"], [*FAST, "loggers=wandb"]), tmp_path / "run", progress=False)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed (the wandb extra)")
def test_wandb_offline_logs_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logdir = tmp_path / "run"
    summary = train(resolve_config(["debug"], [*FAST, "loggers=tensorboard,wandb"]), logdir, progress=False)
    runs = list((logdir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith((logdir / "wandb_id.txt").read_text().strip())
    (record,) = runs[0].glob("run-*.wandb")  # W&B's own record format (protobuf), for `wandb sync`
    data = record.read_bytes()
    for key in (b"eval/return", b"loss/world_model", b"charts/fps", b"train_ratio"):  # metrics and settings
        assert key in data, key
    assert summary["eval_return"] is not None and (logdir / "tb").is_dir()  # TensorBoard beside it
