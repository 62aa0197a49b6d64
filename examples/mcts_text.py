"""MCTS over a text world model: search replies several turns deep instead of taking the greedy one.

    python examples/mcts_text.py

Any ``TextWorldModel`` (an LLM predicting outcomes, a dialogue model) works the same way: MCTS
passes candidate replies to ``imagine`` one turn at a time and reads rewards, continues and values
from the ``Rollout``. A scripted model keeps this example offline and instant.
"""

import torch

from agentwm.planning import MCTS
from agentwm.worldmodels.base import Rollout

REWARD = {("angry", "apologise"): 0.2, ("angry", "offer refund"): 1.0, ("angry", "close ticket"): 1.5,
          ("calm", "offer refund"): 5.0}
NEXT = {("angry", "apologise"): "calm", ("calm", "offer refund"): "resolved", ("angry", "close ticket"): "closed"}


class ScriptedCustomer:
    """Imagines the customer's mood after each reply; "resolved" and "closed" end the chat."""

    def observe(self, obs, state=None, action=None):
        return {"observation": [obs]}

    def imagine(self, state, actions, horizon):
        mood = list(state["observation"])
        path, rewards, continues = [mood], [], []
        for t in range(horizon):
            replies = actions[t] if t < len(actions) else ["apologise"] * len(mood)
            rewards.append([REWARD.get((m, r), 0.0) for m, r in zip(mood, replies)])
            mood = [NEXT.get((m, r), m) for m, r in zip(mood, replies)]
            continues.append([0.0 if m in ("resolved", "closed") else 1.0 for m in mood])
            path.append(mood)
        return Rollout(states={"observation": path}, rewards=torch.tensor(rewards),
                       continues=torch.tensor(continues))

    async def aimagine(self, state, actions, horizon):
        return self.imagine(state, actions, horizon)


model = ScriptedCustomer()
replies = ["close ticket", "offer refund", "apologise"]
result = MCTS(model, actions=replies, fixed_actions=True, simulations=40, gamma=0.95, exploration_fraction=0.0).plan(
    model.observe("angry"))
print("greedy reply would be: close ticket (+1.5 now)")
print("searched reply:", result.chosen[0], "| visits", dict(zip(replies, result.policy[0].tolist())))
