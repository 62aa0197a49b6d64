"""Parameter counts of a whole DreamerV3-style agent (world model + actor + critic), as the paper counts them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from agentwm.core import MLP
from agentwm.worldmodels.base import ActionSpec
from agentwm.worldmodels.rssm import RSSM, RSSMConfig


def count_agent_params(
    config: RSSMConfig, obs_shape: Sequence[int] = (3, 64, 64), actions: int = 18
) -> dict[str, int]:
    """Parameters of a whole DreamerV3-style agent for ``config``, counted the way the paper's
    nominal sizes are: the world model (encoder, RSSM, decoder, reward and continue heads) for
    ``obs_shape`` (default a 64x64x3 image) with ``actions`` discrete actions, plus an actor
    (feat -> units x ac_layers -> actions) and a critic (-> reward_bins) built with ``core.MLP``.
    The critic's slow target copy is not counted. Modules are built on the meta device (no memory).
    """
    with torch.device("meta"):
        model = RSSM(obs_shape, ActionSpec("discrete", actions), config)
        actor = MLP(model.feat_dim, actions, config.units, config.ac_layers)
        critic = MLP(model.feat_dim, config.reward_bins, config.units, config.ac_layers)

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    out = {name: count(getattr(model, name)) for name in ("encoder", "core", "prior_net", "post_net")}
    out.update(decoder=count(model.decoder), reward=count(model.reward_head), cont=count(model.cont_head))
    out.update(world_model=count(model), actor=count(actor), critic=count(critic))
    out["total"] = out["world_model"] + out["actor"] + out["critic"]
    return out
