"""Random shooting: imagine ``N`` uniformly random action sequences, keep the best.

The simplest model-predictive controller and the baseline every other planner must beat at an
equal budget of imagined rows. With a warm start, the previous best plan (shifted one step) is
one of the candidates, so re-planning never forgets a good plan it already found.
"""

from __future__ import annotations

import torch

from agentwm.planning.base import (
    PlanCarry,
    PlanResult,
    SamplingPlanner,
    pick,
    shift,
    uniform_actions,
)
from agentwm.worldmodels.base import State


class RandomShooting(SamplingPlanner):
    """Best of ``samples`` uniformly random sequences, each imagined ``particles`` times.

    Args:
        model: any world model.
        horizon: steps per sequence.
        samples: random sequences per start state (all imagined in one ``imagine`` call).
        particles: imaginations per sequence.
        gamma: discount.
        score: scoring rule over particles.
        generator: ``torch.Generator``, int seed or ``None``.

    Carry: ``{"actions": [H, B, A]}``, the best sequence shifted one step (its last action
    repeated); it replaces candidate 0 on the next call.

    Example:
        >>> planner = RandomShooting(model, horizon=8, samples=512, gamma=0.99, generator=0)
        >>> result = planner.plan(state)
        >>> result = planner.plan(next_state, carry=result.carry)
    """

    @torch.no_grad()
    def plan(self, state: State, carry: PlanCarry | None = None) -> PlanResult:
        """Plan from ``state`` (batch ``B``); see :class:`~agentwm.planning.base.PlanResult`."""
        batch, device, tiled = self._start(state)
        warm = self._check_carry(carry, ("actions",), batch)
        rng = self._rng(device)
        actions = uniform_actions(self.spec, (self.horizon, batch, self.samples), device, rng)
        if warm is not None:
            actions[:, :, 0] = warm["actions"].to(actions)
        scores, evaluation = self._evaluate(tiled, actions)
        best = scores.argmax(1)
        plan = pick(actions, best)
        info = self._info(scores, evaluation)
        return PlanResult(
            action=plan[0],
            actions=plan,
            score=scores.gather(1, best[:, None]).squeeze(1),
            carry={"actions": shift(plan, plan[-1])},
            info=info,
        )
