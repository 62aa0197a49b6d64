"""One benchmark line per seed world-model family: its score and wall time.

Prints one JSON object per family (one line each), then nothing else:

* ``dyna``: Taxi-v4, real steps until the greedy policy's mean return over 10 fixed episodes is
  >= 7, for k = 0 (plain Q-learning), 5 and 20 planning steps, per seed (``None``: not within the
  budget). Score: median real steps with k=20 and the ratio to k=0 (budget used where k=0 never got there).
* ``muzero``: CartPole-v1, mean return of noise-free MCTS over 3 evaluation episodes after
  ``env_steps`` of self-play, per seed; random play scores ~22.
* ``pets``: CartPole-v1, the PETS loop (1,000 random steps, CEM with 5 trajectory-sampling
  particles, agreement gate): real steps to the first episode returning >= 475, and the fallback rate.
* ``worldmodels``: CartPole-v1 from 64x64 pixels, 3 rounds of the iterative procedure: real return
  of the CMA-ES controller trained in the dream, next to uniformly random actions on the same
  start states; per run also the diagnostics of V and M next to their know-nothing baselines.
* ``planet``: DMC cartpole-swingup (proprio): the noise-free evaluation return every 5 planning
  episodes vs env steps (the curve), next to uniformly random actions from the same start states.

    python benchmarks/families.py [--families dyna muzero pets worldmodels planet] [--seeds 0 1 2] [--quick]

Timings depend on machine load; state it when reporting them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch


def bench_dyna(seeds: list[int], quick: bool) -> dict[str, Any]:
    from agentwm.agents.dyna.agent import DynaConfig, run_dyna

    budget = 8000 if quick else 30_000
    steps: dict[str, list[int | None]] = {}
    for k in (0, 5, 20):
        steps[f"k={k}"] = [run_dyna(DynaConfig(planning_steps=k, real_steps=budget, seed=s))[2]["steps_to_target"]
                           for s in seeds]
    k20 = [s for s in steps["k=20"] if s is not None]
    k0 = [budget if s is None else s for s in steps["k=0"]]
    return {
        "env": "Taxi-v4", "target_return": 7.0, "budget": budget, "steps_to_target": steps,
        "score": {"median_steps_k20": float(np.median(k20)) if k20 else None,
                  "speedup_k20_vs_k0_at_least": round(float(np.median(k0)) / float(np.median(k20)), 2) if k20 else None},
    }


def bench_muzero(seeds: list[int], quick: bool) -> dict[str, Any]:
    from agentwm.agents.muzero.agent import MuZeroConfig, train_muzero

    env_steps = 1500 if quick else 5000
    runs = []
    for s in seeds:
        _, summary = train_muzero(MuZeroConfig(env_steps=env_steps, eval_every=env_steps, seed=s))
        runs.append({"seed": s, "final_eval_return": summary["final_eval_return"],
                     "last_episodes_mean_return": summary["last_episodes_mean_return"], "wall_s": summary["wall_s"]})
    return {
        "env": "CartPole-v1", "env_steps": env_steps, "runs": runs,
        "score": {"mean_eval_return": float(np.mean([r["final_eval_return"] for r in runs])), "random_play": 22},
    }


def bench_pets(seeds: list[int], quick: bool) -> dict[str, Any]:
    from agentwm.agents.mpc.pets import PETSConfig, run_pets

    runs = []
    for s in seeds:
        config = PETSConfig(planner="cem", particles=5, gate=True, seed=s, max_episodes=1 if quick else 4,
                            max_steps=200 if quick else None, target_return=None if quick else 475.0)
        summary = run_pets(config)
        runs.append({"seed": s, "steps_to_target": summary["steps_to_target"],
                     "episode_returns": summary["episode_returns"],
                     "fallback_rates": [round(e["fallback_rate"], 3) for e in summary["episodes"]],
                     "wall_s": summary["wall_s"]})
    reached = [r["steps_to_target"] for r in runs if r["steps_to_target"] is not None]
    return {
        "env": "CartPole-v1", "planner": "cem x 5 particles, agreement gate", "runs": runs,
        "score": {"reached": f"{len(reached)}/{len(runs)}",
                  "median_steps_to_475": float(np.median(reached)) if reached else None,
                  "first_episode_mean_return": float(np.mean([r["episode_returns"][0] for r in runs]))},
    }


def bench_worldmodels(seeds: list[int], quick: bool) -> dict[str, Any]:
    from agentwm.agents.hs_worldmodels.agent import HSConfig, train_world_models

    runs = []
    for s in seeds:
        config = (HSConfig(seed=s, frames=600, vae_epochs=2, rnn_steps=100, generations=5, rounds=2, round_frames=200)
                  if quick else HSConfig(seed=s, eval_episodes=10))
        _, _, summary = train_world_models(config)
        last = summary["rounds"][-1]
        runs.append({"seed": s, "eval_mean_return": summary["eval_mean_return"],
                     "random_mean_return": summary["random_mean_return"],
                     "collected_returns_per_round": [round(float(np.mean(r["collected_returns"])), 1)
                                                     for r in summary["rounds"] if "collected_returns" in r],
                     "best_dream_return_per_round": [max(r["dream_return_curve"]) for r in summary["rounds"]],
                     "dream_random_vs_real_random": [last["dream_random_return"], summary["real_random_return"]],
                     "done_bce_vs_base_rate": [last["done_bce"], last["done_base_rate_bce"]],
                     "vae_mse_vs_mean_frame": [last["vae_recon_mse"], last["mean_frame_mse"]],
                     "frames": summary["frames"], "wall_s": summary["wall_s"]})
    return {
        "env": "CartPole-v1 pixels (64x64)", "runs": runs,
        "score": {"mean_eval_return": float(np.mean([r["eval_mean_return"] for r in runs])),
                  "mean_random_return": float(np.mean([r["random_mean_return"] for r in runs]))},
    }


def bench_planet(seeds: list[int], quick: bool) -> dict[str, Any]:
    from agentwm.agents.planet.agent import PlaNetConfig, train_planet

    runs = []
    for s in seeds:
        config = (PlaNetConfig(seed=s, seed_episodes=2, episodes=2, train_steps=30, max_steps=50, eval_episodes=1)
                  if quick else PlaNetConfig(seed=s, seed_episodes=5, episodes=10, train_steps=100, batch_size=32,
                                             eval_every=5, eval_episodes=1))
        _, summary = train_planet(config)
        runs.append({"seed": s, "random_eval_returns": summary["random_eval_returns"],
                     "seed_episode_returns": summary["seed_episode_returns"],
                     "episode_returns": summary["episode_returns"], "eval_curve": summary["eval_curve"],
                     "wall_s": summary["wall_s"]})
    return {
        "env": "dmc:cartpole-swingup (proprio, action repeat 8)", "runs": runs,
        "score": {"mean_final_eval_return": float(np.mean([r["eval_curve"][-1]["eval_mean_return"] for r in runs])),
                  "mean_random_return": float(np.mean([x for r in runs for x in r["random_eval_returns"]]))},
    }


FAMILIES: dict[str, Callable[[list[int], bool], dict[str, Any]]] = {
    "dyna": bench_dyna, "muzero": bench_muzero, "pets": bench_pets, "worldmodels": bench_worldmodels,
    "planet": bench_planet,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="one seed, small budgets (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [args.seeds[0]] if args.quick else args.seeds
    for name in args.families:
        start = time.perf_counter()
        result = FAMILIES[name](seeds, args.quick)
        row = {"family": name, "seeds": seeds, "quick": args.quick, **result,
               "wall_s": round(time.perf_counter() - start, 1)}
        variant = name + ("-quick" if args.quick else "")
        print(json.dumps(write_result("families", row, variant=variant)), flush=True)


if __name__ == "__main__":
    main()
