"""PETS-style probabilistic ensemble of dynamics models (Chua et al. 2018), behind the world-model protocol.

``N`` MLPs each predict a diagonal Gaussian over the normalised next-state delta and reward. Their
weights are stacked ``[N, in, out]`` and evaluated in one batched pass (``torch.baddbmm``), never in
a Python loop over members. Each member trains on its own bootstrap resample with Gaussian NLL, so
members agree where data is dense and drift apart where it is not. That disagreement is a cheap
signal of epistemic uncertainty for planners. Log-variances are held between learned soft bounds,
as in PETS, so they cannot collapse or explode off the data.

Termination is a property of the state reached. So a small classifier reads the continue
(non-terminal) probability off the next observation, the real one in training and the imagined
one in :meth:`EnsembleDynamics.imagine`. Terminals are rare (about 45 in 1,000 random CartPole
steps), so it is trained with class-balanced BCE and then recalibrated by the prior odds.

The model's state is the observation itself: ``{"obs": [B, obs_dim]}``.

Propagation of particles in :meth:`EnsembleDynamics.imagine` (PETS's trajectory sampling):

* ``"tsinf"``: particle ``b`` keeps member ``b % N`` for the whole rollout. Planners tile the
  particles of one candidate next to each other, so each candidate's particles cycle through the
  members.
* ``"ts1"``: members are reassigned every step by a fresh random permutation of the particles.
  Every member gets an equal share, as in the PETS reference implementation.
* ``"mean"``: no sampling. Each particle follows the mean of the members' mean predictions.

Under ``ts*``, each particle adds its member's aleatoric noise to that member's mean delta.
Rewards are the member's mean, because sampling reward noise would only add variance to return
estimates. ``continues[t]`` is the continue probability of the particle's imagined ``s_{t+1}``.

Disagreement, ``extras["disagreement"] [H, B]``, is the variance across members of the predicted
next-state mean, in normalised units, averaged over state dims. It needs every member on every
particle, which is ``N`` times the work of ``ts*`` propagation alone. With 5 members of 3 × 200
units on 2 CPU cores, B=256 and H=15 take about 13 ms without it and 40 ms with it. So ``ts*``
rollouts report it only when asked (``disagreement=True``, or ``model.disagreement = True``, or
``EnsembleConfig(disagreement=True)``). Otherwise each particle is evaluated only under its own
member. ``"mean"`` evaluates every member anyway, so it always reports disagreement.

Dataset format, as taken by :meth:`EnsembleDynamics.fit`: a mapping of ``n`` rows
(``agentwm.envs.gym.collect_random_transitions`` builds exactly this from gymnasium),

* ``obs [n, D]``, ``next_obs [n, D]``: observations before and after the step;
* ``action [n, A]``: one-hot rows for discrete specs (``[n]`` integer indices are one-hot encoded
  for you), floats for continuous ones;
* ``reward [n]``;
* ``continue [n]``: ``0.0`` where gymnasium said ``terminated`` (the next state is terminal),
  else ``1.0``. A time-limit ``truncated`` step is *not* terminal and keeps ``1.0``. This key is
  optional when ``predict_continue`` is off.

Example::

    import gymnasium as gym, numpy as np, torch
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    rows = {k: [] for k in ("obs", "action", "next_obs", "reward", "continue")}
    for _ in range(1000):
        a = int(env.action_space.sample())
        nxt, r, terminated, truncated, _ = env.step(a)
        for key, value in zip(rows, (obs, a, nxt, r, 0.0 if terminated else 1.0)):
            rows[key].append(value)
        obs = env.reset()[0] if terminated or truncated else nxt
    data = {k: np.asarray(v) for k, v in rows.items()}
    model, metrics = EnsembleDynamics.from_transitions(data, ActionSpec("discrete", 2))
    actions = torch.eye(2)[torch.randint(2, (15, 8))]             # [H, B, A] one-hot
    rollout = model.imagine(model.observe(torch.zeros(8, 4)), actions, 15)
    rollout.returns(gamma=0.99)                                   # [8]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from agentwm.worldmodels.base import (
    ActionsOrPolicy,
    ActionSpec,
    Rollout,
    State,
    check_tensor,
    resolve_actions,
)
from agentwm.worldmodels.ensemble_fit import fit
from agentwm.worldmodels.ensemble_imagine import imagine_all, imagine_own

Propagation = Literal["ts1", "tsinf", "mean"]
"""How particles pick ensemble members in :meth:`EnsembleDynamics.imagine` (see the module doc)."""

Activation = Literal["silu", "elu", "relu"]
"""Hidden activation of every member. All three have in-place forms for the no-grad hot path."""

_PROPAGATIONS = ("ts1", "tsinf", "mean")
_ACTIVATIONS: dict[str, Callable[..., Tensor]] = {"silu": F.silu, "elu": F.elu, "relu": F.relu}
_LOG_2PI = math.log(2.0 * math.pi)

Layers = list[tuple[Tensor, Tensor]]


class EnsembleConfig(BaseModel):
    """Hyperparameters of :class:`EnsembleDynamics` and its :meth:`~EnsembleDynamics.fit`."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    members: int = Field(
        default=5, ge=1, le=64, description="ensemble members, each trained on its own bootstrap resample"
    )
    units: int = Field(default=200, ge=1, description="hidden width of every member")
    layers: int = Field(default=3, ge=1, le=8, description="hidden layers (Linear + activation) per member")
    activation: Activation = Field(
        default="silu", description="hidden activation: silu (swish, as in PETS), elu or relu"
    )
    lr: float = Field(default=1e-3, gt=0.0, description="AdamW learning rate of fit")
    weight_decay: float = Field(
        default=5e-5, ge=0.0, description="decoupled weight decay on weight matrices (not biases)"
    )
    max_logvar: float = Field(
        default=0.5, description="initial learned upper soft bound on log-variances (normalised units)"
    )
    min_logvar: float = Field(
        default=-10.0, description="initial learned lower soft bound on log-variances (normalised units)"
    )
    logvar_bound_coef: float = Field(
        default=0.01,
        ge=0.0,
        description="weight of sum(max_logvar) - sum(min_logvar) in the loss; keeps the learned bounds tight",
    )
    predict_continue: bool = Field(
        default=True, description="learn a continue (non-terminal) classifier; otherwise continues are 1"
    )
    continue_units: int = Field(
        default=64, ge=1, description="hidden width of the continue classifier (two hidden layers)"
    )
    continue_lr: float = Field(
        default=1e-2,
        gt=0.0,
        description="AdamW learning rate of the (small) continue classifier; above the members' rate",
    )
    batch_size: int = Field(default=32, ge=1, description="transitions per member per gradient step")
    epochs: int = Field(default=50, ge=1, description="maximum passes over each member's bootstrap resample")
    patience: int = Field(
        default=5,
        ge=1,
        description="stop after this many epochs in which no member's holdout error improved by 1%",
    )
    holdout: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="fraction of transitions held out for early stopping and metrics",
    )
    propagation: Propagation = Field(default="tsinf", description="default particle propagation of imagine")
    disagreement: bool = Field(
        default=False,
        description="whether ts* rollouts report member disagreement by default; costs N times the compute",
    )
    seed: int = Field(
        default=0,
        description="seed of the initial weights, the holdout split, bootstrap resamples and minibatch order",
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> EnsembleConfig:
        if not self.min_logvar < self.max_logvar:
            raise ValueError(
                f"min_logvar must be below max_logvar, got {self.min_logvar} >= {self.max_logvar}"
            )
        return self


def _fit_std(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std of the rows of ``x``. Constant features get std 1: centred, never blown up."""
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    return mean, torch.where(std < 1e-6, torch.ones_like(std), std)


class EnsembleDynamics(nn.Module):
    """Bootstrapped ensemble of probabilistic MLPs mapping ``(obs, action)`` to ``(delta, reward, continue)``.

    Args:
        obs_dim: size ``D`` of the flat observation.
        action_spec: the actions the model takes. Discrete actions are one-hot rows.
        config: hyperparameters; ``EnsembleConfig()`` when omitted.

    Attributes:
        disagreement: whether ``ts*`` rollouts of :meth:`imagine` report disagreement when the call
            does not say. It starts as ``config.disagreement`` and can be switched on a loaded model.

    Everything learned (weights, learned log-variance bounds, normalisers, terminal rate) lives in
    parameters and buffers, so ``state_dict`` round-trips the whole model.

    Members are plain ``Linear(+bias) → activation`` stacks, unlike :class:`agentwm.core.MLP`'s
    RMSNorm blocks. A bias-free Linear followed by RMSNorm is blind to the scale of its input, so a
    state ten times further out than the data would look like one inside it. Members could then
    not disagree there. PETS uses plain layers for the same job.
    """

    in_mean: Tensor
    in_std: Tensor
    delta_mean: Tensor
    delta_std: Tensor
    reward_mean: Tensor
    reward_std: Tensor
    continue_rate: Tensor

    def __init__(self, obs_dim: int, action_spec: ActionSpec, config: EnsembleConfig | None = None) -> None:
        super().__init__()
        if isinstance(obs_dim, bool) or not isinstance(obs_dim, int) or obs_dim < 1:
            raise ValueError(f"obs_dim must be a positive int, got {obs_dim!r}")
        if not isinstance(action_spec, ActionSpec):
            raise TypeError(f"action_spec must be an ActionSpec, got {type(action_spec).__name__}")
        self.config = config if config is not None else EnsembleConfig()
        self.action_spec = action_spec
        self.obs_dim = obs_dim
        self.disagreement = self.config.disagreement
        self._act = _ACTIVATIONS[self.config.activation]
        cfg, n, d = self.config, self.config.members, obs_dim
        in_dim = d + action_spec.dim
        # Output columns: delta mean [0, D), reward mean D, delta log-variance [D+1, 2D+1),
        # reward log-variance 2D+1.
        self._out_dim = 2 * d + 2
        gen = torch.Generator().manual_seed(cfg.seed)
        sizes = [in_dim] + [cfg.units] * cfg.layers + [self._out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            # LeCun-normal init, drawn independently per member so members start apart.
            self.weights.append(
                nn.Parameter(torch.randn(n, fan_in, fan_out, generator=gen) / math.sqrt(fan_in))
            )
            self.biases.append(nn.Parameter(torch.zeros(n, 1, fan_out)))
        self.max_logvar = nn.Parameter(torch.full((n, 1, d + 1), float(cfg.max_logvar)))
        self.min_logvar = nn.Parameter(torch.full((n, 1, d + 1), float(cfg.min_logvar)))
        # Termination is a property of the state reached, so the continue probability is read off
        # the (imagined) next observation. One small classifier trained on real next observations
        # learns the boundary far more sharply than an extra column of the dynamics members, whose
        # shared features are dominated by the much larger dynamics gradients.
        self.continue_net: nn.Sequential | None = None
        if cfg.predict_continue:
            cu = cfg.continue_units
            self.continue_net = nn.Sequential(
                nn.Linear(d, cu), nn.SiLU(), nn.Linear(cu, cu), nn.SiLU(), nn.Linear(cu, 1)
            )
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self.register_buffer("delta_mean", torch.zeros(d))
        self.register_buffer("delta_std", torch.ones(d))
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))
        # Fraction of non-terminal transitions: it balances the continue loss and recalibrates its output.
        self.register_buffer("continue_rate", torch.full((), 0.5))

    # ------------------------------------------------------------------------------------------
    # Protocol: carry in, carry out.

    @property
    def members(self) -> int:
        """Number of ensemble members ``N``."""
        return self.config.members

    def initial(self, batch_size: int) -> dict[str, Tensor]:
        """All-zero observations ``{"obs": [B, obs_dim]}``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        p = self.weights[0]
        return {"obs": torch.zeros(batch_size, self.obs_dim, device=p.device, dtype=p.dtype)}

    def observe(
        self, obs: Any, state: State | None = None, action: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The carry is the observation, ``{"obs": obs [B, obs_dim]}``.

        ``state`` and ``action`` are accepted for the protocol and ignored: the next observation
        already holds everything this model conditions on. NumPy arrays are converted, and
        floating dtypes are cast to the model's.
        """
        if isinstance(obs, np.ndarray):
            obs = torch.as_tensor(obs)
        obs = check_tensor("obs", obs, [None, self.obs_dim], finite=True)
        p = self.weights[0]
        return {"obs": obs.to(device=p.device, dtype=p.dtype)}

    # ------------------------------------------------------------------------------------------
    # Network: all members in one batched pass.

    def _normalise_input(self, obs: Tensor, action: Tensor) -> Tensor:
        return (torch.cat([obs, action], -1) - self.in_mean) / self.in_std

    def _layers(self) -> Layers:
        return list(zip(self.weights, self.biases))

    def _net(self, layers: Layers, x: Tensor, inplace: bool = False) -> Tensor:
        """Inputs ``[N, J, in]`` (or ``[J, in]``, shared by every member) → outputs ``[N, J, out]``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        h = x
        for i, (w, b) in enumerate(layers):
            h = torch.baddbmm(b, h, w)
            if i < len(layers) - 1:
                h = self._act(h, inplace=inplace)
        return h

    @staticmethod
    def _bounded_logvar(raw: Tensor, max_lv: Tensor, min_lv: Tensor) -> Tensor:
        """PETS soft bounds: smooth clamps into ``[min_lv, max_lv]``. The bounds themselves are learned."""
        lv = max_lv - F.softplus(max_lv - raw)
        return min_lv + F.softplus(lv - min_lv)

    def _continue_logit(self, next_obs: Tensor) -> Tensor:
        """Class-balanced continue logit ``[...]`` of next observations ``[..., D]`` (before the prior)."""
        assert self.continue_net is not None
        d = self.obs_dim
        x = (next_obs - self.in_mean[:d]) / self.in_std[:d]
        logit: Tensor = self.continue_net(x)
        return logit.squeeze(-1)

    def _continue_prior(self) -> Tensor:
        """Log prior odds of continuing. Adding it to the class-balanced logit recalibrates it.

        A logit trained with both classes weighted equally estimates the log likelihood ratio
        ``log p(x | continue) / p(x | terminal)``; adding ``log(rate / (1 - rate))`` turns that into
        the posterior log-odds that the data actually has.
        """
        rate = self.continue_rate.clamp(1e-3, 1 - 1e-3)
        return torch.log(rate) - torch.log1p(-rate)

    # ------------------------------------------------------------------------------------------
    # Learning.

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Unreduced loss terms, each ``[N, B]``, and detached metrics for a batch of transitions.

        ``batch`` holds ``obs``, ``action``, ``next_obs``, ``reward`` and, with ``predict_continue``,
        ``continue``. They are either shared by all members (``obs [B, D]``) or one minibatch per
        member (``obs [N, B, D]``, which is how :meth:`fit` feeds the bootstrap resamples). The
        training objective is the sum over terms of their means:

        * ``dynamics``: Gaussian NLL of the normalised delta, summed over state dims;
        * ``reward``: Gaussian NLL of the normalised reward;
        * ``continue``: class-balanced BCE of the continue classifier on the real next observation.
          Terminals are rare, so each class gets half the total weight. Absent without
          ``predict_continue``;
        * ``logvar_bounds``: ``coef * (sum(max_logvar) - sum(min_logvar))`` of each member,
          broadcast over its rows so that every term has the same shape.
        """
        n, d, a = self.members, self.obs_dim, self.action_spec.dim
        obs = batch.get("obs")
        if not isinstance(obs, Tensor) or obs.dim() not in (2, 3):
            raise ValueError(
                f"batch['obs'] must be a tensor [B, {d}] or [{n}, B, {d}], got {type(obs).__name__}"
            )
        lead: list[int | None] = [n, None] if obs.dim() == 3 else [None]
        obs = check_tensor("batch['obs']", obs, [*lead, d])
        rows: list[int | None] = list(obs.shape[:-1])
        action = check_tensor("batch['action']", batch.get("action"), [*rows, a])
        next_obs = check_tensor("batch['next_obs']", batch.get("next_obs"), [*rows, d])
        reward = check_tensor("batch['reward']", batch.get("reward"), rows)

        out = self._net(self._layers(), self._normalise_input(obs, action))
        mean = out[..., : d + 1]
        logvar = self._bounded_logvar(out[..., d + 1 : 2 * d + 2], self.max_logvar, self.min_logvar)
        target = torch.cat(
            [
                (next_obs - obs - self.delta_mean) / self.delta_std,
                ((reward - self.reward_mean) / self.reward_std)[..., None],
            ],
            -1,
        )
        nll = 0.5 * ((mean - target).square() * torch.exp(-logvar) + logvar + _LOG_2PI)
        shape = (n, int(obs.shape[-2]))
        bounds = self.config.logvar_bound_coef * (self.max_logvar.sum((1, 2)) - self.min_logvar.sum((1, 2)))
        losses = {
            "dynamics": nll[..., :d].sum(-1).expand(shape),
            "reward": nll[..., d].expand(shape),
            "logvar_bounds": bounds[:, None].expand(shape),
        }
        metrics: dict[str, Tensor] = {}
        if self.config.predict_continue:
            cont = check_tensor("batch['continue']", batch.get("continue"), rows)
            logit = self._continue_logit(next_obs)
            rate = self.continue_rate.clamp(1e-3, 1 - 1e-3)
            weight = torch.where(cont > 0.5, 0.5 / rate, 0.5 / (1 - rate))
            bce = F.binary_cross_entropy_with_logits(logit, cont, reduction="none")
            losses["continue"] = (weight * bce).expand(shape)
            with torch.no_grad():
                metrics["wm/continue_acc"] = (
                    (((logit + self._continue_prior()) > 0) == (cont > 0.5)).float().mean()
                )
        with torch.no_grad():
            metrics.update({f"loss/{k}": v.mean() for k, v in losses.items()})
            metrics["wm/delta_mse"] = (mean[..., :d] - target[..., :d]).square().mean()
            metrics["wm/logvar"] = logvar[..., :d].mean()
            metrics["wm/max_logvar"] = self.max_logvar.mean()
            metrics["wm/min_logvar"] = self.min_logvar.mean()
        return losses, metrics

    def set_normalizers(self, data: Mapping[str, Any]) -> None:
        """Fit the input, delta and reward normalisers, and the continue rate, to a dataset."""
        ds = self.as_dataset(data)
        with torch.no_grad():
            for (mean_buf, std_buf), x in (
                ((self.in_mean, self.in_std), torch.cat([ds["obs"], ds["action"]], -1)),
                ((self.delta_mean, self.delta_std), ds["next_obs"] - ds["obs"]),
                ((self.reward_mean, self.reward_std), ds["reward"][:, None]),
            ):
                mean, std = _fit_std(x)
                mean_buf.copy_(mean.reshape(mean_buf.shape))
                std_buf.copy_(std.reshape(std_buf.shape))
            self.continue_rate.copy_(ds["continue"].mean())

    def fit(
        self,
        data: Mapping[str, Any],
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        holdout: float | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        """Fit the normalisers, then train every member on its own bootstrap resample with AdamW
        (the loop lives in :func:`agentwm.worldmodels.ensemble_fit.fit`, which documents the metrics)."""
        return fit(self, data, epochs=epochs, batch_size=batch_size, lr=lr, holdout=holdout, progress=progress)

    @classmethod
    def from_transitions(
        cls,
        data: Mapping[str, Any],
        action_spec: ActionSpec,
        config: EnsembleConfig | None = None,
        *,
        progress: bool = False,
        **fit_kwargs: Any,
    ) -> tuple[EnsembleDynamics, dict[str, float]]:
        """Build an ensemble sized for ``data`` (format in the module doc), fit it, and return it
        with the metrics of :meth:`fit`."""
        obs = data.get("obs")
        shape: tuple[int, ...] = tuple(getattr(obs, "shape", ()))
        if len(shape) != 2:
            raise ValueError(f"data['obs'] must be an [n, obs_dim] array or tensor, got shape {tuple(shape)}")
        model = cls(int(shape[1]), action_spec, config)
        metrics = model.fit(data, progress=progress, **fit_kwargs)
        return model, metrics

    def as_dataset(self, data: Mapping[str, Any]) -> dict[str, Tensor]:
        """Validate a mapping of transitions (tensors or arrays) and return float32 tensors."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping of transition arrays, got {type(data).__name__}")
        raw: dict[str, Tensor] = {}
        for key in ("obs", "action", "next_obs", "reward", "continue"):
            value = data.get(key)
            if value is None:
                if key == "continue" and not self.config.predict_continue:
                    continue
                raise KeyError(
                    f"data is missing {key!r}; it needs obs, action, next_obs, reward and continue"
                )
            raw[key] = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
        d, a = self.obs_dim, self.action_spec.dim
        obs = check_tensor("data['obs']", raw["obs"], [None, d])
        n = int(obs.shape[0])
        if n < 2:
            raise ValueError(f"data needs at least 2 transitions, got {n}")
        action = raw["action"]
        if self.action_spec.kind == "discrete" and action.dim() == 1 and not action.is_floating_point():
            raw["action"] = self.action_spec.one_hot(action)
        for key in ("reward", "continue"):
            if key in raw and not raw[key].is_floating_point():
                raw[key] = raw[key].float()  # bool or int flags and rewards are fine as data
        check_tensor("data['action']", raw["action"], [n, a])
        check_tensor("data['next_obs']", raw["next_obs"], [n, d])
        check_tensor("data['reward']", raw["reward"], [n])
        if "continue" in raw:
            check_tensor("data['continue']", raw["continue"], [n])
        else:
            raw["continue"] = torch.ones(n)
        return {k: v.float() for k, v in raw.items()}

    # ------------------------------------------------------------------------------------------
    # Imagination: the planner's hot path.

    def imagine(
        self,
        state: State,
        actions: ActionsOrPolicy,
        horizon: int | None = None,
        *,
        propagation: Propagation | None = None,
        disagreement: bool | None = None,
        generator: torch.Generator | None = None,
        grad: bool = False,
    ) -> Rollout:
        """Roll ``state["obs"] [B, D]`` forward under ``actions [H, B, A]`` or a policy.

        Args:
            state: ``{"obs": [B, obs_dim]}``, from :meth:`observe` or :meth:`initial`.
            actions: time-major actions (one-hot rows for discrete specs), or a policy
                ``state -> [B, A]`` that is called on ``{"obs": obs_t}`` every step.
            horizon: number of steps ``H``. Optional with an action tensor, and then it must equal
                ``actions.shape[0]``.
            propagation: ``"tsinf"``, ``"ts1"`` or ``"mean"``; defaults to ``config.propagation``.
            disagreement: whether to report ``extras["disagreement"] [H, B]``; defaults to
                ``self.disagreement``. It costs ``N`` times the compute under ``ts*``, and it is
                always reported under ``"mean"``.
            generator: RNG for member assignment and noise, for reproducible samples.
            grad: keep the autograd graph. Off by default, because planning needs no gradients.

        Returns:
            A :class:`Rollout` with ``states={"obs": [H+1, B, D]}``, ``rewards [H, B]``,
            ``continues [H, B]`` (probabilities), ``actions [H, B, A]`` and, when reported,
            ``extras["disagreement"] [H, B]``.

        Raises:
            TypeError / ValueError: a malformed ``state``, ``actions`` or policy output. The
                message names the argument and the expected shape.
        """
        propagation = self.config.propagation if propagation is None else propagation
        if propagation not in _PROPAGATIONS:
            raise ValueError(f"propagation must be one of {_PROPAGATIONS}, got {propagation!r}")
        report = (self.disagreement if disagreement is None else bool(disagreement)) or propagation == "mean"
        if not isinstance(state, Mapping) or "obs" not in state:
            raise ValueError("state must be a mapping with 'obs' [B, obs_dim]; build it with observe()")
        obs0 = check_tensor("state['obs']", state["obs"], [None, self.obs_dim])
        batch = int(obs0.shape[0])
        dtype, device = self.weights[0].dtype, self.weights[0].device
        action_tensor, policy, horizon = resolve_actions(actions, self.action_spec, horizon, batch)
        if action_tensor is not None:
            action_tensor = action_tensor.to(device=device, dtype=dtype)
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            layers = self._rollout_layers()
            run = imagine_all if report else imagine_own
            obs0 = obs0.to(device=device, dtype=dtype)
            return run(self, layers, obs0, action_tensor, policy, horizon, propagation, generator, grad)

    def _rollout_layers(self) -> Layers:
        """The layers with the normalisers folded in, computed once per :meth:`imagine` call.

        The input normaliser goes into the first layer (``x_n @ W = x @ (W / s) - (m / s) @ W``).
        The delta and reward de-normalisers and the continue prior go into the last one. So the
        loop works in raw units and never re-applies them. Log-variances stay in normalised units,
        where their learned bounds live; the noise is scaled by ``delta_std`` once instead.
        """
        d = self.obs_dim
        layers = self._layers()
        w0, b0 = layers[0]
        layers[0] = (w0 / self.in_std[:, None], b0 - ((self.in_mean / self.in_std) @ w0).unsqueeze(1))
        wl, bl = layers[-1]
        scale = torch.ones(self._out_dim, device=wl.device, dtype=wl.dtype)
        shift = torch.zeros_like(scale)
        scale[:d], shift[:d] = self.delta_std, self.delta_mean
        scale[d], shift[d] = self.reward_std, self.reward_mean
        layers[-1] = (wl * scale, bl * scale + shift)
        return layers

    def _rollout_continue(self, inplace: bool) -> Callable[[Tensor], Tensor] | None:
        """Calibrated continue probability of raw next observations ``[M, D] -> [M]``.

        The input normaliser and the prior are folded into the classifier once per :meth:`imagine`
        call. ``None`` without ``predict_continue``.
        """
        if self.continue_net is None:
            return None
        d = self.obs_dim
        lin0, lin1, lin2 = (m for m in self.continue_net if isinstance(m, nn.Linear))
        s, m = self.in_std[:d], self.in_mean[:d]
        w0, b0 = lin0.weight / s, lin0.bias - lin0.weight @ (m / s)
        b2 = lin2.bias + self._continue_prior()

        def prob(x: Tensor) -> Tensor:
            h = F.silu(F.linear(x, w0, b0), inplace=inplace)
            h = F.silu(F.linear(h, lin1.weight, lin1.bias), inplace=inplace)
            return torch.sigmoid(F.linear(h, lin2.weight, b2)).squeeze(-1)

        return prob

