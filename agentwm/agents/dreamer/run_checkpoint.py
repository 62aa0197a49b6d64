"""Crash-safe checkpoints of a Dreamer run: weights, optimisers, counters, RNGs, replay, env state.

Layout under ``<logdir>/checkpoints/``::

    ckpt_0000005000/   model.safetensors   every parameter and buffer of the agent (incl. slow
                                           critic and return normaliser)
                       state.json          optimisers, loop counters, RNG states, acting carry and
                       state.safetensors   env state as data: a JSON tree whose arrays live in the
                                           safetensors file (nothing is unpickled on load)
                       envs.pkl            only with ``pickle_env_state``: envs whose state is not plain
                                           data, pickled; loaded only by a run with that same opt-in
                       config.json         the run's settings when it was written
                       manifest.json       written last: its presence marks the folder complete; the
                                           sha256 of every file and replay chunk, the replay chunks
    replay/            000000000000-000000005000.safetensors, ...: replay rows [start, end) of every
                       stream, written once and shared by the checkpoints that hold them
    latest             the name of the newest complete folder

The replay is saved incrementally, as DreamerV3 does: a checkpoint writes only the rows added since
the previous one. Every file is written under a temporary name and fsynced; the folder is renamed
into place (atomic on POSIX) after its chunks, and only then is ``latest`` replaced. A SIGKILL at any
moment therefore leaves ``latest`` naming a complete checkpoint. On load every file is checked
against its sha256: a damaged newest checkpoint is reported by file name, moved aside
(``corrupt-ckpt_*``) and the previous complete one is used. A failed write (a full disk) is reported
in one line and leaves the previous checkpoint in place. Checkpoints of the earlier format
(``state.pt``, ``.npz`` replay) still load, their ``state.pt`` without running pickled code.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.agents.replay import SequenceReplay
from agentwm.checkpoint import (
    CheckpointError,
    atomic_write,
    decode_tree,
    describe_os_error,
    encode_tree,
    fsync_path,
    read_json,
    read_safetensors,
    sha256_file,
    verify_sha256,
    write_bytes_synced,
)
from agentwm.core.finite import check_module_finite

FORMAT = 2
_PREFIX = "ckpt_"
_REPLAY = "replay"  # shared replay chunks, beside the checkpoint folders
_CORRUPT = "corrupt-"


def checkpoints_dir(logdir: str | Path) -> Path:
    """The folder of a run's checkpoints (rolling ``ckpt_*``, ``latest``, ``best``, replay chunks)."""
    return Path(logdir) / "checkpoints"


def _warn(message: str) -> None:
    print(f"agentwm: {message}", file=sys.stderr)


def complete_checkpoints(logdir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = checkpoints_dir(logdir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / "manifest.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest(logdir: str | Path) -> Path | None:
    """The folder ``latest`` names, or the newest complete one if ``latest`` is missing."""
    root = checkpoints_dir(logdir)
    pointer = root / "latest"
    if pointer.is_file():
        try:
            path = root / pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            path = root / "?"
        if path.name.startswith(_PREFIX) and (path / "manifest.json").is_file():
            return path
    done = complete_checkpoints(logdir)
    return done[-1] if done else None


def _candidates(logdir: str | Path) -> list[Path]:
    """Complete checkpoints to try, newest first, starting at the one ``latest`` names."""
    newest = latest(logdir)
    if newest is None:
        return []
    return [p for p in reversed(complete_checkpoints(logdir)) if p.name <= newest.name]


def require_run(logdir: str | Path) -> None:
    """Raise ``FileNotFoundError`` when ``logdir`` holds no Dreamer run to resume (a misspelt folder)."""
    if not (Path(logdir) / "config.json").is_file() and latest(logdir) is None:
        raise FileNotFoundError(f"nothing to resume in {logdir}: no Dreamer run there (no config.json or "
                                "checkpoint); check --logdir, or drop --resume to start a new run")  # fmt: skip


def clear(logdir: str | Path) -> None:
    """Remove a run's checkpoints (a fresh, non-resumed run in an old logdir)."""
    shutil.rmtree(checkpoints_dir(logdir), ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Writing


def save(
    logdir: str | Path,
    frames: int,
    agent: DreamerAgent,
    state: dict[str, Any],
    replay: SequenceReplay,
    keep: int,
    envs_pickle: bytes | None = None,
) -> Path:
    """Write a complete checkpoint for ``frames`` and point ``latest`` at it; keep the newest ``keep``.

    ``state`` holds tensors, arrays and JSON values only. Raises :class:`NonFiniteError` (writing
    nothing) when a weight is NaN/inf, and :class:`CheckpointError` with a one-line reason (e.g. no
    space left on device) when the disk refuses: the previous checkpoint then stays ``latest``."""
    check_module_finite(agent, f"checkpoint at {frames} frames")
    root = checkpoints_dir(logdir)
    name = f"{_PREFIX}{frames:010d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        return _save(root, tmp, name, frames, agent, state, replay, keep, envs_pickle)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = latest(logdir)
        what = f"checkpoint at {frames} frames not written"
        raise CheckpointError(f"{describe_os_error(err, what)}; kept {kept.name if kept else 'no checkpoint'}") from err
    except Exception as err:  # safetensors reports write failures as its own error type
        shutil.rmtree(tmp, ignore_errors=True)
        if "No space left" in str(err) or "os error" in str(err):
            kept = latest(logdir)
            what = f"checkpoint at {frames} frames not written"
            raise CheckpointError(f"{describe_os_error(err, what)}; kept {kept.name if kept else 'none'}") from err
        raise


def _save(
    root: Path, tmp: Path, name: str, frames: int, agent: DreamerAgent, state: dict[str, Any],
    replay: SequenceReplay, keep: int, envs_pickle: bytes | None,
) -> Path:  # fmt: skip
    tensors = {k: v.detach().contiguous().cpu() for k, v in agent.state_dict().items()}
    save_file(tensors, str(tmp / "model.safetensors"))
    chunks, chunk_sums = _write_replay_chunks(root, replay)
    skeleton, arrays = encode_tree({**state, "replay_rng": replay.rng.bit_generator.state})
    save_file(arrays, str(tmp / "state.safetensors"))
    write_bytes_synced(tmp / "state.json", json.dumps(skeleton).encode())
    write_bytes_synced(tmp / "config.json", json.dumps(agent.config.model_dump(), indent=2).encode())
    if envs_pickle is not None:
        write_bytes_synced(tmp / "envs.pkl", envs_pickle)
    for path in tmp.iterdir():
        fsync_path(path)
    sums = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    manifest = {"format": FORMAT, "frames": frames, "updates": agent.updates, "files": sums,
                "replay_rows": replay.rows, "replay_chunks": chunks, "replay_sha256": chunk_sums}  # fmt: skip
    write_bytes_synced(tmp / "manifest.json", json.dumps(manifest).encode())
    final = root / name
    if final.exists():  # re-saving the same frame count (e.g. right after a resume)
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_path(root)

    def write_pointer(tmp_path: str) -> None:
        Path(tmp_path).write_text(name)

    atomic_write(root / "latest", write_pointer)
    for old in complete_checkpoints(root.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    listed: set[str] = set()
    for kept in complete_checkpoints(root.parent):
        try:
            held = _manifest(kept)
        except CheckpointError:
            continue
        listed |= {_chunk_name(c, held) for c in held.get("replay_chunks", [])}
    for chunk in [*(root / _REPLAY).glob("*.npz"), *(root / _REPLAY).glob("*.safetensors")]:
        if chunk.name not in listed:  # held by no kept checkpoint
            chunk.unlink(missing_ok=True)
    return final


def _manifest(path: Path) -> dict[str, Any]:
    data = read_json(path / "manifest.json")
    if not isinstance(data, dict) or not isinstance(data.get("frames"), int):
        raise CheckpointError(f"{path / 'manifest.json'}: not a checkpoint manifest")
    return data


def _chunk_name(chunk: Sequence[int], manifest: dict[str, Any] | None = None) -> str:
    ext = "safetensors" if manifest is None or manifest.get("format", 1) >= 2 else "npz"
    return f"{int(chunk[0]):012d}-{int(chunk[1]):012d}.{ext}"


def _write_replay_chunks(root: Path, replay: SequenceReplay) -> tuple[list[list[int]], dict[str, str]]:
    """Write the replay rows added since the newest checkpoint as one chunk; return the chunks
    ``[start, end)`` that hold the buffer now, oldest first, and their sha256 sums."""
    end, held_from = replay.rows, max(0, replay.rows - replay.size)
    previous = latest(root.parent)
    chunks: list[list[int]] = []
    sums: dict[str, str] = {}
    if previous is not None:  # reuse its chunks where they still hold rows and are on disk
        try:
            manifest = _manifest(previous)
        except CheckpointError:
            manifest = {}
        old_sums = manifest.get("replay_sha256", {}) if manifest.get("format", 1) >= 2 else {}
        for start, stop in manifest.get("replay_chunks", []):
            chunk = _chunk_name((start, stop))
            if held_from < stop <= end and chunk in old_sums and (root / _REPLAY / chunk).is_file():
                chunks.append([start, stop])
                sums[chunk] = old_sums[chunk]
    covered = held_from
    for start, stop in chunks:  # must run unbroken from the oldest held row; else write all anew
        if start > covered:
            chunks, sums, covered = [], {}, held_from
            break
        covered = stop
    if end > covered:
        directory = root / _REPLAY
        directory.mkdir(exist_ok=True)
        final = directory / _chunk_name((covered, end))
        tmp = directory / f".tmp-{final.name}-{os.getpid()}"
        rows = {k: np.ascontiguousarray(v) for k, v in replay.export_rows(covered).items()}
        try:
            save_numpy(rows, str(tmp))
            fsync_path(tmp)
            sums[final.name] = sha256_file(tmp)
            os.replace(tmp, final)  # replaces a chunk of an abandoned run past the resumed checkpoint
        finally:
            tmp.unlink(missing_ok=True)
        fsync_path(directory)
        chunks.append([covered, end])
    return chunks, sums


# ------------------------------------------------------------------------------------------------
# Reading: everything is read and checked before anything is put into the agent


def replay_arrays(path: str | Path) -> tuple[list[tuple[int, dict[str, np.ndarray]]], int]:
    """The replay of one checkpoint folder as ``([(start, {key: [num_envs, k, ...]}), ...], rows)``:
    its chunks' rows in the order written (one unordered block for pre-chunk checkpoints)."""
    path = Path(path)
    manifest = _manifest(path)
    if "replay_chunks" not in manifest:  # written before incremental replay
        data = _npz(path / "replay.npz")
        arrays = {k[len("data/") :]: v for k, v in data.items() if k.startswith("data/")}
        return [(0, arrays)], int(np.asarray(data["count"]).max())
    blocks = []
    sums = manifest.get("replay_sha256", {})
    for start, stop in manifest["replay_chunks"]:
        chunk = path.parent / _REPLAY / _chunk_name((start, stop), manifest)
        if manifest.get("format", 1) >= 2:
            verify_sha256(chunk, sums.get(chunk.name, ""))
            try:
                blocks.append((int(start), load_numpy(str(chunk))))
            except Exception as err:
                raise CheckpointError(f"{chunk}: not a readable safetensors file ({err})") from err
        else:
            blocks.append((int(start), _npz(chunk)))
    return blocks, int(manifest["replay_rows"])


def _npz(path: Path) -> dict[str, np.ndarray]:
    """An ``.npz`` of the earlier format, arrays only (no pickled objects)."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise CheckpointError(f"{path}: missing or damaged ({type(err).__name__}: {err})") from err


def _legacy_state(path: Path) -> dict[str, Any]:
    """``state.pt`` of the earlier format, read with ``weights_only=True`` (tensors, numbers and
    numpy arrays only; pickled env state in it is dropped: resumed runs start fresh episodes)."""
    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")
    reconstruct = multiarray._reconstruct  # rebuilds plain arrays only
    kinds = [np.float32, np.float64, np.uint8, np.uint32, np.int64, np.int32, np.bool_]
    safe = [reconstruct, np.ndarray, np.dtype, *{type(np.dtype(k)) for k in kinds}]
    try:
        with torch.serialization.safe_globals(safe):
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: damaged, or holds objects that are not loaded (pickled code)") from err
    state["envs"] = None
    return state


def _read(path: Path, device: str | torch.device, allow_pickle: bool) -> dict[str, Any]:
    """Read and check every file of one checkpoint; :class:`CheckpointError` names the bad one."""
    manifest = _manifest(path)
    fmt = manifest.get("format", 1)
    if fmt > FORMAT:
        raise CheckpointError(f"{path}: written by a newer agentwm (format {fmt}); upgrade to load it")
    if fmt >= 2:
        for name, digest in manifest["files"].items():
            verify_sha256(path / name, digest)
        state = decode_tree(read_json(path / "state.json"), read_safetensors(path / "state.safetensors"),
                            str(path / "state.json"))  # fmt: skip
        if (path / "envs.pkl").is_file() and allow_pickle:
            state["envs_pickle"] = (path / "envs.pkl").read_bytes()
    else:
        state = _legacy_state(path / "state.pt")
    if not isinstance(state, dict) or "replay_rng" not in state:
        raise CheckpointError(f"{path}: state holds no replay RNG")
    weights = read_safetensors(path / "model.safetensors", device)
    legacy_replay = None
    if (path / "replay.npz").is_file():
        legacy_replay = _npz(path / "replay.npz")
        blocks: list[tuple[int, dict[str, np.ndarray]]] = []
        rows = 0
    else:
        blocks, rows = replay_arrays(path)
    return {"manifest": manifest, "state": state, "weights": weights, "blocks": blocks, "rows": rows,
            "legacy_replay": legacy_replay}  # fmt: skip


def _readable(logdir: str | Path, device: str | torch.device, allow_pickle: bool, move_aside: bool
              ) -> Iterator[tuple[Path, dict[str, Any]]]:  # fmt: skip
    """The newest checkpoints that read cleanly, newest first; damaged ones are reported (and, for a
    resuming run, moved aside so no later pruning keeps them over a good one)."""
    problems = []
    for path in _candidates(logdir):
        try:
            yield path, _read(path, device, allow_pickle)
        except CheckpointError as err:
            problems.append(str(err))
            _warn(f"checkpoint {path.name} is unusable: {err}; trying the previous one")
            if move_aside:
                os.replace(path, path.with_name(_CORRUPT + path.name))
    if problems:
        raise CheckpointError(f"no usable checkpoint under {checkpoints_dir(logdir)}: {'; '.join(problems)}")


def load_latest(
    logdir: str | Path,
    agent: DreamerAgent,
    replay: SequenceReplay,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
) -> tuple[dict[str, Any], int] | None:
    """Load the newest usable checkpoint into ``agent`` and ``replay``; returns ``(state, frames)``
    (``state`` as saved by the loop, plus ``envs_pickle`` bytes when ``allow_pickle`` and the run
    saved them), or ``None`` when the run has none. For the run that resumes from it: sweeps torn
    leftovers and removes complete checkpoints newer than the one loaded."""
    root = checkpoints_dir(logdir)
    if root.is_dir():
        for junk in [*root.glob(".tmp-*"), *root.glob(f"{_REPLAY}/.tmp-*")]:
            shutil.rmtree(junk, ignore_errors=True) if junk.is_dir() else junk.unlink(missing_ok=True)
    newest = latest(logdir)
    if newest is None:
        return None
    for newer in complete_checkpoints(logdir):  # complete but never pointed to (killed before the swap):
        if newer.name > newest.name:  # an abandoned future this run will write again
            shutil.rmtree(newer, ignore_errors=True)
    _, read = next(_readable(logdir, device, allow_pickle, move_aside=True))
    agent.load_state_dict(read["weights"])
    state: dict[str, Any] = read["state"]
    rng = state.pop("replay_rng")
    if read["legacy_replay"] is not None:  # written before incremental replay
        replay.load_state_dict({**read["legacy_replay"], "rng": rng})
    else:
        for start, arrays in read["blocks"]:
            replay.import_rows(start, arrays, read["rows"])
        replay.rng.bit_generator.state = rng
    return state, int(read["manifest"]["frames"])


def saved_config(logdir: str | Path) -> DreamerConfig | None:
    """The settings the newest checkpoint was written under (for checkpoints older than that file,
    the run's ``config.json``); ``None`` when the run has no checkpoint."""
    path = latest(logdir)
    if path is None:
        return None
    for source in (path / "config.json", Path(logdir) / "config.json"):
        if source.is_file():
            try:
                return DreamerConfig(**read_json(source))
            except (CheckpointError, TypeError) as err:
                _warn(f"{source}: unreadable ({err}); taking the settings from the command line")
                return None
    return None


def load_weights_only(logdir: str | Path, agent: DreamerAgent, device: str | torch.device = "cpu") -> int:
    """Load only the agent's weights from the newest usable checkpoint (evaluation); returns its
    frame count. Damaged checkpoints are reported and skipped, never changed."""
    if latest(logdir) is None:
        raise FileNotFoundError(f"no complete checkpoint under {checkpoints_dir(logdir)}")
    problems = []
    for path in _candidates(logdir):
        try:
            manifest = _manifest(path)
            if manifest.get("format", 1) >= 2:
                verify_sha256(path / "model.safetensors", manifest["files"]["model.safetensors"])
            weights = read_safetensors(path / "model.safetensors", device)
        except (CheckpointError, KeyError) as err:
            problems.append(str(err))
            _warn(f"checkpoint {path.name} is unusable: {err}; trying the previous one")
            continue
        agent.load_state_dict(weights)
        return int(manifest["frames"])
    raise CheckpointError(f"no usable checkpoint under {checkpoints_dir(logdir)}: {'; '.join(problems)}")


def pickle_envs(envs: gym.vector.VectorEnv[Any, Any, Any]) -> bytes | None:
    """The sub-envs pickled (only for runs with ``pickle_env_state``: envs whose state is not plain
    data), else ``None``. Envs in worker processes (``AsyncVectorEnv``) are out of reach."""
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        return None
    try:
        return pickle.dumps({"envs": envs.envs, "autoreset": envs._autoreset_envs})
    except (pickle.PicklingError, TypeError, AttributeError):  # unpicklable member: fresh episodes
        return None


def restore_envs(envs: gym.vector.SyncVectorEnv, blob: bytes) -> None:
    """Put pickled sub-envs (from :func:`pickle_envs`) into a freshly built vector env. Only for runs
    that opted in with ``pickle_env_state``: unpickling runs whatever code the file names."""
    saved = pickle.loads(blob)
    if len(saved["envs"]) != len(envs.envs):
        raise ValueError(f"checkpoint has {len(saved['envs'])} envs, the run has {len(envs.envs)}")
    for env in envs.envs:
        env.close()
    envs.envs = saved["envs"]
    envs._autoreset_envs = saved["autoreset"]
