"""Atomic checkpoint files: weights in safetensors, config as JSON, written then renamed.

A reader never sees a half-written file: each file goes to a temporary name in the same folder,
is flushed and fsynced, then ``os.replace``-d over the final name (atomic on POSIX).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then atomically move the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_module(folder: str | Path, module: nn.Module, config: dict[str, Any]) -> Path:
    """Save ``module``'s state dict and a JSON ``config`` into ``folder`` (created if missing).

    The weights file is replaced before the config, and each replacement is atomic, so a crash
    leaves either the old or the new file in place, never a torn one.
    """
    folder = Path(folder)
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda tmp: save_file(tensors, tmp))

    def write_config(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(config, indent=2, sort_keys=True))

    atomic_write(folder / CONFIG, write_config)
    return folder


def load_config(folder: str | Path) -> dict[str, Any]:
    """Read the JSON config of a checkpoint folder, with an error that names what is missing."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint config at {path}; expected a folder written by save_module")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def load_weights(folder: str | Path, module: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Load ``model.safetensors`` from ``folder`` into ``module`` (strict)."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path}")
    module.load_state_dict(load_file(str(path), device=str(device)))
    return module
