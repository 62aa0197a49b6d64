"""Categorical latents for world models: unimix, straight-through one-hot samples, KL, entropy.

Latents are ``groups`` independent categoricals of ``classes`` each; logits have shape
``[..., groups, classes]``. Functions are plain tensor math (no ``torch.distributions`` objects) so
they are cheap on the hot path of imagination and compile cleanly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def unimix_logits(logits: Tensor, unimix: float = 0.01) -> Tensor:
    """Log-probabilities of ``(1 - unimix) * softmax(logits) + unimix / classes``.

    Mixing in 1% uniform keeps every class reachable, which bounds the KL and stops the
    posterior and prior from collapsing to deterministic codes (DreamerV3).
    """
    if unimix <= 0.0:
        return torch.log_softmax(logits, -1)
    probs = torch.softmax(logits, -1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


def sample_indices(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Class indices ``[...]`` drawn from ``logits [..., classes]`` by inverse-CDF sampling.

    One uniform number per categorical instead of one Gumbel per class: for 32×32 latents this
    draws 32 numbers per state instead of 1,024, which matters when imagining 10^4 states a step.
    """
    probs = torch.softmax(logits.float(), -1)
    cdf = probs.cumsum(-1)
    u = torch.rand(cdf.shape[:-1] + (1,), device=logits.device, generator=generator) * cdf[..., -1:]
    # First class whose cumulative probability reaches u; searchsorted avoids a bool→int64 reduction.
    idx = torch.searchsorted(cdf, u).squeeze(-1)
    return idx.clamp_max(logits.shape[-1] - 1)


def sample_onehot(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One-hot sample ``[..., classes]`` with straight-through gradients to the probabilities."""
    idx = sample_indices(logits, generator)
    onehot = F.one_hot(idx, logits.shape[-1]).to(logits.dtype)
    if not logits.requires_grad:
        return onehot
    probs = torch.softmax(logits, -1)
    return onehot + probs - probs.detach()


def mode_onehot(logits: Tensor) -> Tensor:
    """Most likely class of each categorical as a one-hot ``[..., classes]``."""
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)


def categorical_kl(lhs_logits: Tensor, rhs_logits: Tensor) -> Tensor:
    """KL(lhs || rhs) ``[...]`` summed over the last two dims ``[groups, classes]``.

    Both inputs are (normalised or raw) logits; they are log-softmaxed here.
    """
    if lhs_logits.shape != rhs_logits.shape:
        raise ValueError(f"KL needs matching shapes, got {tuple(lhs_logits.shape)} and {tuple(rhs_logits.shape)}")
    lp = torch.log_softmax(lhs_logits, -1)
    rp = torch.log_softmax(rhs_logits, -1)
    return (lp.exp() * (lp - rp)).sum((-2, -1))


def categorical_entropy(logits: Tensor) -> Tensor:
    """Entropy ``[...]`` of a single categorical ``logits [..., classes]``."""
    lp = torch.log_softmax(logits, -1)
    return -(lp.exp() * lp).sum(-1)
