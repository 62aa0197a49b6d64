"""MuZero-style learning on CartPole: self-play with MCTS over a learned value-equivalent model.

    python examples/muzero_cartpole.py

The model never predicts observations: it learns a latent that is good for predicting rewards,
values and the search's own policy. MCTS then plans over that latent with the same code that
searches any other agentwm world model.
"""

import torch

from agentwm.agents.muzero.agent import MuZeroConfig, evaluate, train_muzero
from agentwm.planning import MCTS

config = MuZeroConfig(env="CartPole-v1", env_steps=3000, simulations=16, eval_every=1000, seed=0)
model, summary = train_muzero(config)
print("evaluation returns by real steps:", summary["eval_curve"])
print("five more evaluation episodes:", evaluate(model, config, episodes=5, seed=123))

# The learned model is an ordinary WorldModel: search it from any observation.
state = model.observe(torch.tensor([[0.0, 0.0, 0.05, 0.0]]))  # pole leaning right
result = MCTS(model, simulations=32, exploration_fraction=0.0).plan(state)
print("push", ["left", "right"][result.chosen[0]], "| visit distribution", result.policy[0].tolist())
