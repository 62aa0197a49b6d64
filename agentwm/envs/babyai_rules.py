"""BabyAI's task rules on the symbolic vectors (:data:`~agentwm.envs.babyai.VECTOR_DIM` floats): the
potential, success, shaped reward and episode end that :mod:`agentwm.envs.babyai` computes from a
real step, recomputed from vectors alone, so a learned world model's imagined vectors can be scored
by the same rules as real ones (``WithTaskRules``)."""

from __future__ import annotations

import torch
from torch import Tensor

from agentwm.envs.babyai import _SCALE, _UNKNOWN_POTENTIAL

# ----------------------------------------------------------------------------------------------
# The same potential and success on (imagined) vectors, for planners that take the task's rules


def vector_potential(v: Tensor) -> Tensor:
    """:func:`potential` computed from vectors ``[..., VECTOR_DIM]`` (e.g. a model's imagined ones).

    Positions are rounded to whole cells, so a slightly-off imagined position reads as the nearest cell.
    """
    kind_putnext = v[..., 2] > 0.5
    carrying_target = v[..., 3] > 0.5
    wrong = 0.5 * ((v[..., 4] > 0.5) & ~carrying_target).to(v.dtype)
    t_seen, t_ahead, t_right = v[..., 5] > 0.5, torch.round(v[..., 6] * _SCALE), torch.round(v[..., 7] * _SCALE)
    f_seen, f_ahead, f_right = v[..., 8] > 0.5, torch.round(v[..., 9] * _SCALE), torch.round(v[..., 10] * _SCALE)
    t_dist = torch.where(t_seen, -((t_ahead - 1).abs() + t_right.abs()) / 10.0, torch.full_like(t_ahead, _UNKNOWN_POTENTIAL))
    f_dist = torch.where(
        f_seen, -((f_ahead - 1).abs() + f_right.abs() - 1).abs() / 10.0, torch.full_like(f_ahead, _UNKNOWN_POTENTIAL)
    )
    base = torch.where(kind_putnext, torch.full_like(t_dist, -1.5), torch.zeros_like(t_dist))
    return torch.where(kind_putnext & carrying_target, f_dist, base + t_dist - wrong)


def vector_success(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Whether a step ``(obs, action, next_obs)`` completes the mission, read off the vectors (bool ``[...]``).

    go to: the target is right in front after the step. pick up: the step picked up the target.
    put next: the step dropped the target into the front cell, which is next to the fixed object.
    """
    a = action.argmax(-1)
    kind = obs[..., :3].argmax(-1)
    t_front = (next_obs[..., 5] > 0.5) & (torch.round(next_obs[..., 6] * _SCALE) == 1) & (
        torch.round(next_obs[..., 7] * _SCALE) == 0
    )
    picked = (a == 3) & (obs[..., 3] < 0.5) & (next_obs[..., 3] > 0.5)
    f_dist = (torch.round(next_obs[..., 9] * _SCALE) - 1).abs() + torch.round(next_obs[..., 10] * _SCALE).abs()
    dropped = (a == 4) & (obs[..., 3] > 0.5) & (next_obs[..., 3] < 0.5) & (next_obs[..., 8] > 0.5) & (f_dist == 1)
    return torch.where(kind == 0, t_front, torch.where(kind == 1, picked, dropped))


def vector_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """The shaped reward of :class:`BabyAIEnv` computed from vectors: success, else the potential difference.

    A :data:`~agentwm.worldmodels.task_rules.RewardRule`: ``WithTaskRules(model, reward=vector_reward,
    termination=...)`` plans with learned dynamics and these known rules, as PETS does.
    """
    success = vector_success(obs, action, next_obs)
    return torch.where(success, 1.0 - vector_potential(obs), vector_potential(next_obs) - vector_potential(obs))


def vector_terminal(next_obs: Tensor) -> Tensor:
    """Whether a vector ``[..., VECTOR_DIM]`` is a state in which the episode has ended in success, as
    far as the state alone tells: go to: target in front; pick up: target in hand; put next: target
    in front, not in hand, and next to the fixed object. A
    :data:`~agentwm.worldmodels.task_rules.TerminationRule`.
    """
    kind = next_obs[..., :3].argmax(-1)
    t_front = (next_obs[..., 5] > 0.5) & (torch.round(next_obs[..., 6] * _SCALE) == 1) & (
        torch.round(next_obs[..., 7] * _SCALE) == 0
    )
    holding = next_obs[..., 3] > 0.5
    f_dist = (torch.round(next_obs[..., 9] * _SCALE) - 1).abs() + torch.round(next_obs[..., 10] * _SCALE).abs()
    placed = t_front & ~holding & (next_obs[..., 8] > 0.5) & (f_dist == 1)
    return torch.where(kind == 0, t_front, torch.where(kind == 1, holding, placed))
