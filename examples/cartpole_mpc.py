"""Learn a world model of CartPole from 1,000 random steps, then control it by planning.

    python examples/cartpole_mpc.py

The same calls work for any gymnasium task with vector observations: collect data, fit the
ensemble, and ask a planner for an action at every real step. The ensemble learns the dynamics;
CartPole's public rules give reward and episode end, and scoring by return minus disagreement
keeps the plan where the model has data.
"""

import gymnasium as gym
import torch

from agentwm.envs.gym import KNOWN_RULES, action_spec_of, collect_random_transitions, to_env_action
from agentwm.planning import RandomShooting, Scorer
from agentwm.worldmodels import EnsembleConfig, EnsembleDynamics, WithTaskRules

torch.manual_seed(0)
env = gym.make("CartPole-v1")
data = collect_random_transitions("CartPole-v1", 1000, seed=0)
model = EnsembleDynamics(obs_dim=4, action_spec=action_spec_of(env.action_space), config=EnsembleConfig())
print("holdout metrics:", model.fit(data))
model.disagreement = True  # report member disagreement in every rollout
rules = KNOWN_RULES["CartPole-v1"]
world = WithTaskRules(model, termination=rules.termination, reward=rules.reward)

planner = RandomShooting(world, horizon=30, samples=100, score=Scorer("disagreement_penalized", kappa=5.0), generator=0)
obs, _ = env.reset(seed=1000)
carry, total, done = None, 0.0, False
while not done:
    state = world.observe(torch.as_tensor(obs, dtype=torch.float32)[None])
    plan = planner.plan(state, carry)  # imagine 100 sequences × 30 steps, keep the best first action
    carry = plan.carry
    obs, reward, terminated, truncated, _ = env.step(to_env_action(plan.action[0], model.action_spec))
    total += float(reward)
    done = terminated or truncated
print("return:", total)
