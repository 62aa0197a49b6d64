"""Tiny world models with known optima, implementing the WorldModel protocol, for planner tests.

* :class:`PointMass`: ``x' = x + a``, reward ``-||x' - target||^2`` (continuous).
* :class:`Chain`: positions ``0..length-1`` with a rewarding goal and a "jump" action that pays
  once and ends the episode (discrete); optional values that make the right end valuable.
* :class:`RiskyBandit`: reward ``a``, but actions above ``0.5`` are noisy and the model reports
  large disagreement there (continuous).

Each counts its ``imagine`` calls and records the range of actions it was asked to imagine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from agentwm.worldmodels.base import ActionSpec, Rollout, State


class _ToyModel:
    action_spec: ActionSpec

    def __init__(self) -> None:
        self.calls = 0
        self.action_min = float("inf")
        self.action_max = float("-inf")

    def observe(self, obs: Any, state: State | None = None, action: Tensor | None = None) -> State:
        return dict(obs)

    def imagine(self, state: State, actions: Tensor | Callable[[State], Tensor], horizon: int) -> Rollout:
        self.calls += 1
        current = {k: v.clone() for k, v in state.items()}
        states, rewards, continues, values, extras, taken = [current], [], [], [], [], []
        for t in range(horizon):
            a = actions(current) if callable(actions) else actions[t]
            self.action_min = min(self.action_min, float(a.min()))
            self.action_max = max(self.action_max, float(a.max()))
            current, r, c, v, x = self.step(current, a)
            states.append(current)
            rewards.append(r)
            continues.append(c)
            values.append(v)
            extras.append(x)
            taken.append(a)
        out_extras = {}
        if extras[0] is not None:
            out_extras["disagreement"] = torch.stack(extras)
        return Rollout(
            states={k: torch.stack([s[k] for s in states]) for k in current},
            rewards=torch.stack(rewards),
            continues=torch.stack(continues),
            actions=torch.stack(taken),
            values=None if values[0] is None else torch.stack(values),
            extras=out_extras,
        )

    def step(
        self, state: dict[str, Tensor], action: Tensor
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, Any, Any]:
        raise NotImplementedError


class PointMass(_ToyModel):
    """``x' = x + a`` (optionally plus Gaussian noise), reward ``-||x' - target||^2``, never terminal.

    From ``x0`` with every ``|target - x0| <= high``, the optimum is ``a_0 = target - x0`` then zeros,
    with return 0.
    """

    def __init__(
        self, dim: int = 1, target: float = 0.6, low: float = -1.0, high: float = 1.0, noise: float = 0.0
    ) -> None:
        super().__init__()
        self.action_spec = ActionSpec("continuous", dim, low, high)
        self.target, self.noise = target, noise
        self.gen = torch.Generator().manual_seed(0)

    def initial(self, batch_size: int) -> State:
        return {"x": torch.zeros(batch_size, self.action_spec.dim)}

    def step(self, state, action):
        x = state["x"] + action
        if self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=self.gen)
        reward = -((x - self.target) ** 2).sum(-1)
        return {"x": x}, reward, torch.ones_like(reward), None, None

    def true_return(self, x0: Tensor, actions: Tensor, gamma: float) -> Tensor:
        """Return ``[B]`` of sequences ``[H, B, A]`` from ``x0 [B, A]`` (noise-free)."""
        x, total = x0.clone(), torch.zeros(x0.shape[0])
        for t in range(actions.shape[0]):
            x = x + actions[t]
            total = total - gamma**t * ((x - self.target) ** 2).sum(-1)
        return total


LEFT, STAY, RIGHT, JUMP = 0, 1, 2, 3


class Chain(_ToyModel):
    """Positions ``0..length-1``; actions left/stay/right/jump.

    Reward 1 for every step that ends on ``goal``. ``jump`` pays 0.9 and ends the episode (continue
    0); after that the model keeps reporting reward 2 with continue 0, so a planner that ignored
    continues would love jumping. From ``goal - 2`` with ``H = 4`` the optimum is right, right,
    stay, stay (return ``g + g^2 + g^3``); from ``goal`` it is stay × 4. With ``values=True`` the model reports ``V(s') = 5`` at the
    right end, which a bootstrapped return must pick up.
    """

    def __init__(self, length: int = 7, goal: int = 3, values: bool = False) -> None:
        super().__init__()
        self.action_spec = ActionSpec("discrete", 4)
        self.length, self.goal, self.values = length, goal, values

    def initial(self, batch_size: int) -> State:
        return {"pos": torch.zeros(batch_size), "done": torch.zeros(batch_size)}

    def state(self, positions: list[int]) -> State:
        return {"pos": torch.tensor(positions, dtype=torch.float32), "done": torch.zeros(len(positions))}

    def step(self, state, action):
        idx = action.argmax(-1)
        delta = (idx == RIGHT).float() - (idx == LEFT).float()
        alive = state["done"] == 0
        pos = torch.where(alive, (state["pos"] + delta).clamp(0, self.length - 1), state["pos"])
        jumped = alive & (idx == JUMP)
        done = torch.where(jumped, torch.ones_like(state["done"]), state["done"])
        reward = torch.where(done > 0, torch.full_like(pos, 2.0), (pos == self.goal).float())
        reward = torch.where(jumped, torch.full_like(pos, 0.9), reward)
        continues = 1.0 - done
        value = None
        if self.values:
            value = torch.where(
                (pos == self.length - 1) & (done == 0), torch.full_like(pos, 5.0), torch.zeros_like(pos)
            )
        return {"pos": pos, "done": done}, reward, continues, value, None

    def goto_goal(self, state: State) -> Tensor:
        """A follow-up policy that walks to the goal and stays."""
        diff = self.goal - state["pos"]
        idx = torch.where(diff > 0, RIGHT, torch.where(diff < 0, LEFT, STAY))
        return self.action_spec.one_hot(idx)


class RiskyBandit(_ToyModel):
    """Reward ``a`` per step (1-D action in ``[-1, 1]``), never terminal.

    Above ``0.5`` the outcome gets Gaussian noise of std ``noise`` and the model reports
    disagreement ``slope * (a - 0.5)``; below it the model is certain.
    """

    def __init__(self, noise: float = 2.0, slope: float = 20.0) -> None:
        super().__init__()
        self.action_spec = ActionSpec("continuous", 1)
        self.noise, self.slope = noise, slope
        self.gen = torch.Generator().manual_seed(0)

    def initial(self, batch_size: int) -> State:
        return {"t": torch.zeros(batch_size)}

    def step(self, state, action):
        a = action[:, 0]
        risky = a > 0.5
        eps = torch.randn(a.shape, generator=self.gen)
        reward = a + torch.where(risky, self.noise * eps, torch.zeros_like(a))
        disagreement = self.slope * (a - 0.5).clamp_min(0.0)
        return {"t": state["t"] + 1}, reward, torch.ones_like(a), None, disagreement


class NoDisagreement(PointMass):
    """A PointMass by another name: reports no disagreement (for the scorer's error)."""
