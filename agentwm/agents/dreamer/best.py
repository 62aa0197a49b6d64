"""The best-evaluated checkpoint of a Dreamer run: the weights of the evaluation with the highest
mean return so far, kept beside the rolling checkpoints so that late drift never costs the best policy.

Layout under ``<logdir>/checkpoints/``::

    best-0000015000/   model.safetensors   the agent's weights at that evaluation
                       best.json           written last: frames, updates, eval return (mean, std,
                                           episodes, seed) and the weights' sha256
    best               the name of the current best folder (swapped atomically, like ``latest``)

A new best is written to a temporary folder, fsynced, renamed into place, then ``best`` is swapped:
a SIGKILL at any moment leaves ``best`` naming a complete folder (or none yet). Pruning of the
rolling checkpoints (``ckpt_*``) never touches these folders. A best evaluated after the newest
rolling checkpoint is not yet part of what a resume restores, so the best that checkpoint recorded
is kept on disk beside it until the next rolling checkpoint; a resume from that checkpoint drops the
newer ones (their evaluations are dropped from ``metrics.jsonl`` too) and points ``best`` back.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.run_checkpoint import checkpoints_dir
from agentwm.checkpoint import (
    CheckpointError,
    atomic_write,
    describe_os_error,
    fsync_path,
    read_json,
    read_safetensors,
    sha256_file,
    verify_sha256,
    write_bytes_synced,
)
from agentwm.core.finite import check_module_finite

POINTER = "best"
_PREFIX = "best-"
_RECORD = "best.json"
_WEIGHTS = "model.safetensors"


def _folder(frames: int) -> str:
    return f"{_PREFIX}{frames:010d}"


def best_folder(logdir: str | Path) -> Path | None:
    """The complete folder ``checkpoints/best`` names, or None when the run has none."""
    pointer = checkpoints_dir(logdir) / POINTER
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    path = checkpoints_dir(logdir) / name
    return path if name.startswith(_PREFIX) and (path / _RECORD).is_file() else None


def read_best(logdir: str | Path) -> dict[str, Any] | None:
    """The record (``best.json``) of a run's best-evaluated checkpoint, or None when it has none."""
    path = best_folder(logdir)
    if path is None:
        return None
    record = read_json(path / _RECORD)
    if not isinstance(record, dict) or not isinstance(record.get("frames"), int):
        raise CheckpointError(f"{path / _RECORD}: not a best-checkpoint record")
    return record


def load_best_weights(logdir: str | Path, agent: DreamerAgent, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load the best-evaluated weights into ``agent``; returns their record. A run without one raises
    ``FileNotFoundError`` naming the missing file; a damaged one :class:`CheckpointError` naming it."""
    path = best_folder(logdir)
    if path is None:
        pointer = checkpoints_dir(logdir) / POINTER
        if pointer.is_file():
            raise FileNotFoundError(f"no best checkpoint in {logdir}: {pointer} names a folder that is missing "
                                    "or incomplete; use --checkpoint latest")  # fmt: skip
        raise FileNotFoundError(f"no best checkpoint in {logdir}: {pointer} is missing (written at the first "
                                "evaluation of runs trained since it existed); use --checkpoint latest")  # fmt: skip
    record = read_best(logdir)
    assert record is not None
    verify_sha256(path / _WEIGHTS, str(record.get("sha256", "")))
    agent.load_state_dict(read_safetensors(path / _WEIGHTS, device))
    return record


class BestKeeper:
    """Keeps a run's best-evaluated checkpoint. ``offer`` after each evaluation, ``commit`` after each
    rolling checkpoint, ``resume`` after loading one. The best so far lives in the loop state
    (``best_return``, ``best_frames``), so a resumed run knows it. Inactive (``enabled=False``) on
    data-parallel ranks other than 0, which neither evaluate nor write the run's files."""

    def __init__(self, logdir: str | Path, enabled: bool = True) -> None:
        self.root = checkpoints_dir(logdir)
        self.enabled = enabled
        self.committed: int | None = None  # frames of the best the newest rolling checkpoint records

    def offer(self, agent: DreamerAgent, loop: dict[str, Any], rets: list[float], seed: int) -> bool:
        """Write ``agent``'s weights as the best when the mean of ``rets`` beats the best so far
        (strictly: an equal later return keeps the earlier checkpoint); returns whether it did."""
        mean = statistics.fmean(rets)
        best = loop.get("best_return")
        if not self.enabled or (best is not None and mean <= best):
            return False
        frames = int(loop["frames"])
        std = statistics.pstdev(rets)
        record = {"frames": frames, "updates": agent.updates, "eval_return": mean, "eval_return_std": std,
                  "eval_episodes": len(rets), "eval_seed": seed}  # fmt: skip
        try:
            self._write(agent, record)
        except OSError as err:
            kept = best_folder(self.root.parent)
            what = f"best checkpoint at {frames} frames not written"
            raise CheckpointError(f"{describe_os_error(err, what)}; kept {kept.name if kept else 'none'}") from err
        loop["best_return"], loop["best_frames"] = mean, frames
        self._prune(keep={frames, self.committed})
        return True

    def commit(self, loop: dict[str, Any]) -> None:
        """A rolling checkpoint now records the best so far: older best folders can go."""
        if self.enabled and loop.get("best_frames") is not None:
            self.committed = int(loop["best_frames"])
            self._prune(keep={self.committed})

    def resume(self, loop: dict[str, Any]) -> None:
        """After a resume: drop bests evaluated past the checkpoint and point ``best`` at the one it
        records (warned about when that folder is gone: the next better evaluation writes a new one)."""
        if not self.enabled or not self.root.is_dir():
            return
        for junk in self.root.glob(f".tmp-{_PREFIX}*"):
            shutil.rmtree(junk, ignore_errors=True)
        frames = loop.get("best_frames")
        self.committed = None if frames is None else int(frames)
        target = self.root / _folder(frames) if frames is not None else None
        if target is not None and (target / _RECORD).is_file():
            self._point(target.name)
        else:
            (self.root / POINTER).unlink(missing_ok=True)
            if target is not None:
                print(f"agentwm: the best checkpoint this run recorded ({target.name}, eval return "
                      f"{loop.get('best_return')}) is gone; the next better evaluation writes a new one",
                      file=sys.stderr)  # fmt: skip
        self._prune(keep={self.committed})

    def _write(self, agent: DreamerAgent, record: dict[str, Any]) -> None:
        check_module_finite(agent, f"best checkpoint at {record['frames']} frames")
        name = _folder(record["frames"])
        tmp = self.root / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            tensors = {k: v.detach().contiguous().cpu() for k, v in agent.state_dict().items()}
            save_file(tensors, str(tmp / _WEIGHTS))
            fsync_path(tmp / _WEIGHTS)
            record = {**record, "sha256": sha256_file(tmp / _WEIGHTS)}
            write_bytes_synced(tmp / _RECORD, json.dumps(record, indent=2).encode())
            final = self.root / name
            if final.exists():  # the same frame evaluated again (a resumed run)
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_path(self.root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._point(name)

    def _point(self, name: str) -> None:
        def write_pointer(tmp_path: str) -> None:
            Path(tmp_path).write_text(name)

        atomic_write(self.root / POINTER, write_pointer)

    def _prune(self, keep: set[int | None]) -> None:
        """Remove best folders other than the current one and those in ``keep`` (by frames)."""
        current = best_folder(self.root.parent)
        names = {_folder(f) for f in keep if f is not None} | ({current.name} if current is not None else set())
        for path in self.root.glob(f"{_PREFIX}*"):
            if path.is_dir() and path.name not in names:
                shutil.rmtree(path, ignore_errors=True)
