"""MuZero-style value-equivalent model (Schrittwieser et al. 2020) behind the world-model protocol.

Three networks over a learned latent ``s`` that is never asked to reconstruct the observation:

* representation ``h``: observation → ``s_0``;
* dynamics ``g``: ``(s_t, a_t)`` → ``(r_t, s_{t+1})``;
* prediction ``f``: ``s`` → ``(policy logits, V(s))``.

The latent is min-max scaled to ``[0, 1]`` per row after ``h`` and ``g``, as in MuZero, so its
scale cannot drift during unrolls. Rewards and values are categorical over symlog-spaced bins
(agentwm's :class:`~agentwm.core.TwoHot`, MuZero's "invertible transform + support" idea), so the
loss does not depend on the return scale of the task.

Protocol: the carry is ``{"latent": [B, L], "policy_logits": [B, A], "value": [B]}`` (the
prediction outputs ride along so that :class:`~agentwm.planning.mcts.MCTS` reads priors from the
carry). :meth:`MuZeroModel.imagine` gives decoded ``rewards``, ``continues`` of 1 (MuZero treats
episode ends as absorbing states of value 0, learned through the targets) and ``values``
``V(s_{t+1})``; :meth:`MuZeroModel.loss` takes an unrolled replay batch (see its docstring) and
returns unreduced terms ``{"value": [B, K+1], "reward": [B, K], "policy": [B, K+1]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from agentwm.core.nets import MLP
from agentwm.core.transforms import TwoHot
from agentwm.worldmodels.base import (
    ActionsOrPolicy,
    ActionSpec,
    Rollout,
    State,
    check_tensor,
    resolve_actions,
)

LOSS_KEYS = ("value", "reward", "policy")


class MuZeroNetConfig(BaseModel):
    """Sizes of the three networks and the value/reward supports."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    latent: int = Field(default=32, ge=2, description="latent state width")
    units: int = Field(default=64, ge=1, description="hidden width of every network")
    layers: int = Field(default=2, ge=1, le=8, description="hidden blocks per network")
    bins: int = Field(default=41, ge=3, description="categorical bins of reward and value (symlog-spaced)")
    support: float = Field(default=6.0, gt=0.0, description="bins span [-support, support] in symlog space")
    dynamics_grad_scale: float = Field(
        default=0.5, ge=0.0, le=1.0, description="gradient scale at each unroll step's latent (MuZero: 0.5)"
    )


def _scale_latent(s: Tensor) -> Tensor:
    """Min-max scale each row to ``[0, 1]`` (MuZero's hidden-state normalisation)."""
    low = s.min(-1, keepdim=True).values
    high = s.max(-1, keepdim=True).values
    return (s - low) / (high - low).clamp_min(1e-5)


class MuZeroModel(nn.Module):
    """Representation, dynamics and prediction networks; see the module docstring.

    Args:
        obs_dim: flat observation size.
        action_spec: a discrete spec; actions are one-hot rows.
        config: network sizes.
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, config: MuZeroNetConfig | None = None) -> None:
        super().__init__()
        if isinstance(obs_dim, bool) or not isinstance(obs_dim, int) or obs_dim < 1:
            raise ValueError(f"obs_dim must be a positive int, got {obs_dim!r}")
        if not isinstance(action_spec, ActionSpec) or action_spec.kind != "discrete":
            raise ValueError(f"MuZeroModel needs a discrete ActionSpec, got {action_spec!r}")
        self.config = cfg = config if config is not None else MuZeroNetConfig()
        self.obs_dim, self.action_spec = obs_dim, action_spec
        L, A, U, N = cfg.latent, action_spec.dim, cfg.units, cfg.layers
        # One trunk per function, with the heads as slices of its output: dynamics gives
        # [next latent | reward logits], prediction gives [policy logits | value logits]. Two
        # network calls per imagined step keep MCTS, which expands one node at a time, cheap.
        self.representation = MLP(obs_dim, L, U, N)
        self.dynamics = MLP(L + A, L + cfg.bins, U, N)
        self.prediction = MLP(L, A + cfg.bins, U, N, out_scale=0.0)  # starts uniform with value 0
        self.twohot = TwoHot(cfg.bins, -cfg.support, cfg.support)

    # ------------------------------------------------------------------------------------------
    # The three functions.

    def represent(self, obs: Tensor) -> Tensor:
        """``h``: observations ``[B, D]`` → latents ``[B, L]``."""
        return _scale_latent(self.representation(obs))

    def step(self, latent: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """``g``: ``(latent [B, L], one-hot action [B, A])`` → ``(reward logits [B, bins], next latent)``."""
        out = self.dynamics(torch.cat([latent, action], -1))
        L = self.config.latent
        return out[..., L:], _scale_latent(out[..., :L])

    def predict(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """``f``: latents ``[B, L]`` → ``(policy logits [B, A], value logits [B, bins])``."""
        out = self.prediction(latent)
        A = self.action_spec.dim
        return out[..., :A], out[..., A:]

    def _param(self) -> Tensor:
        return next(self.parameters())

    def _carry(self, latent: Tensor) -> dict[str, Tensor]:
        logits, value = self.predict(latent)
        return {"latent": latent, "policy_logits": logits, "value": self.twohot.decode(value)}

    # ------------------------------------------------------------------------------------------
    # Protocol.

    def initial(self, batch_size: int) -> dict[str, Tensor]:
        """The carry of an all-zero observation for ``batch_size`` rows."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return self.observe(torch.zeros(batch_size, self.obs_dim, device=self._param().device))

    @torch.no_grad()
    def observe(self, obs: Any, state: State | None = None, action: Tensor | None = None) -> dict[str, Tensor]:
        """Encode observations ``[B, obs_dim]`` (tensor or array) into a fresh carry; MuZero
        re-encodes every real observation, so ``state`` and ``action`` are ignored."""
        if isinstance(obs, np.ndarray):
            obs = torch.as_tensor(obs, dtype=torch.float32)
        obs = check_tensor("obs", obs, [None, self.obs_dim])
        p = self._param()
        return self._carry(self.represent(obs.to(device=p.device, dtype=p.dtype)))

    def imagine(self, state: State, actions: ActionsOrPolicy, horizon: int | None = None) -> Rollout:
        """Unroll the dynamics from ``state["latent"] [B, L]`` under one-hot ``actions [H, B, A]`` or a policy.

        Returns ``states`` (time-major carries ``[H+1, B, ...]``), decoded ``rewards [H, B]``,
        ``continues`` of 1, and ``values [H, B]`` = ``V(s_{t+1})``.
        """
        if not isinstance(state, Mapping) or "latent" not in state:
            raise ValueError("state must be a mapping with 'latent' [B, L]; build it with observe()")
        latent = check_tensor("state['latent']", state["latent"], [None, self.config.latent])
        batch, A = int(latent.shape[0]), self.action_spec.dim
        given, policy, horizon = resolve_actions(actions, self.action_spec, horizon, batch)
        with torch.no_grad():
            carry = self._carry(latent) if "policy_logits" not in state else dict(state)
            carries, rewards, taken = [carry], [], []
            for t in range(horizon):
                if given is not None:
                    act = given[t].to(latent)
                else:
                    assert policy is not None
                    act = check_tensor("policy(state)", policy(carry), [batch, A]).to(latent)
                reward_logits, nxt = self.step(carry["latent"], act)
                carry = self._carry(nxt)
                carries.append(carry)
                rewards.append(self.twohot.decode(reward_logits))
                taken.append(act)
        states = {k: torch.stack([c[k] for c in carries]) for k in carries[0]}
        reward = torch.stack(rewards)
        return Rollout(
            states=states, rewards=reward, continues=torch.ones_like(reward), actions=torch.stack(taken),
            values=states["value"][1:],
        )

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Unrolled MuZero losses on a replay batch.

        Args:
            batch: ``obs [B, D]`` (the first observation), ``action [B, K, A]`` one-hot,
                ``target_value [B, K+1]`` (n-step returns), ``target_reward [B, K]``,
                ``target_policy [B, K+1, A]`` (search visit distributions), and ``policy_mask
                [B, K+1]`` (0 past the episode end, where there is no search to imitate).

        Returns:
            Unreduced ``{"value": [B, K+1], "reward": [B, K], "policy": [B, K+1]}`` and metrics.
        """
        obs = check_tensor("batch['obs']", batch.get("obs"), [None, self.obs_dim])
        B = int(obs.shape[0])
        action = check_tensor("batch['action']", batch.get("action"), [B, None, self.action_spec.dim])
        K = int(action.shape[1])
        target_value = check_tensor("batch['target_value']", batch.get("target_value"), [B, K + 1])
        target_reward = check_tensor("batch['target_reward']", batch.get("target_reward"), [B, K])
        target_policy = check_tensor(
            "batch['target_policy']", batch.get("target_policy"), [B, K + 1, self.action_spec.dim]
        )
        mask = check_tensor("batch['policy_mask']", batch.get("policy_mask"), [B, K + 1])
        latent = self.represent(obs)
        policy_logits, value_logits, reward_logits = [], [], []
        for k in range(K + 1):
            p, v = self.predict(latent)
            policy_logits.append(p)
            value_logits.append(v)
            if k < K:
                r, latent = self.step(latent, action[:, k])
                reward_logits.append(r)
                # Scale the gradient flowing back through the unroll (MuZero's 0.5).
                scale = self.config.dynamics_grad_scale
                latent = latent * scale + latent.detach() * (1 - scale)
        pol = torch.stack(policy_logits, 1)
        val = torch.stack(value_logits, 1)
        losses = {
            "value": self.twohot.loss(val, target_value),
            "reward": self.twohot.loss(torch.stack(reward_logits, 1), target_reward) if K else obs.new_zeros(B, 0),
            "policy": -(target_policy * torch.log_softmax(pol, -1)).sum(-1) * mask,
        }
        with torch.no_grad():
            metrics = {
                "wm/value_error": (self.twohot.decode(val) - target_value).abs().mean(),
                "wm/policy_entropy": -(torch.softmax(pol, -1) * torch.log_softmax(pol, -1)).sum(-1).mean(),
            }
        return losses, metrics
