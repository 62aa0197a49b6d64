"""The actor and the critic of the Dreamer agent, and the actor as imagination's policy.

The actor samples one-hot discrete actions (with unimix) or bounded normal continuous ones; its
noise can be drawn ahead (:meth:`Actor.noise`) so that a compiled imagination step can hold it.
The critic is a two-hot distribution over symexp-spaced bins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.core import MLP, TwoHot, categorical_entropy, sample_indices, unimix_logits
from agentwm.worldmodels.base import ActionSpec

if TYPE_CHECKING:
    from agentwm.agents.dreamer.agent import DreamerAgent

Mode = Literal["explore", "eval"]
Net = Callable[[Tensor], Tensor]  # a module's forward, or the same module at a compiled call site


class Actor(nn.Module):
    """Policy over model features: a categorical with unimix for discrete actions, a bounded normal
    (mean ``tanh``, std in ``[min_std, max_std]``) in ``[-1, 1]`` units for continuous ones."""

    def __init__(
        self, feat_dim: int, spec: ActionSpec, units: int, layers: int, config: DreamerConfig
    ) -> None:
        super().__init__()
        self.spec, self.discrete = spec, spec.kind == "discrete"
        out = spec.dim if self.discrete else 2 * spec.dim
        self.net = MLP(feat_dim, out, units, layers, out_scale=0.01)
        self.unimix, self.min_std, self.max_std = config.actor_unimix, config.min_std, config.max_std

    def _params(self, feat: Tensor, net: Net | None = None) -> tuple[Tensor, Tensor]:
        out = (net or self.net)(feat)
        if self.discrete:
            logp = unimix_logits(out, self.unimix)
            return logp, logp
        mean, std = out.chunk(2, -1)
        std = (self.max_std - self.min_std) * torch.sigmoid(std + 2.0) + self.min_std
        return torch.tanh(mean), std

    def sample(
        self,
        feat: Tensor,
        mode: Mode = "explore",
        generator: torch.Generator | None = None,
        net: Net | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Actions ``[..., A]``: one-hot rows (discrete) or floats (continuous, ``[-1, 1]`` units);
        ``net`` runs ``self.net`` at a compiled call site (see ``DreamerAgent``).

        Continuous samples are *not* clipped: the REINFORCE term needs the log-probability of the
        sample itself (clipped samples bias the std gradient upwards when advantages are
        negative). The env and the RSSM (``a / max(1, |a|)``) clip them where they are used."""
        a, b = self._params(feat, net)
        if self.discrete:
            idx = a.argmax(-1) if mode == "eval" else sample_indices(a, generator, noise)
            return nn.functional.one_hot(idx, self.spec.dim).to(feat.dtype)
        if mode == "eval":
            return a
        if noise is None:
            noise = self.noise(a.shape[:-1].numel(), a.device, generator).view(a.shape)
        return a + b * noise.to(a.dtype)

    def rsample(self, feat: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sample ``[..., A]`` that gradients pass through (dynamics backprop, ``actor_dynamics``):
        the one-hot row plus ``p - stop_gradient(p)`` (straight-through) for discrete actions, the
        reparameterised ``mean + std * noise`` for continuous ones. Same forward values as
        :meth:`sample`."""
        a, b = self._params(feat)
        if self.discrete:
            probs = a.exp()
            onehot = nn.functional.one_hot(sample_indices(a.detach(), generator), self.spec.dim).to(probs.dtype)
            return onehot + probs - probs.detach()
        return a + b * self.noise(a.shape[:-1].numel(), a.device, generator).view(a.shape).to(a.dtype)

    def noise(self, batch: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """The random numbers :meth:`sample` draws for ``batch`` rows, drawn ahead (``noise=``):
        a uniform per row (discrete), a standard normal per action dimension (continuous)."""
        shape = (batch, 1) if self.discrete else (batch, self.spec.dim)
        draw = torch.rand if self.discrete else torch.randn
        return draw(shape, device=device, generator=generator)

    def log_probs(self, feat: Tensor, net: Net | None = None) -> Tensor:
        """Discrete actions: the (unimixed) log-probability of every action, ``[..., A]``."""
        if not self.discrete:
            raise ValueError("log_probs of every action needs discrete actions")
        return self._params(feat, net)[0]

    def log_prob_entropy(self, feat: Tensor, action: Tensor, net: Net | None = None) -> tuple[Tensor, Tensor]:
        """``(log pi(action | feat), entropy)``, each ``[...]``."""
        a, b = self._params(feat, net)
        if self.discrete:
            return (a * action).sum(-1), categorical_entropy(a)
        var = b.square()
        logp = -((action - a).square() / (2 * var) + b.log() + 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (b.log() + 0.5 * (1.0 + math.log(2 * math.pi))).sum(-1)
        return logp, entropy


class ImaginationPolicy:
    """The actor as imagination's policy (``rssm_fast.NoisePolicy``): drawing from the agent's
    generator, or given noise drawn ahead, so that a compiled imagination step can hold the actor."""

    def __init__(self, agent: DreamerAgent) -> None:
        self.agent = agent

    def noise(self, batch: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        return self.agent.actor.noise(batch, device, generator)

    def __call__(self, state: Mapping[str, Tensor], noise: Tensor | None = None) -> Tensor:
        agent = self.agent
        feat = agent.wm.feat(state)
        if noise is None:
            return agent.actor.sample(feat, "explore", agent.generator, agent._nets.get("actor_policy"))
        return agent.actor.sample(feat, "explore", noise=noise)


class DifferentiablePolicy:
    """The actor as the policy of an imagination that gradients flow back through (``actor_dynamics``)."""

    def __init__(self, agent: DreamerAgent) -> None:
        self.agent = agent

    def __call__(self, state: Mapping[str, Tensor]) -> Tensor:
        return self.agent.actor.rsample(self.agent.wm.feat(state), self.agent.generator)


class Critic(nn.Module):
    """Value over model features as a two-hot distribution over symexp-spaced bins (zero-initialised)."""

    def __init__(self, feat_dim: int, units: int, layers: int, bins: int) -> None:
        super().__init__()
        self.net = MLP(feat_dim, bins, units, layers, out_scale=0.0)
        self.twohot = TwoHot(bins)

    def forward(self, feat: Tensor) -> Tensor:
        """Logits ``[..., bins]``."""
        out: Tensor = self.net(feat)
        return out

    def value(self, feat: Tensor, net: Net | None = None) -> Tensor:
        """Expected value ``[...]`` (``net``: ``self.net`` at a compiled call site)."""
        return self.twohot.decode((net or self.net)(feat))
