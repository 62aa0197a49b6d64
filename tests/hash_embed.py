"""A deterministic stand-in for MiniLM in the text-game tests: one unit vector per text."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class HashEmbed:
    """Unit vectors ``[N, dim]`` seeded by each text's hash: equal texts, equal vectors (no MiniLM)."""

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> Tensor:
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
            rows.append(F.normalize(torch.randn(self.dim, generator=g), dim=0))
        return torch.stack(rows)
