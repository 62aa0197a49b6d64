"""The two imagination loops of :class:`~agentwm.worldmodels.ensemble.EnsembleDynamics` (the
planner's hot path): each particle under its own member only, or every member on every particle
(disagreement and ``"mean"`` propagation). Both work in raw units on layers with the normalisers
folded in (``EnsembleDynamics._rollout_layers``) and draw noise in particle-row order, so they give
the same samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from agentwm.worldmodels.base import Policy, Rollout, check_tensor

if TYPE_CHECKING:
    from agentwm.worldmodels.ensemble import EnsembleDynamics, Layers


def assignments(
    model: EnsembleDynamics, propagation: str, horizon: int, batch: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, int]:
    """Where each particle sits in the member-major slot layout of ``ts*`` propagation.

    Particles are laid out as ``N`` contiguous groups of ``J = ceil(B / N)`` slots, and slot
    ``k`` belongs to member ``k // J``. Returns ``slots [H, N*J]`` (the particle row in each
    slot; the ``N*J - B`` spare slots repeat real rows and are ignored), ``pos [H, B]`` (the
    slot that holds each row) and ``J``.
    """
    n, device = model.members, model.weights[0].device
    j = -(-batch // n)
    rows = torch.arange(batch, device=device)
    if propagation == "tsinf":
        # Row b → member b % N, slot (b % N) * J + b // N, the same at every step.
        k = torch.arange(j * n, device=device)
        row = (k % j) * n + k // j
        slots = torch.where(row < batch, row, row % batch).expand(horizon, -1)
        pos = ((rows % n) * j + rows // n).expand(horizon, -1)
    else:
        # TS-1: a fresh random permutation of the particles over the member groups every step.
        perm = torch.rand(horizon, batch, device=device, generator=generator).argsort(-1)
        slots = perm[:, torch.arange(j * n, device=device) % batch]
        pos = torch.empty_like(perm).scatter_(1, perm, rows.expand(horizon, -1))
    return slots, pos, j

def imagine_own(
    model: EnsembleDynamics,
    layers: Layers,
    obs0: Tensor,
    actions: Tensor | None,
    policy: Policy | None,
    horizon: int,
    propagation: str,
    generator: torch.Generator | None,
    grad: bool,
) -> Rollout:
    """``ts*`` rollout that evaluates each particle under its own member only (no disagreement).

    Particles stay in the member-major slot layout for the whole loop, so each step is one
    batched pass over ``[N, J]`` particles with no per-step gathers (one per step for TS-1's
    reshuffle). Rows are recovered with one gather per output at the end.
    """
    n, d, a, H = model.members, model.obs_dim, model.action_spec.dim, horizon
    B, dtype, device = int(obs0.shape[0]), obs0.dtype, obs0.device
    slots, pos, j = assignments(model, propagation, H, B, generator)
    steps = torch.arange(H, device=device)[:, None]
    # ts1: slot s at step t+1 takes the particle that sat in slot regather[t, s] at step t.
    regather = pos[:-1].gather(1, slots[1:]) if propagation == "ts1" else None
    max_lv, min_lv = model.max_logvar[..., :d], model.min_logvar[..., :d]
    # Noise is drawn in particle-row order, as in imagine_all, so both paths give the same samples.
    noise = torch.randn(H, B, d, device=device, dtype=dtype, generator=generator) * model.delta_std
    noise = noise[steps, slots].view(H, n, j, d)
    act_slots = actions[steps, slots].view(H, n, j, a) if actions is not None else None
    obs = obs0[slots[0]].view(n, j, d)
    cont_prob = model._rollout_continue(inplace=not grad)
    next_obs: list[Tensor] = []
    rewards: list[Tensor] = []
    policy_actions: list[Tensor] = []
    for t in range(H):
        if act_slots is not None:
            act = act_slots[t]
        else:
            assert policy is not None
            rows = obs.reshape(n * j, d)[pos[t]]
            act_rows = check_tensor("policy(state)", policy({"obs": rows}), [B, a]).to(device, dtype)
            policy_actions.append(act_rows)
            act = act_rows[slots[t]].view(n, j, a)
        out = model._net(layers, torch.cat([obs, act], -1), inplace=not grad)
        logvar = model._bounded_logvar(out[..., d + 1 : 2 * d + 1], max_lv, min_lv)
        nxt = obs + out[..., :d] + torch.exp(0.5 * logvar) * noise[t]
        next_obs.append(nxt)
        rewards.append(out[..., d])
        if regather is not None and t < H - 1:
            nxt = nxt.reshape(n * j, d)[regather[t]].view(n, j, d)
        obs = nxt
    # Back to particle rows: at step t, row b sits in slot pos[t, b].
    reached = torch.stack(next_obs).view(H, n * j, d)[steps, pos]
    reward = torch.stack(rewards).view(H, n * j)[steps, pos]
    if cont_prob is not None:
        continues = cont_prob(reached.view(H * B, d)).view(H, B)
    else:
        continues = torch.ones_like(reward)
    acts = actions if actions is not None else torch.stack(policy_actions)
    return Rollout(
        states={"obs": torch.cat([obs0[None], reached], 0)},
        rewards=reward,
        continues=continues,
        actions=acts,
    )

def imagine_all(
    model: EnsembleDynamics,
    layers: Layers,
    obs0: Tensor,
    actions: Tensor | None,
    policy: Policy | None,
    horizon: int,
    propagation: str,
    generator: torch.Generator | None,
    grad: bool,
) -> Rollout:
    """Rollout that evaluates every member on every particle: disagreement and ``"mean"`` propagation."""
    n, d, a, H = model.members, model.obs_dim, model.action_spec.dim, horizon
    B, dtype, device = int(obs0.shape[0]), obs0.dtype, obs0.device
    rows = torch.arange(B, device=device)
    inv_var = model.delta_std.pow(-2) / n
    sample = propagation != "mean"
    if sample:
        _, pos, j = assignments(model, propagation, H, B, generator)
        member = pos // j  # [H, B] the member of each particle at each step
        max_lv, min_lv = model.max_logvar[:, 0, :d], model.min_logvar[:, 0, :d]  # [N, D]
        noise = torch.randn(H, B, d, device=device, dtype=dtype, generator=generator) * model.delta_std
    obs = obs0
    next_obs: list[Tensor] = []
    rewards: list[Tensor] = []
    spread: list[Tensor] = []
    policy_actions: list[Tensor] = []
    for t in range(H):
        if actions is not None:
            act = actions[t]
        else:
            assert policy is not None
            act = check_tensor("policy(state)", policy({"obs": obs}), [B, a]).to(device, dtype)
            policy_actions.append(act)
        out = model._net(layers, torch.cat([obs, act], -1), inplace=not grad)  # [N, B, O]
        means = out[..., :d]
        centred = means - means.mean(0)
        spread.append((centred * centred * inv_var).sum(0).mean(-1))
        if sample:
            m = member[t]
            own = out[m, rows]
            logvar = model._bounded_logvar(own[:, d + 1 : 2 * d + 1], max_lv[m], min_lv[m])
            nxt = obs + own[:, :d] + torch.exp(0.5 * logvar) * noise[t]
            rewards.append(own[:, d])
        else:
            nxt = obs + means.mean(0)
            rewards.append(out[..., d].mean(0))
        next_obs.append(nxt)
        obs = nxt
    reached = torch.stack(next_obs)
    reward = torch.stack(rewards)
    cont_prob = model._rollout_continue(inplace=not grad)
    continues = (
        cont_prob(reached.view(H * B, d)).view(H, B) if cont_prob is not None else torch.ones_like(reward)
    )
    acts = actions if actions is not None else torch.stack(policy_actions)
    return Rollout(
        states={"obs": torch.cat([obs0[None], reached], 0)},
        rewards=reward,
        continues=continues,
        actions=acts,
        extras={"disagreement": torch.stack(spread)},
    )
