"""Latency of one planning decision: rank 8 candidates × 32 samples × horizon 15 with the ensemble.

Prints one JSON object with p50/p95 in milliseconds, on CPU (and CUDA when present). The model is
fitted briefly on CartPole random transitions so that its weights are realistic; latency does not
depend on how well it is trained. Target: p50 <= 20 ms on CPU.

    python benchmarks/plan_latency.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from agentwm.envs.gym import action_spec_of, collect_random_transitions
from agentwm.planning import rank_candidates
from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics


def measure(device: str, repeats: int, candidates: int, samples: int, horizon: int) -> dict[str, float]:
    import gymnasium as gym

    torch.manual_seed(0)
    data = collect_random_transitions("CartPole-v1", 1000, seed=0)
    spec = action_spec_of(gym.make("CartPole-v1").action_space)
    model = EnsembleDynamics(4, spec, EnsembleConfig(epochs=5)).to(device)
    model.fit({k: v.to(device) for k, v in data.items()})
    model.eval()
    # K candidate first actions, each followed by random actions, over S samples each.
    first = spec.one_hot(torch.arange(candidates) % spec.dim).to(device)
    obs = data["obs"][:1].to(device)
    times = []
    for i in range(repeats + 10):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        state = model.observe(obs)
        ranking = rank_candidates(model, state, first, horizon=horizon, samples=samples, gamma=0.99)
        _ = int(ranking.best)  # the decision itself forces any pending device work
        if i >= 10:  # warm-up excluded
            times.append(1000 * (time.perf_counter() - t0))
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
        "mean_ms": round(statistics.fmean(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=15)
    args = parser.parse_args()
    out: dict[str, object] = {
        "benchmark": "plan_latency",
        "setting": f"{args.candidates} candidates x {args.samples} samples x horizon {args.horizon}, 5-member ensemble",
        "torch_threads": torch.get_num_threads(),
        "target_p50_ms_cpu": 20.0,
    }
    out["cpu"] = measure("cpu", args.repeats, args.candidates, args.samples, args.horizon)
    if torch.cuda.is_available():
        out["cuda"] = measure("cuda", args.repeats, args.candidates, args.samples, args.horizon)
        out["cuda_device"] = torch.cuda.get_device_name()
    print(json.dumps(out))
    write_result("plan_latency", out)


if __name__ == "__main__":
    main()
