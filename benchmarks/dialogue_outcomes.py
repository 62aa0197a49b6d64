"""Does the imagined return of a dialogue outcome model rank replies by where they lead? One JSON object.

On held-out test conversations, at every turn of the agent, the *real* next agent turn is the
candidate; each method scores it from the conversation so far:

* ``return``: the world model imagines ``--horizon`` turns from the candidate (``--samples``
  sampled futures, partner and agent turns retrieved from the training logs) and scores it by
  ``Rollout.returns(1.0)``, the expected final outcome (``score_replies(..., futures="retrieved")``);
* ``return_h3`` / ``return_lambda``: the same at the scorer's horizon and futures (3, 8),
  ``Rollout.returns(1.0)`` / the λ-return (``--lam``, values bootstrapped at every imagined step);
* ``return_latent``: the same as ``return_h3`` with every imagined turn read as the model's
  predicted embedding, not a retrieved real turn: the scorer's defaults (``score_replies``);
* ``return_views``: the same as ``return_h3`` with the agreement read from both sides
  (``score_replies(..., views="both")``: the agent's model also reads the talk from the partner's
  side under every value vector the partner may hold, weighted by what the partner said);
* ``value``: the same model's value right after the candidate, no imagined turns;
* ``direct``: the no-world-model ablation, an MLP from (private context, mean of the context
  turns, last turn, candidate, turn index) straight to the outcome, trained on the same split, with
  ``--direct-seeds`` seeds: the figures are the median seed's (``direct_seeds`` lists every seed's);
  it returns the moving average of its weights, as the world model's trainer does (``direct_last``:
  the last weights, the ablation before phase 4);
* ``cosine``: MiniLM cosine of the candidate with the last turn; ``length``: its words.

Figures: AUC for agreement and Spearman with the final points (Deal or No Deal), Spearman with
the mean rating (Chit-Chat); ``turn_auc_gap_ci``: each score's AUC minus the direct ablation's,
with a 95 % interval from resampling test dialogues (both sides of a dialogue together);
``imagined_duplicate_rate`` (share of imagined partner turns equal to
the previous imagined partner turn of the same rollout); candidates per second at horizon 3;
negotiation against the separately trained partner simulator (``agentwm.agents.dialogue.negotiation``):
rollout vs likelihood vs random choice over the same candidates, per seed and the median of ``--seeds``.

    python benchmarks/dialogue_outcomes.py --dond-model models/dialogue-dond [--chitchat-model DIR]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

sys.path.append(str(Path(__file__).resolve().parent))  # _results.py (appended: nothing here shadows a package)
from _results import write_result

from agentwm.agents.dialogue.outcome_train import LogData, load_logs, weight_average
from agentwm.worldmodels.base import repeat_state
from agentwm.worldmodels.dialogue_mirror import Mirror, both_views
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel
from agentwm.worldmodels.dialogue_outcome_io import load_outcome_model

ROOT = Path(__file__).resolve().parents[1]
DOND = Path(os.environ.get("AGENTWM_SHARED", ROOT.parent / "shared")) / "data" / "dealornodeal"


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``label > 0.5`` (ties count half)."""
    from scipy.stats import rankdata

    pos, neg = label > 0.5, label <= 0.5
    r = rankdata(score)
    return float((r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


def auc_gap_ci(score: np.ndarray, base: np.ndarray, label: np.ndarray, groups: np.ndarray, draws: int = 1000,
               seed: int = 0) -> dict[str, float]:
    """AUC of ``score`` minus AUC of ``base`` and its 95 % bootstrap interval, resampling whole ``groups``."""
    rng = np.random.default_rng(seed)
    _, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(inv.max() + 1)]
    gaps = []
    for _ in range(draws):
        pick = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        if 0 < (label[pick] > 0.5).sum() < len(pick):
            gaps.append(auc(score[pick], label[pick]) - auc(base[pick], label[pick]))
    lo, hi = np.percentile(gaps, [2.5, 97.5])
    return {"gap": round(auc(score, label) - auc(base, label), 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4)}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


# ----------------------------------------------------------------------------------------------
# Positions: (conversation, agent turn) pairs of the test split, with the carry before the turn


def positions(model: DialogueOutcomeModel, data: LogData, convs: list[int], max_turns: int = 24) -> dict[str, Any]:
    """Every agent turn t >= 1 of ``convs``: carry before it, its embedding, and plain features."""
    deter, ctxs, cand, last, mean_ctx, tidx, words, conv_of = [], [], [], [], [], [], [], []
    with torch.no_grad():
        for c in convs:
            emb = data.emb[torch.from_numpy(data.rows[c][:max_turns])].float()
            agent = torch.from_numpy(data.agent[c][:max_turns])
            raw = torch.from_numpy(data.ctx[c]) if data.context_keys else torch.zeros(0)
            ctx = (torch.where(torch.isnan(raw), model.c_mean, raw) - model.c_mean) / model.c_std
            carry = model.initial(1, ctx[None])
            for t in range(emb.shape[0]):
                if agent[t] > 0 and t >= 1:
                    deter.append(carry["deter"][0])
                    ctxs.append(ctx)
                    cand.append(emb[t])
                    last.append(emb[t - 1])
                    mean_ctx.append(torch.nn.functional.normalize(emb[:t].mean(0), dim=0))
                    tidx.append(t)
                    words.append(len(data.texts[int(data.rows[c][t])].split()))
                    conv_of.append(c)
                carry = model.step(carry, emb[t : t + 1], agent[t : t + 1], sample=False)[0]
    return {"deter": torch.stack(deter), "ctx": torch.stack(ctxs), "cand": torch.stack(cand), "last": torch.stack(last),
            "mean": torch.stack(mean_ctx), "turn": torch.tensor(tidx, dtype=torch.float32),
            "words": np.array(words), "conv": np.array(conv_of)}


@torch.no_grad()
def mirrors_at(model: DialogueOutcomeModel, data: LogData, convs: list[int], max_turns: int = 24) -> list[Mirror]:
    """The partner's view before every position of :func:`positions` (same order), one talk each."""
    out = []
    for c in convs:
        emb = data.emb[torch.from_numpy(data.rows[c][:max_turns])].float()
        agent = torch.from_numpy(data.agent[c][:max_turns])
        ctx = dict(zip(("counts", "values"), np.asarray(data.ctx[c]).reshape(2, -1).tolist()))
        mirror = Mirror.start(model, [ctx])
        for t in range(emb.shape[0]):
            if agent[t] > 0 and t >= 1:
                out.append(mirror)
            mirror = mirror.hear(emb[t : t + 1], agent[t : t + 1] > 0)
    return out


@torch.no_grad()
def both_view_returns(model: DialogueOutcomeModel, pos: dict[str, Any], mirrors: list[Mirror], horizon: int,
                      samples: int, seed: int = 0, chunk: int = 128) -> np.ndarray:
    """Mean imagined return of the agreement read from both sides (what ``views="both"`` ranks by)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, pos["deter"].shape[0], chunk):
        sl = slice(start, start + chunk)
        n = pos["deter"][sl].shape[0]
        state = repeat_state({"deter": pos["deter"][sl], "ctx": pos["ctx"][sl], "turns": pos["turn"][sl]}, samples)
        roll = model.imagine(state, pos["cand"][sl].repeat_interleave(samples, 0)[None], horizon, generator=gen,
                             outcome="agreement")
        both = both_views(roll, Mirror.cat(mirrors[sl]).tile(samples), "agreement")
        out.append(both.returns(1.0).view(n, samples).mean(1).numpy())
    return np.concatenate(out)


@torch.no_grad()
def imagined_returns(model: DialogueOutcomeModel, pos: dict[str, Any], outcome: str, horizon: int, samples: int,
                     seed: int = 0, lam: float | None = None, turns: str = "retrieved") -> tuple[np.ndarray, float]:
    """Mean imagined return per position (``Rollout.returns(1.0)``, or the λ-return with ``lam``),
    and the duplicate rate of imagined partner turns."""
    gen = torch.Generator().manual_seed(seed)
    out, dup, pairs = [], 0, 0
    for start in range(0, pos["deter"].shape[0], 512):
        sl = slice(start, start + 512)
        n = pos["deter"][sl].shape[0]
        state = repeat_state({"deter": pos["deter"][sl], "ctx": pos["ctx"][sl], "turns": pos["turn"][sl]}, samples)
        cand = pos["cand"][sl].repeat_interleave(samples, 0)[None]
        roll = model.imagine(state, cand, horizon, generator=gen, outcome=outcome, turns=turns)  # type: ignore[arg-type]
        out.append(roll.returns(1.0, lam).view(n, samples).mean(1).numpy())
        partner = [row for t, row in enumerate(roll.extras["text"]) if t % 2 == 1]
        for a, b in itertools.pairwise(partner):
            dup += sum(x == y for x, y in zip(a, b))
            pairs += len(a)
    return np.concatenate(out), dup / max(pairs, 1)


@torch.no_grad()
def values_after(model: DialogueOutcomeModel, pos: dict[str, Any], outcome: str) -> np.ndarray:
    """The value right after the candidate (no imagined turns)."""
    carry = {"deter": pos["deter"], "ctx": pos["ctx"], "turns": pos["turn"]}
    after = model.step(carry, pos["cand"], torch.ones(len(pos["turn"])), sample=False)[0]
    return model.predict(after)["value"][:, model.config.outcomes.index(outcome)].numpy()


def direct_features(pos: dict[str, Any]) -> torch.Tensor:
    return torch.cat([pos["ctx"], pos["mean"], pos["last"], pos["cand"], pos["turn"][:, None] / 10], -1)


def train_direct(x: torch.Tensor, y: torch.Tensor, binary: list[bool], steps: int = 3000, seed: int = 0,
                 ema: float = 0.998) -> torch.nn.Module:
    """The no-imagination ablation: an MLP from features straight to every outcome; like the world
    model's trainer it returns the average of its weights (``ema`` 0: the last weights)."""
    torch.manual_seed(seed)
    mean, std = y.mean(0), y.std(0).clamp_min(1e-6)
    is_bin = torch.tensor(binary)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.SiLU(), torch.nn.Dropout(0.1),
                              torch.nn.Linear(256, 256), torch.nn.SiLU(), torch.nn.Linear(256, y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)
    avg = weight_average(net, ema) if ema else None
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (256,), generator=gen)
        out, tgt = net(x[idx]), y[idx]
        loss = torch.where(is_bin, torch.nn.functional.binary_cross_entropy_with_logits(out, tgt, reduction="none"),
                           0.5 * (out - (tgt - mean) / std) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if avg is not None:
            avg.update_parameters(net)
    return (avg.module if avg is not None else net).eval()


def turn_figures(model: DialogueOutcomeModel, data: LogData, args: argparse.Namespace, *, auc_outcome: str | None,
                 rank_outcome: str) -> dict[str, Any]:
    """AUC / Spearman of every method at every agent turn of the test split."""
    test, train = data.indices("test"), data.indices("train")
    pos = positions(model, data, test)
    names = data.outcome_names
    y = torch.from_numpy(np.stack([data.outcomes[c] for c in pos["conv"]]))
    res: dict[str, Any] = {"positions": len(pos["conv"]), "conversations": len(test)}
    ret_rank, dup = imagined_returns(model, pos, rank_outcome, args.horizon, args.samples)
    scores: dict[str, dict[str, np.ndarray]] = {"return": {rank_outcome: ret_rank},
                                                "value": {rank_outcome: values_after(model, pos, rank_outcome)}}
    # imagination variants: λ-returns over the imagined values (bootstrapping every step) at the scorer's defaults
    lam_h, lam_s = 3, 8
    scores["return_lambda"] = {o: imagined_returns(model, pos, o, lam_h, lam_s, seed=2, lam=args.lam)[0]
                               for o in {rank_outcome, auc_outcome} if o is not None}
    scores["return_h3"] = {o: imagined_returns(model, pos, o, lam_h, lam_s, seed=3)[0]
                           for o in {rank_outcome, auc_outcome} if o is not None}
    scores["return_latent"] = {o: imagined_returns(model, pos, o, lam_h, lam_s, seed=4, turns="latent")[0]
                               for o in {rank_outcome, auc_outcome} if o is not None}
    views = auc_outcome == "agreement" and {"counts", "values"} <= {k.split("[")[0] for k in data.context_keys}
    if views:  # a pool-splitting negotiation: the agreement also read from the partner's side
        both = both_view_returns(model, pos, mirrors_at(model, data, test), lam_h, lam_s, seed=3)
        scores["return_views"] = {auc_outcome: both, rank_outcome: both}
    res["return_lambda_settings"] = {"lam": args.lam, "horizon": lam_h, "samples": lam_s}
    if auc_outcome is not None:
        scores["return"][auc_outcome] = imagined_returns(model, pos, auc_outcome, args.horizon, args.samples, seed=1)[0]
        scores["value"][auc_outcome] = values_after(model, pos, auc_outcome)
    tr = positions(model, data, train[: args.direct_train])
    y_tr = torch.from_numpy(np.stack([data.outcomes[c] for c in tr["conv"]]))
    # the ablation over --direct-seeds seeds; its figures are those of the median seed (a lucky or an
    # unlucky seed of the baseline would move every gap by ~0.01 AUC). `direct` averages its weights as
    # the world model's trainer does; `direct_last` (its last weights, the ablation before phase 4)
    # overfits its 38 passes over the data and flattered every gap by ~0.01 AUC.
    key = names.index(auc_outcome if auc_outcome is not None else rank_outcome)
    truth = y[:, key].numpy()
    for method, ema in (("direct", 0.998), ("direct_last", 0.0)):
        per_seed = []
        for seed in range(args.direct_seeds):
            net = train_direct(direct_features(tr), y_tr, data.binary, seed=seed, ema=ema)
            with torch.no_grad():
                d_out = net(direct_features(pos)).numpy()
            fig = auc(d_out[:, key], truth) if auc_outcome is not None else spearman(d_out[:, key], truth)
            per_seed.append((fig, seed, d_out))
        _, mid_seed, d_out = sorted(per_seed, key=lambda r: r[0])[len(per_seed) // 2]
        res[f"{method}_seeds"] = {"figure_per_seed": [round(f, 4) for f, _, _ in per_seed], "median_seed": mid_seed}
        scores[method] = {n: d_out[:, names.index(n)] for n in {rank_outcome, auc_outcome} if n is not None}
    cos = (pos["cand"] * pos["last"]).sum(-1).numpy()
    scores["cosine"] = {n: cos for n in scores["direct"]}
    scores["length"] = {n: pos["words"].astype(float) for n in scores["direct"]}
    for method, by_outcome in scores.items():
        if auc_outcome is not None:
            res[f"turn_auc_{method}"] = round(auc(by_outcome[auc_outcome], y[:, names.index(auc_outcome)].numpy()), 4)
        if method != "return_views":  # it ranks by the agreement only
            res[f"turn_spearman_{method}"] = round(spearman(by_outcome[rank_outcome], y[:, names.index(rank_outcome)].numpy()), 4)
    if auc_outcome is not None:
        label = y[:, names.index(auc_outcome)].numpy()
        groups = np.array([(args.groups or {}).get(data.ids[c], data.ids[c]) for c in pos["conv"]])
        res["turn_auc_gap_ci"] = {m: auc_gap_ci(scores[m][auc_outcome], scores["direct"][auc_outcome], label, groups)
                                  for m in ("return", "return_h3", "return_lambda", "return_latent", "return_views", "value")
                                  if m in scores}
    res["imagined_duplicate_rate"] = round(dup, 4)
    return res


def speed(model: DialogueOutcomeModel, data: LogData, horizon: int = 3, samples: int = 4, k: int = 64) -> dict[str, Any]:
    """Candidates per second through ``imagine`` at ``horizon``: texts cached on disk vs never seen."""
    from agentwm.text.embedding_store import EmbeddingStore

    conv = data.indices("test")[0]
    turns = [("YOU" if a else "THEM", data.texts[int(r)]) for r, a in zip(data.rows[conv][:2], data.agent[conv][:2])]
    state = model.observe_turns(turns, role="YOU")
    pool = [t for t in model.bank_texts if t in model.embed_fn][: 5 * k]
    tiled = repeat_state(state, k * samples)

    def timed(cands: list[str]) -> float:
        t0 = time.perf_counter()
        model.imagine(tiled, [[c for c in cands for _ in range(samples)]], horizon)
        return time.perf_counter() - t0

    timed(pool[:k])
    cached = [k / timed(pool[i * k : (i + 1) * k]) for i in range(1, 4)]
    fresh_store = EmbeddingStore(persist=False, cache_dir="/nonexistent-agentwm-cache")
    old, model.embed_fn = model.embed_fn, fresh_store
    uncached = [k / timed([f"{t} (variant {i})" for t in pool[i * k : (i + 1) * k]]) for i in range(1, 3)]
    model.embed_fn = old
    return {"horizon": horizon, "samples": samples, "candidates_per_call": k,
            "candidates_per_s_cached": round(float(np.median(cached)), 1),
            "candidates_per_s_uncached": round(float(np.median(uncached)), 1)}


_FORKED: dict[str, Any] = {}  # what forked negotiation workers inherit (models are not pickled)


def _negotiation_seed(seed: int) -> dict[str, dict[str, float]]:
    from agentwm.agents.dialogue.negotiation import compare_rules

    torch.set_num_threads(1)
    job = _FORKED
    return compare_rules(job["model"], job["partner"], job["scenarios"], seed=seed, k=job["k"], **job["options"])


def negotiation(model: DialogueOutcomeModel, partner: DialogueOutcomeModel, scenarios: list[Any],
                args: argparse.Namespace) -> dict[str, Any]:
    """Each rule over the same scenarios for ``--seeds`` seeds: per-seed figures and their median."""
    from agentwm.agents.dialogue.negotiation import compare_rules

    options = json.loads(args.negotiation)
    if args.jobs > 1:  # seeds in parallel processes (forked: the models are shared copy-on-write)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _FORKED.update(model=model, partner=partner, scenarios=scenarios, k=args.k, options=options)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            per_seed = list(pool.map(_negotiation_seed, range(args.seeds)))
    else:
        per_seed = [compare_rules(model, partner, scenarios, seed=s, k=args.k, **options) for s in range(args.seeds)]
    out: dict[str, Any] = {}
    for rule in per_seed[0]:
        rows = [r[rule] for r in per_seed]
        out[rule] = {key: round(float(np.median([r[key] for r in rows])), 4) for key in rows[0]}
        out[rule]["per_seed"] = rows
    gap = [r["rollouts"]["mean_points"] - r["likelihood"]["mean_points"] for r in per_seed if "rollouts" in r]
    out["rollouts_minus_likelihood_points"] = {"median": round(float(np.median(gap)), 3), "per_seed": [round(g, 3) for g in gap]}
    out["settings"] = {"k": args.k, "seeds": args.seeds, **options}
    return out


def _reused(args: argparse.Namespace) -> dict[str, Any]:
    """The parts named by ``--reuse`` from the results file this run replaces, each marked with the
    command, commit and date that measured it (so a partial rerun keeps the figures it did not redo)."""
    from _results import RESULTS_DIR

    path = Path(args.out) if args.out else Path(os.environ.get("AGENTWM_RESULTS_DIR", RESULTS_DIR)) / "dialogue_outcomes.json"
    if not path.is_file():
        raise SystemExit(f"--reuse: no earlier results at {path}")
    record = json.loads(path.read_text())
    old = record.get("result", record)  # write_result wraps the object; older files hold it bare
    meta = old.get("reused_from") or {k: old.get("meta", {}).get(k) for k in ("command", "commit", "date")}
    out: dict[str, Any] = {"reused_from": meta}
    for part in args.reuse:
        if part == "negotiation":
            if "negotiation" not in old.get("dond", {}):
                raise SystemExit(f"--reuse negotiation: {path} has no dond.negotiation")
            out.setdefault("dond_negotiation", old["dond"]["negotiation"])
        elif part in old:
            out[part] = old[part]
        else:
            raise SystemExit(f"--reuse {part}: {path} has no {part!r}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dond-model", default=str(ROOT / "models" / "dialogue-dond"))
    p.add_argument("--dond-logs", default=None, help="DoND JSONL (default: converted from ../shared/data/dealornodeal)")
    p.add_argument("--chitchat-model", default=None)
    p.add_argument("--chitchat-logs", default=None)
    p.add_argument("--horizon", type=int, default=6, help="imagined turns per candidate (the candidate counts as one)")
    p.add_argument("--samples", type=int, default=4, help="sampled futures per candidate")
    p.add_argument("--lam", type=float, default=0.5, help="λ of the return_lambda variant (horizon 3, 8 futures)")
    p.add_argument("--direct-train", type=int, default=20000, help="training conversations of the direct ablation")
    p.add_argument("--direct-seeds", type=int, default=5, help="seeds of the direct ablation; its figures: the median seed's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-negotiation", action="store_true")
    p.add_argument("--reuse", nargs="*", default=[], choices=["negotiation", "chitchat"],
                   help="copy these parts, not rerun, from the results file being replaced (marked 'reused_from')")
    p.add_argument("--partner-model", default=str(ROOT / "models" / "dialogue-dond" / "partner"),
                   help="the partner simulator: a model trained separately (another seed)")
    p.add_argument("--games", type=int, default=1000, help="test scenarios to play (one per test dialogue, at most)")
    p.add_argument("--k", type=int, default=20, help="candidate utterances per agent turn")
    p.add_argument("--jobs", type=int, default=1, help="negotiation seeds played in parallel processes")
    p.add_argument("--seeds", type=int, default=3, help="negotiation seeds; the headline is the per-rule median")
    p.add_argument("--negotiation", default="{}", help="JSON keyword arguments of negotiation.play (e.g. '{\"sigma\": 0.5}')")
    p.add_argument("--out", default=None, help="where to write the JSON (default: benchmarks/results/dialogue_outcomes.json)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    result: dict[str, Any] = {}
    logs = args.dond_logs
    if logs is None:
        from agentwm.envs.conversation_sources import dealornodeal_logs
        from agentwm.envs.conversations import write_conversations

        logs = "/tmp/agentwm-dond.jsonl"
        if not Path(logs).is_file():
            write_conversations(dealornodeal_logs(DOND), logs)
    model = load_outcome_model(args.dond_model)
    data = load_logs(logs, "points")
    from agentwm.envs.conversations import read_conversations

    args.groups = {str(c.id): str(c.meta.get("dialogue", c.id)) for c in read_conversations(logs, split="test")}
    result["dond"] = turn_figures(model, data, args, auc_outcome="agreement", rank_outcome="points")
    result["dond"]["speed"] = speed(model, data)
    if not args.skip_negotiation and "negotiation" not in args.reuse:
        from agentwm.agents.dialogue.negotiation import scenarios_from_logs

        partner = load_outcome_model(args.partner_model)
        scenarios = scenarios_from_logs(list(read_conversations(logs, split="test")))[: args.games]
        result["dond"]["negotiation"] = negotiation(model, partner, scenarios, args)
    if args.chitchat_model:
        cmodel = load_outcome_model(args.chitchat_model)
        cdata = load_logs(args.chitchat_logs, "rating")
        args.groups = None
        result["chitchat"] = turn_figures(cmodel, cdata, args, auc_outcome=None, rank_outcome="rating")
    if args.reuse:
        reused = _reused(args)
        if "dond_negotiation" in reused:
            result["dond"]["negotiation"] = reused.pop("dond_negotiation")
        result.update(reused)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    result["meta"] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit,
                      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "cpu": platform.processor() or platform.machine(), "threads": args.threads,
                      "seconds": round(time.time() - t0, 1), "horizon": args.horizon, "samples": args.samples}
    print(json.dumps(result))
    write_result("dialogue_outcomes", result, path=args.out)


if __name__ == "__main__":
    main()
