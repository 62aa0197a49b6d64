"""How far ahead does a trained Dreamer world model predict what really happens? Diagnoses drift.

    python benchmarks/dreamer_open_loop.py --logdir runs/cartpole --episodes 3

Loads a run's newest checkpoint and plays greedy episodes. Every ``--every`` steps it takes the
posterior state there and imagines the next steps with the actions the policy really took, several
latent samples each, then compares the decoded observation (mean over samples) with the real one
``k`` (``--ahead``) steps later. Reported per observation dimension and ``k``: the mean absolute
error, and the mean absolute real change over the same ``k`` steps. Where the error is as large as
the change, the actor cannot see that change in imagination (on CartPole: the cart's slow drift,
see docs/dreamer.md). Vector observations only. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import numpy as np
import torch
from _results import write_result

from agentwm.agents.dreamer.evaluation import action_to_env, env_specs, load_agent, obs_to_tensor
from agentwm.envs.gym import make_env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", required=True)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--every", type=int, default=20, help="steps between imagined windows")
    p.add_argument("--samples", type=int, default=8, help="latent samples per window")
    p.add_argument("--ahead", type=int, nargs="+", default=[8, 16, 32], help="imagined steps compared")
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()
    if min(args.ahead) < 1 or min(args.every, args.samples, args.episodes) < 1:
        p.error("--ahead, --every, --samples and --episodes take positive numbers")
    steps_ahead = sorted(set(args.ahead))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        agent, frames = load_agent(Path(args.logdir), "cpu")
    except (OSError, ValueError) as err:  # no run there, or an unreadable checkpoint (CheckpointError)
        sys.exit(f"dreamer_open_loop: {err}")
    cfg = agent.config
    obs_shape, spec = env_specs(cfg)
    if len(obs_shape) != 1:
        sys.exit(f"dreamer_open_loop: vector observations only, {cfg.env} gives {tuple(obs_shape)}")
    horizon, gen = max(steps_ahead), torch.Generator().manual_seed(args.seed)
    errors: dict[int, list[np.ndarray]] = {k: [] for k in steps_ahead}
    changes: dict[int, list[np.ndarray]] = {k: [] for k in steps_ahead}
    lengths = []
    for i in range(args.episodes):
        env = make_env(cfg.env, seed=args.seed + i)
        obs, _ = env.reset(seed=args.seed + i)
        carry, first, seen, actions, states = agent.initial_carry(1), True, [], [], []
        while True:
            action, carry = agent.act(obs_to_tensor(obs[None], agent.device), torch.tensor([first]), carry, "eval")
            seen.append(np.asarray(obs, np.float32))
            actions.append(action[0])
            states.append({"deter": carry["deter"], "stoch": carry["stoch"]})  # the posterior at obs
            obs, _, term, trunc, _ = env.step(action_to_env(action, spec)[0])
            first = False
            if term or trunc:
                break
        lengths.append(len(seen))
        real = np.stack(seen)
        for t in range(args.every, len(seen) - horizon, args.every):
            start = {k: v.expand(args.samples, *v.shape[1:]) for k, v in states[t].items()}
            acts = torch.stack(actions[t : t + horizon])[:, None].expand(horizon, args.samples, -1)
            with torch.no_grad():
                roll = agent.wm.imagine(start, acts, horizon, generator=gen)
                decoded = agent.wm.decode(roll.states).mean(1).numpy()  # [H+1, D]: states[k] is obs t+k
            for k in steps_ahead:
                errors[k].append(np.abs(decoded[k] - real[t + k]))
                changes[k].append(np.abs(real[t + k] - real[t]))
    ahead = {
        str(k): {"error": np.mean(errors[k], 0).round(4).tolist(), "real_change": np.mean(changes[k], 0).round(4).tolist()}
        for k in steps_ahead if errors[k]
    }  # fmt: skip
    print(json.dumps(write_result("dreamer_open_loop", {
        "benchmark": "dreamer_open_loop", "env": cfg.env, "frames": frames, "episode_lengths": lengths,
        "windows": len(errors[steps_ahead[0]]), "samples": args.samples, "ahead": ahead,
    }, variant=Path(args.logdir).name)))  # fmt: skip


if __name__ == "__main__":
    main()
