"""The RSSM's training loss (DreamerV3's world-model terms), a free function of the model.

KL balancing with free nats between posterior and prior, symlog (vectors) or plain (images)
reconstruction, a two-hot reward head and a continue head, and optionally observation overshooting
(multi-step open-loop predictions decoded against the replay); :meth:`RSSM.loss` calls it, so the
model file holds the networks and their steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from agentwm.core import categorical_entropy, categorical_kl, sample_onehot, symlog, unimix_logits
from agentwm.worldmodels.base import check_tensor
from agentwm.worldmodels.block_gru import scale_actions

if TYPE_CHECKING:
    from agentwm.worldmodels.rssm import RSSM


def kl_losses(
    post_logits: Tensor, prior_logits: Tensor, free_nats: float, unimix: float
) -> tuple[Tensor, ...]:
    """DreamerV3's balanced KL terms ``(dyn, rep, kl)``, each ``[...]``, from logits ``[..., S, C]``.

    ``dyn = max(free, KL(sg(q) || p))`` trains only the prior, ``rep = max(free, KL(q || sg(p)))``
    only the posterior; ``kl`` is the raw KL for logging. Below ``free_nats`` a term is constant, so
    its gradient is zero: the model is not pushed to make the KL smaller than it needs to be.
    """
    post, prior = unimix_logits(post_logits, unimix), unimix_logits(prior_logits, unimix)
    dyn = categorical_kl(post.detach(), prior)
    rep = categorical_kl(post, prior.detach())
    return dyn.clamp(min=free_nats), rep.clamp(min=free_nats), dyn.detach()


def world_model_loss(model: RSSM, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """World-model losses on sequences.

    Args:
        batch: ``obs [B, T, *obs_shape]``, ``action [B, T, A]`` (led to ``obs``), ``reward [B, T]``
            and ``is_terminal [B, T]`` (of the transition into ``obs``), ``is_first [B, T]``.

    Returns:
        ``(losses, metrics)``: unreduced ``[B, T]`` terms keyed like ``config.loss_scales``
        (``dyn``, ``rep``, ``dec``, ``reward``, ``cont``; ``overshoot`` where it is on), and detached scalar metrics under
        ``loss/`` and ``wm/``. Combine with :meth:`RSSM.total_loss`.
    """
    for key in ("obs", "action", "reward", "is_first", "is_terminal"):
        if key not in batch:
            raise KeyError(f"batch needs {key!r}; got keys {sorted(batch)}")
    cfg = model.config
    obs = model._check_obs("batch['obs']", batch["obs"], 2)
    B, T = obs.shape[:2]
    reward = check_tensor("batch['reward']", batch["reward"], [B, T])
    terminal = check_tensor("batch['is_terminal']", batch["is_terminal"], [B, T], floating=False)
    post, prior_logits = model.observe_sequence(obs, batch["action"], batch["is_first"])
    dyn, rep, kl = kl_losses(post["logits"], prior_logits, cfg.free_nats, cfg.unimix)
    feat = model.feat(post)
    dec = _reconstruction_error(model, feat, obs)
    reward_logits = model._batched("reward_head")(feat)
    cont_logit = model._batched("cont_head")(feat)[..., 0]
    cont_target = 1.0 - terminal.to(cont_logit.dtype)
    losses = {
        "dyn": dyn,
        "rep": rep,
        "dec": dec,
        "reward": model.twohot.loss(reward_logits, reward),
        "cont": F.binary_cross_entropy_with_logits(cont_logit, cont_target, reduction="none"),
    }
    if cfg.overshoot > 0:
        losses["overshoot"] = overshoot_loss(model, post, obs, batch["action"], batch["is_first"], cfg.overshoot)
    if cfg.cont_terminal_weight != 1.0:
        losses["cont"] = losses["cont"] * torch.where(terminal.bool(), cfg.cont_terminal_weight, 1.0)
    for key, value in losses.items():
        assert value.shape == (B, T), f"loss {key} has shape {tuple(value.shape)}, expected {(B, T)}"
    with torch.no_grad():
        metrics = {f"loss/{k}": v.mean() for k, v in losses.items()}
        metrics["wm/kl"] = kl.mean()
        metrics["wm/prior_ent"] = (
            categorical_entropy(unimix_logits(prior_logits, cfg.unimix)).sum(-1).mean()
        )
        metrics["wm/post_ent"] = (
            categorical_entropy(unimix_logits(post["logits"], cfg.unimix)).sum(-1).mean()
        )
        metrics["wm/reward_mae"] = (model.twohot.decode(reward_logits) - reward).abs().mean()
        metrics["wm/cont_acc"] = ((cont_logit > 0).to(cont_target.dtype) == cont_target).float().mean()
    return losses, metrics


def _reconstruction_error(model: RSSM, feat: Tensor, obs: Tensor) -> Tensor:
    """The decoder's squared error per row ``[...]``: symlog space for vectors, pixels for images."""
    pred: Tensor = model._batched("decoder")(feat)
    if model.is_image:
        return (pred - obs).square().sum((-3, -2, -1))
    return (pred - symlog(obs)).square().sum(-1)


def overshoot_loss(
    model: RSSM, post: Mapping[str, Tensor], obs: Tensor, actions: Tensor, is_first: Tensor, steps: int
) -> Tensor:
    """Observation overshooting ``[B, T]``: from the posterior at every ``t``, the prior rolled ``k =
    1..steps`` steps open-loop with the replayed actions, each decoded against ``obs[t + k]``; the mean
    error over the ``k`` that stay inside the sequence and the episode (0 where none does).

    The one-step KL trains the prior to predict the next posterior, never its own predictions, so
    errors that compound over an imagined horizon go untrained; on CartPole the cart's position 32
    imagined steps ahead was off by as much as it really moved (docs/dreamer.md). Gradients reach the
    prior, the GRU, the decoder and the starting posteriors.
    """
    B, T = obs.shape[:2]
    deter = post["deter"].flatten(0, 1)
    stoch = post["stoch"].flatten(0, 1)
    alive = torch.ones(B, T, dtype=torch.bool, device=obs.device)
    total = obs.new_zeros(B, T)
    count = obs.new_zeros(B, T)
    for k in range(1, min(steps, T - 1) + 1):
        # Row t reads step t + k: time rolled left by k; the rows that wrap around are masked by `inside`.
        act = actions.roll(-k, 1).flatten(0, 1)
        proj = model.core.in_stoch(stoch.flatten(1))
        deter, logit = model.prior_step(deter, proj, model.core.in_action(scale_actions(act)))
        stoch = sample_onehot(logit)
        feat = model.feat({"deter": deter, "stoch": stoch}).view(B, T, -1)  # the dec term's shape
        error = _reconstruction_error(model, feat, obs.roll(-k, 1))
        inside = torch.arange(T, device=obs.device)[None] < T - k
        alive = alive & inside & ~is_first.bool().roll(-k, 1)
        total = total + error * alive
        count = count + alive
    return total / count.clamp(min=1.0)
