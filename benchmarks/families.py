"""One benchmark line per seed world-model family: its score and wall time.

Prints one JSON object per family (one line each), then nothing else:

* ``dyna``: Taxi-v4, real steps until the greedy policy's mean return over 10 fixed episodes is
  >= 7, for k = 0 (plain Q-learning), 5 and 20 planning steps, per seed (``None``: not within the
  budget). Score: median real steps with k=20 and the ratio to k=0 (budget used where k=0 never got there).
* ``muzero``: CartPole-v1, mean return of noise-free MCTS over 3 evaluation episodes after
  ``env_steps`` of self-play, per seed; random play scores ~22.
* ``pets``: CartPole-v1, the PETS loop (1,000 random steps, CEM with 5 trajectory-sampling
  particles, agreement gate): real steps to the first episode returning >= 475, and the fallback rate.
* ``worldmodels``: CartPole-v1 from 64x64 pixels: real return of the CMA-ES controller trained in
  the dream, next to uniformly random actions on the same episodes.
* ``planet``: DMC cartpole-swingup (proprio): returns of the planning episodes and of a noise-free
  evaluation episode, next to the random seed episodes.

    python benchmarks/families.py [--families dyna muzero pets worldmodels planet] [--seeds 0 1 2] [--quick]

Timings depend on machine load; state it when reporting them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch


def bench_dyna(seeds: list[int], quick: bool) -> dict[str, Any]:
    from agentwm.agents.dyna import DynaConfig, run_dyna

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
    from agentwm.agents.muzero import MuZeroConfig, train_muzero

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
    from agentwm.agents.pets import PETSConfig, run_pets

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
    from agentwm.agents.worldmodels_hs import HSConfig, train_world_models

    runs = []
    for s in seeds:
        config = HSConfig(seed=s, frames=600 if quick else 2000, vae_epochs=2 if quick else 5,
                          rnn_epochs=5 if quick else 20, generations=5 if quick else 15)
        _, _, summary = train_world_models(config)
        runs.append({"seed": s, "eval_mean_return": summary["eval_mean_return"],
                     "random_mean_return": summary["random_mean_return"],
                     "best_dream_return": max(summary["dream_return_curve"]), "wall_s": summary["wall_s"]})
    return {
        "env": "CartPole-v1 pixels (64x64)", "runs": runs,
        "score": {"mean_eval_return": float(np.mean([r["eval_mean_return"] for r in runs])),
                  "mean_random_return": float(np.mean([r["random_mean_return"] for r in runs]))},
    }


def bench_planet(seeds: list[int], quick: bool) -> dict[str, Any]:
    from agentwm.agents.planet import PlaNetConfig, train_planet

    runs = []
    for s in seeds:
        config = PlaNetConfig(seed=s, seed_episodes=2 if quick else 3, episodes=2 if quick else 10,
                              train_steps=30 if quick else 100, max_steps=50 if quick else None, eval_episodes=1)
        _, summary = train_planet(config)
        runs.append({"seed": s, "seed_episode_returns": summary["seed_episode_returns"],
                     "episode_returns": summary["episode_returns"], "eval_returns": summary["eval_returns"],
                     "wall_s": summary["wall_s"]})
    return {
        "env": "dmc:cartpole-swingup (proprio, action repeat 8)", "runs": runs,
        "score": {"mean_eval_return": float(np.mean([r["eval_returns"][0] for r in runs])),
                  "mean_random_return": float(np.mean([x for r in runs for x in r["seed_episode_returns"]]))},
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
        print(json.dumps({"family": name, "seeds": seeds, "quick": args.quick, **result,
                          "wall_s": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
