"""A world model whose termination (and optionally reward) comes from the task's known rules.

PETS and most MPC work on classic control give the planner the task's reward or termination
function and learn only the dynamics. A few hundred random steps show the learned dynamics plenty
of ordinary states but only a few dozen terminal ones, and never the far edges of the state
space (random CartPole episodes never reach the cart limit), so a learned continue head is the
weakest part of such a model. This wrapper keeps the learned dynamics and replaces ``continues``
(and ``rewards`` if a rule is given) with the rule evaluated on the imagined next observations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from agentwm.worldmodels.base import ActionsOrPolicy, ActionSpec, Rollout, State, WorldModel

TerminationRule = Callable[[Tensor], Tensor]
"""Next observations ``[..., D]`` → bool/float ``[...]``, true where the state is terminal."""

RewardRule = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(obs [H, B, D], action [H, B, A], next_obs [H, B, D])`` → reward ``[H, B]``."""


class WithTaskRules:
    """Wrap a vector-observation world model whose state has ``"obs"``; see the module docstring.

    Args:
        model: the learned world model (e.g. :class:`~agentwm.worldmodels.ensemble.EnsembleDynamics`).
        termination: rule marking terminal next observations; ``None`` keeps the model's continues.
        reward: rule giving each step's reward; ``None`` keeps the model's rewards.
    """

    def __init__(
        self, model: WorldModel, *, termination: TerminationRule | None = None, reward: RewardRule | None = None
    ) -> None:
        if termination is None and reward is None:
            raise ValueError("WithTaskRules needs a termination rule, a reward rule, or both")
        self.model = model
        self.termination = termination
        self.reward = reward

    @property
    def action_spec(self) -> ActionSpec:
        return self.model.action_spec

    def __getattr__(self, name: str) -> Any:
        # Everything else (disagreement switch, fit, loss, eval, ...) belongs to the wrapped model.
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def initial(self, batch_size: int) -> State:
        return self.model.initial(batch_size)

    def observe(self, obs: Any, state: State | None = None, action: Tensor | None = None) -> State:
        return self.model.observe(obs, state, action)

    def imagine(self, state: State, actions: ActionsOrPolicy, horizon: int, **kwargs: Any) -> Rollout:
        """The wrapped model's rollout with continues/rewards recomputed from the imagined states."""
        rollout = self.model.imagine(state, actions, horizon, **kwargs)
        obs = rollout.states["obs"]
        rewards, continues = rollout.rewards, rollout.continues
        if self.termination is not None:
            continues = 1.0 - self.termination(obs[1:]).to(continues.dtype)
        if self.reward is not None:
            if rollout.actions is None:
                raise ValueError("a reward rule needs the rollout's actions; the wrapped model returned none")
            rewards = self.reward(obs[:-1], rollout.actions, obs[1:]).to(rewards.dtype)
        return Rollout(rollout.states, rewards, continues, rollout.actions, rollout.values, rollout.extras)
