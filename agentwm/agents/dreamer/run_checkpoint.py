"""Crash-safe checkpoints of a Dreamer run: weights, optimisers, counters, RNGs, replay, env state.

Layout under ``<logdir>/checkpoints/``::

    ckpt_0000005000/   model.safetensors   every parameter and buffer of the agent (incl. slow
                                           critic and return normaliser), safetensors
                       state.pt            optimisers, loop counters, RNG states, acting carry,
                                           pickled env state when the envs pickle (torch.save)
                       config.json         the run's settings when it was written
                       manifest.json       written last: its presence marks the folder complete;
                                           lists the replay chunks that make up its buffer
    replay/            000000000000-000000005000.npz, ...: replay rows [start, end) of every
                       stream, written once and shared by the checkpoints that hold them
    latest             the name of the newest complete folder

The replay is saved incrementally, as DreamerV3 does: a checkpoint writes only the rows added since
the previous one, so its cost does not grow with the buffer (a full pixel buffer is gigabytes).
Chunks no kept checkpoint lists are deleted. Every file is written under a temporary name,
fsynced and renamed; the checkpoint folder is renamed into place (atomic on POSIX) after its
chunks, and only then is ``latest`` replaced (atomically, with ``agentwm.checkpoint.atomic_write``).
A SIGKILL at any moment therefore leaves ``latest`` naming the previous or the new complete
checkpoint, never a torn one; leftovers are swept on resume. Checkpoints from before incremental
replay (a ``replay.npz`` in the folder) still load.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.agents.replay import SequenceReplay
from agentwm.checkpoint import atomic_write

_PREFIX = "ckpt_"
_REPLAY = "replay"  # shared replay chunks, beside the checkpoint folders


def _root(logdir: str | Path) -> Path:
    return Path(logdir) / "checkpoints"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def complete_checkpoints(logdir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = _root(logdir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / "manifest.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest(logdir: str | Path) -> Path | None:
    """The folder ``latest`` names, or the newest complete one if ``latest`` is missing."""
    root = _root(logdir)
    pointer = root / "latest"
    if pointer.is_file():
        path = root / pointer.read_text().strip()
        if (path / "manifest.json").is_file():
            return path
    done = complete_checkpoints(logdir)
    return done[-1] if done else None


def clear(logdir: str | Path) -> None:
    """Remove a run's checkpoints (a fresh, non-resumed run in an old logdir)."""
    shutil.rmtree(_root(logdir), ignore_errors=True)


def save(
    logdir: str | Path, frames: int, agent: DreamerAgent, state: dict[str, Any], replay: SequenceReplay, keep: int
) -> Path:
    """Write a complete checkpoint for ``frames`` and point ``latest`` at it; keep the newest ``keep``."""
    root = _root(logdir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{_PREFIX}{frames:010d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {k: v.detach().contiguous().cpu() for k, v in agent.state_dict().items()}
    save_file(tensors, str(tmp / "model.safetensors"))
    chunks = _write_replay_chunks(root, replay)
    state = {**state, "replay_rng": replay.rng.bit_generator.state}
    torch.save(state, tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps(agent.config.model_dump(), indent=2))
    manifest = {"frames": frames, "updates": agent.updates, "files": sorted(p.name for p in tmp.iterdir()),
                "replay_rows": replay.rows, "replay_chunks": chunks}  # fmt: skip
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    for path in tmp.iterdir():
        _fsync(path)
    final = root / name
    if final.exists():  # re-saving the same frame count (e.g. right after a resume)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(root)
    def write_pointer(tmp_path: str) -> None:
        Path(tmp_path).write_text(name)

    atomic_write(root / "latest", write_pointer)
    for old in complete_checkpoints(logdir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    listed = {_chunk_name(c) for kept in complete_checkpoints(logdir) for c in _manifest(kept).get("replay_chunks", [])}
    for chunk in (root / _REPLAY).glob("*.npz"):  # held by no kept checkpoint
        if chunk.name not in listed:
            chunk.unlink(missing_ok=True)
    return final


def _manifest(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "manifest.json").read_text()))


def _chunk_name(chunk: Sequence[int]) -> str:
    return f"{chunk[0]:012d}-{chunk[1]:012d}.npz"


def _write_replay_chunks(root: Path, replay: SequenceReplay) -> list[list[int]]:
    """Write the replay rows added since the newest checkpoint as one chunk; return the chunks
    ``[start, end)`` that hold the buffer now, oldest first (they cover its rows contiguously)."""
    end, held_from = replay.rows, max(0, replay.rows - replay.size)
    previous = latest(root.parent)
    chunks: list[list[int]] = []
    if previous is not None:  # reuse its chunks where they still hold rows and are on disk
        for start, stop in _manifest(previous).get("replay_chunks", []):
            if held_from < stop <= end and (root / _REPLAY / _chunk_name((start, stop))).is_file():
                chunks.append([start, stop])
    covered = held_from
    for start, stop in chunks:  # must run unbroken from the oldest held row; else write all anew
        if start > covered:
            chunks, covered = [], held_from
            break
        covered = stop
    if end > covered:
        directory = root / _REPLAY
        directory.mkdir(exist_ok=True)
        final = directory / _chunk_name((covered, end))
        tmp = directory / f".tmp-{final.name}-{os.getpid()}"
        rows: dict[str, Any] = replay.export_rows(covered)
        with open(tmp, "wb") as fh:
            np.savez(fh, **rows)
        _fsync(tmp)
        os.replace(tmp, final)  # replaces a chunk of an abandoned run past the resumed checkpoint
        _fsync(directory)
        chunks.append([covered, end])
    return chunks


def replay_arrays(path: str | Path) -> tuple[list[tuple[int, dict[str, np.ndarray]]], int]:
    """The replay of one checkpoint folder as ``([(start, {key: [num_envs, k, ...]}), ...], rows)``:
    its chunks' rows in the order written (one unordered block for pre-chunk checkpoints)."""
    path = Path(path)
    manifest = _manifest(path)
    if "replay_chunks" not in manifest:  # written before incremental replay
        with np.load(path / "replay.npz") as data:
            arrays = {k[len("data/") :]: data[k] for k in data.files if k.startswith("data/")}
            return [(0, arrays)], int(np.asarray(data["count"]).max())
    blocks = []
    for start, stop in manifest["replay_chunks"]:
        with np.load(path.parent / _REPLAY / _chunk_name((start, stop))) as data:
            blocks.append((int(start), {k: data[k] for k in data.files}))
    return blocks, int(manifest["replay_rows"])


def load_latest(
    logdir: str | Path, agent: DreamerAgent, replay: SequenceReplay, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], int] | None:
    """Load the newest complete checkpoint into ``agent`` and ``replay``; returns ``(state, frames)``
    (``state`` as saved by the loop), or ``None`` when the run has none. For the run that resumes
    from it: sweeps torn leftovers and removes complete checkpoints newer than ``latest``."""
    root = _root(logdir)
    if root.is_dir():
        for junk in [*root.glob(".tmp-*"), *root.glob(f"{_REPLAY}/.tmp-*")]:
            shutil.rmtree(junk, ignore_errors=True) if junk.is_dir() else junk.unlink(missing_ok=True)
    path = latest(logdir)
    if path is None:
        return None
    for newer in complete_checkpoints(logdir):  # complete but never pointed to (killed before the swap):
        if newer.name > path.name:  # an abandoned future this run will write again
            shutil.rmtree(newer, ignore_errors=True)
    agent.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)))
    state: dict[str, Any] = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    rng = state.pop("replay_rng")
    if (path / "replay.npz").is_file():  # written before incremental replay
        with np.load(path / "replay.npz") as data:
            replay_state: dict[str, Any] = {k: data[k] for k in data.files}
        replay.load_state_dict({**replay_state, "rng": rng})
    else:
        blocks, rows = replay_arrays(path)
        for start, arrays in blocks:
            replay.import_rows(start, arrays, rows)
        replay.rng.bit_generator.state = rng
    return state, int(_manifest(path)["frames"])


def saved_config(logdir: str | Path) -> DreamerConfig | None:
    """The settings the newest checkpoint was written under (for checkpoints older than that file,
    the run's ``config.json``); ``None`` when the run has no checkpoint."""
    path = latest(logdir)
    if path is None:
        return None
    for source in (path / "config.json", Path(logdir) / "config.json"):
        if source.is_file():
            return DreamerConfig(**json.loads(source.read_text()))
    return None


def load_weights_only(logdir: str | Path, agent: DreamerAgent, device: str | torch.device = "cpu") -> int:
    """Load only the agent's weights from the newest checkpoint (evaluation); returns its frame count."""
    path = latest(logdir)
    if path is None:
        raise FileNotFoundError(f"no complete checkpoint under {_root(logdir)}")
    agent.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)))
    return int(json.loads((path / "manifest.json").read_text())["frames"])


def pickle_envs(envs: gym.vector.VectorEnv[Any, Any, Any]) -> bytes | None:
    """The sub-envs' exact state (physics, RNG, step counters) when they pickle, else ``None``
    (then a resumed run starts fresh episodes). Classic-control envs pickle; MuJoCo-backed ones may
    not, and envs in worker processes (``AsyncVectorEnv``) are out of reach."""
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        return None
    try:
        return pickle.dumps({"envs": envs.envs, "autoreset": envs._autoreset_envs})
    except (pickle.PicklingError, TypeError, AttributeError):  # unpicklable member: fresh episodes
        return None


def restore_envs(envs: gym.vector.SyncVectorEnv, blob: bytes) -> None:
    """Put pickled sub-env state (from :func:`pickle_envs`) into a freshly built vector env."""
    saved = pickle.loads(blob)
    if len(saved["envs"]) != len(envs.envs):
        raise ValueError(f"checkpoint has {len(saved['envs'])} envs, the run has {len(envs.envs)}")
    for env in envs.envs:
        env.close()
    envs.envs = saved["envs"]
    envs._autoreset_envs = saved["autoreset"]
