"""Training of :class:`~agentwm.worldmodels.ensemble.EnsembleDynamics`: per-member bootstrap resamples,
minibatch AdamW and per-member early stopping on a holdout split (PETS, Chua et al. 2018)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from agentwm.core.finite import FiniteGuard, check_positive_finite, guarded_step

if TYPE_CHECKING:
    from agentwm.worldmodels.ensemble import EnsembleDynamics

_MIN_IMPROVEMENT = 0.01
"""A member's holdout error must drop by this fraction to count as an improvement (early stopping)."""


def fit(
    model: EnsembleDynamics,
    data: Mapping[str, Any],
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    holdout: float | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Fit the normalisers, then train every member on its own bootstrap resample with AdamW.

    A random ``holdout`` fraction of ``data`` (format in ``ensemble``'s module doc) is kept out of
    training. After every epoch, each member whose holdout error improved is snapshotted.
    Training stops once no member has improved for ``config.patience`` epochs, and each member's
    best snapshot is restored. Arguments left ``None`` come from the config. The model is left
    in ``eval()`` mode.

    Returns:
        Metrics as floats, measured on the holdout set (on the training data when ``holdout``
        is 0): ``wm/holdout_mse``, the one-step MSE of the ensemble-mean next observation in raw
        units; ``wm/holdout_baseline_mse``, the same for predicting no change;
        ``wm/holdout_nll``; ``wm/holdout_reward_mse``; ``wm/holdout_continue_acc`` (with
        ``predict_continue``); ``wm/epochs`` trained; and the last epoch's mean training
        ``loss/*`` terms.
    """
    cfg = model.config
    epochs = cfg.epochs if epochs is None else epochs
    batch_size = cfg.batch_size if batch_size is None else batch_size
    lr = check_positive_finite("lr", cfg.lr if lr is None else lr)
    holdout = cfg.holdout if holdout is None else holdout
    if epochs < 1 or batch_size < 1 or not 0.0 <= holdout < 1.0 or lr <= 0:
        raise ValueError(
            "need epochs >= 1, batch_size >= 1, lr > 0 and 0 <= holdout < 1;"
            f" got {epochs}, {batch_size}, {lr}, {holdout}"
        )
    p0 = model.weights[0]
    ds = {k: v.to(device=p0.device, dtype=p0.dtype) for k, v in model.as_dataset(data).items()}

    # 1. holdout split and normalisers (fitted on the training part only)
    total = int(ds["obs"].shape[0])
    gen = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(total, generator=gen).to(p0.device)
    n_hold = round(holdout * total)
    if total - n_hold < 1:
        raise ValueError(f"{total} transitions leave nothing to train on with holdout={holdout}")
    train = {k: v[perm[n_hold:]] for k, v in ds.items()}
    hold = {k: v[perm[:n_hold]] for k, v in ds.items()} if n_hold > 0 else train
    model.set_normalizers(train)

    # 2. one bootstrap resample per member, and the optimiser
    n, n_train = model.members, int(train["obs"].shape[0])
    boot = torch.randint(n_train, (n, n_train), generator=gen).to(p0.device)
    groups: list[dict[str, Any]] = [
        {"params": list(model.weights), "weight_decay": cfg.weight_decay},
        {"params": [*model.biases, model.max_logvar, model.min_logvar], "weight_decay": 0.0},
    ]
    if model.continue_net is not None:
        groups.append(
            {"params": list(model.continue_net.parameters()), "weight_decay": 0.0, "lr": cfg.continue_lr}
        )
    opt = torch.optim.AdamW(groups, lr=lr, fused=p0.device.type in ("cpu", "cuda"))
    guard = FiniteGuard("ensemble fit")  # NaN/inf steps skipped and counted; 20 in a row stop the fit
    best_score = torch.full((n,), math.inf, device=p0.device)
    # Member-stacked parameters are snapshotted per member; the shared continue classifier is not.
    stacked = {k: v for k, v in model.named_parameters() if not k.startswith("continue_net.")}
    best = {k: v.detach().clone() for k, v in stacked.items()}
    steps = max(1, math.ceil(n_train / batch_size))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="ensemble fit", unit="epoch")

    # 3. epochs of minibatch AdamW with per-member early stopping
    model.train()
    train_means: dict[str, Tensor] = {}
    stale, epoch = 0, 0
    for epoch in range(1, epochs + 1):
        order = torch.gather(boot, 1, torch.rand(n, n_train, generator=gen).argsort(1).to(p0.device))
        sums: dict[str, Tensor] = {}
        for s in range(steps):
            idx = order[:, s * batch_size : (s + 1) * batch_size]
            losses, _ = model.loss({k: v[idx] for k, v in train.items()})
            objective = torch.stack([v.mean() for v in losses.values()]).sum()
            opt.zero_grad(set_to_none=True)
            guarded_step(guard, objective, opt, model.parameters(), what="ensemble fit loss")
            for k, v in losses.items():
                sums[k] = sums[k] + v.detach().mean() if k in sums else v.detach().mean()
        train_means = {f"loss/{k}": v / steps for k, v in sums.items()}
        score = member_scores(model, hold)
        improved = score < best_score * (1 - _MIN_IMPROVEMENT)
        if bool(improved.any()):
            stale = 0
            best_score = torch.where(improved, score, best_score)
            with torch.no_grad():
                for k, p in stacked.items():
                    best[k][improved] = p.detach()[improved]
        else:
            stale += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(holdout_mse=f"{float(best_score.mean()):.3g}")
        if n_hold > 0 and stale >= cfg.patience:
            break
    if bar is not None:
        bar.close()
    if n_hold > 0:
        with torch.no_grad():
            for k, p in stacked.items():
                p.copy_(best[k])
    model.eval()
    metrics = holdout_metrics(model, hold)
    metrics["wm/epochs"] = float(epoch)
    metrics.update({k: float(v) for k, v in train_means.items()})
    return metrics


def _targets(model: EnsembleDynamics, ds: Mapping[str, Tensor]) -> Tensor:
    """Normalised delta and reward targets ``[n, D + 1]``."""
    delta = (ds["next_obs"] - ds["obs"] - model.delta_mean) / model.delta_std
    return torch.cat([delta, ((ds["reward"] - model.reward_mean) / model.reward_std)[:, None]], -1)


@torch.no_grad()
def member_scores(model: EnsembleDynamics, ds: Mapping[str, Tensor]) -> Tensor:
    """Holdout MSE ``[N]`` of each member's normalised delta and reward means, for early stopping."""
    out = model._net(model._layers(), model._normalise_input(ds["obs"], ds["action"]))
    return (out[..., : model.obs_dim + 1] - _targets(model, ds)).square().mean((1, 2))


@torch.no_grad()
def holdout_metrics(model: EnsembleDynamics, ds: Mapping[str, Tensor]) -> dict[str, float]:
    """The metrics :func:`fit` returns, measured on ``ds``."""
    d = model.obs_dim
    losses, _ = model.loss(ds)
    out = model._net(model._layers(), model._normalise_input(ds["obs"], ds["action"]))
    delta = out[..., :d].mean(0) * model.delta_std + model.delta_mean
    reward = out[..., d].mean(0) * model.reward_std + model.reward_mean
    metrics = {
        "wm/holdout_mse": float((ds["obs"] + delta - ds["next_obs"]).square().mean()),
        "wm/holdout_baseline_mse": float((ds["obs"] - ds["next_obs"]).square().mean()),
        "wm/holdout_nll": float((losses["dynamics"] + losses["reward"]).mean()),
        "wm/holdout_reward_mse": float((reward - ds["reward"]).square().mean()),
    }
    if model.config.predict_continue:
        prob = torch.sigmoid(model._continue_logit(ds["obs"] + delta) + model._continue_prior())
        metrics["wm/holdout_continue_acc"] = float(((prob > 0.5) == (ds["continue"] > 0.5)).float().mean())
    return metrics
