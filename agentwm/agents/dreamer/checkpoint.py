"""Crash-safe checkpoints of a Dreamer run: weights, optimisers, counters, RNGs, replay, env state.

Layout under ``<logdir>/checkpoints/``::

    ckpt_0000005000/   model.safetensors   every parameter and buffer of the agent (incl. slow
                                           critic and return normaliser), safetensors
                       state.pt            optimisers, loop counters, RNG states, acting carry,
                                           pickled env state when the envs pickle (torch.save)
                       replay.npz          the replay buffer's arrays and pointers
                       config.json         the run's settings when it was written
                       manifest.json       written last: its presence marks the folder complete
    latest             the name of the newest complete folder

A checkpoint is written into a hidden temporary folder, every file is fsynced, the folder is
renamed into place (atomic on POSIX), and only then is ``latest`` replaced (atomically, with
``agentwm.checkpoint.atomic_write``). A SIGKILL at any moment therefore leaves ``latest`` naming
the previous or the new complete checkpoint, never a torn one; leftovers are swept on resume.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.agents.dreamer.replay import SequenceReplay
from agentwm.checkpoint import atomic_write

_PREFIX = "ckpt_"


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
    replay_state = replay.state_dict()
    state = {**state, "replay_rng": replay_state.pop("rng")}
    torch.save(state, tmp / "state.pt")
    with open(tmp / "replay.npz", "wb") as fh:
        np.savez(fh, **replay_state)
    (tmp / "config.json").write_text(json.dumps(agent.config.model_dump(), indent=2))
    manifest = {"frames": frames, "updates": agent.updates, "files": sorted(p.name for p in tmp.iterdir())}
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
    return final


def load_latest(
    logdir: str | Path, agent: DreamerAgent, replay: SequenceReplay, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], int] | None:
    """Load the newest complete checkpoint into ``agent`` and ``replay``; returns ``(state, frames)``
    (``state`` as saved by the loop), or ``None`` when the run has none. Sweeps torn leftovers."""
    root = _root(logdir)
    if root.is_dir():
        for junk in root.glob(".tmp-*"):
            shutil.rmtree(junk, ignore_errors=True)
    path = latest(logdir)
    if path is None:
        return None
    agent.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)))
    state: dict[str, Any] = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    with np.load(path / "replay.npz") as data:
        replay_state: dict[str, Any] = {k: data[k] for k in data.files}
    replay_state["rng"] = state.pop("replay_rng")
    replay.load_state_dict(replay_state)
    frames = int(json.loads((path / "manifest.json").read_text())["frames"])
    return state, frames


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
