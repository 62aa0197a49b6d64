"""Train a dialogue outcome world model on any outcome-labelled conversation logs (JSONL).

Reads top to bottom: (1) config, (2) the logs as compact arrays with every distinct turn embedded
once (on-disk cache), (3) batches, (4) held-out turn-level figures, (5) the loop: resumable
checkpoints every ``save_every`` steps, non-finite losses skipped and counted, (6) the exported
model folder (the weights that validated best, a bank of real turns, config).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from agentwm.checkpoint import atomic_write
from agentwm.envs.conversations import LoadStats, read_conversations
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel, OutcomeModelConfig, context_features
from agentwm.worldmodels.dialogue_outcome_io import save_outcome_model

# ----------------------------------------------------------------------------------------------
# (1) Config


class OutcomeTrainConfig(BaseModel):
    """Settings of ``agentwm train dialogue --data LOGS.jsonl --outcome NAME``; every field is a flag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str = Field(description="conversation log, JSONL (agentwm.envs.conversations format)")
    outcome: str = Field(description="the outcome to predict and rank replies by (a key of 'outcomes')")
    logdir: str = Field("runs/dialogue-outcome", description="run folder: checkpoints, metrics.jsonl, model/")
    role: str | None = Field(None, description="the speaker the model plays (default: each line's 'role')")
    preset: Literal["default", "debug"] = Field("default", description="model size preset (debug: tiny, for tests)")
    steps: int = Field(3000, ge=1, description="gradient steps in all (a resumed run continues to this)")
    minutes: float = Field(60.0, gt=0, description="wall-clock budget of this call, in minutes")
    batch: int = Field(48, ge=2, description="conversations per batch")
    max_turns: int = Field(24, ge=2, description="first turns of each conversation trained on")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (cosine-decayed to 10%)")
    ema: float = Field(0.998, ge=0.0, lt=1.0,
                       description="decay of an exponential moving average of the weights, validated and exported instead of "
                                   "the raw weights (0: off)")
    seed: int = Field(0, description="seed of initialisation and batches")
    bank_size: int = Field(5000, ge=1, description="real turns per speaker side kept to render imagined turns")
    save_every: int = Field(250, ge=1, description="steps between resumable checkpoints")
    eval_every: int = Field(500, ge=1, description="steps between held-out evaluations")
    cache_dir: str | None = Field(None, description="embedding cache root (default ~/.cache/agentwm)")
    progress: bool = Field(True, description="progress bars on stderr")
    model: dict[str, Any] = Field(default_factory=dict,
                                  description="model settings over the preset, e.g. {\"dropout\": 0.3} (OutcomeModelConfig fields)")


def _preset(name: str) -> dict[str, Any]:
    return {"default": {}, "debug": {"hidden": 32, "deter": 48, "stoch": 4, "classes": 4, "units": 48}}[name]


# ----------------------------------------------------------------------------------------------
# (2) Data: conversations as rows into one table of distinct turn texts


@dataclass
class LogData:
    """Conversations as arrays: text rows, agent flags, raw context, outcomes; one shared text table."""

    texts: list[str]
    emb: Tensor  # [N, E] unit rows
    rows: list[np.ndarray] = field(default_factory=list)
    agent: list[np.ndarray] = field(default_factory=list)
    ctx: list[np.ndarray] = field(default_factory=list)
    outcomes: list[np.ndarray] = field(default_factory=list)
    has: list[np.ndarray] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    outcome_names: list[str] = field(default_factory=list)
    binary: list[bool] = field(default_factory=list)
    context_keys: list[str] = field(default_factory=list)
    stats: LoadStats = field(default_factory=LoadStats)

    def indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == split]


def _hash_split(cid: str) -> str:
    """Lines without a split: 90 % train, 10 % val, fixed by a hash of the id."""
    return "val" if int(hashlib.sha1(cid.encode()).hexdigest()[:8], 16) % 10 == 0 else "train"


def load_logs(path: str, outcome: str, *, role: str | None = None, embed: Any = None,
              cache_dir: str | None = None, progress: bool = False) -> LogData:
    """Stream a log into :class:`LogData`; lines lacking ``outcome`` or otherwise bad are counted, not fatal.

    Raises:
        ValueError: no usable conversation, or too few to hold out a validation part.
    """
    # pass 1 (streaming): outcome names and kinds, context fields and their lengths
    names: dict[str, bool] = {}
    shapes: dict[str, int] = {}
    for c in read_conversations(path, outcome=outcome, role=role):
        for k, o in c.outcomes.items():
            names[k] = names.get(k, True) and isinstance(o, bool)
        for k, v in c.context.items():
            shapes[k] = max(shapes.get(k, 0), len(v) if isinstance(v, list) else 0)
    if not names:
        bad = LoadStats()
        for _ in read_conversations(path, outcome=outcome, role=role, stats=bad):
            pass
        raise ValueError(f"{path}: no usable conversation with outcome {outcome!r} "
                         f"(skipped: {dict(bad.skipped)}; e.g. {bad.examples[:1]})")
    keys = [k if n == 0 else f"{k}[{i}]" for k, n in sorted(shapes.items()) for i in range(max(n, 1))]
    outcome_names = sorted(names)
    data = LogData(texts=[], emb=torch.zeros(0), outcome_names=outcome_names,
                   binary=[names[n] for n in outcome_names], context_keys=keys)
    # pass 2 (streaming): compact arrays; only the distinct texts are kept as strings
    table: dict[str, int] = {}
    for c in read_conversations(path, outcome=outcome, role=role, stats=data.stats):
        data.rows.append(np.array([table.setdefault(t.text, len(table)) for t in c.turns], dtype=np.int64))
        data.agent.append(np.array([t.speaker == c.role for t in c.turns], dtype=np.float32))
        data.ctx.append(np.array(context_features(c.context, keys), dtype=np.float32))
        data.outcomes.append(np.array([float(c.outcomes.get(n, 0.0)) for n in outcome_names], dtype=np.float32))
        data.has.append(np.array([n in c.outcomes for n in outcome_names], dtype=np.float32))
        data.split.append(c.split or _hash_split(str(c.id)))
        data.ids.append(str(c.id))
    data.texts = list(table)
    if embed is None:
        from agentwm.text.embedding_store import EmbeddingStore

        embed = EmbeddingStore(cache_dir)
    data.emb = torch.nn.functional.normalize(embed.embed(data.texts, progress=progress).float(), dim=-1).half()
    return data


def _stats(values: list[np.ndarray], idx: Sequence[int], mask: list[np.ndarray] | None = None) -> tuple[list[float], list[float]]:
    x = np.stack([values[i] for i in idx]).astype(np.float64)
    w = np.stack([mask[i] for i in idx]) if mask is not None else np.isfinite(x).astype(np.float64)
    x = np.where(w > 0, np.nan_to_num(x), np.nan)
    mean = np.nan_to_num(np.nanmean(x, 0)) if x.size else np.zeros(0)
    std = np.nan_to_num(np.nanstd(x, 0), nan=1.0) if x.size else np.zeros(0)
    return mean.tolist(), np.where(std > 1e-6, std, 1.0).tolist()


def build_model(data: LogData, cfg: OutcomeTrainConfig, embed: Any = None) -> DialogueOutcomeModel:
    """A fresh model sized by the preset, with the data's outcome and context statistics."""
    train = data.indices("train")
    o_mean, o_std = _stats(data.outcomes, train, data.has)
    c_mean, c_std = _stats(data.ctx, train) if data.context_keys else ([], [])
    mcfg = OutcomeModelConfig(
        outcomes=data.outcome_names, binary=data.binary, target=cfg.outcome,
        outcome_mean=[0.0 if b else m for m, b in zip(o_mean, data.binary)],
        outcome_std=[1.0 if b else s for s, b in zip(o_std, data.binary)],
        context_keys=data.context_keys, context_mean=c_mean, context_std=c_std,
        embed_dim=int(data.emb.shape[1]), **{**_preset(cfg.preset), **cfg.model},
    )
    return DialogueOutcomeModel(mcfg, embed=embed)


# ----------------------------------------------------------------------------------------------
# (3) Batches


def make_batch(model: DialogueOutcomeModel, data: LogData, convs: Sequence[int], max_turns: int) -> dict[str, Tensor]:
    """Padded conversations (first ``max_turns`` turns) in the format of ``DialogueOutcomeModel.loss``."""
    B, T = len(convs), min(max_turns, max(len(data.rows[c]) for c in convs))
    idx = torch.zeros(B, T, dtype=torch.long)
    agent, mask = torch.zeros(B, T), torch.zeros(B, T)
    ended = torch.zeros(B)
    for b, c in enumerate(convs):
        k = min(T, len(data.rows[c]))
        idx[b, :k] = torch.from_numpy(data.rows[c][:k])
        agent[b, :k] = torch.from_numpy(data.agent[c][:k])
        mask[b, :k] = 1.0
        ended[b] = float(len(data.rows[c]) <= T)
    ctx_raw = torch.from_numpy(np.stack([data.ctx[c] for c in convs]))
    ctx = torch.where(torch.isnan(ctx_raw), model.c_mean, ctx_raw)
    return {"emb": data.emb[idx.flatten()].float().view(B, T, -1) * mask[..., None], "agent": agent, "mask": mask,
            "ctx": (ctx - model.c_mean) / model.c_std,
            "outcomes": torch.from_numpy(np.stack([data.outcomes[c] for c in convs])),
            "has": torch.from_numpy(np.stack([data.has[c] for c in convs])), "ended": ended}


# ----------------------------------------------------------------------------------------------
# (4) Held-out figures: the value after each real agent turn against the final outcome


@torch.no_grad()
def turn_values(model: DialogueOutcomeModel, data: LogData, convs: Sequence[int], max_turns: int) -> tuple[np.ndarray, np.ndarray]:
    """(value of the target outcome after each agent turn, the conversation's outcome), per agent turn."""
    was = model.training
    model.eval()
    vals, ys = [], []
    for start in range(0, len(convs), 256):
        chunk = list(convs[start : start + 256])
        batch = make_batch(model, data, chunk, max_turns)
        carry = model.initial(len(chunk), batch["ctx"])
        for t in range(batch["emb"].shape[1]):
            carry = model.step(carry, batch["emb"][:, t], batch["agent"][:, t])[0]
            value = model.predict(carry)["value"][:, model.target_index]
            pick = (batch["agent"][:, t] * batch["mask"][:, t]).bool()
            vals.append(value[pick].numpy())
            ys.append(batch["outcomes"][pick, model.target_index].numpy())
    model.train(was)
    return np.concatenate(vals), np.concatenate(ys)


def evaluate(model: DialogueOutcomeModel, data: LogData, convs: Sequence[int], max_turns: int) -> dict[str, float]:
    """``eval/spearman`` (and ``eval/auc`` for a yes/no outcome) of the value after each agent turn."""
    try:
        from scipy.stats import rankdata, spearmanr
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("evaluating the outcome model needs scipy: pip install 'agentwm[dialogue]'") from err

    v, y = turn_values(model, data, convs, max_turns)
    out = {"eval/turns": float(len(v)), "eval/spearman": float(spearmanr(v, y)[0]) if len(set(y)) > 1 else float("nan")}
    pos, neg = y > 0.5, y <= 0.5
    if data.binary[model.target_index] and pos.any() and neg.any():
        r = rankdata(v)
        out["eval/auc"] = float((r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))
    return out


# ----------------------------------------------------------------------------------------------
# (5) The loop, with resumable checkpoints


def _save_run(folder: Path, model: DialogueOutcomeModel, opt: torch.optim.Optimizer, state: dict[str, Any],
              best: dict[str, Tensor] | None = None, ema: AveragedModel | None = None) -> None:
    """Weights, optimiser moments, the torch RNG and the best weights so far: a resumed run repeats
    the uninterrupted one exactly (batches are drawn from the step number)."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, s in opt.state_dict()["state"].items():
        tensors.update({f"opt.{i}.{k}": v.contiguous() for k, v in s.items() if isinstance(v, Tensor)})
    tensors["rng.torch"] = torch.get_rng_state()
    tensors.update({f"best.{k}": v.contiguous() for k, v in (best or {}).items()})
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in ema.state_dict().items()})
    atomic_write(folder / "run.safetensors", lambda tmp: save_file(tensors, tmp))
    atomic_write(folder / "run.json", lambda tmp: _write_text(tmp, json.dumps(state, indent=2)))


def _load_run(folder: Path, model: DialogueOutcomeModel, opt: torch.optim.Optimizer,
              ema: AveragedModel | None = None) -> dict[str, Any] | None:
    """The saved run state (``None`` without one); restores weights, optimiser and RNG in place and
    puts the best weights so far under ``state["best_weights"]``."""
    if not (folder / "run.json").is_file() or not (folder / "run.safetensors").is_file():
        return None
    state: dict[str, Any] = json.loads((folder / "run.json").read_text())
    tensors = load_file(str(folder / "run.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    state["best_weights"] = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    if ema is not None:
        saved = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        if not saved:
            raise ValueError(f"{folder} holds a run saved without an average of its weights; resume it with --ema 0")
        ema.load_state_dict(saved)
    sd = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            sd["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(sd)
    return state


def train_outcome_model(cfg: OutcomeTrainConfig, *, embed: Any = None) -> tuple[DialogueOutcomeModel, dict[str, Any]]:
    """Train (or resume) on ``cfg.data``; returns the model and a summary written to ``logdir``."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    logdir = Path(cfg.logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    data = load_logs(cfg.data, cfg.outcome, role=cfg.role, embed=embed, cache_dir=cfg.cache_dir, progress=cfg.progress)
    train, val = data.indices("train"), data.indices("val")
    if len(train) < 2:
        raise ValueError(f"{cfg.data}: {len(train)} training conversations; need at least 2")
    model = build_model(data, cfg, embed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    # the averaged weights (when on) are what is validated, kept as the best and exported
    ema = weight_average(model, cfg.ema) if cfg.ema else None
    judged: DialogueOutcomeModel = ema.module if ema is not None else model  # type: ignore[assignment]
    resumed = _load_run(logdir, model, opt, ema)
    if resumed is not None and resumed.get("data_fingerprint") != _fingerprint(data, cfg):
        raise ValueError(f"{logdir} holds a run on other data or settings; use a fresh --logdir")
    step = int(resumed["step"]) if resumed else 0
    skipped_steps = int(resumed.get("skipped_steps", 0)) if resumed else 0
    metrics_path = logdir / "metrics.jsonl"
    _truncate_metrics(metrics_path, step)  # rows past the checkpoint are written again by the resumed run
    start, last_eval = time.monotonic(), {}
    best: tuple[float, int, dict[str, Tensor] | None] = (-math.inf, 0, None)
    if resumed and resumed.get("best_weights") is not None:
        best = (float(resumed["best_key"]), int(resumed["best_step"]), resumed["best_weights"])
    bar = tqdm(total=cfg.steps, initial=step, desc="train dialogue", disable=not cfg.progress)
    model.train()
    while step < cfg.steps and time.monotonic() - start < cfg.minutes * 60:
        rng = random.Random(cfg.seed * 1_000_003 + step)  # batches depend on the step: a resumed run continues the stream
        batch = make_batch(model, data, [rng.choice(train) for _ in range(cfg.batch)], cfg.max_turns)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        loss, metrics = model.total_loss(batch)
        if not torch.isfinite(loss):
            skipped_steps += 1  # a poisoned batch never stops the run; it is counted in the summary
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
        step += 1
        bar.update(1)
        if step % cfg.eval_every == 0 and val:
            last_eval = evaluate(judged, data, val[:1000], cfg.max_turns)
            key = last_eval.get("eval/auc", last_eval["eval/spearman"])
            if not math.isnan(key) and key > best[0]:  # the export keeps the best held-out weights
                best = (key, step, {k: v.detach().clone() for k, v in judged.state_dict().items()})
            bar.set_postfix({k.split("/")[1]: round(v, 3) for k, v in last_eval.items() if k != "eval/turns"})
        if step % 50 == 0 or step % cfg.eval_every == 0:
            row = {"step": step, **{k: round(float(v), 5) for k, v in metrics.items()}, **last_eval}
            with open(metrics_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        if step % cfg.save_every == 0 or step == cfg.steps:
            _save_run(logdir, model, opt, {"step": step, "skipped_steps": skipped_steps, "best_key": best[0],
                                           "best_step": best[1], "data_fingerprint": _fingerprint(data, cfg)},
                      best[2], ema)
    bar.close()
    if ema is not None:
        model.load_state_dict(judged.state_dict())
    if best[2] is not None and val:  # early stopping: the final weights only if they validate better
        final_key = evaluate(model, data, val[:1000], cfg.max_turns)
        if final_key.get("eval/auc", final_key["eval/spearman"]) < best[0]:
            model.load_state_dict(best[2])
    model.eval()

    # ------------------------------------------------------------------------------------------
    # (6) Export: weights, a bank of real turns per side, config with the training facts
    bank_rows, bank_agent = _bank(data, train, cfg.bank_size, cfg.seed)
    model.set_bank(data.emb[bank_rows].float(), [data.texts[i] for i in bank_rows], bank_agent)
    final = evaluate(model, data, val, cfg.max_turns) if val else {}
    summary = {"data": cfg.data, "outcome": cfg.outcome, "steps": step, "skipped_steps": skipped_steps,
               "finished": step >= cfg.steps, "conversations": {s: len(data.indices(s)) for s in ("train", "val", "test")},
               "load": data.stats.summary(), "val": final, "best_step": best[1] if best[2] is not None else step,
               "bank": len(bank_rows), "config": cfg.model_dump()}
    save_outcome_model(logdir / "model", model, summary)
    atomic_write(logdir / "summary.json", lambda tmp: _write_text(tmp, json.dumps(summary, indent=2)))
    return model, summary


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights (``update_parameters`` after each step).
    Its decay starts low, ``min(decay, (1 + n) / (10 + n))`` after n updates, so the average of a
    short run is not mostly its first weights (torch's EMA helper takes a fixed decay)."""

    def step(averaged: Tensor, current: Tensor, n: Tensor | int) -> Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return averaged * d + current * (1.0 - d)

    return AveragedModel(model, avg_fn=step, use_buffers=True)


def _fingerprint(data: LogData, cfg: OutcomeTrainConfig) -> str:
    key = json.dumps([len(data.rows), data.outcome_names, data.context_keys, cfg.outcome, cfg.preset, cfg.seed,
                      cfg.batch, cfg.max_turns] + ([cfg.ema] if cfg.ema else []))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def _bank(data: LogData, convs: Sequence[int], size: int, seed: int) -> tuple[list[int], Tensor]:
    """Up to ``size`` distinct training turns of each side (agent, partner), sampled by frequency."""
    rng = np.random.default_rng(seed)
    rows, flags = [], []
    for side in (1.0, 0.0):
        counts: dict[int, int] = {}
        for c in convs:
            for r, a in zip(data.rows[c].tolist(), data.agent[c].tolist()):
                if a == side:
                    counts[r] = counts.get(r, 0) + 1
        keys = np.array(list(counts), dtype=np.int64)
        if len(keys) > size:
            p = np.array([counts[k] for k in keys], dtype=np.float64) ** 0.5
            keys = rng.choice(keys, size=size, replace=False, p=p / p.sum())
        rows += keys.tolist()
        flags += [side == 1.0] * len(keys)
    return rows, torch.tensor(flags, dtype=torch.bool)


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the metrics rows up to ``step`` (a fresh run: none), written atomically."""
    if not path.is_file():
        return
    rows = [r for r in path.read_text(encoding="utf-8").splitlines() if r.strip()]
    keep = []
    for r in rows:
        try:
            if int(json.loads(r)["step"]) <= step:
                keep.append(r)
        except (ValueError, KeyError, TypeError):  # a line cut by a kill mid-write
            continue
    if len(keep) != len(rows):
        atomic_write(path, lambda tmp: _write_text(tmp, "".join(r + "\n" for r in keep)))


def _write_text(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m agentwm.agents.dialogue.outcome_train --data LOGS.jsonl --outcome NAME [...]``:
    one flag per :class:`OutcomeTrainConfig` field; prints the summary as one JSON line."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m agentwm.agents.dialogue.outcome_train",
                                description="train a dialogue outcome world model on conversation logs (JSONL)")
    for name, info in OutcomeTrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        text = (info.description or "").replace("%", "%%")  # argparse formats help with %
        if info.annotation is bool:
            p.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=None, help=text)
        elif name == "model":
            p.add_argument(flag, type=json.loads, default=None, help=text)
        else:
            p.add_argument(flag, default=None, required=info.is_required(), help=text)
    args = {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}
    try:
        cfg = OutcomeTrainConfig(**args)
        _, summary = train_outcome_model(cfg)
    except (ValueError, FileNotFoundError) as err:  # pydantic's ValidationError is a ValueError
        print(f"error: {str(err).splitlines()[0] if 'validation error' not in str(err) else err}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
