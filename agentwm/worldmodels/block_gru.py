"""The RSSM's recurrent core: DreamerV3's block GRU (block-diagonal recurrent weights, RMS-normalised
gates) and the small helpers the RSSM's fast paths share (action scaling, split first layers)."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agentwm.core import MLP
from agentwm.core.norm import RMSNorm
from agentwm.worldmodels.rssm_config import RSSMConfig

NORM_EPS = 1e-4  # same as the RMSNorm in agentwm.core.nets


class _BlockLinear(nn.Module):
    """``y = W x + blockdiag(V_1 .. V_g) h``: a dense map of a shared input ``x`` plus a block-diagonal
    map of ``h`` split into ``g`` groups. Equals DreamerV3's BlockLinear over ``[h_g, x]`` per group,
    without materialising ``x`` once per group.

    Works group-major: ``h`` is ``[g, B, in/g]`` and ``y`` is ``[g, B, out/g]``, so the block part is
    one contiguous ``bmm`` and per-group norms read contiguous rows.
    """

    def __init__(self, dense_in: int, block_in: int, out: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        bound = 1.0 / math.sqrt(dense_in + block_in // groups)  # nn.Linear's default init
        self.block = nn.Parameter(
            torch.empty(groups, block_in // groups, out // groups).uniform_(-bound, bound)
        )
        self.dense = nn.Parameter(torch.empty(out, dense_in).uniform_(-bound, bound)) if dense_in else None

    def forward(self, x: Tensor | None, h: Tensor) -> Tensor:
        if self.dense is None or x is None:
            return torch.bmm(h, self.block)
        g, B = self.groups, h.shape[1]
        dense = F.linear(x, self.dense).view(B, g, -1).transpose(0, 1)
        return torch.baddbmm(dense, h, self.block)


class BlockGRU(nn.Module):
    """``h' = GRU(h, inputs(z, a[, h]))`` with RMS-normalised gate pre-activations per block.

    ``reset, cand, update = norm(gates)``; ``h' = u * tanh(sigmoid(r) * c) + (1 - u) * h`` with
    ``u = sigmoid(update - 1)`` (biased towards keeping ``h``, as in DreamerV3). The projections of
    ``z`` and ``a`` are passed in pre-norm, so callers may compute them by gather or matmul.
    Hidden block layers are normalised over the whole ``deter`` vector (as DreamerV3 does), the
    gates per block.
    """

    def __init__(self, cfg: RSSMConfig, action_dim: int) -> None:
        super().__init__()
        self.deter, self.groups, self.split = cfg.deter, cfg.blocks, cfg.split_inputs
        h = cfg.hidden
        self.in_stoch = nn.Linear(cfg.stoch * cfg.classes, h, bias=False)
        self.in_action = nn.Linear(action_dim, h, bias=False)
        if self.split:
            self.in_deter = nn.Linear(cfg.deter, h, bias=False)
            self.in_norms = nn.ModuleList(RMSNorm(h, eps=NORM_EPS) for _ in range(3))
        else:
            self.in_norms = nn.ModuleList([RMSNorm(h, eps=NORM_EPS)])
        x_dim = 3 * h if self.split else h
        outs = [cfg.deter] * cfg.dynlayers + [3 * cfg.deter]
        self.layers = nn.ModuleList(
            _BlockLinear(x_dim if i == 0 else 0, cfg.deter, out, cfg.blocks) for i, out in enumerate(outs)
        )
        self.hidden_norms = nn.ModuleList(RMSNorm(cfg.deter, eps=NORM_EPS) for _ in range(cfg.dynlayers))
        self.gate_scale = nn.Parameter(torch.ones(cfg.blocks, 1, 3 * cfg.deter // cfg.blocks))

    def forward(self, deter: Tensor, stoch_proj: Tensor, action_proj: Tensor) -> Tensor:
        if self.split:
            nd, ns, na = self.in_norms
            x = torch.cat(
                [F.silu(nd(self.in_deter(deter))), F.silu(ns(stoch_proj)), F.silu(na(action_proj))], -1
            )
        else:
            x = F.silu(self.in_norms[0](stoch_proj + action_proj))
        B, g = deter.shape[0], self.groups
        h = deter.view(B, g, -1).transpose(0, 1)  # [g, B, deter/g]
        if g > 1:
            h = h.contiguous()
        y = self.layers[0](x, h)
        for layer, norm in zip(self.layers[1:], self.hidden_norms):
            scale = torch.rsqrt(y.square().mean((0, 2), keepdim=True) + NORM_EPS)  # over all of deter
            weight = cast(Tensor, norm.weight)
            y = layer(None, F.silu(y * scale * weight.view(g, 1, -1)))
        if g == 1:
            gates = F.rms_norm(y, (y.shape[-1],), self.gate_scale[0, 0].to(y.dtype), NORM_EPS)  # same dtype: CUDA fuses it
        else:
            gates = F.rms_norm(y, (y.shape[-1],), None, NORM_EPS) * self.gate_scale
        reset, cand, update = gates.chunk(3, -1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)
        # The recurrent state keeps its own precision under autocast (bf16 gates, fp32 deter).
        out = torch.lerp(h, cand.to(h.dtype), update.to(h.dtype))  # [g, B, deter/g]
        return out.transpose(0, 1).reshape(B, self.deter)


def scale_actions(action: Tensor) -> Tensor:
    """DreamerV3's action scaling ``a / max(1, |a|)``: keeps one-hots and [-1, 1] actions as they are."""
    return action / action.detach().abs().clamp(min=1.0)


def first_linear(mlp: MLP) -> nn.Linear:
    """The first linear layer of ``mlp`` (its output layer when it has no hidden layers)."""
    first = mlp.hidden[0] if len(mlp.hidden) else mlp.out
    assert isinstance(first, nn.Linear)
    return first


def after_first(mlp: MLP, h: Tensor) -> Tensor:
    """Finish ``mlp`` given the output of its first linear layer without that layer's bias."""
    if len(mlp.hidden):
        x: Tensor = mlp.hidden[1:](h)
        return mlp.out(x) if mlp.out is not None else x
    assert mlp.out is not None
    return h + mlp.out.bias if mlp.out.bias is not None else h
