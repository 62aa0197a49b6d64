"""Does Dreamer learn? Train on a task for a frame budget and report the final greedy eval return.

    python benchmarks/dreamer_learn.py --task cartpole          # CartPole-v1, 30,000 frames, target 475
    python benchmarks/dreamer_learn.py --task pendulum          # Pendulum-v1, 20,000 frames, target -250
    python benchmarks/dreamer_learn.py --task cartpole-swingup  # dmc:cartpole-swingup proprio, 100,000 frames (GPU sizes)
    python benchmarks/dreamer_learn.py --task cartpole-swingup --preset tiny --preset dmc_cpu --threads 1  # its CPU recipe
    python benchmarks/dreamer_learn.py --task cartpole --steps 8000 --set train_ratio=64

Prints one JSON object: the task, frames, updates, final and best mean eval returns (10 greedy
episodes), the target, the first frame count at which an eval reached it (``frames_to_target``;
null if none did within the budget), whether the final eval still meets it (``met``), wall seconds
and the load average at the start (timings on a shared machine are pessimistic). The run's folder
(``--logdir``) keeps metrics.jsonl, TensorBoard logs and learning_curve.png; ``agentwm compare
dreamer RUN [RUN ...] --target T`` sums up several seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result  # noqa: E402  (benchmarks/_results.py)

from agentwm.agents.dreamer import resolve_config, train
from agentwm.agents.dreamer.report import run_summary

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
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
    print(json.dumps(write_result("dreamer_learn", {
        "benchmark": "dreamer_learn", "task": args.task, "env": task["env"], "frames": summary["frames"],
        "updates": summary["updates"], "final_eval_return": summary["eval_return"],
        "best_eval_return": summary["best_eval_return"], "target": target,
        "frames_to_target": run["frames_to_target"], "met": run["met"],
        "wall_s": round(time.perf_counter() - t0, 1), "load_avg_1m_at_start": load,
        "eval_curve": [(frames, round(ret, 1)) for frames, ret in run["curve"]],
        "config": {"presets": args.preset or task["presets"], "sets": sets}, "logdir": logdir,
    }, variant=f"{args.task}-seed{args.seed}")))  # fmt: skip


if __name__ == "__main__":
    main()
