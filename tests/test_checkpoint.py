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
