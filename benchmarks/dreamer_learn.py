"""Does Dreamer learn? Train on a task for a frame budget and report the final greedy eval return.

    python benchmarks/dreamer_learn.py --task cartpole          # CartPole-v1, 30,000 frames, target 475
    python benchmarks/dreamer_learn.py --task pendulum          # Pendulum-v1, 20,000 frames, target -250
    python benchmarks/dreamer_learn.py --task cartpole-swingup  # dmc:cartpole-swingup proprio, 100,000 frames (GPU sizes)
    python benchmarks/dreamer_learn.py --task cartpole-swingup --preset tiny --preset dmc_cpu --threads 1  # its CPU recipe
    python benchmarks/dreamer_learn.py --task cartpole --steps 8000 --set train_ratio=64
    python benchmarks/dreamer_learn.py --task cartpole --seeds 0 1 2 3 4 5 6 7 8 9 --threads 1 --jobs 2  # a seed table

Prints one JSON object: the task, frames, updates, final and best mean eval returns (10 greedy
episodes), the target, the first frame count at which an eval reached it (``frames_to_target``; null
if none did within the budget), whether the final eval still meets it (``met``), how many of the
evals in the run's second half meet it (``late_at_target`` of ``late_evals``: holding, not only
reaching), wall seconds and the load average at the start (timings on a shared machine are
pessimistic). A run stopped before its frame budget (SIGTERM) is written as ``...-incomplete`` with
``complete: false`` and exits non-zero, so a seed table counts it as failed, never as a result. With
``--seeds``, one run per seed (``--jobs`` at once, each its own process) and one table: every seed's
row, how many meet the target at the final eval, the second-half evals at it, and the median final
return; each finished seed's row is also written on its own as it ends, so an interrupted table
keeps its finished seeds. ``--combine FILE ...`` builds the same table from finished per-seed files
(runs done apart: other days, other machines, each row keeping its CPU and commit); files of
another task or other settings, a repeated seed and a stopped run are refused by name. The run's
folder (``--logdir``) keeps metrics.jsonl, TensorBoard logs and learning_curve.png; ``agentwm compare
dreamer RUN [RUN ...] --target T`` sums up several seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

from agentwm.agents.dreamer import resolve_config, train
from agentwm.agents.dreamer.report import against_target, eval_curve, run_summary

TASKS = {
    "cartpole": {"env": "CartPole-v1", "steps": 30_000, "target": 475.0, "presets": ["tiny", "cartpole"],
                 "sets": []},
    "pendulum": {"env": "Pendulum-v1", "steps": 20_000, "target": -250.0, "presets": ["tiny"], "sets": []},
    "cartpole-swingup": {"env": "dmc:cartpole-swingup", "steps": 100_000, "target": 700.0,
                         "presets": ["dmc_proprio", "size1m"], "sets": []},
}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), default="cartpole")
    p.add_argument("--steps", type=int, default=None, help="frame budget (default: the task's)")
    p.add_argument("--preset", action="append", default=None, help="presets instead of the task's")
    p.add_argument("--set", action="append", default=[], help="key=value overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", default=None, help="run folder (default: a temporary one)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="a seed table: one run per seed")
    p.add_argument("--jobs", type=int, default=1, help="with --seeds: runs at once")
    p.add_argument("--name", default="", help="a suffix for the results files, the table's and each seed's (variants apart)")
    p.add_argument("--combine", nargs="+", metavar="FILE", default=None,
                   help="one table from finished per-seed result files of one setting (runs done apart)")
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.combine:
        try:
            _combined_table(args.task, args.combine, args.name)
        except ValueError as err:
            raise SystemExit(f"dreamer_learn.py: {err}") from None
        return
    if args.seeds:
        _seed_table(args)
        return
    task = TASKS[args.task]
    steps = args.steps or int(task["steps"])  # type: ignore[call-overload]
    sets = [*task["sets"], *args.set, f"eval_every={max(steps // 10, 1000)}", "eval_episodes=10"]  # type: ignore[misc]
    if args.threads:
        sets.append(f"threads={args.threads}")
    cfg = resolve_config(args.preset or task["presets"], sets, env=task["env"], steps=steps, seed=args.seed)  # type: ignore[arg-type]
    logdir = args.logdir or tempfile.mkdtemp(prefix=f"dreamer_{args.task}_")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    summary = train(cfg, logdir, progress=args.progress)
    target = float(task["target"])  # type: ignore[arg-type]
    run = run_summary(logdir, target)
    online = eval_curve(logdir, "eval/online_return")  # with actor_average: the actor itself, same episodes
    complete = summary["frames"] >= steps  # a run stopped early (SIGTERM) is not a result of the frame budget
    print(json.dumps(write_result("dreamer_learn", {
        "benchmark": "dreamer_learn", "task": args.task, "env": task["env"], "frames": summary["frames"],
        "frame_budget": steps, "complete": complete,
        "updates": summary["updates"], "final_eval_return": summary["eval_return"],
        "best_eval_return": summary["best_eval_return"], "target": target,
        "frames_to_target": run["frames_to_target"], "met": run["met"],
        "late_at_target": run["late_at_target"], "late_evals": run["late_evals"],
        "seed": args.seed, "wall_s": round(time.perf_counter() - t0, 1), "load_avg_1m_at_start": load,
        "eval_curve": [(frames, round(ret, 1)) for frames, ret in run["curve"]],
        **({"online_eval_curve": [(f, round(r, 1)) for f, r in online]} if online else {}),
        "config": {"presets": args.preset or task["presets"], "sets": sets}, "logdir": logdir,
    }, variant=f"{args.task}-seed{args.seed}" + (f"-{args.name}" if args.name else "") + ("" if complete else "-incomplete"))))  # fmt: skip
    if not complete:
        raise SystemExit(f"stopped at {summary['frames']} of {steps} frames: not a finished run")


def _seed_table(args: argparse.Namespace) -> None:
    """One process per seed (this script with ``--seed``), ``--jobs`` at once; one JSON table."""
    root = Path(args.logdir or tempfile.mkdtemp(prefix=f"dreamer_{args.task}_seeds_"))
    passed = ["--task", args.task, *(["--steps", str(args.steps)] if args.steps else []),
              *(["--threads", str(args.threads)] if args.threads else []),
              *[x for preset in args.preset or [] for x in ("--preset", preset)],
              *[x for kv in args.set for x in ("--set", kv)], *(["--name", args.name] if args.name else [])]  # fmt: skip

    def one(seed: int) -> dict[str, Any]:
        cmd = [sys.executable, os.path.abspath(__file__), *passed, "--seed", str(seed), "--logdir", str(root / f"seed{seed}")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            return {"seed": seed, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        row = json.loads(lines[-1])
        return {"seed": seed, **{k: row[k] for k in ("final_eval_return", "best_eval_return", "frames_to_target", "met", "late_at_target", "late_evals", "wall_s", "eval_curve", "online_eval_curve") if k in row}}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(one, args.seeds))
    print(json.dumps(write_result("dreamer_learn", {
        "benchmark": "dreamer_learn", "task": args.task, "seeds": args.seeds, "threads": args.threads,
        "jobs": args.jobs, "target": TASKS[args.task]["target"], **_totals(rows),
        "failed": sum("error" in r for r in rows), "wall_s": round(time.perf_counter() - t0, 1),
        "rows": rows, "logdir": str(root),
    }, variant=f"{args.task}-table-t{args.threads or 'default'}" + (f"-{args.name}" if args.name else ""))))  # fmt: skip


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A seed table's sums: runs, how many meet the target at the final eval, the second-half evals at
    it of all, and the median final return (rows of failed runs count as runs and nothing else)."""
    finals = [r["final_eval_return"] for r in rows if "final_eval_return" in r]
    return {"runs": len(rows), "met_at_final": sum(bool(r.get("met")) for r in rows),
            "late_at_target": sum(r.get("late_at_target", 0) for r in rows),
            "late_evals": sum(r.get("late_evals", 0) for r in rows),
            "median_final": statistics.median(finals) if finals else None}  # fmt: skip


def _seed_of(doc: dict[str, Any]) -> int:
    """The run's seed: its own field, or (files written before it had one) ``--seed`` in its command."""
    if "seed" in doc["result"]:
        return int(doc["result"]["seed"])
    words = shlex.split(doc.get("command", ""))
    if "--seed" not in words or words.index("--seed") + 1 >= len(words):
        raise ValueError("no seed in it")
    return int(words[words.index("--seed") + 1])


def _combined_table(task_name: str, files: list[str], name: str) -> None:
    """One seed table from per-seed result files: same task, same presets and settings, one file a
    seed, each finished; the second-half counts are recomputed from each eval curve, so files written
    before those counts existed are counted the same way."""
    rows, config = [], None
    for file in files:
        try:
            doc = json.loads(Path(file).read_text())
            result, seed = doc["result"], _seed_of(doc)
            curve = [(int(f), float(r)) for f, r in result["eval_curve"]]
            where = {"cpu": doc["machine"]["cpu"], "commit": doc["commit"], "date_utc": doc["date_utc"]}
            returns = {k: float(result[k]) for k in ("final_eval_return", "best_eval_return")}
            settings = result["config"]
            if doc["benchmark"] != "dreamer_learn":
                raise ValueError(f"benchmark {doc['benchmark']!r}")
            if not curve:
                raise ValueError("an empty eval curve")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{file} is not a per-seed dreamer_learn result ({err})") from None
        if result.get("task") != task_name:
            raise ValueError(f"{file} is task {result.get('task')!r}, not --task {task_name!r}")
        if not result.get("complete", result.get("frames") == result.get("frame_budget")):
            raise ValueError(f"{file} is a run stopped before its frame budget")
        if config is None:
            config = settings
        elif settings != config:
            raise ValueError(f"{file} has other settings ({settings}) than the first file ({config})")
        if any(r["seed"] == seed for r in rows):
            raise ValueError(f"{file} repeats seed {seed}")
        rows.append({"seed": seed, **returns, **against_target(curve, float(TASKS[task_name]["target"])),  # type: ignore[arg-type]
                     "wall_s": result.get("wall_s"), "eval_curve": curve, **where, "file": str(file)})  # fmt: skip
    rows.sort(key=lambda r: r["seed"])
    print(json.dumps(write_result("dreamer_learn", {
        "benchmark": "dreamer_learn", "task": task_name, "combined": True, "seeds": [r["seed"] for r in rows],
        "config": config, "target": TASKS[task_name]["target"], **_totals(rows),
        "cpus": sorted({r["cpu"] for r in rows}), "rows": rows,
    }, variant=f"{task_name}-table-combined" + (f"-{name}" if name else ""))))  # fmt: skip


if __name__ == "__main__":
    main()
