"""Imagined revisits: a command whose imagined next state is one already visited this episode, with no task progress since, wastes steps.

Only a planner that imagines can use this: the world model predicts each candidate's next
observation embedding (``Rollout.extras["obs"]``) and the task coverage after it (``cover``), and
:class:`VisitMemory` compares both with the states actually visited. A candidate that would lead
back to a seen observation with the same coverage (``go west`` after ``go east``, ``close chest``
after ``open chest`` …) is an undo: its score is discounted. A scorer that never imagines a next
state (the ``direct`` ablation) has nothing to compare. Off by default: the shipped model's imagined
room after a move is generic (nearest to the right room in 22% of revisiting moves), so it
recognises feedback-text undos but not walks between rooms (``docs/textworld.md``, phase 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class VisitMemory:
    """Observation embeddings ``[D]`` and task coverage ``[K]`` of each state visited this episode."""

    def __init__(self) -> None:
        self.obs: list[Tensor] = []
        self.cover: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.obs)

    def add(self, obs: Tensor, cover: Tensor) -> None:
        """Remember one visited state: its observation embedding ``[D]`` and coverage ``[K]``."""
        if obs.dim() != 1 or cover.dim() != 1:
            raise ValueError(f"add takes one state: obs [D] and cover [K], got {tuple(obs.shape)} and {tuple(cover.shape)}")
        self.obs.append(obs.detach())
        self.cover.append(cover.detach())

    def revisit(self, pred_obs: Tensor, next_cover: Tensor, tolerance: float = 0.02, nearest: bool = False) -> Tensor:
        """``[N]``: for each imagined next state (observation ``pred_obs [N, D]``, coverage
        ``next_cover [N, K]``), the highest cosine similarity to a visited observation whose coverage
        equals it within ``tolerance`` (no progress since that visit); 0 where none qualifies.
        ``nearest``: only the visited observation most similar to the prediction counts (0 unless its
        coverage equals the imagined one), so a vague prediction near many visits matches one."""
        if pred_obs.dim() != 2 or next_cover.dim() != 2 or pred_obs.shape[0] != next_cover.shape[0]:
            raise ValueError(f"revisit takes pred_obs [N, D] and next_cover [N, K], got {tuple(pred_obs.shape)} and {tuple(next_cover.shape)}")
        if not self.obs:
            return torch.zeros(pred_obs.shape[0])
        seen = F.normalize(torch.stack(self.obs), dim=-1)  # [V, D]
        sims = F.normalize(pred_obs, dim=-1) @ seen.T  # [N, V]
        gap = (next_cover[:, None, :] - torch.stack(self.cover)[None]).abs().amax(-1)  # [N, V]
        same = gap <= tolerance
        if nearest:
            best = sims.argmax(1, keepdim=True)
            return (sims.gather(1, best) * same.gather(1, best)).clamp(min=0).squeeze(1)
        return (sims * same).clamp(min=0).amax(1)


def revisit_adjusted(score: Tensor, revisit: Tensor, threshold: float, discount: float) -> Tensor:
    """Scores after the revisit term: a candidate whose imagined next state matches a visited one
    (``revisit >= threshold``) has its score multiplied by ``discount`` (1: off)."""
    return score * torch.where(revisit >= threshold, torch.full_like(score, discount), torch.ones_like(score))
