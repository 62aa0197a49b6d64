"""Ha & Schmidhuber's World Models (2018): a ConvVAE (V) and an MDN-RNN (M), behind the protocol.

* **V** compresses a 64×64 frame into ``z`` (32-d by default) with a convolutional VAE
  (:class:`agentwm.core.ConvEncoder` / :class:`~agentwm.core.ConvDecoder`), trained on frames
  alone with a KL term that stops pushing below ``kl_tolerance`` nats per dimension.
* **M** is an LSTM over ``[z_t, a_t]`` whose hidden state ``h`` predicts the next latent as a
  mixture of Gaussians per latent dimension (``mixtures`` components), plus the reward and the
  episode end. Sampling from M with temperature ``tau`` (mixture logits divided by ``tau``, stds
  scaled by ``sqrt(tau)``) makes the dream more uncertain than the data, so a controller cannot
  win by exploiting the model's quirks.

The carry is ``{"z": [B, Z], "h": [B, H], "c": [B, H]}``: ``observe`` first advances the LSTM with
the previous latent and the action just taken, then encodes the new frame (the controller acts on
``[z_t, h_t]``). ``imagine`` dreams forward with M alone and returns a :class:`Rollout` whose
``continues`` are M's predicted probabilities that the episode goes on.

Training is two-staged as in the paper: :meth:`VAEMDNRNN.vae_loss` on frames, then
:meth:`VAEMDNRNN.rnn_loss` on sequences of encoded latents; :meth:`VAEMDNRNN.loss` computes both
on a batch of frame sequences (for the protocol's learnable-model interface).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from agentwm.core.nets import ConvDecoder, ConvEncoder
from agentwm.worldmodels.base import (
    ActionsOrPolicy,
    ActionSpec,
    Rollout,
    State,
    check_tensor,
    resolve_actions,
)

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class VAEMDNConfig(BaseModel):
    """Sizes and loss settings of V and M."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    z_dim: int = Field(default=32, ge=1, description="latent size of the VAE (the paper's 32)")
    depth: int = Field(default=16, ge=1, description="channels of the first conv stage (doubling per stage)")
    image_size: int = Field(default=64, ge=8, description="square frame size")
    channels: int = Field(default=3, ge=1, description="frame channels")
    kl_tolerance: float = Field(default=0.5, ge=0.0, description="free nats per latent dim of the VAE KL")
    hidden: int = Field(default=128, ge=1, description="LSTM units of M (the paper's 256)")
    mixtures: int = Field(default=5, ge=1, description="Gaussian components per latent dim")
    temperature: float = Field(default=1.0, gt=0.0, description="default dream temperature tau")


class VAEMDNRNN(nn.Module):
    """V and M of World Models; see the module docstring.

    Args:
        action_spec: the task's actions (one-hot rows for discrete ones).
        config: sizes.
    """

    def __init__(self, action_spec: ActionSpec, config: VAEMDNConfig | None = None) -> None:
        super().__init__()
        if not isinstance(action_spec, ActionSpec):
            raise TypeError(f"action_spec must be an ActionSpec, got {type(action_spec).__name__}")
        self.config = cfg = config if config is not None else VAEMDNConfig()
        self.action_spec = action_spec
        Z, K = cfg.z_dim, cfg.mixtures
        self.encoder = ConvEncoder(cfg.channels, cfg.depth, cfg.image_size)
        self.to_stats = nn.Linear(self.encoder.out_dim, 2 * Z)
        self.decoder = ConvDecoder(Z, cfg.channels, cfg.depth, cfg.image_size)
        self.rnn = nn.LSTMCell(Z + action_spec.dim, cfg.hidden)
        # Per latent dim: K mixture logits, K means, K log-stds; then reward and done logit.
        self.mdn = nn.Linear(cfg.hidden, 3 * K * Z + 2)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.channels, c.image_size, c.image_size)

    # ------------------------------------------------------------------------------------------
    # V

    def encode(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Frames ``[N, C, S, S]`` in ``[0, 1]`` → ``(mu, logvar)`` each ``[N, Z]``."""
        mu, logvar = self.to_stats(self.encoder(frames)).chunk(2, -1)
        return mu, logvar.clamp(-8.0, 4.0)

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``[..., Z]`` → frame means ``[..., C, S, S]``."""
        out: Tensor = self.decoder(z)
        return out

    def vae_loss(self, frames: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Unreduced ``{"recon": [N], "kl": [N]}`` (sum of squared error; KL floored per dim)."""
        frames = check_tensor("frames", frames, [None, *self.frame_shape])
        mu, logvar = self.encode(frames)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = (self.decode(z) - frames).pow(2).flatten(1).sum(-1)
        kl_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
        kl = kl_dim.sum(-1).clamp_min(self.config.kl_tolerance * self.config.z_dim)
        return {"recon": recon, "kl": kl}, {"wm/kl": kl_dim.sum(-1).mean().detach()}

    # ------------------------------------------------------------------------------------------
    # M

    def _mdn(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        Z, K = self.config.z_dim, self.config.mixtures
        out = self.mdn(h)
        mix = out[..., : 3 * K * Z].unflatten(-1, (Z, 3 * K))
        logits, mean, log_std = mix.split(K, -1)
        return logits, mean, log_std.clamp(-6.0, 2.0), out[..., -2], out[..., -1]

    def rnn_loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """M's unreduced losses on latent sequences.

        Args:
            batch: ``z [B, T+1, Z]`` (latents of T+1 consecutive frames), ``action [B, T, A]``,
                ``reward [B, T]``, ``done [B, T]`` (1 where the step ended the episode) and
                optionally ``mask [B, T]`` (0 on padding).

        Returns:
            ``{"z": [B, T], "reward": [B, T], "done": [B, T]}`` (mixture NLL summed over dims,
            squared reward error, done BCE) and metrics.
        """
        z = check_tensor("batch['z']", batch.get("z"), [None, None, self.config.z_dim])
        B, T = int(z.shape[0]), int(z.shape[1]) - 1
        action = check_tensor("batch['action']", batch.get("action"), [B, T, self.action_spec.dim])
        reward = check_tensor("batch['reward']", batch.get("reward"), [B, T])
        done = check_tensor("batch['done']", batch.get("done"), [B, T])
        mask = batch.get("mask")
        mask = torch.ones_like(reward) if mask is None else check_tensor("batch['mask']", mask, [B, T])
        h = z.new_zeros(B, self.config.hidden)
        c = torch.zeros_like(h)
        hs = []
        for t in range(T):
            h, c = self.rnn(torch.cat([z[:, t], action[:, t]], -1), (h, c))
            hs.append(h)
        logits, mean, log_std, r_pred, d_logit = self._mdn(torch.stack(hs, 1))
        target = z[:, 1:, :, None]
        log_prob = -0.5 * ((target - mean) / log_std.exp()).pow(2) - log_std - _LOG_SQRT_2PI
        nll = -torch.logsumexp(torch.log_softmax(logits, -1) + log_prob, -1).sum(-1)
        losses = {
            "z": nll * mask,
            "reward": (r_pred - reward).pow(2) * mask,
            "done": F.binary_cross_entropy_with_logits(d_logit, done, reduction="none") * mask,
        }
        return losses, {"wm/z_nll_per_dim": (nll * mask).sum().detach() / mask.sum().clamp_min(1) / self.config.z_dim}

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Both stages on frame sequences ``obs [B, T+1, C, S, S]`` with ``action``, ``reward``,
        ``done`` as in :meth:`rnn_loss`; M trains on sampled latents with V's gradient stopped."""
        obs = check_tensor("batch['obs']", batch.get("obs"), [None, None, *self.frame_shape])
        B, T1 = int(obs.shape[0]), int(obs.shape[1])
        vae, vae_metrics = self.vae_loss(obs.flatten(0, 1))
        with torch.no_grad():
            mu, logvar = self.encode(obs.flatten(0, 1))
            z = (mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)).view(B, T1, -1)
        rnn, rnn_metrics = self.rnn_loss({**batch, "z": z})
        losses = {"recon": vae["recon"].view(B, T1), "kl": vae["kl"].view(B, T1), **rnn}
        return losses, {**vae_metrics, **rnn_metrics}

    # ------------------------------------------------------------------------------------------
    # Protocol

    def initial(self, batch_size: int) -> dict[str, Tensor]:
        """Zero latent and LSTM state for ``batch_size`` rows."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        p = self.mdn.weight
        zeros = torch.zeros(batch_size, self.config.hidden, device=p.device, dtype=p.dtype)
        return {"z": torch.zeros(batch_size, self.config.z_dim, device=p.device, dtype=p.dtype),
                "h": zeros, "c": zeros.clone()}

    @torch.no_grad()
    def observe(self, obs: Any, state: State | None = None, action: Tensor | None = None) -> dict[str, Tensor]:
        """Advance M with ``(state["z"], action)`` when both are given, then encode ``obs``
        (frames ``[B, C, S, S]`` in ``[0, 1]``) to its mean latent."""
        if isinstance(obs, np.ndarray):
            obs = torch.as_tensor(obs)
        frames = check_tensor("obs", obs, [None, *self.frame_shape]).to(self.mdn.weight)
        B = int(frames.shape[0])
        carry = self.initial(B) if state is None else {k: state[k] for k in ("z", "h", "c")}
        if state is not None and action is not None:
            action = check_tensor("action", action, [B, self.action_spec.dim]).to(frames)
            carry["h"], carry["c"] = self.rnn(torch.cat([carry["z"], action], -1), (carry["h"], carry["c"]))
        carry["z"] = self.encode(frames)[0]
        return carry

    def sample_next(
        self, h: Tensor, temperature: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """From LSTM output ``h [B, H]``: a next latent sampled at ``temperature``, the reward and
        the continue probability."""
        logits, mean, log_std, reward, done_logit = self._mdn(h)
        probs = torch.softmax(logits / temperature, -1)  # [B, Z, K]
        k = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(*probs.shape[:-1], 1)
        mu = mean.gather(-1, k).squeeze(-1)
        std = log_std.gather(-1, k).squeeze(-1).exp() * math.sqrt(temperature)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + std * noise, reward, 1.0 - torch.sigmoid(done_logit)

    @torch.no_grad()
    def imagine(
        self,
        state: State,
        actions: ActionsOrPolicy,
        horizon: int | None = None,
        *,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """Dream ``horizon`` steps from ``state`` under ``actions [H, B, A]`` or a policy of the carry."""
        if not isinstance(state, Mapping) or not {"z", "h", "c"} <= set(state):
            raise ValueError("state must be a mapping with 'z', 'h' and 'c'; build it with observe()")
        z = check_tensor("state['z']", state["z"], [None, self.config.z_dim])
        B, A = int(z.shape[0]), self.action_spec.dim
        tau = self.config.temperature if temperature is None else float(temperature)
        if tau <= 0:
            raise ValueError(f"temperature must be > 0, got {tau}")
        given, policy, horizon = resolve_actions(actions, self.action_spec, horizon, B)
        carry = {"z": z, "h": state["h"], "c": state["c"]}
        path, rewards, conts, taken = [carry], [], [], []
        for t in range(horizon):
            if given is not None:
                act = given[t].to(z)
            else:
                assert policy is not None
                act = check_tensor("policy(state)", policy(carry), [B, A]).to(z)
            h, c = self.rnn(torch.cat([carry["z"], act], -1), (carry["h"], carry["c"]))
            nz, r, cont = self.sample_next(h, tau, generator)
            carry = {"z": nz, "h": h, "c": c}
            path.append(carry)
            rewards.append(r)
            conts.append(cont)
            taken.append(act)
        return Rollout(
            states={k: torch.stack([p[k] for p in path]) for k in ("z", "h", "c")},
            rewards=torch.stack(rewards), continues=torch.stack(conts), actions=torch.stack(taken),
        )
