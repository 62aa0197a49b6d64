"""Value transforms: symlog/symexp squashing and two-hot encoding over symexp-spaced bins.

These let one network head predict rewards and values whose scale is unknown in advance
(DreamerV3, Hafner et al. 2023): targets are squashed with symlog, or spread over a fixed set of
exponentially spaced bins and learned with cross-entropy, so the gradient does not grow with the
magnitude of the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def symlog(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|): near identity around zero, logarithmic for large magnitudes."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`: sign(x) * (exp(|x|) - 1)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


class TwoHot:
    """Two-hot encoding over ``num_bins`` bins spaced evenly in symlog space.

    ``encode`` spreads a scalar over its two neighbouring bins with weights that linearly
    interpolate its position, so ``decode(encode(x)) == x`` for any x inside the bin range.
    ``decode`` takes logits (or probabilities) and returns the expected value.

    Args:
        num_bins: number of bins (DreamerV3 uses 255).
        low, high: range of the bins in symlog space; ``symexp(20)`` ~ 4.9e8 covers any return.
    """

    def __init__(self, num_bins: int = 255, low: float = -20.0, high: float = 20.0) -> None:
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        self.num_bins = num_bins
        self._symlog_bins = torch.linspace(low, high, num_bins, dtype=torch.float64)
        self._bins_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        self._symlog_cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def bins(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        """Bin centres in value space (symexp-spaced), cached per device and dtype."""
        key = (torch.device(device), dtype)
        if key not in self._bins_cache:
            self._bins_cache[key] = symexp(self._symlog_bins).to(device=device, dtype=dtype)
        return self._bins_cache[key]

    def _symlog_on(self, device: torch.device, dtype: torch.dtype = torch.float64) -> Tensor:
        """The bins in symlog space on ``device``, cached: a copy from the host per call would be a
        host-device sync (and is not allowed inside a CUDA graph capture)."""
        key = (device, dtype)
        if key not in self._symlog_cache:
            self._symlog_cache[key] = self._symlog_bins.to(device=device, dtype=dtype)
        return self._symlog_cache[key]

    def encode(self, x: Tensor) -> Tensor:
        """Map values ``[...]`` to two-hot targets ``[..., num_bins]`` (interpolated in symlog space)."""
        # Interpolating in symlog space keeps the round trip exact and the bins' spacing uniform.
        y = symlog(x.to(torch.float64))
        sbins = self._symlog_on(x.device)
        y = y.clamp(sbins[0], sbins[-1])
        above = torch.searchsorted(sbins, y.contiguous(), right=False).clamp(1, self.num_bins - 1)
        below = above - 1
        lo, hi = sbins[below], sbins[above]
        w_hi = ((y - lo) / (hi - lo)).clamp(0.0, 1.0)
        target = F.one_hot(below, self.num_bins) * (1 - w_hi)[..., None]
        target = target + F.one_hot(above, self.num_bins) * w_hi[..., None]
        return target.to(x.dtype if x.is_floating_point() else torch.float32)

    def decode(self, logits: Tensor) -> Tensor:
        """Expected value ``[...]`` of the distribution given by ``logits [..., num_bins]``.

        The expectation is taken in symlog space and mapped back, which is the exact inverse of
        :meth:`encode` and avoids summing numbers of wildly different magnitude.
        """
        self._check(logits)
        probs = torch.softmax(logits.float(), -1)
        return symexp((probs * self._symlog_on(probs.device, probs.dtype)).sum(-1))

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy of ``logits [..., num_bins]`` against two-hot encoded ``target [...]``."""
        self._check(logits)
        if logits.shape[:-1] != target.shape:
            raise ValueError(
                f"target must have shape {tuple(logits.shape[:-1])} to match logits {tuple(logits.shape)},"
                f" got {tuple(target.shape)}"
            )
        return -(self.encode(target.detach()) * torch.log_softmax(logits, -1)).sum(-1)

    def _check(self, logits: Tensor) -> None:
        if logits.shape[-1] != self.num_bins:
            raise ValueError(f"logits must end in {self.num_bins} bins, got shape {tuple(logits.shape)}")
