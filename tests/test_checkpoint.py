"""Checkpoints are written atomically and load back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from agentwm.checkpoint import atomic_write, load_config, load_weights, save_module


def test_round_trip(tmp_path):
    module = nn.Sequential(nn.Linear(3, 4), nn.RMSNorm(4))
    save_module(tmp_path / "ck", module, {"family": "test", "width": 4})
    fresh = nn.Sequential(nn.Linear(3, 4), nn.RMSNorm(4))
    load_weights(tmp_path / "ck", fresh)
    x = torch.randn(2, 3)
    torch.testing.assert_close(fresh(x), module(x))
    assert load_config(tmp_path / "ck") == {"family": "test", "width": 4}


def test_failed_write_keeps_the_old_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"old"))

    def crash(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(b"half-writ")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_weights(tmp_path, nn.Linear(1, 1))


def test_nonfinite_weights_are_never_saved(tmp_path):
    from agentwm.core.finite import NonFiniteError

    module = nn.Linear(2, 2)
    with torch.no_grad():
        module.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="weight"):
        save_module(tmp_path / "ck", module, {})
    assert not (tmp_path / "ck" / "model.safetensors").exists()


def test_damaged_files_are_named(tmp_path):
    from agentwm.checkpoint import CheckpointError

    save_module(tmp_path / "ck", nn.Linear(1, 1), {"a": 1})
    (tmp_path / "ck" / "config.json").write_bytes(b"\xff{")
    with pytest.raises(CheckpointError, match="config.json"):
        load_config(tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_weights(tmp_path / "ck", nn.Linear(1, 1))
