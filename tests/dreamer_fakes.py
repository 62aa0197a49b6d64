"""A small replay-shaped batch for Dreamer unit tests (vector observations, 2 discrete actions)."""

from __future__ import annotations

import torch


def vector_batch(B: int = 4, T: int = 8) -> dict[str, torch.Tensor]:
    """``B`` sequences of ``T`` steps as the replay hands them out: obs ``[B, T, 4]``, one-hot actions."""
    g = torch.Generator().manual_seed(0)
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    return {"obs": torch.randn(B, T, 4, generator=g),
            "action": torch.nn.functional.one_hot(torch.randint(2, (B, T), generator=g), 2).float(),
            "reward": torch.rand(B, T, generator=g), "is_first": first,
            "is_terminal": torch.zeros(B, T, dtype=torch.bool)}  # fmt: skip
