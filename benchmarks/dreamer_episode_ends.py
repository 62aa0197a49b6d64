"""Does a trained Dreamer world model know where episodes end? Diagnoses late failures.

    python benchmarks/dreamer_episode_ends.py --logdir runs/cartpole --episodes 10

Loads the newest checkpoint of a run and plays greedy episodes. For each one it prints how it
ended (terminated or truncated, after how many steps, the final observation when it is a short
vector) and what the continue head believes along the way: its probability that the episode goes
on at the terminal observation itself (a model that has learned the failure puts it near 0) and
at the steps before it, plus the critic's value there. It also counts the terminal transitions
stored in the run's replay, the continue head's only teacher. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import numpy as np
import torch
from _results import write_result

from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.agents.dreamer.evaluation import action_to_env, env_specs, load_agent, obs_to_tensor
from agentwm.envs.gym import make_env

BEFORE = (1, 5, 10, 30)  # steps before the end at which beliefs are reported


def _replay_terminals(logdir: Path) -> dict[str, int]:
    path = ckpt.latest(logdir)
    if path is None:
        return {}
    blocks, _ = ckpt.replay_arrays(path)
    flags = {k: np.concatenate([b[k] for _, b in blocks], axis=1) for k in ("is_terminal", "is_first")}
    return {"rows": int(flags["is_first"].size), "terminals": int(flags["is_terminal"].sum()),
            "episode_starts": int(flags["is_first"].sum())}  # fmt: skip


def play(agent: DreamerAgent, cfg: DreamerConfig, seed: int) -> dict[str, Any]:
    """One greedy episode; the continue head's and critic's beliefs at every posterior state."""
    _, spec = env_specs(cfg)
    env = make_env(cfg.env, seed=seed)
    obs, _ = env.reset(seed=seed)
    carry, first, cont, value = agent.initial_carry(1), True, [], []
    while True:
        action, carry = agent.act(obs_to_tensor(obs[None], agent.device), torch.tensor([first]), carry, "eval")
        with torch.no_grad():
            feat = agent.wm.feat({"deter": carry["deter"], "stoch": carry["stoch"]})
            cont.append(float(torch.sigmoid(agent.wm.cont_head(feat)[0, 0])))
            value.append(float(agent.critic.value(feat)[0]))
        obs, _, term, trunc, _ = env.step(action_to_env(action, spec)[0])
        first = False
        if term or trunc:
            break
    steps = len(cont)
    # Fold the last observation in too: the state the continue head should call terminal.
    _, carry = agent.act(obs_to_tensor(obs[None], agent.device), torch.tensor([False]), carry, "eval")
    with torch.no_grad():
        feat = agent.wm.feat({"deter": carry["deter"], "stoch": carry["stoch"]})
        cont_last = float(torch.sigmoid(agent.wm.cont_head(feat)[0, 0]))
    out: dict[str, Any] = {"steps": steps, "ended": "terminated" if term else "truncated",
                           "continue_at_last_obs": round(cont_last, 3)}  # fmt: skip
    if obs.ndim == 1 and obs.size <= 8:
        out["last_obs"] = [round(float(x), 3) for x in obs]
    out["continue_before"] = {k: round(cont[-k], 3) for k in BEFORE if k <= steps}
    out["value_before"] = {k: round(value[-k], 1) for k in BEFORE if k <= steps}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", required=True)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logdir = Path(args.logdir)
    try:
        agent, frames = load_agent(logdir, "cpu")
    except (OSError, ValueError) as err:  # no run there, or an unreadable checkpoint (CheckpointError)
        sys.exit(f"dreamer_episode_ends: {err}")
    cfg = agent.config
    torch.manual_seed(args.seed)
    episodes = [play(agent, cfg, args.seed + i) for i in range(args.episodes)]
    terminated = [e for e in episodes if e["ended"] == "terminated"]
    print(json.dumps(write_result("dreamer_episode_ends", {
        "benchmark": "dreamer_episode_ends", "env": cfg.env, "frames": frames,
        "replay": _replay_terminals(logdir), "terminated": len(terminated), "episodes": episodes,
        "mean_continue_at_terminal_obs": (
            round(float(np.mean([e["continue_at_last_obs"] for e in terminated])), 3) if terminated else None),
    }, variant=Path(args.logdir).name)))  # fmt: skip


if __name__ == "__main__":
    main()
