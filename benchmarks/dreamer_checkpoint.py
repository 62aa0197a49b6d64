"""Cost of a Dreamer checkpoint with a full pixel replay: incremental chunks against the whole buffer.

    python benchmarks/dreamer_checkpoint.py                      # 100,000 rows of 64x64x3 frames (1.2 GB)
    python benchmarks/dreamer_checkpoint.py --rows 20000 --every 5000

Fills a replay with ``--rows`` random pixel rows, writes a first checkpoint, adds ``--every`` rows
(one checkpoint interval) and times the second checkpoint: as the library writes it (only the
new rows, in a chunk) and as it was written before incremental replay (the whole buffer in one
``replay.npz``, reproduced here from ``SequenceReplay.state_dict``). Prints one JSON object with
seconds and megabytes written for both and their ratio. The incremental figures count the whole
checkpoint (weights, optimiser state, chunk); the baseline's only its replay file. Both write to
the same disk, one after the other, with dirty pages flushed between them (``os.sync``); both
timings include fsync. The temporary folder is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import numpy as np
from _results import write_result

from agentwm.agents.dreamer import DreamerAgent, SequenceReplay, resolve_config
from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.worldmodels.base import ActionSpec

SHAPE = (3, 64, 64)


def _add(replay: SequenceReplay, rows: int, rng: np.random.Generator) -> None:
    frames = rng.integers(0, 256, size=(1024, 1, *SHAPE), dtype=np.uint8)  # reused: content is not the point
    for i in range(rows):
        replay.add(frames[i % 1024], np.eye(6, dtype=np.float32)[[i % 6]], np.zeros(1), np.zeros(1, bool),
                   np.zeros(1, bool))  # fmt: skip


def _megabytes(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="rows in the replay at the first checkpoint")
    p.add_argument("--every", type=int, default=5_000, help="rows added before the timed checkpoint")
    p.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    args = p.parse_args()
    capacity = args.rows + args.every
    cfg = resolve_config(["debug"], [f"replay_capacity={capacity}", "pixels=true"])
    agent = DreamerAgent(SHAPE, ActionSpec("discrete", 6), cfg)
    replay = SequenceReplay(capacity, 1, SHAPE, 6, np.uint8)
    rng = np.random.default_rng(0)
    _add(replay, args.rows, rng)
    root = Path(args.dir or tempfile.mkdtemp(prefix="dreamer_ckpt_"))
    t0 = time.perf_counter()
    ckpt.save(root, args.rows, agent, {"loop": {}}, replay, keep=2)
    first_s = time.perf_counter() - t0
    _add(replay, args.every, rng)
    chunks_before = set((root / "checkpoints" / "replay").glob("*.npz"))
    os.sync()

    t0 = time.perf_counter()
    ckpt.save(root, args.rows + args.every, agent, {"loop": {}}, replay, keep=2)
    incremental_s = time.perf_counter() - t0
    new_chunks = sorted(set((root / "checkpoints" / "replay").glob("*.npz")) - chunks_before)
    newest = ckpt.latest(root)
    assert newest is not None
    incremental_mb = _megabytes([*new_chunks, *newest.iterdir()])
    os.sync()

    full = root / "full_replay.npz"  # the pre-chunk format: every held row, every time
    t0 = time.perf_counter()
    state = {k: v for k, v in replay.state_dict().items() if k != "rng"}
    with open(full, "wb") as fh:
        np.savez(fh, **state)
        fh.flush()
        os.fsync(fh.fileno())
    full_s = time.perf_counter() - t0
    full_mb = _megabytes([full])
    print(json.dumps(write_result("dreamer_checkpoint", {
        "benchmark": "dreamer_checkpoint", "rows": args.rows, "every": args.every, "obs": list(SHAPE),
        "first_checkpoint_s": round(first_s, 2),
        "incremental_s": round(incremental_s, 3), "incremental_mb": round(incremental_mb, 1),
        "whole_buffer_s": round(full_s, 3), "whole_buffer_mb": round(full_mb, 1),
        "speedup": round(full_s / incremental_s, 1), "bytes_ratio": round(full_mb / incremental_mb, 1),
    })))  # fmt: skip
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
