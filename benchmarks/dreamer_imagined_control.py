"""Does a trained Dreamer's imagination rate a known-good controller above its own actor?

    python benchmarks/dreamer_imagined_control.py --logdir runs/cartpole
    python benchmarks/dreamer_imagined_control.py --logdir runs/cartpole --gains 0.1 0.3 1 0.3

Plays one greedy episode of a run's newest checkpoint (vector observations, two discrete actions).
Every ``--every`` steps it imagines ``--horizon`` steps from the posterior there, ``--samples``
latent samples each, under (a) the actor as it imagines in training (sampled) and (b) a linear
state-feedback controller acting on the *decoded* observation (action 1 where ``gains . obs > 0``;
with the default gains the real CartPole cart stays within ~0.16 of the centre). For each it reports
the imagined lambda-return (the number the actor is trained to raise), the critic's value at the
last imagined step, the smallest mean continue probability on the way, and the decoded observation
at the end; and, from a copy of the real env at the same step, the controller's real outcome over
the same steps. Where the controller really recovers but imagination rates it below the actor, the
actor cannot learn that recovery from imagination (docs/dreamer.md, CartPole). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import numpy as np
import torch
from _results import write_result
from torch import Tensor

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.evaluation import env_specs, load_agent, obs_to_tensor
from agentwm.core.returns import lambda_return
from agentwm.envs.gym import make_env

Policy = Callable[[Mapping[str, Tensor]], Tensor]


def imagined(agent: DreamerAgent, start: dict[str, Tensor], policy: Policy, horizon: int, seed: int) -> dict[str, object]:
    """Imagine ``horizon`` steps from ``start`` (already tiled over samples) under ``policy``."""
    cfg, wm = agent.config, agent.wm
    with torch.no_grad():
        roll = wm.imagine(start, policy, horizon, generator=torch.Generator().manual_seed(seed))
        values = agent.critic.value(wm.feat(roll.states)).float()
        ret = lambda_return(roll.rewards.float(), roll.continues.float(), values[1:], cfg.gamma, cfg.lam)[0]
        end = wm.decode({k: v[-1] for k, v in roll.states.items()}).mean(0)
    n = ret.shape[0]
    return {"return": round(float(ret.mean()), 2), "return_se": round(float(ret.std() / n**0.5), 2),
            "value_end": round(float(values[-1].mean()), 2),
            "min_continue": round(float(roll.continues.float().mean(1).min()), 4),
            "obs_end": [round(float(x), 3) for x in end]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", required=True)
    p.add_argument("--gains", type=float, nargs="+", default=[0.01, 0.1, 1.0, 0.2],
                   help="controller gains on the observation (default: a gentle CartPole centring controller)")
    p.add_argument("--every", type=int, default=50, help="steps between imagined windows")
    p.add_argument("--horizon", type=int, default=None, help="imagined steps (default: the run's horizon)")
    p.add_argument("--samples", type=int, default=64, help="latent samples per window")
    p.add_argument("--seed", type=int, default=12345)
    args = p.parse_args()
    if min(args.every, args.samples) < 1 or (args.horizon is not None and args.horizon < 1):
        p.error("--every, --samples and --horizon take positive numbers")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        agent, frames = load_agent(Path(args.logdir), "cpu")
    except (OSError, ValueError) as err:  # no run there, or an unreadable checkpoint (CheckpointError)
        sys.exit(f"dreamer_imagined_control: {err}")
    cfg, wm = agent.config, agent.wm
    obs_shape, spec = env_specs(cfg)
    if len(obs_shape) != 1 or spec.kind != "discrete" or spec.dim != 2:
        sys.exit(f"dreamer_imagined_control: needs vector observations and two discrete actions; {cfg.env} has "
                 f"{tuple(obs_shape)} and {spec.kind} x{spec.dim}")  # fmt: skip
    if len(args.gains) != obs_shape[0]:
        sys.exit(f"dreamer_imagined_control: --gains needs {obs_shape[0]} numbers (one per observation), got {len(args.gains)}")
    gains = torch.tensor(args.gains)
    horizon = args.horizon or cfg.horizon

    def actor(state: Mapping[str, Tensor]) -> Tensor:
        return agent.actor.sample(wm.feat(state), "explore")

    def controller(state: Mapping[str, Tensor]) -> Tensor:
        push = (wm.decode(state).float() @ gains > 0).long()
        return torch.nn.functional.one_hot(push, 2).float()

    env = make_env(cfg.env, seed=args.seed)
    obs, _ = env.reset(seed=args.seed)
    carry, first, step, windows = agent.initial_carry(1), True, 0, []
    while True:
        action, carry = agent.act(obs_to_tensor(obs[None]), torch.tensor([first]), carry, "eval")
        if step % args.every == 0:
            start = {"deter": carry["deter"].expand(args.samples, -1),
                     "stoch": carry["stoch"].expand(args.samples, -1, -1)}  # fmt: skip
            real_env, real_obs, real_return = copy.deepcopy(env), obs, 0.0
            for _ in range(horizon):  # the controller on the true observations, from the same state
                real_obs, reward, term, trunc, _ = real_env.step(int(np.dot(args.gains, real_obs) > 0))
                real_return += float(reward)
                if term or trunc:
                    break
            windows.append({"step": step, "obs": [round(float(x), 3) for x in obs],
                            "actor": imagined(agent, start, actor, horizon, args.seed + step),
                            "controller": imagined(agent, start, controller, horizon, args.seed + step),
                            "controller_real": {"reward": real_return, "ended": bool(term),
                                                "obs_end": [round(float(x), 3) for x in real_obs]}})  # fmt: skip
        obs, _, term, trunc, _ = env.step(int(action.argmax()))
        step, first = step + 1, False
        if term or trunc:
            break
    below = [w for w in windows if w["controller"]["return"] < w["actor"]["return"]]  # type: ignore[index]
    print(json.dumps(write_result("dreamer_imagined_control", {
        "benchmark": "dreamer_imagined_control", "env": cfg.env, "frames": frames, "episode_length": step,
        "episode_end_obs": [round(float(x), 3) for x in obs], "gains": args.gains, "horizon": horizon,
        "samples": args.samples, "windows_controller_rated_below_actor": f"{len(below)} of {len(windows)}",
        "windows": windows,
    }, variant=Path(args.logdir).name)))  # fmt: skip


if __name__ == "__main__":
    main()
