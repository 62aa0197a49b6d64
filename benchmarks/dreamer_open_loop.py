"""How far ahead does a trained Dreamer world model predict what really happens? Diagnoses drift.

    python benchmarks/dreamer_open_loop.py --logdir runs/cartpole --episodes 3

Loads a run's newest checkpoint and plays greedy episodes. Every ``--every`` steps it takes the
posterior state there and imagines the next steps with the actions the policy really took, several
latent samples each, then compares the decoded observation (mean over samples) with the real one
``k`` (``--ahead``) steps later. Reported per observation dimension and ``k``: the mean absolute
error, and the mean absolute real change over the same ``k`` steps. Where the error is as large as
the change, the actor cannot see that change in imagination (on CartPole: the cart's slow drift,
see docs/dreamer.md).

With ``--flip N`` (discrete actions) each window is imagined a second time with its first N actions
replaced by another action, and the same changed actions are replayed from a copy of the real env:
``action_effect`` then compares the imagined effect of the change (flipped minus taken, per
dimension and ``k``) with the real one. ``slope`` is the least-squares factor from the real effect
to the imagined one: 1 when the model responds to actions as the env does, below 1 when it
predicts what the data's policy usually did next rather than what these actions do. Vector
observations only. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import gymnasium as gym
import numpy as np
import torch
from _results import write_result
from torch import Tensor

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.evaluation import action_to_env, env_specs, load_agent, obs_to_tensor
from agentwm.envs.gym import make_env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", required=True)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--every", type=int, default=20, help="steps between imagined windows")
    p.add_argument("--samples", type=int, default=8, help="latent samples per window")
    p.add_argument("--ahead", type=int, nargs="+", default=[8, 16, 32], help="imagined steps compared")
    p.add_argument("--flip", type=int, default=0, help="also imagine each window with its first N actions changed")
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()
    if min(args.ahead) < 1 or min(args.every, args.samples, args.episodes) < 1 or args.flip < 0:
        p.error("--ahead, --every, --samples and --episodes take positive numbers, --flip a count")
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
    if args.flip and spec.kind != "discrete":
        sys.exit(f"dreamer_open_loop: --flip needs discrete actions, {cfg.env} has {spec.kind} ones")
    torch.manual_seed(args.seed)  # the posterior samples while playing: the same episodes every time
    horizon, gen = max(steps_ahead), torch.Generator().manual_seed(args.seed)
    errors: dict[int, list[np.ndarray]] = {k: [] for k in steps_ahead}
    changes: dict[int, list[np.ndarray]] = {k: [] for k in steps_ahead}
    effects: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in steps_ahead}  # (imagined, real)
    lengths = []
    for i in range(args.episodes):
        env = make_env(cfg.env, seed=args.seed + i)
        obs, _ = env.reset(seed=args.seed + i)
        carry, first, actions, states = agent.initial_carry(1), True, [], []
        seen: list[np.ndarray] = []
        envs: list[gym.Env | None] = []  # a copy of the env at each window's start, for --flip
        while True:
            envs.append(copy.deepcopy(env) if args.flip and len(seen) % args.every == 0 else None)
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
            noise = gen.get_state()  # the flipped window below draws the same latent noise
            with torch.no_grad():
                roll = agent.wm.imagine(start, acts, horizon, generator=gen)
                decoded = agent.wm.decode(roll.states).mean(1).numpy()  # [H+1, D]: states[k] is obs t+k
            for k in steps_ahead:
                errors[k].append(np.abs(decoded[k] - real[t + k]))
                changes[k].append(np.abs(real[t + k] - real[t]))
            if (env_at_t := envs[t]) is not None:
                imagined_fx, real_fx = flipped_effect(agent, start, acts, decoded, env_at_t, real[t:], args.flip, noise)
                for k in steps_ahead:
                    if k < len(real_fx):  # the changed actions may end the real episode sooner
                        effects[k].append((imagined_fx[k], real_fx[k]))
    ahead = {
        str(k): {"error": np.mean(errors[k], 0).round(4).tolist(), "real_change": np.mean(changes[k], 0).round(4).tolist()}
        for k in steps_ahead if errors[k]
    }  # fmt: skip
    result = {
        "benchmark": "dreamer_open_loop", "env": cfg.env, "frames": frames, "episode_lengths": lengths,
        "windows": len(errors[steps_ahead[0]]), "samples": args.samples, "ahead": ahead,
    }  # fmt: skip
    if args.flip:
        result["flip"] = args.flip
        result["action_effect"] = {str(k): effect_summary(effects[k]) for k in steps_ahead if effects[k]}
    print(json.dumps(write_result("dreamer_open_loop", result, variant=Path(args.logdir).name)))


def flipped_effect(
    agent: DreamerAgent, start: dict[str, Tensor], acts: Tensor, decoded: np.ndarray, env: gym.Env,
    real: np.ndarray, n_flip: int, noise: Tensor,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Imagined and real change of the observation when the window's first ``n_flip`` actions change.

    Returns two arrays [steps, D]: imagined (flipped minus taken, decoded means over the same latent
    noise) and real (the env copy stepped with the flipped actions, minus the episode as played), cut
    where the real one ends.
    """
    flipped = acts.clone()
    flipped[:n_flip] = flipped[:n_flip].roll(1, dims=-1)  # one-hot: the next action index
    gen = torch.Generator()
    gen.set_state(noise)
    with torch.no_grad():
        roll = agent.wm.imagine(start, flipped, acts.shape[0], generator=gen)
        imagined = agent.wm.decode(roll.states).mean(1).numpy() - decoded
    real_flip = [real[0]]
    for a in flipped[:, 0]:
        obs, _, term, trunc, _ = env.step(int(a.argmax()))
        real_flip.append(np.asarray(obs, np.float32))
        if term or trunc or len(real_flip) >= len(real):
            break
    steps = min(len(real_flip), len(real))
    return imagined[:steps], np.stack(real_flip[:steps]) - real[:steps]


def effect_summary(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, object]:
    """Per dimension: mean |imagined| and |real| effect, the slope real -> imagined, their correlation."""
    imagined, real = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    slope = (imagined * real).sum(0) / np.maximum((real**2).sum(0), 1e-12)
    corr = [float(np.corrcoef(imagined[:, d], real[:, d])[0, 1]) if real[:, d].std() > 0 else float("nan")
            for d in range(real.shape[1])]  # fmt: skip
    return {"windows": len(pairs), "imagined": np.abs(imagined).mean(0).round(4).tolist(),
            "real": np.abs(real).mean(0).round(4).tolist(), "slope": slope.round(3).tolist(),
            "correlation": np.round(corr, 3).tolist()}  # fmt: skip


if __name__ == "__main__":
    main()
