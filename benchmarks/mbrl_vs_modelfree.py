"""Model-based vs model-free on CartPole-v1: real environment steps until an episode returns >= 475.

Model-based (the PETS loop of ``agentwm.agents.mpc.pets``, reusing ``agents/mpc/loop.py``'s task rules):
1,000 random transitions → fit the 5-member ensemble → one MPC episode → add its transitions →
refit → … until an episode reaches 475 (at most ``--episodes`` MPC episodes). Every step counts,
the 1,000 random ones included. Three controllers start from the same fitted model per seed:

* ``random_shooting``: 50 sequences × horizon 20, one particle each;
* ``cem``: CEM with 50 samples × horizon 20, 3 iterations, one particle each;
* ``ensemble_gated``: random shooting 50 × 20 with 5 particles (trajectory sampling, one per member)
  that executes the planned action only where the members agree, else the action they agree on
  most. "Agree": one-step disagreement at most 2 × the 90th percentile of that on the controller's
  own planned actions so far this episode (never below the 99th percentile on its training data,
  which alone is the threshold for the first 20 steps). Fallback rates and disagreement are reported.

Episode ends come from CartPole's public rules (``rules="known"``, PETS practice); only the dynamics
are learned. Imagined steps are scored by their margin to those termination bounds (upright pole,
centred cart: ``agentwm.agents.mpc.loop.MARGIN_REWARDS``), not by CartPole's flat +1 per step, under
which every candidate that survives the 20 imagined steps scores the same and the plan drifts until
the pole falls (~60-170 steps in the first episode). The real return is what is counted.
Model-free: Double DQN (``agentwm.agents.dyna.dqn``) on the real reward, counted until a training
episode first reaches 475, capped at ``--dqn-steps``. Runs that never get there are shown at the
cap and counted as not reached.

Prints one JSON object and a table; saves ``benchmarks/out/mbrl_vs_modelfree.png``.

    python benchmarks/mbrl_vs_modelfree.py                 # 5 seeds, ~25 min on 2 idle cores
    python benchmarks/mbrl_vs_modelfree.py --quick         # 1 seed, short caps: a smoke test
    python benchmarks/mbrl_vs_modelfree.py --seeds 3 4 2> b.log   # seeds split over processes, then
    python benchmarks/mbrl_vs_modelfree.py --aggregate a.log b.log  # one table and plot from their progress lines
    (later logs override earlier ones per seed and method, so ``--methods cem`` can redo one row)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from agentwm.agents.dyna.dqn import DQNConfig, run_dqn
from agentwm.agents.mpc.pets import PETSConfig, fit_ensemble, run_pets
from agentwm.envs.gym import action_spec_of, collect_random_transitions

TARGET = 475.0
CONTROLLERS: dict[str, dict[str, Any]] = {
    "random_shooting": {"planner": "shooting", "samples": 50, "horizon": 20, "particles": 1, "gate": False},
    "cem": {"planner": "cem", "samples": 50, "horizon": 20, "iterations": 3, "particles": 1, "gate": False},
    "ensemble_gated": {"planner": "shooting", "samples": 50, "horizon": 20, "particles": 5, "gate": True,
                       "fallback": "safe", "gate_reference": "planned", "gate_quantile": 0.9, "gate_scale": 2.0},
}
ABLATIONS: dict[str, dict[str, Any]] = {  # not in the default run; pick with --methods
    "ensemble_ungated": {**CONTROLLERS["ensemble_gated"], "gate": False},  # what the gate costs
    "ensemble_gated_cautious": {**CONTROLLERS["ensemble_gated"], "fallback": "cautious"},  # worst-member re-plan
    "random_shooting_task_reward": {**CONTROLLERS["random_shooting"], "planning_reward": "task"},  # flat +1
}


def run_seed(
    seed: int, episodes: int, epochs: int | None, dqn_steps: int, max_steps: int | None, methods: list[str]
) -> dict[str, Any]:
    import gymnasium as gym

    out: dict[str, Any] = {}
    data = collect_random_transitions("CartPole-v1", 1000, seed=seed)
    spec = action_spec_of(gym.make("CartPole-v1").action_space)
    t0 = time.perf_counter()
    base = PETSConfig(seed=seed, epochs=epochs, rules="known", planning_reward="margin")
    model = fit_ensemble(data, spec, base)
    fit_s = time.perf_counter() - t0
    for name, settings in {**CONTROLLERS, **ABLATIONS}.items():
        if name not in methods:
            continue
        config = base.model_copy(update={**settings, "max_episodes": episodes, "target_return": TARGET,
                                         "max_steps": max_steps})
        summary = run_pets(PETSConfig.model_validate(config.model_dump()), data=data, model=model)
        summary["wall_s"] = round(summary["wall_s"] + fit_s, 1)  # the shared first fit counts for each
        out[name] = summary
        _progress(seed, name, summary)
    if "dqn" in methods:
        out["dqn"] = {**run_dqn(DQNConfig(seed=seed, max_steps=dqn_steps, target_return=TARGET)), "seed": seed}
        _progress(seed, "dqn", out["dqn"])
    return out


def _progress(seed: int, name: str, summary: dict[str, Any]) -> None:
    # One line per finished run on stderr, so long runs show partial results as they go.
    keep = ("steps_to_target", "episode_returns", "real_steps", "wall_s")
    line = {"seed": seed, "method": name, **{k: summary.get(k) for k in keep}}
    if summary.get("gate"):
        line["episodes"] = summary["episodes"]
    print(json.dumps(line), file=sys.stderr, flush=True)


def from_progress(paths: list[str]) -> list[dict[str, Any]]:
    """Per-seed results rebuilt from the progress lines of one or more runs (complete seeds only)."""
    by_seed: dict[int, dict[str, Any]] = {}
    for path in paths:
        for text in Path(path).read_text().splitlines():
            if text.startswith("{") and '"method"' in text:
                line = json.loads(text)
                by_seed.setdefault(line["seed"], {})[line["method"]] = line
    names = {*CONTROLLERS, "dqn"}
    return [runs for _, runs in sorted(by_seed.items()) if names <= set(runs)]


def table(results: list[dict[str, Any]], caps: dict[str, int]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name in [*CONTROLLERS, "dqn"]:
        steps = [r[name]["steps_to_target"] for r in results]
        reached = [s for s in steps if s is not None]
        rows[name] = {
            "reached": f"{len(reached)}/{len(steps)}",
            "median_steps": float(np.median(reached)) if reached else None,
            "steps_per_seed": steps,
            "cap": caps[name],
            "mean_wall_s": round(float(np.mean([r[name]["wall_s"] for r in results])), 1),
        }
        if name == "ensemble_gated":
            episodes = [e for r in results for e in r[name].get("episodes", [])]
            for key in ("fallback_rate", "disagreement_mean", "disagreement_max", "threshold"):
                values = [e[key] for e in episodes if key in e]
                rows[name][f"mean_{key}"] = float(f"{np.mean(values):.3g}") if values else None
    return rows


def plot(results: list[dict[str, Any]], caps: dict[str, int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*CONTROLLERS, "dqn"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, name in enumerate(names):
        for r in results:
            s = r[name]["steps_to_target"]
            y, marker = (s, "o") if s is not None else (caps[name], "x")
            ax.scatter(i + np.random.uniform(-0.1, 0.1), y, marker=marker, color=f"C{i}")
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("real env steps to return >= 475 (x: not reached, at cap)")
    ax.set_title("CartPole-v1: model-based (1k random steps + MPC) vs DQN")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=10, help="max MPC episodes (refit after each)")
    parser.add_argument("--epochs", type=int, default=None, help="cap on ensemble fit epochs")
    parser.add_argument("--dqn-steps", type=int, default=100_000, help="DQN step budget")
    parser.add_argument("--methods", nargs="+", default=[*CONTROLLERS, "dqn"], choices=[*CONTROLLERS, "dqn", *ABLATIONS],
                        help="run only these (the table needs all four: combine logs with --aggregate)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 short episode, 2k DQN steps")
    parser.add_argument("--aggregate", nargs="+", default=None, metavar="LOG",
                        help="no new runs: build the table and plot from the stderr progress lines of earlier runs")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "mbrl_vs_modelfree.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    max_steps = None
    if args.quick:
        args.seeds, args.episodes, args.epochs, args.dqn_steps, max_steps = [0], 1, 10, 2000, 100
    start = time.perf_counter()
    if args.aggregate:
        results = from_progress(args.aggregate)
        args.seeds = [r["dqn"]["seed"] for r in results]
    else:
        results = [run_seed(s, args.episodes, args.epochs, args.dqn_steps, max_steps, args.methods) for s in args.seeds]
        if set(args.methods) != {*CONTROLLERS, "dqn"}:
            return  # partial runs only leave their progress lines; --aggregate builds the table
    mpc_cap = 1000 + args.episodes * (max_steps or 500)
    caps = {**{name: mpc_cap for name in CONTROLLERS}, "dqn": args.dqn_steps}
    rows = table(results, caps)
    plot(results, caps, Path(args.out))
    print(f"{'method':<16}{'reached':>9}{'median steps':>14}{'wall s':>9}  steps per seed")
    for name, row in rows.items():
        median = "-" if row["median_steps"] is None else f"{row['median_steps']:.0f}"
        per_seed = " ".join("-" if s is None else str(s) for s in row["steps_per_seed"])
        print(f"{name:<16}{row['reached']:>9}{median:>14}{row['mean_wall_s']:>9}  {per_seed}")
    for name in ABLATIONS:
        have = [r for r in results if name in r]
        if have:
            steps = [r[name]["steps_to_target"] for r in have]
            print(f"ablation {name}: seeds {[r['dqn'].get('seed') for r in have]} steps {steps} "
                  f"returns {[r[name]['episode_returns'] for r in have]}")
    gated = rows["ensemble_gated"]
    print(f"ensemble_gated: fallback on {100 * (gated['mean_fallback_rate'] or 0):.1f}% of steps, mean disagreement "
          f"{gated['mean_disagreement_mean']}, max {gated['mean_disagreement_max']}, threshold {gated['mean_threshold']}")
    print(json.dumps(write_result("mbrl_vs_modelfree", {
        "benchmark": "mbrl_vs_modelfree", "target_return": TARGET, "seeds": args.seeds, "quick": args.quick,
        "table": rows, "plot": args.out, "wall_s": round(time.perf_counter() - start, 1),
        "runs": [{k: {kk: vv for kk, vv in v.items() if kk != "episodes"} for k, v in r.items()} for r in results],
        "note": "aggregated from progress logs" if args.aggregate else None,
    }, variant="quick" if args.quick else None)))


if __name__ == "__main__":
    main()
