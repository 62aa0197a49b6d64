"""Discounted and λ-returns, and percentile return normalisation.

The one implementation of the return math in agentwm: Dreamer's actor-critic, every planner and
the dialogue scorer call these functions.

Convention (all tensors time-major, ``[H, B]``): step ``t`` starts in state ``s_t``, takes action
``a_t`` and yields ``rewards[t]`` and ``continues[t]``, the probability that ``s_{t+1}`` is not
terminal. ``values[t]`` estimates ``V(s_{t+1})``. So::

    G = sum_t gamma^t * prod_{k<t} continues[k] * rewards[t]  +  gamma^H * prod_{k<H} continues[k] * V(s_H)

A reward earned on the step that ends an episode still counts; everything after it is cut.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _check_time_major(rewards: Tensor, continues: Tensor, values: Tensor | None) -> None:
    if rewards.dim() < 1:
        raise ValueError("rewards must be [H, ...], got a scalar")
    if continues.shape != rewards.shape:
        raise ValueError(
            f"continues must have the shape of rewards {tuple(rewards.shape)}, got {tuple(continues.shape)}"
        )
    if values is not None and values.shape != rewards.shape:
        raise ValueError(
            f"values must have the shape of rewards {tuple(rewards.shape)} (V of s_1..s_H),"
            f" got {tuple(values.shape)}"
        )


def lambda_return(
    rewards: Tensor, continues: Tensor, values: Tensor, gamma: float, lam: float
) -> Tensor:
    """TD(λ) returns ``[H, ...]`` for the start states ``s_0 .. s_{H-1}``.

    ``R_t = r_t + gamma * c_t * ((1 - lam) * V(s_{t+1}) + lam * R_{t+1})`` with ``R_H = V(s_H)``.
    With ``lam = 1`` this is the discounted Monte Carlo return bootstrapped by ``V(s_H)``; with
    ``lam = 0`` it is the one-step TD target.

    Args:
        rewards: ``[H, ...]`` reward of each step.
        continues: ``[H, ...]`` probability (or 0/1 flag) that the episode goes on after the step.
        values: ``[H, ...]`` value estimates of the next states ``s_1 .. s_H``.
        gamma: discount in [0, 1].
        lam: λ in [0, 1].
    """
    _check_time_major(rewards, continues, values)
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gamma and lam must lie in [0, 1], got gamma={gamma}, lam={lam}")
    # A reverse scan over a short horizon: H is 15-ish, and the loop keeps the recursion readable.
    disc = gamma * continues
    interm = rewards + disc * (1.0 - lam) * values
    out = torch.empty_like(rewards)
    last = values[-1]
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = interm[t] + disc[t] * lam * last
        out[t] = last
    return out


def discounted_return(
    rewards: Tensor, continues: Tensor, gamma: float, bootstrap: Tensor | None = None
) -> Tensor:
    """Discounted return ``[...]`` from ``s_0``, optionally bootstrapped with ``V(s_H)``.

    This is :func:`lambda_return` with λ = 1, where only the last value matters.
    """
    _check_time_major(rewards, continues, None)
    last = torch.zeros_like(rewards[-1]) if bootstrap is None else bootstrap.to(rewards)
    if last.shape != rewards.shape[1:]:
        raise ValueError(f"bootstrap must have shape {tuple(rewards.shape[1:])}, got {tuple(last.shape)}")
    values = last.unsqueeze(0).expand_as(rewards)
    return lambda_return(rewards, continues, values, gamma, 1.0)[0]


def discount_weights(continues: Tensor, gamma: float) -> Tensor:
    """Weights ``[H, ...]`` ``gamma^t * prod_{k<t} c_k`` that each step's reward gets in the return.

    Dreamer's actor and critic losses weight imagined steps by this, so that steps after a
    predicted episode end contribute nothing.
    """
    ones = torch.ones_like(continues[:1])
    return torch.cumprod(torch.cat([ones, gamma * continues[:-1]], 0), 0)


class ReturnNormalizer(nn.Module):
    """Scale returns by an EMA of their 5th–95th percentile range, never dividing by less than 1.

    DreamerV3's return normalisation: large returns are scaled down to a comparable range while
    small returns (sparse rewards) are not blown up. State lives in buffers so it checkpoints with
    ``state_dict``.
    """

    low: Tensor
    high: Tensor
    initialized: Tensor

    def __init__(
        self, decay: float = 0.99, low_pct: float = 5.0, high_pct: float = 95.0, max_scale: float = 1.0
    ) -> None:
        super().__init__()
        if not 0.0 <= low_pct < high_pct <= 100.0:
            raise ValueError(f"need 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
        self.decay, self.low_q, self.high_q, self.max_scale = decay, low_pct / 100, high_pct / 100, max_scale
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: Tensor, keep: Tensor | None = None) -> None:
        """Fold the percentiles of a batch of returns into the running estimate. No host sync and
        no host-to-device copy, so it can run inside a captured CUDA graph; ``keep`` (a bool
        scalar on the device) leaves the estimate as it was where True (a skipped update)."""
        low, high = _percentiles(returns.detach().float().flatten(), (self.low_q, self.high_q))
        # First update takes the batch's percentiles as they are; later ones are an EMA.
        d = torch.where(self.initialized, torch.full_like(low, self.decay), torch.zeros_like(low))
        new_low, new_high = d * self.low + (1 - d) * low, d * self.high + (1 - d) * high
        if keep is not None:
            new_low, new_high = torch.where(keep, self.low, new_low), torch.where(keep, self.high, new_high)
        self.low.copy_(new_low)
        self.high.copy_(new_high)
        self.initialized.copy_(self.initialized | ~keep if keep is not None else torch.ones_like(self.initialized))

    def stats(self) -> tuple[Tensor, Tensor]:
        """``(offset, scale)`` with ``scale = max(max_scale, high - low)``."""
        scale = torch.clamp(self.high - self.low, min=self.max_scale)
        return self.low, scale

    def forward(self, returns: Tensor) -> Tensor:
        """Returns divided by the current scale (offsets cancel in advantages, so none is applied)."""
        return returns / self.stats()[1]


def _percentiles(flat: Tensor, fractions: tuple[float, ...]) -> tuple[Tensor, ...]:
    """``torch.quantile(flat, q)`` (linear interpolation) for each ``q`` in ``fractions``, from one
    sort. Written out because ``torch.quantile`` with several ``q`` checks their range on the device
    (a host sync that also forbids CUDA-graph capture); here the positions are host numbers."""
    ordered = flat.sort().values
    last = flat.numel() - 1
    out = []
    for q in fractions:
        pos = q * last
        lo = int(pos)
        hi = min(lo + 1, last)
        out.append(torch.lerp(ordered[lo], ordered[hi], pos - lo))
    return tuple(out)
