"""Learn a world model of CartPole from 1,000 random steps, then control it by planning.

    python examples/cartpole_mpc.py

The same three calls work for any gymnasium task with vector observations: collect data, fit the
ensemble, and ask a planner for an action at every real step.
"""

import gymnasium as gym
import torch

from agentwm.agents.envs import action_spec_of, collect_random_transitions, to_env_action
from agentwm.planning import CEM
from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics

torch.manual_seed(0)
env = gym.make("CartPole-v1")
data = collect_random_transitions("CartPole-v1", 1000, seed=0)
model = EnsembleDynamics(obs_dim=4, action_spec=action_spec_of(env.action_space), config=EnsembleConfig())
print("holdout metrics:", model.fit(data))

planner = CEM(model, horizon=20, samples=50, elites=5, iterations=3, gamma=0.99)
obs, _ = env.reset(seed=1)
carry, total, done = None, 0.0, False
while not done:
    state = model.observe(torch.as_tensor(obs, dtype=torch.float32)[None])
    plan = planner.plan(state, carry)  # imagine 50 sequences × 20 steps, keep the best first action
    carry = plan.carry                 # warm start for the next step
    obs, reward, terminated, truncated, _ = env.step(to_env_action(plan.action[0], model.action_spec))
    total += float(reward)
    done = terminated or truncated
print("return:", total)
