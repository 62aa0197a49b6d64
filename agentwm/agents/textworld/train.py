"""Train the text world model (and the ``direct`` ablation) on collected TextWorld experience.

Reads like a CleanRL script: config, data, model, loop, checkpoint. The best epoch by validation
loss is kept: ``<logdir>/model.safetensors`` + ``config.json``, metrics in ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field, field_validator
from tqdm import tqdm

from agentwm.agents.textworld.data import Episodes, load_episodes, merge
from agentwm.agents.textworld.direct import DirectScorer
from agentwm.checkpoint import save_module
from agentwm.worldmodels.text_latent import TextLatentConfig, TextLatentModel

DEFAULT_SCALES: dict[str, float] = {
    "value": 1.0, "obs": 1.0, "reward": 1.0, "cont": 1.0, "imagined_value": 1.0, "consistency": 0.1, "q": 1.0,
    "counterfactual": 1.0, "rank": 0.0, "destination": 0.0,
}
"""Default weight of each loss term; ``destination`` (the imagined destination's contrastive term) is off."""


class TrainConfig(BaseModel):
    """Training of a text world model on datasets made by ``agentwm textworld collect``."""

    data: list[str] = Field(description="dataset folders (training games)")
    val_data: list[str] = Field(default_factory=list, description="dataset folders of validation games (empty: 10% of episodes)")
    logdir: str = Field(description="folder for the checkpoint and metrics")
    kind: Literal["world_model", "direct"] = Field("world_model", description="the world model, or the no-imagination ablation")
    epochs: int = Field(30, ge=1, description="passes over the training episodes")
    batch_size: int = Field(64, ge=1, description="episodes per update")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    seed: int = Field(0, description="seed of initialisation and batch order")
    init: str | None = Field(None, description="checkpoint folder of the same kind and sizes to start from (fine-tuning)")
    alternatives: int = Field(8, ge=1, description="other menu commands per state used by each update (a random subset of those stored)")
    model: TextLatentConfig = Field(default_factory=TextLatentConfig, description="model sizes")
    scales: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SCALES), description="weight of each loss term (terms not named keep their default)")

    @field_validator("scales")
    @classmethod
    def _fill_scales(cls, v: dict[str, float]) -> dict[str, float]:
        """Terms a config does not name keep their default, so a config written before a term existed trains as it did."""
        return {**DEFAULT_SCALES, **v}


def _subsample_alts(batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Keep ``k`` random columns of the stored alternative commands (each state's are in random order)."""
    if "alts" not in batch or batch["alts"].shape[2] <= k:
        return batch
    cols = torch.randperm(batch["alts"].shape[2])[:k]
    return {**batch, "alts": batch["alts"][:, :, cols], "alts_mask": batch["alts_mask"][:, :, cols]}


def _mean_loss(losses: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], scales: dict[str, float]) -> torch.Tensor:
    n = batch["mask"].sum().clamp(min=1)
    return sum((scales.get(k, 1.0) * v.sum() / n for k, v in losses.items()), torch.zeros(()))


def train(cfg: TrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train, keep the best validation epoch in ``cfg.logdir``; returns a summary."""
    # ---- data
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    data = merge([load_episodes(d, cfg.model.max_goal) for d in cfg.data])
    if cfg.val_data:
        val = merge([load_episodes(d, cfg.model.max_goal) for d in cfg.val_data])
        train_idx = list(range(len(data)))
    else:  # hold out whole games
        games = sorted(set(data.games))
        held = set(rng.sample(games, max(1, len(games) // 10)))
        train_idx = [i for i, g in enumerate(data.games) if g not in held]
        val = data
    val_idx = list(range(len(val))) if cfg.val_data else [i for i in range(len(data)) if i not in set(train_idx)]
    # ---- model
    model: TextLatentModel = DirectScorer(cfg.model) if cfg.kind == "direct" else TextLatentModel(cfg.model)
    if cfg.init is not None:
        start_from = load_model(cfg.init)
        if type(start_from) is not type(model) or start_from.config != model.config:
            raise ValueError(f"--init {cfg.init}: holds a {type(start_from).__name__} of other sizes or kind than --kind {cfg.kind}")
        model.load_state_dict(start_from.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    logdir = Path(cfg.logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    log = (logdir / "metrics.jsonl").open("a")
    gamma = cfg.model.value_gamma
    best, best_epoch, start = float("inf"), -1, time.time()
    bar = tqdm(range(cfg.epochs), desc=f"train {cfg.kind}", disable=not progress)
    for epoch in bar:
        # ---- one epoch of updates
        model.train()
        order = sorted(train_idx, key=lambda i: (int(data.length[i]), rng.random()))
        chunks = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        rng.shuffle(chunks)
        totals: dict[str, float] = {}
        for chunk in chunks:
            batch = _subsample_alts(data.batch(chunk, gamma), cfg.alternatives)
            losses, metrics = model.loss(batch)
            loss = _mean_loss(losses, batch, cfg.scales)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v) / len(chunks)
        # ---- validation
        val_loss = _evaluate(model, val, val_idx, cfg)
        row = {"epoch": epoch, "val/loss": val_loss, "time_s": round(time.time() - start, 1), **totals}
        log.write(json.dumps(row) + "\n")
        log.flush()
        if val_loss < best:
            best, best_epoch = val_loss, epoch
            config = {"kind": cfg.kind, "model": cfg.model.model_dump(), "epoch": epoch, "val_loss": val_loss,
                      "train": cfg.model_dump(exclude={"model"})}
            save_module(logdir, model, config)
        bar.set_postfix(val=f"{val_loss:.4f}", best=best_epoch)
    log.close()
    return {"logdir": str(logdir), "best_epoch": best_epoch, "val_loss": best, "episodes": len(train_idx), "time_s": round(time.time() - start, 1)}


@torch.no_grad()
def _evaluate(model: TextLatentModel, data: Episodes, index: list[int], cfg: TrainConfig) -> float:
    model.eval()
    total, n = 0.0, 0
    order = sorted(index, key=lambda i: int(data.length[i]))
    for lo in range(0, len(order), 256):
        batch = data.batch(order[lo : lo + 256], cfg.model.value_gamma)
        losses, _ = model.loss(batch)
        keys = ["value", "q", "counterfactual", "rank"] if cfg.kind == "direct" else ["value", "imagined_value", "reward", "cont", "counterfactual", "rank"]
        total += float(sum(cfg.scales.get(k, 1.0) * losses[k].sum() for k in keys if k in losses))
        n += int(batch["mask"].sum())
    return total / max(n, 1)


def load_model(folder: str | Path) -> TextLatentModel:
    """A trained world model or direct scorer from a checkpoint folder."""
    from agentwm.checkpoint import load_config, load_weights

    config = load_config(folder)
    if "model" not in config or config.get("kind") not in ("world_model", "direct"):
        raise ValueError(f"{folder} does not hold a TextWorld model checkpoint (config.json has no kind/model)")
    mc = TextLatentConfig(**config["model"])
    model: TextLatentModel = DirectScorer(mc) if config["kind"] == "direct" else TextLatentModel(mc)
    load_weights(folder, model)
    return model.eval()
