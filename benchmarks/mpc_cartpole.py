"""The README's main job over several seeds: ensemble from 1,000 random CartPole steps + MPC.

Prints one JSON object: per seed, the real episode returns under uncertainty-aware random
shooting (the default) and under plain mean scoring, plus ms per decision and wall time.

    python benchmarks/mpc_cartpole.py [--seeds 0 1 2] [--episodes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from agentwm.agents.mpc.loop import MPCConfig, run_mpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--scores", nargs="+", default=["disagreement_penalized", "mean"])
    args = parser.parse_args()
    out: dict[str, object] = {"benchmark": "mpc_cartpole", "setting": MPCConfig().model_dump()}
    for score in args.scores:
        rows = []
        for seed in args.seeds:
            start = time.perf_counter()
            result = run_mpc(MPCConfig(seed=seed, episodes=args.episodes, score=score))
            rows.append({
                "seed": seed,
                "episode_returns": result["episode_returns"],
                "ms_per_decision": result["ms_per_decision"],
                "wall_s": round(time.perf_counter() - start, 1),
            })
        returns = [r for row in rows for r in row["episode_returns"]]
        out[score] = {"mean_return": sum(returns) / len(returns), "runs": rows}
    print(json.dumps(out))
    write_result("mpc_cartpole", out)


if __name__ == "__main__":
    main()
