"""Recurrent state-space model (RSSM), the DreamerV3 world model, behind the ``WorldModel`` protocol.

The latent state has two parts (Hafner et al., DreamerV3):

* ``deter`` ``[B, deter]``: a deterministic recurrent state ``h``, updated by a GRU whose gate
  pre-activations are RMS-normalised. With ``blocks > 1`` the recurrent weights are block-diagonal
  (``blocks`` independent groups, as in current DreamerV3), which makes a wide ``h`` cheap.
* ``stoch`` ``[B, stoch, classes]``: ``stoch`` categoricals of ``classes`` each, sampled one-hot
  with straight-through gradients and 1% uniform mixed into the probabilities (unimix).

The prior ``p(z_t | h_t)`` reads ``h``; the posterior ``q(z_t | h_t, e_t)`` also reads the
observation embedding ``e``. Heads read ``feat = [h, flatten(z)]``: a decoder (symlog MSE for
vectors, MSE for images), a reward head (two-hot over symexp bins, zero-initialised output) and a
continue head (Bernoulli logit).

**Action convention** (DreamerV3): ``action[t]`` is the action that *led to* ``obs[t]``. The step
into ``obs[t]`` reads ``action[t]``; at an episode start (``is_first[t]``) the carry is reset to
the initial state and ``action[t]`` is ignored. Likewise ``reward[t]`` and ``is_terminal[t]``
belong to the transition into ``obs[t]``, so the heads predict them from the state at ``t``.
In ``imagine``, ``rewards[t]`` and ``continues[t]`` are read from the state reached by
``actions[t]`` (``states[t + 1]``), which matches the return convention of ``agentwm.core``.

Imagination has a fast path (``rssm_fast.py``), taken under ``torch.no_grad()``, that keeps the
exact math of the training path but skips its waste. ``imagine(..., compile=True)`` additionally
runs the deterministic parts through ``torch.compile``. The training loss is in ``rssm_loss.py``.

The image decoder reads ``feat`` through one dense ``img_dec_hidden``-wide layer before
``core.ConvDecoder`` (DreamerV3 uses a block-diagonal spatial projection for the same purpose);
with ``img_dec_hidden=0`` the conv decoder's linear layer reads ``feat`` directly (dreamerv3-torch).
Sizes: see ``PRESETS`` and :func:`agentwm.agents.dreamer.params.count_agent_params`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agentwm.core import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    TwoHot,
    mode_onehot,
    sample_onehot,
    symexp,
    symlog,
    unimix_logits,
)
from agentwm.core.compiled import compile_call
from agentwm.worldmodels.base import (
    ActionsOrPolicy,
    ActionSpec,
    Rollout,
    State,
    check_tensor,
    resolve_actions,
)
from agentwm.worldmodels.block_gru import NORM_EPS, BlockGRU, after_first, first_linear, scale_actions
from agentwm.worldmodels.rssm_config import LOSS_KEYS, PRESETS, RSSMConfig
from agentwm.worldmodels.rssm_loss import kl_losses, world_model_loss

__all__ = ["LOSS_KEYS", "NORM_EPS", "PRESETS", "RSSM", "RSSMConfig", "after_first", "first_linear", "kl_losses",
           "scale_actions"]  # config names re-exported: they lived here before rssm_config.py (and block_gru.py)


# ----------------------------------------------------------------------------------------------
# The world model


class RSSM(nn.Module):
    """DreamerV3 world model implementing :class:`~agentwm.worldmodels.base.LearnableWorldModel`.

    Args:
        obs_shape: ``(D,)`` for vector observations (symlog inputs, symlog-MSE decoder) or
            ``(C, S, S)`` for images, floats in ``[0, 1]`` (``core.ConvEncoder``/``ConvDecoder``).
        action_spec: the action space; discrete actions are one-hot float rows.
        config: hyperparameters; default ``RSSMConfig()`` (the size12m architecture).

    Example:
        >>> spec = ActionSpec("continuous", 2)
        >>> model = RSSM((4,), spec, RSSMConfig.preset("debug"))
        >>> state = model.observe(torch.randn(8, 4))
        >>> with torch.no_grad():
        ...     rollout = model.imagine(state, torch.zeros(15, 8, 2))
        >>> rollout.rewards.shape
        torch.Size([15, 8])
    """

    def __init__(
        self, obs_shape: Sequence[int], action_spec: ActionSpec, config: RSSMConfig | None = None
    ) -> None:
        super().__init__()
        cfg = self.config = config if config is not None else RSSMConfig()
        self.action_spec = action_spec
        self.obs_shape = tuple(int(s) for s in obs_shape)
        if len(self.obs_shape) not in (1, 3):
            raise ValueError(f"obs_shape must be (D,) or (C, S, S), got {self.obs_shape}")
        self.is_image = len(self.obs_shape) == 3
        self.stoch_dim = cfg.stoch * cfg.classes
        self.feat_dim = cfg.deter + self.stoch_dim
        if self.is_image:
            channels, size = self.obs_shape[0], self.obs_shape[-1]
            encoder = ConvEncoder(channels, cfg.depth, size)
            self.encoder: nn.Module = encoder
            embed = encoder.out_dim
            bottleneck = cfg.img_dec_hidden
            pre: nn.Module = MLP(self.feat_dim, None, bottleneck, 1) if bottleneck else nn.Identity()
            conv = ConvDecoder(bottleneck or self.feat_dim, channels, cfg.depth, size)
            self.decoder: nn.Module = nn.Sequential(pre, conv)
        else:
            mlp = MLP(self.obs_shape[0], None, cfg.units, cfg.enc_layers)
            self.encoder, embed = mlp, mlp.out_dim
            self.decoder = MLP(self.feat_dim, self.obs_shape[0], cfg.units, cfg.dec_layers)
        self.embed_dim = embed
        self.core = BlockGRU(cfg, action_spec.dim)
        self.prior_net = MLP(cfg.deter, self.stoch_dim, cfg.hidden, cfg.imglayers)
        self.post_net = MLP(cfg.deter + embed, self.stoch_dim, cfg.hidden, cfg.obslayers)
        self.reward_head = MLP(self.feat_dim, cfg.reward_bins, cfg.units, cfg.rew_layers, out_scale=0.0)
        self.cont_head = MLP(self.feat_dim, 1, cfg.units, cfg.cont_layers)
        self.init_deter = nn.Parameter(torch.zeros(cfg.deter)) if cfg.initial == "learned" else None
        self.twohot = TwoHot(cfg.reward_bins)

    # -- state helpers ---------------------------------------------------------------------------

    def initial(self, batch_size: int) -> dict[str, Tensor]:
        """The carry before any observation: ``{"deter": [B, deter], "stoch": [B, stoch, classes]}``.

        ``learned``: ``deter = tanh(w)`` for a trained vector ``w`` and ``stoch`` its prior's mode;
        ``zeros``: both zero.
        """
        cfg, w = self.config, self._some_weight()
        if self.init_deter is None:
            deter = torch.zeros(batch_size, cfg.deter, device=w.device, dtype=w.dtype)
            stoch = torch.zeros(batch_size, cfg.stoch, cfg.classes, device=w.device, dtype=w.dtype)
            return {"deter": deter, "stoch": stoch}
        deter = torch.tanh(self.init_deter)[None]
        stoch = mode_onehot(self.prior_net(deter).view(1, cfg.stoch, cfg.classes))
        return {"deter": deter.repeat(batch_size, 1), "stoch": stoch.repeat(batch_size, 1, 1)}

    def feat(self, state: Mapping[str, Tensor]) -> Tensor:
        """Features ``[..., deter + stoch * classes]`` that every head reads: ``[h, flatten(z)]``."""
        return torch.cat([state["deter"], state["stoch"].flatten(-2)], -1)

    def decode(self, states: Mapping[str, Tensor]) -> Tensor:
        """Predicted observations ``[..., *obs_shape]`` for states of any leading shape: images as the
        mean in ``[0, 1]`` space (unclamped), vectors mapped back with symexp."""
        out = self.decoder(self.feat(states))
        return out if self.is_image else symexp(out)

    def predict_reward(self, states: Mapping[str, Tensor]) -> Tensor:
        """Expected reward ``[...]`` of reaching each state (two-hot decoded)."""
        return self.twohot.decode(self.reward_head(self.feat(states)))

    def predict_continue(self, states: Mapping[str, Tensor]) -> Tensor:
        """Probability ``[...]`` that the episode goes on after each state."""
        return torch.sigmoid(self.cont_head(self.feat(states))[..., 0])

    def total_loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Scalar training objective: ``sum_k scale_k * mean(losses[k])``."""
        return sum(self.config.loss_scales[k] * v.mean() for k, v in losses.items())  # type: ignore[return-value]

    # -- observing -------------------------------------------------------------------------------

    def observe(
        self, obs: Tensor, state: State | None = None, action: Tensor | None = None
    ) -> dict[str, Tensor]:
        """One posterior step: fold ``obs [B, *obs_shape]``, reached by ``action [B, A]`` from
        ``state``, into a new carry. ``state=None`` starts an episode (initial carry, no action)."""
        obs = self._check_obs("obs", obs, 1)
        B = obs.shape[0]
        if state is None:
            carry = self.initial(B)
            action_proj = obs.new_zeros(B, self.config.hidden)
        else:
            carry = self._check_state(state, B)
            if action is None:
                raise ValueError("observe needs the action that led to obs when a state is given")
            action = check_tensor("action", action, [B, self.action_spec.dim], finite=True).to(obs.dtype)
            action_proj = self.core.in_action(scale_actions(action))
        embed_proj = self._embed_proj(self._embed(obs))
        deter = self.core(carry["deter"], self.core.in_stoch(carry["stoch"].flatten(1)), action_proj)
        logits = self._posterior_logits(deter, embed_proj)
        return {"deter": deter, "stoch": sample_onehot(unimix_logits(logits, self.config.unimix))}

    def observe_sequence(
        self,
        obs: Tensor,
        actions: Tensor,
        is_first: Tensor,
        state: State | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Posterior states for whole sequences.

        Args:
            obs: ``[B, T, *obs_shape]``.
            actions: ``[B, T, A]``; ``actions[:, t]`` led to ``obs[:, t]``.
            is_first: ``[B, T]`` episode starts; the carry is reset there and the action ignored, so
                nothing leaks across episodes.
            state: carry before ``t = 0``; ``None`` for the initial carry.

        Returns:
            ``(post, prior_logits)``: ``post`` holds ``deter [B, T, deter]``, ``stoch [B, T, S, C]``
            (straight-through samples) and ``logits [B, T, S, C]`` of the posterior;
            ``prior_logits [B, T, S, C]`` are the prior's at the same steps. The carry after the
            sequence is ``{"deter": post["deter"][:, -1], "stoch": post["stoch"][:, -1]}``.
        """
        cfg = self.config
        obs = self._check_obs("obs", obs, 2)
        B, T = obs.shape[:2]
        actions = check_tensor("actions", actions, [B, T, self.action_spec.dim], finite=True).to(obs.dtype)
        first = check_tensor("is_first", is_first, [B, T], floating=False).bool()
        init = self.initial(B)
        carry = init if state is None else self._check_state(state, B)
        embed_proj = self._embed_proj(self._embed(obs.flatten(0, 1))).view(B, T, -1)
        action_proj = self.core.in_action(scale_actions(actions))
        deter, stoch = carry["deter"], carry["stoch"]
        if carry is init:  # a compiled step guards on its inputs' aliasing and requires_grad: the
            # first step gets tensors of its own, the sample one that requires grad as later ones do
            deter, stoch = deter.clone(), stoch.clone().requires_grad_(deter.requires_grad)
        step = self._batched("observe_step")
        steps = self._batched("observe_steps") if self._observe_chunk > 1 else None
        noise_shape = (B, cfg.stoch, 1)  # one uniform per categorical (core.sample_indices)
        outs: list[tuple[Tensor, Tensor, Tensor]] = []  # per call: deter, stoch, logits [B, k, ...]
        t = 0
        while t < T:
            k = self._observe_chunk if steps is not None and t + self._observe_chunk <= T else 1
            noise = [torch.rand(noise_shape, device=deter.device, generator=generator) for _ in range(k)]
            if k == 1:
                deter, stoch, logit = step(deter, stoch, first[:, t, None], action_proj[:, t], embed_proj[:, t],
                                           init["deter"], init["stoch"], noise[0])  # fmt: skip
                outs.append((deter[:, None], stoch[:, None], logit[:, None]))
            else:
                assert steps is not None
                span = slice(t, t + k)
                chunk = steps(deter, stoch, first[:, span, None].transpose(0, 1), action_proj[:, span].transpose(0, 1),
                              embed_proj[:, span].transpose(0, 1), init["deter"], init["stoch"], torch.stack(noise))  # fmt: skip
                outs.append(chunk[:3])
                deter, stoch = chunk[3], chunk[4]
            t += k
        post = {key: torch.cat([o[i] for o in outs], 1) for i, key in enumerate(("deter", "stoch", "logits"))}
        prior_logits = self.prior_net(post["deter"]).unflatten(-1, (cfg.stoch, cfg.classes))
        return post, prior_logits

    def observe_step(
        self, deter: Tensor, stoch: Tensor, reset: Tensor, action_proj: Tensor, embed_proj: Tensor,
        init_deter: Tensor, init_stoch: Tensor, noise: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step of :meth:`observe_sequence`: reset where ``reset [B, 1]``, the GRU, the posterior
        logits and a straight-through sample drawn with ``noise [B, S, 1]``; one call site that
        :meth:`compile_batched` compiles (its elementwise work fused: the 64-step loop is most of an
        update's kernels on a GPU). The sample is kept in the carry's dtype, so every step sees the
        same input types (bf16 logits under autocast would otherwise make the second step differ)."""
        deter = torch.where(reset, init_deter, deter)
        stoch = torch.where(reset[..., None], init_stoch, stoch)
        action_proj = torch.where(reset, 0.0, action_proj)
        deter = self.core(deter, self.core.in_stoch(stoch.flatten(1)), action_proj)
        logit = self._posterior_logits(deter, embed_proj)
        sample = sample_onehot(unimix_logits(logit, self.config.unimix), noise=noise)
        return deter, sample.to(init_stoch.dtype), logit

    def observe_steps(
        self, deter: Tensor, stoch: Tensor, reset: Tensor, action_proj: Tensor, embed_proj: Tensor,
        init_deter: Tensor, init_stoch: Tensor, noise: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``k`` steps of :meth:`observe_step` in one call (inputs ``[k, B, ...]``; outputs ``deter,
        stoch, logits`` as ``[B, k, ...]``, then the last ``deter`` and ``stoch`` as tensors of their
        own, so the next call's inputs have the strides of this one's): what :meth:`compile_batched`
        compiles with ``observe_chunk=k``, so that one compiled call, and one gradient per weight,
        spans ``k`` steps."""
        deters, stochs, logits = [], [], []
        for i in range(reset.shape[0]):
            deter, stoch, logit = self.observe_step(deter, stoch, reset[i], action_proj[i], embed_proj[i],
                                                    init_deter, init_stoch, noise[i])  # fmt: skip
            deters.append(deter)
            stochs.append(stoch)
            logits.append(logit)
        return torch.stack(deters, 1), torch.stack(stochs, 1), torch.stack(logits, 1), deter, stoch

    # -- imagining -------------------------------------------------------------------------------

    def imagine(
        self,
        state: State,
        actions: ActionsOrPolicy,
        horizon: int | None = None,
        *,
        fast: bool | None = None,
        compile: bool = False,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """Roll the prior forward ``horizon`` steps from ``state`` (``[B, ...]``).

        Args:
            state: ``{"deter": [B, deter], "stoch": [B, stoch, classes]}``.
            actions: ``[H, B, A]`` actions, or a policy ``State -> [B, A]`` called on each state.
            horizon: steps; defaults to ``actions.shape[0]``, required with a policy.
            fast: take the no-grad fast path; default: when gradients are disabled. The fast path
                gives the same numbers as the differentiable one (up to float summation order).
            compile: fast path only: run the deterministic parts of a step and the heads through
                ``torch.compile`` (fuses the norms and gates; the first call per batch shape pays
                the compilation, ~10 s on CPU). Sampling stays eager, so ``generator`` still applies.
            generator: random source for the latent samples.

        Returns:
            A :class:`Rollout` with ``states`` ``{"deter": [H+1, B, deter], "stoch": [H+1, B, S, C]}``
            (``states[0]`` is the start), ``rewards`` and ``continues`` ``[H, B]`` read from
            ``states[1:]``, and ``actions [H, B, A]``.
        """
        B = int(state["deter"].shape[0]) if "deter" in state else 0
        carry = self._check_state(state, B)
        given, policy, horizon = resolve_actions(actions, self.action_spec, horizon, B)
        if given is not None and given.dtype != carry["deter"].dtype:  # e.g. float64 from numpy
            given = given.to(carry["deter"].dtype)
        if fast is None:
            fast = not torch.is_grad_enabled()
        if fast:
            with torch.no_grad():
                from agentwm.worldmodels.rssm_fast import imagine_fast

                return imagine_fast(self, carry, given, policy, horizon, generator, compile)
        return self._imagine_reference(carry, given, policy, horizon, generator)

    def _imagine_reference(
        self, carry: dict[str, Tensor], actions: Tensor | None, policy: Any, horizon: int, generator: Any
    ) -> Rollout:
        """The differentiable path: the training step as it is, one-hot samples and dense layers."""
        deter, stoch = carry["deter"], carry["stoch"]
        deters, stochs, acts = [deter], [stoch], []
        for t in range(horizon):
            action = actions[t] if actions is not None else self.policy_action(policy, deter, stoch)
            proj = self.core.in_stoch(stoch.flatten(1))
            deter, logit = self.prior_step(deter, proj, self.core.in_action(scale_actions(action)))
            stoch = sample_onehot(logit, generator)
            deters.append(deter)
            stochs.append(stoch)
            acts.append(action)
        states = {"deter": torch.stack(deters), "stoch": torch.stack(stochs)}
        future = {k: v[1:] for k, v in states.items()}
        rewards, conts = self.predict_reward(future), self.predict_continue(future)
        return Rollout(states=states, rewards=rewards, continues=conts, actions=torch.stack(acts))

    def prior_step(self, deter: Tensor, stoch_proj: Tensor, action_proj: Tensor) -> tuple[Tensor, Tensor]:
        """One prior step up to the sample: the new ``deter`` and the unimixed prior logits ``[B, S, C]``."""
        deter = self.core(deter, stoch_proj, action_proj)
        logit = self.prior_net(deter).unflatten(-1, (self.config.stoch, self.config.classes))
        return deter, unimix_logits(logit, self.config.unimix)

    _observe_chunk = 1  # observe steps per compiled call (compile_batched)

    def compile_batched(self, observe_chunk: int = 1) -> None:
        """``torch.compile`` the modules that run on whole ``[B*T]`` batches in :meth:`loss` (encoder,
        decoder, reward and continue heads) and the posterior step of its observe loop, for that
        training call only, each under a dynamo cache of
        its own (:func:`~agentwm.core.compiled.compile_call`): inductor fuses their norms and
        activations into the surrounding kernels, and no other caller (acting, evaluation, other
        batch shapes) recompiles them. State-dict keys do not change; the first training call
        compiles (minutes on a small CPU), so this pays off on long runs only. ``observe_chunk > 1``
        compiles that many observe steps as one call (:meth:`observe_steps`): fewer, larger
        kernels on a GPU, at a longer compile; the same numbers as step by step."""
        if observe_chunk < 1:
            raise ValueError(f"observe_chunk must be >= 1, got {observe_chunk}")
        cache = self.__dict__.setdefault("_compiled_fns", {})
        for name in ("encoder", "decoder", "reward_head", "cont_head", "observe_step", "observe_steps"):
            cache[name] = compile_call(getattr(self, name), f"rssm_{name}")
        self._observe_chunk = observe_chunk

    def _batched(self, name: str) -> Callable[..., Any]:
        """Module ``name``, compiled where :meth:`compile_batched` asked for it and gradients are on
        (the training call), else as it is."""
        fn = self.__dict__.get("_compiled_fns", {}).get(name)
        if fn is not None and torch.is_grad_enabled():
            return cast(Callable[..., Any], fn)
        return cast(Callable[..., Any], getattr(self, name))

    # -- training --------------------------------------------------------------------------------

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """World-model losses on sequences (:func:`~agentwm.worldmodels.rssm_loss.world_model_loss`):
        unreduced ``[B, T]`` terms keyed like ``config.loss_scales`` and detached scalar metrics."""
        return world_model_loss(self, batch)

    # -- internals -------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # Compiled functions are a cache: never pickled or deep-copied with the model.
        return {k: v for k, v in self.__dict__.items() if k != "_compiled_fns"}

    def _some_weight(self) -> Tensor:
        return self.core.in_stoch.weight

    def _embed(self, obs: Tensor) -> Tensor:
        embed: Tensor = self._batched("encoder")(obs if self.is_image else symlog(obs))
        return embed

    def _embed_proj(self, embed: Tensor) -> Tensor:
        """The posterior's first layer applied to the embedding part of ``[h, e]`` (no bias)."""
        return F.linear(embed, first_linear(self.post_net).weight[:, self.config.deter :])

    def _posterior_logits(self, deter: Tensor, embed_proj: Tensor) -> Tensor:
        first = first_linear(self.post_net)
        h = torch.addmm(embed_proj, deter, first.weight[:, : self.config.deter].t())
        return after_first(self.post_net, h).view(-1, self.config.stoch, self.config.classes)

    def policy_action(self, policy: Any, deter: Tensor, stoch: Tensor) -> Tensor:
        action = policy({"deter": deter, "stoch": stoch})
        return check_tensor("policy output", action, [deter.shape[0], self.action_spec.dim])

    def _check_obs(self, name: str, obs: Any, lead: int) -> Tensor:
        return check_tensor(name, obs, [None] * lead + list(self.obs_shape), finite=True)

    def _check_state(self, state: State, batch: int) -> dict[str, Tensor]:
        for key in ("deter", "stoch"):
            if key not in state:
                raise KeyError(f"state needs {key!r} (got keys {sorted(state)})")
        cfg = self.config
        deter = check_tensor("state['deter']", state["deter"], [batch or None, cfg.deter])
        stoch = check_tensor("state['stoch']", state["stoch"], [deter.shape[0], cfg.stoch, cfg.classes])
        return {"deter": deter, "stoch": stoch}
