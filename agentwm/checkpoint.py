"""Atomic checkpoint files: weights in safetensors, config as JSON, written then renamed.

A reader never sees a half-written file: each file goes to a temporary name in the same folder,
is flushed and fsynced, then ``os.replace``-d over the final name (atomic on POSIX). Nothing here
unpickles: state trees (optimisers, RNGs, counters) go to JSON with their arrays in safetensors
(:func:`save_tree` / :func:`load_tree`), and files carry sha256 sums checked on load.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from agentwm.core.finite import check_module_finite

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or of an unknown kind; the message names the file."""


def describe_os_error(err: BaseException, what: str) -> str:
    """One line saying what went wrong in ``what`` (e.g. 'no space left on device')."""
    if isinstance(err, OSError) and err.errno is not None:
        reason = os.strerror(err.errno).lower()
        if err.errno == errno.ENOSPC:
            reason = "no space left on device"
        where = f" ({err.filename})" if err.filename else ""
        return f"{what}: {reason}{where}"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "No space left" in str(err) or "os error 28" in str(err):
        return f"{what}: no space left on device"
    return f"{what}: {text}"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`CheckpointError` naming ``path`` when it is missing or its sha256 differs."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    if sha256_file(path) != expected:
        raise CheckpointError(f"{path}: corrupt or truncated (sha256 differs from the manifest)")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing, non-UTF-8 or malformed file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: missing") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err


def read_safetensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Load a safetensors file; a missing or damaged file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0]})") from err


# ------------------------------------------------------------------------------------------------
# State trees: nested dicts/lists/tuples of scalars, strings, tensors and arrays, as JSON + safetensors

_NUMPY_ONLY = {"uint16", "uint32", "uint64"}  # stored widened to int64, cast back on load


def _encode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key, dtype = str(len(tensors)), str(obj.dtype)
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"cannot store an array of dtype {dtype} in a checkpoint")
        arr = obj.astype(np.int64) if dtype in _NUMPY_ONLY else obj
        tensors[key] = torch.from_numpy(np.ascontiguousarray(arr).copy())
        return {"__ndarray__": key, "dtype": dtype}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (JSON and tensors only)")


def _decode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy().astype(np.dtype(obj["dtype"]))
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def encode_tree(tree: Any) -> tuple[Any, dict[str, Tensor]]:
    """Split ``tree`` into a JSON-ready skeleton and the tensors it refers to (arrays become tensors)."""
    tensors: dict[str, Tensor] = {}
    return _encode(tree, tensors), tensors


def decode_tree(skeleton: Any, tensors: dict[str, Tensor], source: str = "checkpoint") -> Any:
    """Inverse of :func:`encode_tree`; a skeleton naming a missing tensor raises :class:`CheckpointError`."""
    try:
        return _decode(skeleton, tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: malformed state ({type(err).__name__}: {err})") from err


def fsync_path(path: str | Path) -> None:
    """Flush a file's or a folder's entry to disk (a folder: so a rename inside it survives a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_synced(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (no rename: for files inside a temporary folder)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


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
    check_module_finite(module, f"saving {folder}")  # never a checkpoint of diverged weights
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
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_weights(folder: str | Path, module: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Load ``model.safetensors`` from ``folder`` into ``module`` (strict)."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path}")
    module.load_state_dict(read_safetensors(path, device))
    return module
