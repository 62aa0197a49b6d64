"""Does data-parallel Dreamer learn? CartPole on ``torchrun`` with N ranks against one process,
at the same frame budget (the CLI's defaults otherwise), over several seeds.

    python benchmarks/dreamer_ddp.py                              # 2 ranks vs 1 process, seeds 0-4, 30k frames
    python benchmarks/dreamer_ddp.py --seeds 0 1 2 --nproc 2 --steps 30000 --threads 1
    python benchmarks/dreamer_ddp.py --nproc 2 --no-baseline      # only the data-parallel runs
    python benchmarks/dreamer_ddp.py --jobs 8 --keep runs/ddp     # runs side by side on a many-core box

Each run is ``agentwm train dreamer --env CartPole-v1 --steps S --seed K --threads T`` (presets tiny +
cartpole), the data-parallel one under ``torchrun --standalone --nproc_per_node=N`` (gloo on CPUs):
every rank steps its own env, frames count all ranks' frames, each update averages the ranks'
gradients (N x the batch, the update count of one process). Prints one JSON object: per run the
final and best greedy eval return, wall seconds and world size; per arm the median final return
and the runs reaching 475 (the issue's target: 2 ranks reach >= 475 within the frame budget of one
process). A run takes ~25 minutes of 2 cores at 30k frames; N ranks need N x ``--threads`` cores, and
``--jobs J`` runs J runs at once (J x N x ``--threads`` cores for the data-parallel arm), so give it
a machine with that many. ``--keep DIR`` keeps each run's folder (metrics, checkpoints) under DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result  # benchmarks/_results.py


def _run(nproc: int, seed: int, args: argparse.Namespace, root: Path) -> dict[str, object]:
    logdir = root / f"n{nproc}-s{seed}"
    train = ["-m", "agentwm", "train", "dreamer", "--env", "CartPole-v1", "--steps", str(args.steps),
             "--seed", str(seed), "--threads", str(args.threads), "--device", args.device, "--logdir", str(logdir),
             "--quiet", "--overwrite"]  # fmt: skip
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *train]
    else:
        cmd = [sys.executable, *train]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    curve = _eval_curve(logdir / "metrics.jsonl")
    if done.returncode != 0:
        return {"nproc": nproc, "seed": seed, "error": done.stderr.strip().splitlines()[-1:], "curve": curve}
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"nproc": nproc, "seed": seed, "world_size": summary["world_size"], "final": summary["eval_return"],
            "best": summary["best_eval_return"], "updates": summary["updates"], "wall_s": round(wall, 1),
            "curve": curve}  # fmt: skip


def _eval_curve(metrics: Path) -> list[list[float]]:
    """``[frames, mean greedy eval return]`` rows of a run's ``metrics.jsonl`` (rank 0 writes it)."""
    if not metrics.exists():
        return []
    rows = (json.loads(line) for line in metrics.read_text().splitlines() if line.strip())
    return [[r["frames"], round(r["eval/return"], 1)] for r in rows if "eval/return" in r]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2, help="ranks of the data-parallel runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=30_000, help="env frames per run (all ranks together)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, one GPU per rank)")
    p.add_argument("--no-baseline", action="store_true", help="skip the single-process runs")
    p.add_argument("--target", type=float, default=475.0)
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each data-parallel run takes nproc processes)")
    p.add_argument("--keep", type=Path, default=None, help="keep the run folders under this folder")
    args = p.parse_args()
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    root = args.keep if args.keep is not None else Path(tempfile.mkdtemp(prefix="dreamer_ddp-"))
    root.mkdir(parents=True, exist_ok=True)
    arms = [args.nproc] if args.no_baseline else [args.nproc, 1]
    jobs = [(nproc, seed) for seed in args.seeds for nproc in arms]  # arms alternate: load hits both alike

    def one(job: tuple[int, int]) -> dict[str, object]:
        run = _run(job[0], job[1], args, root)
        print(json.dumps(run), file=sys.stderr, flush=True)
        return run

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(one, jobs))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    summary = {}
    for nproc in arms:
        finals = [float(r["final"]) for r in runs if r["nproc"] == nproc and r.get("final") is not None]  # type: ignore[arg-type]
        summary[f"nproc{nproc}"] = {"runs": len(finals), "median_final": statistics.median(finals) if finals else None,
                                    "reached_target": sum(f >= args.target for f in finals)}  # fmt: skip
    out = {"steps": args.steps, "threads_per_rank": args.threads, "jobs": args.jobs, "target": args.target,
           "summary": summary, "runs": runs}  # fmt: skip
    print(json.dumps(write_result("dreamer_ddp", out, variant=f"cartpole-n{args.nproc}")))


if __name__ == "__main__":
    main()
