"""The world-model protocol every model implements, the ``Rollout`` it returns, and input checks.

A world model turns what was observed into a latent state (``observe``) and rolls that state
forward under candidate actions or a policy (``imagine``). Everything downstream (returns,
planners, Dreamer's actor-critic, LangGraph nodes) consumes only the ``Rollout``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from agentwm.core.returns import discounted_return, lambda_return

State = Mapping[str, Any]
"""A model's carry: a mapping of batch-first tensors (or per-item lists, for text models)."""

Policy = Callable[[State], Tensor]
"""Maps a state of batch B to actions ``[B, A]`` (one-hot rows for discrete action spaces)."""

ActionsOrPolicy = Tensor | Policy


@dataclass(frozen=True)
class ActionSpec:
    """What actions a model takes.

    ``discrete`` actions are fed as one-hot rows of width ``dim``; ``continuous`` actions are
    ``dim`` floats in ``[low, high]``.
    """

    kind: Literal["discrete", "continuous"]
    dim: int
    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("discrete", "continuous"):
            raise ValueError(f"ActionSpec.kind must be 'discrete' or 'continuous', got {self.kind!r}")
        if self.dim < 1:
            raise ValueError(f"ActionSpec.dim must be >= 1, got {self.dim}")
        if self.kind == "continuous" and not self.low < self.high:
            raise ValueError(f"ActionSpec needs low < high, got [{self.low}, {self.high}]")

    def one_hot(self, index: Tensor) -> Tensor:
        """Discrete indices ``[...]`` → one-hot float actions ``[..., dim]``."""
        if self.kind != "discrete":
            raise ValueError("one_hot only applies to discrete action specs")
        return torch.nn.functional.one_hot(index.long(), self.dim).float()


@dataclass
class Rollout:
    """An imagined trajectory of ``H`` steps for a batch of ``B`` start states.

    Attributes:
        states: model-specific states, time-major; for latent models a dict of ``[H+1, B, ...]``.
        rewards: ``[H, B]`` reward of step t.
        continues: ``[H, B]`` probability that the episode goes on after step t.
        actions: ``[H, B, A]`` the actions that were imagined (given or from the policy).
        values: ``[H, B]`` optional ``V(s_{t+1})`` estimates, used to bootstrap and for λ-returns.
        extras: anything else a model reports, e.g. ``disagreement [H, B]``, decoded ``obs``,
            imagined ``text``.
    """

    states: Any
    rewards: Tensor
    continues: Tensor
    actions: Tensor | None = None
    values: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rewards.dim() != 2:
            raise ValueError(f"Rollout.rewards must be [H, B], got {tuple(self.rewards.shape)}")
        for name in ("continues", "values"):
            value = getattr(self, name)
            if value is not None and value.shape != self.rewards.shape:
                raise ValueError(
                    f"Rollout.{name} must match rewards {tuple(self.rewards.shape)}, got {tuple(value.shape)}"
                )

    @property
    def horizon(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.rewards.shape[1])

    def returns(self, gamma: float, lam: float | None = None, bootstrap: bool = True) -> Tensor:
        """Return of each start state ``[B]``: discounted (bootstrapped by the last value when
        the model supplied values and ``bootstrap``), or the λ-return when ``lam`` is given."""
        if lam is not None:
            if self.values is None:
                raise ValueError("a λ-return needs values; this rollout has none")
            return lambda_return(self.rewards, self.continues, self.values, gamma, lam)[0]
        boot = self.values[-1] if (bootstrap and self.values is not None) else None
        return discounted_return(self.rewards, self.continues, gamma, boot)


@runtime_checkable
class WorldModel(Protocol):
    """What planners and agents rely on. Learnable models also provide ``loss(batch)``."""

    @property
    def action_spec(self) -> ActionSpec:
        """The actions ``imagine`` takes."""
        ...

    def initial(self, batch_size: int) -> State:
        """The empty carry for ``batch_size`` sequences."""
        ...

    def observe(self, obs: Any, state: State | None = None, action: Tensor | None = None) -> State:
        """Fold an observation (and the action that led to it) into the carry; carry out."""
        ...

    def imagine(self, state: State, actions: ActionsOrPolicy, horizon: int) -> Rollout:
        """Roll ``state`` forward ``horizon`` steps under ``actions [H, B, A]`` or a policy."""
        ...


@runtime_checkable
class LearnableWorldModel(WorldModel, Protocol):
    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Unreduced loss terms keyed by name, and detached metrics."""
        ...


TextActions = Sequence[Sequence[str]]
"""Text actions, time-major: ``actions[t][b]`` is the action of batch item ``b`` at imagined step ``t``."""


@runtime_checkable
class TextWorldModel(Protocol):
    """A world model whose states and actions are text (an LLM predicting outcomes, a dialogue model).

    States are carries of per-item lists (``{"observation": [str] * B, "goal": [str] * B, ...}``).
    ``actions`` may hold fewer than ``horizon`` rows: the model proposes the follow-up actions
    itself for the remaining steps. The result is the same :class:`Rollout` as latent models give
    (rewards and continues ``[H, B]``), with the imagined text in ``extras["text"]`` (``[H][B]``)
    and the actions taken in ``extras["actions"]``, so the same returns and planners apply.
    """

    def observe(self, obs: Any, state: State | None = None, action: Any | None = None) -> State:
        """Fold an observation (text, or a list of B texts) into the carry; carry out."""
        ...

    def imagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """Imagine ``horizon`` steps from ``state`` starting with ``actions``."""
        ...

    async def aimagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """``imagine`` for event loops: concurrent calls overlap their LLM latency."""
        ...


# ----------------------------------------------------------------------------------------------
# State helpers: planners tile one start state over candidates × samples.


def state_batch_size(state: State) -> int:
    """Batch size of a carry (the leading dim of its first tensor, or the length of its first list)."""
    for value in state.values():
        if isinstance(value, Tensor):
            return int(value.shape[0])
        if isinstance(value, Sequence) and not isinstance(value, str):
            return len(value)
    raise ValueError("state holds no tensor or list to read a batch size from")


def repeat_state(state: State, repeats: int) -> dict[str, Any]:
    """Repeat every entry of a carry ``repeats`` times along the batch: ``[B, ...] -> [B*repeats, ...]``,
    with copies of one item adjacent (item b occupies rows ``b*repeats .. b*repeats+repeats-1``)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, Tensor):
            out[key] = value.repeat_interleave(repeats, dim=0)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            out[key] = [item for item in value for _ in range(repeats)]
        else:
            out[key] = value
    return out


def index_state(state: State, index: Tensor | int | slice) -> dict[str, Any]:
    """Select batch rows of a carry."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, Tensor):
            out[key] = value[index]
        elif isinstance(value, Sequence) and not isinstance(value, str):
            if isinstance(index, Tensor):
                out[key] = [value[i] for i in index.tolist()]
            else:
                out[key] = value[index]
        else:
            out[key] = value
    return out


# ----------------------------------------------------------------------------------------------
# Input validation: errors name the argument and the shape that was expected.


def check_tensor(
    name: str,
    x: Any,
    shape: Sequence[int | None],
    *,
    floating: bool = True,
    finite: bool = False,
) -> Tensor:
    """Check that ``x`` is a tensor of ``shape`` (``None`` = any size) and dtype kind; return it.
    With ``finite``, NaN and inf values are refused too (inputs at a public entry point).

    Raises:
        TypeError: not a tensor, or the wrong dtype kind.
        ValueError: wrong rank or size, or non-finite values; the message names ``name``.
    """
    expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        raise ValueError(f"{name} must have shape {expected}, got {list(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {expected}, got dtype {x.dtype}")
    if finite and x.is_floating_point() and x.device.type == "cuda":  # checked on the GPU, no host sync
        torch._assert_async(torch.isfinite(x).all(), f"{name} contains NaN or inf; inputs must be finite")
    elif finite and x.is_floating_point() and x.device.type != "meta":
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"{name} contains NaN or inf ({bad} of {x.numel()} values); inputs must be finite")
    return x


def resolve_actions(
    actions: ActionsOrPolicy, spec: ActionSpec, horizon: int | None, batch: int
) -> tuple[Tensor | None, Policy | None, int]:
    """Split ``imagine``'s ``actions`` argument into a checked ``[H, B, A]`` tensor or a policy.

    Returns ``(given, policy, horizon)``: with a tensor, the horizon is its length (a ``horizon``
    passed too must match it); with a policy, ``horizon`` is required.

    Raises:
        TypeError: ``actions`` is neither a tensor nor a callable.
        ValueError: wrong shape, or a missing or non-positive horizon.
    """
    if isinstance(actions, Tensor):
        given = check_tensor("actions", actions, [horizon, batch, spec.dim], finite=True)
        if given.shape[0] < 1:
            raise ValueError("actions must hold at least one step, got an empty [0, B, A] tensor")
        return given, None, int(given.shape[0])
    if callable(actions):
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive int (required with a policy), got {horizon!r}")
        return None, actions, horizon
    raise TypeError(f"actions must be a tensor [H, B, A] or a policy callable, got {type(actions).__name__}")


def check_actions(
    actions: Tensor, spec: ActionSpec, horizon: int | None = None, batch: int | None = None
) -> Tensor:
    """Validate an action sequence ``[H, B, A]`` against ``spec``."""
    x = check_tensor("actions", actions, [horizon, batch, spec.dim])
    return x
