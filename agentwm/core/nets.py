"""Small building blocks shared by every model: MLP with RMSNorm + SiLU, 64×64 conv encoder/decoder.

Linear layers carry no bias when a norm follows them (the norm's scale and the next layer make it
redundant), as in DreamerV3.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from agentwm.core.norm import RMSNorm


def init_output(layer: nn.Linear | nn.Conv2d | nn.ConvTranspose2d, scale: float) -> None:
    """Scale an output layer's initial weights; ``scale=0`` zero-inits it (DreamerV3 does this for
    reward and value heads, so early predictions are exactly zero instead of random)."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        if layer.bias is not None:
            layer.bias.zero_()


class MLP(nn.Module):
    """``layers`` × (Linear → RMSNorm → SiLU), then an optional linear output layer.

    Args:
        in_dim: input features.
        out_dim: output features; ``None`` returns the last hidden activations (``units`` wide).
        units: hidden width.
        layers: number of hidden blocks (0 gives a single linear map).
        out_scale: multiplier on the output layer's initial weights (0 for zero init).
    """

    def __init__(self, in_dim: int, out_dim: int | None, units: int, layers: int, out_scale: float = 1.0) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(dim, units, bias=False), RMSNorm(units, eps=1e-4), nn.SiLU()]
            dim = units
        self.hidden = nn.Sequential(*blocks)
        self.out: nn.Linear | None = None
        if out_dim is not None:
            self.out = nn.Linear(dim, out_dim)
            init_output(self.out, out_scale)
        self.out_dim = out_dim if out_dim is not None else dim

    def forward(self, x: Tensor) -> Tensor:
        x = self.hidden(x)
        out: Tensor = self.out(x) if self.out is not None else x
        return out


class ChannelNorm(nn.Module):
    """RMSNorm over the channel dim of ``[B, C, H, W]`` feature maps."""

    def __init__(self, channels: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.norm = RMSNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out


def _stages(image_size: int, minres: int) -> int:
    stages = round(math.log2(image_size / minres))
    if minres * 2**stages != image_size:
        raise ValueError(f"image_size {image_size} must be minres {minres} times a power of two")
    return stages


class ConvEncoder(nn.Module):
    """Image ``[B, C, S, S]`` in ``[0, 1]`` → flat features, halving resolution with stride-2 convs.

    Channels double each stage from ``depth`` (DreamerV3's CNN multiplier) until ``minres``;
    a 64×64 input with ``depth=32`` goes 32→64→128→256 channels over 32, 16, 8, 4 pixels.
    """

    def __init__(self, in_channels: int = 3, depth: int = 32, image_size: int = 64, minres: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in = in_channels
        for i in range(_stages(image_size, minres)):
            ch_out = depth * 2**i
            layers += [nn.Conv2d(ch_in, ch_out, 4, 2, 1, bias=False), ChannelNorm(ch_out), nn.SiLU()]
            ch_in = ch_out
        self.net = nn.Sequential(*layers)
        self.out_dim = ch_in * minres * minres
        self.in_shape = (in_channels, image_size, image_size)

    def forward(self, image: Tensor) -> Tensor:
        out: Tensor = self.net(image - 0.5).flatten(1)
        return out


class ConvDecoder(nn.Module):
    """Flat features → image ``[B, C, S, S]`` (mean in ``[0, 1]`` space, unclamped), mirror of
    :class:`ConvEncoder`."""

    def __init__(
        self, in_dim: int, out_channels: int = 3, depth: int = 32, image_size: int = 64, minres: int = 4
    ) -> None:
        super().__init__()
        stages = _stages(image_size, minres)
        top = depth * 2 ** (stages - 1)
        self.minres, self.top = minres, top
        self.proj = nn.Linear(in_dim, top * minres * minres)
        layers: list[nn.Module] = []
        ch_in = top
        for i in reversed(range(stages)):
            last = i == 0
            ch_out = out_channels if last else depth * 2 ** (i - 1)
            layers.append(nn.ConvTranspose2d(ch_in, ch_out, 4, 2, 1, bias=last))
            if not last:
                layers += [ChannelNorm(ch_out), nn.SiLU()]
            ch_in = ch_out
        self.net = nn.Sequential(*layers)
        self.out_shape = (out_channels, image_size, image_size)

    def forward(self, feat: Tensor) -> Tensor:
        lead = feat.shape[:-1]
        x = self.proj(feat.reshape(-1, feat.shape[-1])).view(-1, self.top, self.minres, self.minres)
        image: Tensor = self.net(x) + 0.5
        return image.view(*lead, *self.out_shape)
