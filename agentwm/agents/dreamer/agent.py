"""The Dreamer agent: an RSSM world model learner plus an actor-critic trained in imagination.

One update (:meth:`DreamerAgent.update`) does, on a replayed batch of ``[B, T]`` sequences:

1. **World model**: the RSSM's DreamerV3 losses (KL balancing with free nats, symlog/two-hot
   reconstruction, reward and continue heads); Adam step.
2. **Imagine**: from every posterior state of the batch (``B * T`` starts, detached) the world
   model rolls the actor's sampled actions ``horizon`` steps forward without gradients (the
   RSSM's fast no-grad path), or with them when ``actor_dynamics > 0`` (the differentiable path).
3. **Returns**: λ-returns from ``agentwm.core.lambda_return`` over imagined rewards and continues,
   bootstrapped with the critic's values of the *next* states (``values[t] = V(s_{t+1})``), and
   weighted by ``core.discount_weights`` times the start state's own continue flag, so steps after
   a predicted (or real) episode end count for nothing.
4. **Actor**: REINFORCE on advantages normalised by ``core.ReturnNormalizer`` (an EMA of the 5th-95th
   percentile range, never scaling small returns up) plus an entropy bonus, for discrete and
   continuous actions alike, as the current DreamerV3 does; it lets step 2 run without gradients,
   which keeps the update cheap on CPU. ``actor_dynamics`` mixes in the earlier Dreamers' objective:
   the normalised λ-return itself, differentiated through the world model and the critic
   (straight-through for discrete actions), which moves only the actor.
5. **Critic**: two-hot cross-entropy towards the λ-returns plus a pull towards a slow EMA copy
   of itself (the slow critic), which keeps the bootstrap targets from chasing themselves; with
   ``critic_replay_scale``, also towards λ-returns of the replayed states from their real rewards
   and episode ends (:func:`replay_targets`). With ``actor_average``, an EMA copy of the actor
   follows it after each step: the policy that evaluation acts with.

Acting (:meth:`DreamerAgent.act`) folds each new observation into a per-env carry with the same
``observe_sequence`` the learner uses (so resets at ``is_first`` behave identically in both) and
samples the actor (``explore``) or takes its mode (``eval``; the averaged actor's where one is kept).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from agentwm.agents.dreamer.actor_critic import (
    Actor,
    Critic,
    DifferentiablePolicy,
    ImaginationPolicy,
    Mode,
    Net,
)
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.agents.dreamer.distributed import GradSync
from agentwm.agents.dreamer.lookahead import action_values
from agentwm.core import (
    ReturnNormalizer,
    discount_weights,
    lambda_return,
)
from agentwm.core.compiled import compile_call
from agentwm.core.finite import FiniteGuard
from agentwm.worldmodels.base import ActionSpec
from agentwm.worldmodels.rssm import RSSM, RSSMConfig


class _WorldModel(RSSM):
    """The RSSM, keeping the posterior of the last ``loss`` call: the actor-critic starts imagining
    from those states, and recomputing them would double the most expensive part of an update."""

    last_post: dict[str, Tensor] | None = None

    def observe_sequence(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Tensor], Tensor]:
        post, prior = super().observe_sequence(*args, **kwargs)
        self.last_post = post
        return post, prior


def imagination_targets(
    rewards: Tensor, continues: Tensor, values: Tensor, start_continue: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """λ-returns and loss weights for imagined states ``s_0 .. s_{H-1}``.

    Args:
        rewards, continues: ``[H, N]`` of step ``t`` (from ``s_t`` to ``s_{t+1}``), as ``RSSM.imagine`` gives.
        values: ``[H + 1, N]`` critic values of ``s_0 .. s_H``; the returns bootstrap from
            ``values[1:]`` (``V(s_{t+1})``), never from ``V(s_t)``.
        start_continue: ``[N]`` 1 where the start state is not terminal.

    Returns:
        ``(returns [H, N], weights [H, N])``.
    """
    if values.shape[0] != rewards.shape[0] + 1:
        raise ValueError(
            f"values must cover s_0..s_H ([H+1, N]); got {tuple(values.shape)} for H={rewards.shape[0]}"
        )
    returns = lambda_return(rewards, continues, values[1:], gamma, lam)
    weights = discount_weights(continues, gamma) * start_continue[None]
    return returns, weights


def replay_targets(
    reward: Tensor, is_first: Tensor, is_terminal: Tensor, boot: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """λ-returns and loss weights for the replayed states ``s_0 .. s_{T-2}`` of a batch, from the
    rewards and episode ends that really happened, bootstrapped with each state's imagined return.

    This grounds the critic in real outcomes (DreamerV3's later versions train it on replay too):
    the imagined return of a state can be wrong wherever the model is, but a stored failure a few
    steps later is not. A state whose successor starts a new episode (or lies beyond the window)
    has no real continuation here: its return is its own ``boot`` and it gets no weight; terminal
    states get none either.

    Args:
        reward, is_first, is_terminal: ``[B, T]`` as replay stores them (``reward[t]`` and
            ``is_terminal[t]`` belong to the transition into ``obs[t]``).
        boot: ``[B, T]`` imagined return of each replayed state.

    Returns:
        ``(returns [T - 1, B], weights [T - 1, B])``, time-major like :func:`imagination_targets`.
    """
    if boot.shape != reward.shape or reward.dim() != 2 or reward.shape[1] < 2:
        raise ValueError(
            f"reward and boot must be [B, T] with T >= 2, got {tuple(reward.shape)} and {tuple(boot.shape)}"
        )
    dtype = boot.dtype
    same = (~is_first[:, 1:].bool()).to(dtype).T  # [T-1, B]: s_{t+1} continues s_t's episode
    alive = (~is_terminal[:, 1:].bool()).to(dtype).T  # s_{t+1} is not terminal
    boot_t, boot_next = boot[:, :-1].T, boot[:, 1:].T
    # Where s_{t+1} starts a new episode, step t becomes "reward boot_t, then stop", so the
    # recursion gives R_t = boot_t and the step before bootstraps from it.
    rewards = torch.where(same.bool(), reward[:, 1:].T.to(dtype), boot_t)
    returns = lambda_return(rewards, same * alive, boot_next, gamma, lam)
    weights = same * (~is_terminal[:, :-1].bool()).to(dtype).T
    return returns, weights


class DreamerAgent(nn.Module):
    """World model, actor, critic, slow critic and return normaliser, with their optimisers.

    Args:
        obs_shape: ``(D,)`` or ``(3, S, S)``.
        action_spec: the env's action space (continuous actions are handled in ``[-1, 1]`` units).
        config: the run's settings.
    """

    def __init__(self, obs_shape: Sequence[int], action_spec: ActionSpec, config: DreamerConfig) -> None:
        super().__init__()
        self.config = config
        rssm: RSSMConfig = config.rssm_config()
        spec = action_spec if action_spec.kind == "discrete" else ActionSpec("continuous", action_spec.dim)
        if config.actor_lookahead > 0 and spec.kind != "discrete":
            raise ValueError("actor_lookahead needs discrete actions (it imagines each one); this env's are continuous")
        self.action_spec = spec
        self.wm = _WorldModel(obs_shape, spec, rssm)
        if self.wm.is_image:  # oneDNN convolutions run ~20% faster on NHWC tensors (CPU, measured)
            self.wm.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.wm.decoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        feat = self.wm.feat_dim
        self.actor = Actor(feat, spec, rssm.units, rssm.ac_layers, config)
        self.critic = Critic(feat, rssm.units, rssm.ac_layers, rssm.reward_bins)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # Polyak-averaged actor for evaluation: once the policy holds the task, REINFORCE's gradient is
        # mostly noise (two batches' gradients point apart) and the weights random-walk; their average does not
        self.average_actor = copy.deepcopy(self.actor).requires_grad_(False) if config.actor_average > 0 else None
        self.eval_online = False  # a diagnostic: evaluate the actor itself even where an average is kept
        self.retnorm = ReturnNormalizer(decay=config.return_decay)
        adam: dict[str, Any] = {"foreach": True}  # one kernel per op over all tensors (CPU default is a loop)
        self.wm_opt = torch.optim.Adam(self.wm.parameters(), lr=config.wm_lr, eps=1e-8, **adam)
        self.actor_opt = torch.optim.Adam(
            self.actor.parameters(), lr=config.actor_lr, eps=config.ac_eps, **adam
        )
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=config.critic_lr, eps=config.ac_eps, **adam
        )
        self.updates = 0
        self.guard = FiniteGuard("dreamer update", config.nonfinite_limit)  # NaN/inf updates skipped, counted
        self.device_guard = False  # see use_device_guard (CUDA graphs)
        self.generator: torch.Generator | None = None  # None: torch's global RNG (seeded by the loop)
        self.sync: GradSync | None = None  # data-parallel (torchrun): gradients averaged over the ranks
        # With compile: each call site of the update compiled once, under a dynamo cache of its own
        # (agentwm.core.compiled): one module, one grad mode, one shape each, so nothing recompiles;
        # acting and evaluation (other batch sizes) run the modules eagerly.
        self._nets: dict[str, Net] = {}
        self._policy = ImaginationPolicy(self)  # one object, so a compiled imagination step keeps its cache
        self._rpolicy = DifferentiablePolicy(self)
        if config.compile:
            self.wm.compile_batched(config.compile_observe_chunk)
            sites = {"actor_policy": self.actor.net, "actor_train": self.actor.net, "critic": self.critic.net,
                     "slow_critic": self.slow_critic.net}  # fmt: skip
            self._nets = {role: compile_call(net, role) for role, net in sites.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """As ``nn.Module``'s, across a change of ``actor_average``: weights saved without an averaged
        actor start it at the saved actor; an averaged actor this agent does not keep is dropped."""
        avg, own = "average_actor.", "actor."
        state = dict(state_dict)
        if self.average_actor is None:
            state = {k: v for k, v in state.items() if not k.startswith(avg)}
        elif not any(k.startswith(avg) for k in state):
            state.update({avg + k[len(own):]: v for k, v in state_dict.items() if k.startswith(own)})
        return super().load_state_dict(state, strict, assign)

    def scale_lr(self, wm_scale: float, ac_scale: float) -> None:
        """Set the world model's learning rate to ``wm_scale`` times the configured one, the actor's
        and critic's to ``ac_scale`` times theirs."""
        cfg = self.config
        for opt, lr in ((self.wm_opt, cfg.wm_lr * wm_scale), (self.actor_opt, cfg.actor_lr * ac_scale),
                        (self.critic_opt, cfg.critic_lr * ac_scale)):  # fmt: skip
            for group in opt.param_groups:
                group["lr"] = lr

    def use_device_guard(self, on: bool = True) -> None:
        """Decide NaN/inf skips on the device instead of the host, so an update never waits for
        the device and can be captured as one CUDA graph (:class:`GraphedUpdate`).

        The optimisers become fused Adam, which skips a step on the device when told
        (``found_inf``, as AMP's gradient scaler uses it); the guard counts on the device and is
        read by ``guard.settle()``. Same updates as the host guard, in one process only."""
        if on and self.sync is not None:
            raise ValueError(
                "the device-side guard (cuda_graph) runs in one process; data-parallel runs use the host guard"
            )
        self.device_guard = on
        for opt in (self.wm_opt, self.actor_opt, self.critic_opt):
            _set_adam_kind(opt, fused=on)
        if on:
            self.guard.on_device_tally(self.device)
        else:
            self.guard.settle()
            self.guard.on_device = None

    @property
    def device(self) -> torch.device:
        return self.wm.core.in_stoch.weight.device

    def _autocast(self) -> Any:
        amp = self.config.amp
        on = amp == "bf16" or (amp == "auto" and self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on)

    # -- acting ----------------------------------------------------------------------------------

    def initial_carry(self, n: int) -> dict[str, Tensor]:
        """Per-env acting carry: the RSSM state plus the last action taken."""
        with torch.no_grad():
            state = self.wm.initial(n)
        action = torch.zeros(n, self.action_spec.dim, device=self.device)
        return {"deter": state["deter"], "stoch": state["stoch"], "action": action}

    @torch.no_grad()
    def act(
        self, obs: Tensor, is_first: Tensor, carry: Mapping[str, Tensor], mode: Mode = "explore"
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Fold ``obs [N, ...]`` (reached by ``carry['action']``; a fresh episode where ``is_first``)
        into the carry and choose the next actions ``[N, A]``."""
        state = {"deter": carry["deter"], "stoch": carry["stoch"]}
        post, _ = self.wm.observe_sequence(
            obs[:, None], carry["action"][:, None], is_first[:, None], state=state, generator=self.generator
        )
        deter, stoch = post["deter"][:, -1], post["stoch"][:, -1]
        actor = self.actor
        if mode == "eval" and self.average_actor is not None and not self.eval_online:
            actor = self.average_actor
        action = actor.sample(self.wm.feat({"deter": deter, "stoch": stoch}), mode, self.generator)
        if not self.actor.discrete:  # what the env executes, and what replay stores
            action = action.clamp(-1.0, 1.0)
        return action, {"deter": deter, "stoch": stoch, "action": action}

    # -- learning --------------------------------------------------------------------------------

    def update(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """One world-model step and one actor-critic step; returns detached scalar metrics (no
        ``.item()``, so nothing waits for the device here)."""
        cfg = self.config
        # 1. World model
        with self._autocast():
            losses, metrics = self.wm.loss(batch)
            wm_loss = self.wm.total_loss(losses)
        self.wm_opt.zero_grad(set_to_none=True)
        wm_loss.backward()  # type: ignore[no-untyped-call]
        (wm_loss,) = self._average(self.wm, wm_loss)
        metrics["grad/wm"] = nn.utils.clip_grad_norm_(self.wm.parameters(), cfg.wm_clip)
        ok = self._finite("world-model loss or gradient", True, wm_loss, metrics["grad/wm"])
        if ok is False:  # diverged (on any rank): no step from NaN/inf
            return self._skipped(metrics)
        self._step(self.wm_opt, ok)
        wm_ok = ok
        post, self.wm.last_post = self.wm.last_post, None  # kept no longer: it holds the autograd graph
        assert post is not None
        start = {"deter": post["deter"].detach().flatten(0, 1), "stoch": post["stoch"].detach().flatten(0, 1)}
        start_cont = 1.0 - batch["is_terminal"].flatten().to(start["deter"].dtype)

        # 2. Imagine with the actor: without gradients (REINFORCE needs none through the model), or
        #    with them where part of the actor's objective is the return backpropagated (actor_dynamics)
        dynamics = cfg.actor_dynamics > 0
        with torch.set_grad_enabled(dynamics), self._autocast():
            if dynamics:
                roll = self.wm.imagine(start, self._rpolicy, cfg.horizon, fast=False, generator=self.generator)
            else:
                roll = self.wm.imagine(
                    start, self._policy, cfg.horizon, compile=cfg.compile, generator=self.generator
                )
            live = self.wm.feat(roll.states).float()  # [H+1, N, F]; carries gradients with actor_dynamics
        feats = live.detach()
        with torch.no_grad(), self._autocast():
            slow = self.slow_critic.value(feats, self._nets.get("slow_critic"))
        with self._autocast():  # one critic pass: its logits train below, their values bootstrap here
            critic_logits = self._nets.get("critic", self.critic)(feats).float()
        with torch.no_grad():
            values = self.critic.twohot.decode(critic_logits.detach())
            # 3. Returns, weights, normalised advantages
            returns, weights = imagination_targets(
                roll.rewards.detach().float(), roll.continues.detach().float(), values, start_cont, cfg.gamma, cfg.lam
            )
            keep = None if isinstance(wm_ok, bool) else ~wm_ok  # a skipped update leaves it as it was
            self.retnorm.update(returns if self.sync is None else self.sync.gather(returns, 1), keep)
            _, scale = self.retnorm.stats()
            adv = (returns - values[:-1]) / scale
            if cfg.critic_replay_scale > 0:
                rep_returns, rep_weights = replay_targets(
                    batch["reward"].to(returns), batch["is_first"], batch["is_terminal"],
                    returns[0].reshape(batch["reward"].shape), cfg.gamma, cfg.lam,
                )
                metrics["ac/replay_return"] = rep_returns.mean()
            if cfg.actor_lookahead > 0:  # every action's one-step value from each start (a replayed state)
                with self._autocast():  # eager: the critic's compiled call site has another shape
                    q = action_values(self.wm, self.critic.value, start["deter"], start["stoch"], cfg.gamma,
                                      self.generator)  # fmt: skip
                metrics["ac/lookahead_spread"] = ((q.amax(-1) - q.amin(-1)) / scale).mean()
        assert roll.actions is not None

        # 4. Actor: REINFORCE on the advantages; with actor_dynamics the imagined λ-return itself,
        #    differentiated through the world model and the critic (only the actor's weights move);
        #    with actor_lookahead the expected one-step value over all actions
        with self._autocast():
            actions = roll.actions.detach()
            logp, ent = self.actor.log_prob_entropy(feats[:-1], actions, self._nets.get("actor_train"))
            reinforce = 1.0 - cfg.actor_dynamics - cfg.actor_lookahead
            objective = reinforce * logp * adv + cfg.actor_entropy * ent
            if dynamics:
                live_returns = lambda_return(
                    roll.rewards.float(), roll.continues.float(), self.critic.value(live[1:]).float(),
                    cfg.gamma, cfg.lam,
                )
                objective = objective + cfg.actor_dynamics * live_returns / scale
            actor_loss = -(weights * objective).mean()
            if cfg.actor_lookahead > 0:
                probs = self.actor.log_probs(feats[0]).float().exp()  # eager, as the critic above
                expected = (probs * q).sum(-1) / scale
                actor_loss = actor_loss - cfg.actor_lookahead * (weights[0] * expected).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        torch.autograd.backward(actor_loss, inputs=list(self.actor.parameters()))
        (actor_loss,) = self._average(self.actor, actor_loss)
        metrics["grad/actor"] = nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.ac_clip)
        ok = self._finite("actor loss or gradient", ok, actor_loss, metrics["grad/actor"])
        if ok is False:
            return self._skipped(metrics)
        self._step(self.actor_opt, ok)

        # 5. Critic (towards the λ-returns and the slow critic), then the slow critic's EMA
        with self._autocast():
            logits = critic_logits[:-1]
            twohot = self.critic.twohot
            critic_terms = twohot.loss(logits, returns) + cfg.slow_reg * twohot.loss(logits, slow[:-1])
            critic_loss = (weights * critic_terms).mean()
            if cfg.critic_replay_scale > 0:  # the same critic on the replayed states, towards real outcomes
                B, T = batch["reward"].shape
                rep_logits = critic_logits[0].reshape(B, T, -1)[:, :-1].transpose(0, 1)
                rep_slow = slow[0].reshape(B, T)[:, :-1].T
                rep_terms = twohot.loss(rep_logits, rep_returns) + cfg.slow_reg * twohot.loss(rep_logits, rep_slow)
                critic_loss = critic_loss + cfg.critic_replay_scale * (rep_weights * rep_terms).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()  # type: ignore[no-untyped-call]
        (critic_loss,) = self._average(self.critic, critic_loss)
        metrics["grad/critic"] = nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.ac_clip)
        ok = self._finite("critic loss or gradient", ok, critic_loss, metrics["grad/critic"])
        if ok is False:
            return self._skipped(metrics)
        self._step(self.critic_opt, ok)
        with torch.no_grad():
            fraction: float | Tensor = cfg.slow_critic_fraction
            if isinstance(ok, Tensor):  # device guard: no EMA step on a skipped update
                self.guard.tally(~ok)
                fraction = ok.float() * cfg.slow_critic_fraction
            else:
                self.guard.passed()
            for p_slow, p in zip(self.slow_critic.parameters(), self.critic.parameters()):
                p_slow.lerp_(p, fraction)
            if self.average_actor is not None:
                step = cfg.actor_average if isinstance(ok, bool) else ok.float() * cfg.actor_average
                for p_avg, p in zip(self.average_actor.parameters(), self.actor.parameters()):
                    p_avg.lerp_(p, step)
        self.updates += 1

        with torch.no_grad():
            metrics.update({
                "loss/world_model": wm_loss.detach(), "loss/actor": actor_loss.detach(),
                "loss/critic": critic_loss.detach(), "ac/entropy": ent.mean(), "ac/return": returns.mean(),
                "ac/value": values.mean(), "ac/return_scale": scale, "ac/imag_reward": roll.rewards.mean(),
                "ac/imag_continue": roll.continues.mean(),
            })  # fmt: skip
            count = self.guard.on_device if self.device_guard else None  # counted on the device
            metrics["guard/skipped_updates"] = (
                count[0].clone() if count is not None else torch.tensor(float(self.guard.skipped))
            )
        return {k: v.detach().float() for k, v in metrics.items()}

    def _finite(self, what: str, ok: bool | Tensor, *values: Tensor) -> bool | Tensor:
        """Whether the update may step on: asked of the host (the guard counts a skip and stops a
        diverged run), or with the device guard a bool tensor, ``ok`` and ``values`` all finite."""
        if not self.device_guard:
            return not self.guard.skip(what, *values)
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in values]).all()
        return finite if ok is True else ok & finite

    @staticmethod
    def _step(opt: torch.optim.Optimizer, ok: bool | Tensor) -> None:
        """``opt.step()``; with the device guard, a fused step that changes nothing unless ``ok``."""
        if isinstance(ok, Tensor):
            opt.found_inf = (~ok).float()  # type: ignore[attr-defined]  # fused Adam reads it on the device
        opt.step()

    def _average(self, module: nn.Module, loss: Tensor) -> tuple[Tensor]:
        """Data-parallel: ``module``'s gradients and ``loss`` averaged over the ranks (as if one
        process had the ranks' batches concatenated); alone, ``loss`` as it is."""
        if self.sync is None:
            return (loss,)
        (mean,) = self.sync.grads(module.parameters(), loss)
        return (mean,)

    def _skipped(self, metrics: dict[str, Tensor]) -> dict[str, Tensor]:
        """An update stopped at a NaN/inf (counted by the guard); it still counts as due-work done,
        so the schedule moves on. Only the skip count is reported."""
        self.updates += 1
        return {"guard/skipped_updates": torch.tensor(float(self.guard.skipped))}

    # -- checkpoints -----------------------------------------------------------------------------

    def optim_state(self) -> dict[str, Any]:
        """Optimiser states and the update counters (tensors and JSON values)."""
        self.guard.settle()  # the device guard's count, read now
        return {
            "wm_opt": self.wm_opt.state_dict(), "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(), "updates": self.updates,
            "skipped_updates": self.guard.skipped,
        }  # fmt: skip

    def load_optim_state(self, state: Mapping[str, Any]) -> None:
        self.wm_opt.load_state_dict(state["wm_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.updates = int(state["updates"])
        self.guard.skipped = int(state.get("skipped_updates", 0))
        if self.device_guard:  # loading restores the saved kind of Adam and its step counters
            self.guard.on_device = None  # recounted from the loaded figures
            self.use_device_guard()
        else:
            for opt in (self.wm_opt, self.actor_opt, self.critic_opt):
                _set_adam_kind(opt, fused=False)


def _set_adam_kind(opt: torch.optim.Optimizer, fused: bool) -> None:
    """Make ``opt`` a fused (step counters on the device, CUDA-graph capturable, skips on a
    ``found_inf`` flag) or a foreach Adam (counters on the host), moving its counters to match."""
    for group in opt.param_groups:
        group.update(fused=fused, foreach=not fused, capturable=fused)
        for p in group["params"]:
            state = opt.state.get(p, {})
            if "step" in state:
                state["step"] = state["step"].to(device=p.device if fused else "cpu", dtype=torch.float32)
    if not fused:
        opt.found_inf = None  # type: ignore[attr-defined]
