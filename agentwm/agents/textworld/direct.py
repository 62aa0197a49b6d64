"""The ``direct`` ablation: the world model's encoder with a head that scores a command's value at once.

Same inputs, same data and same targets as :class:`~agentwm.worldmodels.text_latent.TextLatentModel`,
but no imagination: ``Q(h, command)`` regresses ``reward + γ·continue·value(next state)`` of the
command taken, and a planner using it picks the command with the highest ``Q``. Comparing the
two isolates what imagining the next state adds.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from agentwm.core.nets import MLP
from agentwm.worldmodels.text_latent import TextLatentConfig, TextLatentModel, rank_loss


class DirectScorer(TextLatentModel):
    """History encoder + ``Q(h, command)`` head; ``imagine`` is not used by its planner."""

    def __init__(self, config: TextLatentConfig | None = None) -> None:
        super().__init__((config or TextLatentConfig()).model_copy(update={"members": 1}))
        c = self.config
        self.q = MLP(c.hidden + c.proj + 2 * c.max_goal, 1, c.units, 2)

    def q_values(self, state: Mapping[str, Tensor], actions: Tensor) -> Tensor:
        """``Q [B, N]`` of ``N`` command embeddings ``actions [B, N, D]`` from carries of batch B."""
        h = state["h"][:, 0]
        hh = h[:, None].expand(-1, actions.shape[1], -1)
        cover = state["cover"][:, None].expand(-1, actions.shape[1], -1)
        feat = self._feat(hh, actions, state["goal"], state["goal_mask"], cover)
        return torch.sigmoid(self.q(feat).squeeze(-1))

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``value`` of each state and ``q`` of each command taken (targets as the world model's)."""
        obs, act, mask = batch["obs"], batch["act"], batch["mask"]
        B = obs.shape[0]
        state = self.initial(B, batch["goal"], batch["goal_mask"])
        goal, gmask = state["goal"], state["goal_mask"]
        post, cover = self._posterior(obs, act, state)
        live = mask * batch["cont"]
        value_loss = (self.value_of(post, cover) - batch["value"]) ** 2 * live
        trans = mask[:, 1:]
        gamma = self.config.value_gamma
        target = batch["reward"][:, 1:].clamp(0, 1) + gamma * batch["cont"][:, 1:] * batch["value"][:, 1:]
        feat = self._feat(post[:, :-1], act[:, :-1], goal, gmask, cover[:, :-1])
        q = torch.sigmoid(self.q(feat).squeeze(-1))
        q_loss = (q - target) ** 2 * trans
        losses = {"value": value_loss, "q": q_loss}
        if "opt" in batch:  # the same counterfactual labels as the world model gets
            acts = torch.cat([batch["opt"][:, :, None], batch["alts"]], 2)
            hh = post[:, :, None].expand(-1, -1, acts.shape[2], -1)
            cv = cover[:, :, None].expand(-1, -1, acts.shape[2], -1)
            qa = torch.sigmoid(self.q(self._feat(hh, acts, goal, gmask, cv)).squeeze(-1))
            v = batch["value"]
            live_cf = live * batch["opt_mask"]
            alt = (torch.relu(qa[..., 1:] - gamma * v[..., None]) ** 2 * batch["alts_mask"]).sum(-1)
            losses["counterfactual"] = ((qa[..., 0] - v) ** 2 + alt) * live_cf
            losses["rank"] = rank_loss(qa, batch["alts_mask"]) * live_cf
        n = trans.sum().clamp(min=1)
        metrics = {f"loss/{k}": (t.sum() / n).detach() for k, t in losses.items()}
        return losses, metrics
