"""Dreamer on CartPole-v1 from Python: train (resumably), evaluate, then act with the trained agent
in a loop of your own, as you would to deploy it.

    python examples/dreamer_cartpole.py                       # 30,000 frames: ~50 min on one core
    python examples/dreamer_cartpole.py --quick               # 1,000 frames, a smoke run (~30 s)
    python examples/dreamer_cartpole.py --logdir runs/mine    # run it again to continue a stopped run

The `tiny` and `cartpole` presets are the measured CPU recipe (docs/dreamer.md: ≥ 475 within 30k frames on
6 of 6 seeds). Stop it with Ctrl-C at any time: the frame reached is checkpointed, and the next run
of this script resumes there.
"""

import argparse

import gymnasium as gym
import torch

from agentwm.agents.dreamer import evaluate_logdir, load_agent, resolve_config, train
from agentwm.agents.dreamer.evaluation import action_to_env, obs_to_tensor
from agentwm.envs.gym import action_spec_of

parser = argparse.ArgumentParser()
parser.add_argument("--logdir", default="runs/dreamer_cartpole")
parser.add_argument("--quick", action="store_true")
args = parser.parse_args()

# 1. Train. resume=True continues the run in logdir if there is one and starts it otherwise.
quick = ["steps=1000", "prefill=300", "eval_every=1000", "eval_episodes=2"] if args.quick else []
config = resolve_config(["tiny", "cartpole"], quick, env="CartPole-v1")
summary = train(config, args.logdir, resume=True)
print(f"trained to {summary['frames']} frames ({summary['updates']} updates); last eval {summary['eval_return']}")
if summary["stopped_by"] is not None:
    raise SystemExit(f"stopped by {summary['stopped_by']}; run again to continue")

# 2. Evaluate the newest checkpoint: greedy actions, fresh episodes.
result = evaluate_logdir(args.logdir, episodes=5)
print(f"greedy eval over 5 episodes: {result['mean_return']:.1f} ± {result['std_return']:.1f}")

# 3. Act in your own loop. The agent keeps a recurrent state (the carry): start it per episode, pass
# is_first=True on the first step, and feed back the carry it returns.
agent, frames = load_agent(args.logdir)
env = gym.make("CartPole-v1")
spec = action_spec_of(env.action_space)
obs, _ = env.reset(seed=2024)
carry, first, total, done = agent.initial_carry(1), True, 0.0, False
while not done:
    action, carry = agent.act(obs_to_tensor(obs[None]), torch.tensor([first]), carry, "eval")
    obs, reward, terminated, truncated, _ = env.step(action_to_env(action, spec)[0])
    total, first, done = total + float(reward), False, terminated or truncated
print(f"one episode in our own loop with the {frames}-frame agent: return {total:.0f}")
