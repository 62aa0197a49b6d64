"""Does stepping the envs in worker processes while the agent learns speed up Dreamer training?

    python benchmarks/dreamer_overlap.py                                  # dmc:cartpole-swingup pixels
    python benchmarks/dreamer_overlap.py --env CartPole-v1 --no-pixels    # a cheap env: little to gain

Trains the same short run twice, with in-process envs (``async_envs=false``) and with
``async_envs=true`` (gymnasium ``AsyncVectorEnv``; the loop sends the actions, runs the updates due,
then collects the observations), and prints one JSON object with each run's frames/s while learning
(the loop's own ``charts/fps`` after prefill, so the final evaluation and file writing are left out),
the speed-up, and whether both runs ended with identical weights (they should: the overlap changes
when work happens, not what is computed). The learner gets ``--threads`` torch threads; on a small
CPU leave a core for the env workers. Timings on a shared machine are pessimistic; the load average
at the start is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import torch
from _results import write_result
from safetensors.torch import load_file

from agentwm.agents.dreamer import resolve_config, train
from agentwm.agents.dreamer import run_checkpoint as ckpt


def _run(args: argparse.Namespace, asynchronous: bool, logdir: str) -> float:
    """Median frames/s of the log intervals after prefill."""
    sets = [f"steps={args.steps}", f"prefill={args.prefill}", f"train_ratio={args.train_ratio}",
            f"num_envs={args.num_envs}", f"threads={args.threads}", f"pixels={str(args.pixels).lower()}",
            f"async_envs={str(asynchronous).lower()}", f"eval_every={args.steps * 10}",
            f"checkpoint_every={args.steps}", f"log_every={args.prefill}", "action_repeat=2", "eval_episodes=1"]  # fmt: skip
    cfg = resolve_config(args.preset, sets, env=args.env)
    train(cfg, logdir, progress=False)
    with open(os.path.join(logdir, "metrics.jsonl")) as fh:
        rows = [json.loads(ln) for ln in fh if ln.strip()]
    return statistics.median(
        float(r["charts/fps"]) for r in rows if "charts/fps" in r and r["frames"] > args.prefill
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="dmc:cartpole-swingup")
    p.add_argument("--pixels", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--preset", action="append", default=None, help="Dreamer presets (default: debug)")
    p.add_argument("--steps", type=int, default=2_000, help="env frames per run (a multiple of --prefill)")
    p.add_argument("--prefill", type=int, default=500)
    p.add_argument("--train-ratio", type=float, default=16.0)
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the learner")
    args = p.parse_args()
    args.preset = args.preset or ["debug"]
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    load = os.getloadavg()[0]
    root = tempfile.mkdtemp(prefix="dreamer_overlap_")
    fps = {mode: _run(args, mode == "async", os.path.join(root, mode)) for mode in ("sync", "async")}
    weights = [load_file(str(ckpt.latest(os.path.join(root, m)) / "model.safetensors")) for m in fps]  # type: ignore[operator]
    same = weights[0].keys() == weights[1].keys() and all(
        torch.equal(weights[0][k], weights[1][k]) for k in weights[0]
    )
    print(json.dumps(write_result("dreamer_overlap", {
        "benchmark": "dreamer_overlap", "env": args.env, "pixels": args.pixels, "presets": args.preset,
        "frames": args.steps, "num_envs": args.num_envs, "train_ratio": args.train_ratio, "threads": args.threads,
        "sync_fps": round(fps["sync"], 1), "async_fps": round(fps["async"], 1),
        "speedup": round(fps["async"] / fps["sync"], 2), "same_weights": same, "load_avg_1m_at_start": load,
    })))  # fmt: skip


if __name__ == "__main__":
    main()
