"""Replay the end of finished Dreamer runs from one of their checkpoints, with settings changed.

    python benchmarks/dreamer_replay_tail.py --logdir RUN --from 25000 --set actor_average=0.005
    python benchmarks/dreamer_replay_tail.py --logdir RUN1 RUN2 RUN3 --from 25000 --set actor_average=0.005 --jobs 2

Each run's folder as it was at checkpoint ``--from`` (settings, metrics up to it, that checkpoint
and its replay) is copied to ``--out/<n>-<run name>`` and resumed there to the run's frame budget,
with the run's own settings and the ``--set`` overrides. Meant for settings that change what the
agent *evaluates with*, not what it learns (``actor_average``): since a resumed run on the same
thread count and kind of CPU replays the original exactly, the replayed actor's evals
(``online``: ``eval/online_return``, or ``eval/return`` where no averaged actor is kept) should
equal the original's (``original``), and ``reproduced`` says whether they do. Where they do, the
evals of the replay (``eval``) differ from the original's by the setting alone, on the same
training run, episode for episode. Prints one JSON object: per run the three curves from
``--from`` on, and how many finals meet ``--target`` in each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

from agentwm.agents.dreamer import resolve_config, train
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.agents.dreamer.report import eval_curve
from agentwm.checkpoint import read_json


def settings(run: Path, frames: int, sets: list[str]) -> DreamerConfig:
    """The run's settings with ``sets`` applied; exits with one line where the run, its checkpoint at
    ``frames`` or a setting is not usable."""
    saved = read_json(run / "config.json") if (run / "config.json").is_file() else None
    if not isinstance(saved, dict):
        raise SystemExit(f"dreamer_replay_tail.py: {run} is not a Dreamer run folder (no config.json of settings)")
    if not (run / "checkpoints" / f"ckpt_{frames:010d}" / "manifest.json").is_file():
        raise SystemExit(f"dreamer_replay_tail.py: {run} has no complete checkpoint at {frames} frames")
    try:
        return resolve_config([], sets, base=DreamerConfig(**saved))
    except ValueError as err:  # pydantic's ValidationError is one
        raise SystemExit(f"dreamer_replay_tail.py: {run}: {str(err).splitlines()[0]}") from None


def copy_at(run: Path, frames: int, out: Path) -> None:
    """``run`` as it was at its checkpoint of ``frames`` frames, in ``out`` (which must not exist)."""
    name = f"ckpt_{frames:010d}"
    if out.exists():
        raise SystemExit(f"dreamer_replay_tail.py: {out} exists; pick another --out")
    (out / "checkpoints").mkdir(parents=True)
    for file in ("config.json", "metrics.jsonl"):  # metrics past the checkpoint are dropped on resume
        shutil.copy2(run / file, out / file)
    shutil.copytree(run / "checkpoints" / name, out / "checkpoints" / name)
    shutil.copytree(run / "checkpoints" / "replay", out / "checkpoints" / "replay")
    (out / "checkpoints" / "latest").write_text(name, encoding="utf-8")


def replay_one(run: Path, frames: int, sets: list[str], out: Path) -> dict[str, Any]:
    """Resume the copy of ``run`` at ``frames`` with ``sets``; its curves from ``frames`` on."""
    cfg = settings(run, frames, sets)
    copy_at(run, frames, out)
    train(cfg, out, resume=True, progress=False)

    def tail(logdir: Path, key: str) -> list[tuple[int, float]]:
        return [(f, round(r, 1)) for f, r in eval_curve(logdir, key) if f > frames]

    original, replayed = tail(run, "eval/return"), tail(out, "eval/return")
    online = tail(out, "eval/online_return") or replayed
    return {"run": str(run), "seed": cfg.seed, "threads": cfg.threads, "replay": str(out), "original": original,
            "online": online, "eval": replayed, "reproduced": online == original}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", nargs="+", required=True, type=Path, help="finished runs (each a run folder)")
    p.add_argument("--from", dest="start", type=int, required=True, help="the checkpoint's frame count to resume at")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a changed setting (repeatable)")
    p.add_argument("--out", type=Path, default=Path("runs/replay_tail"), help="folder for the replayed copies")
    p.add_argument("--target", type=float, default=None, help="count the finals at or above this return")
    p.add_argument("--jobs", type=int, default=1, help="runs replayed at once, each its own process")
    p.add_argument("--name", default="", help="a suffix for the results file")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a worker: replay --logdir[ONE]
    args = p.parse_args()
    for run in args.logdir:  # every run usable before any starts
        settings(run, args.start, args.set)
    if args.one is not None:
        run = args.logdir[args.one]
        print(json.dumps(replay_one(run, args.start, args.set, args.out / f"{args.one}-{run.name}")))
        return

    def worker(i: int) -> dict[str, Any]:
        cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--one", str(i)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            return {"run": str(args.logdir[i]), "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        return dict(json.loads(lines[-1]))

    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        rows = list(pool.map(worker, range(len(args.logdir))))
    out: dict[str, Any] = {"benchmark": "dreamer_replay_tail", "from": args.start, "sets": args.set, "runs": rows,
                           "reproduced": sum(bool(r.get("reproduced")) for r in rows)}  # fmt: skip
    if args.target is not None:
        for key in ("original", "online", "eval"):
            out[f"finals_at_target_{key}"] = sum(bool(r.get(key)) and r[key][-1][1] >= args.target for r in rows)
    print(json.dumps(write_result("dreamer_replay_tail", out, variant=args.name or None)))
    if any("error" in r for r in rows):
        raise SystemExit("dreamer_replay_tail.py: some runs failed (their rows say why)")


if __name__ == "__main__":
    main()
