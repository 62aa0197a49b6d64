"""How precisely does a world-model setting learn a run's dynamics? Fit it offline on the run's replay.

    python benchmarks/dreamer_wm_fit.py --logdir runs/cartpole --updates 3000
    python benchmarks/dreamer_wm_fit.py --logdir runs/cartpole --set 'model.loss_scales={"dec": 100}'

Reads the replay of a run's newest checkpoint, trains a fresh RSSM (the run's model settings with
``--set`` overrides) on the first rows with the world-model half of a Dreamer update (same batch
shape and learning rate), and scores it on the held-out last ``--test-rows`` rows, which come from
the run's latest, best policy. Two figures per observation dimension, as mean absolute errors:

- ``recon``: the posterior's reconstruction of the observations it has just seen;
- ``ahead[k]``: after ``--context`` observed steps, the decoded observation ``k`` steps later,
  imagined open loop with the actions that were really taken (``error``: of the mean over latent
  samples; ``error_per_sample``: of each sample, which is what one imagined rollout shows the
  actor), next to ``real_change[k]``, how much the observation really moved in those ``k`` steps.

No environment and no actor-critic, so settings compare in minutes on the same data. Vector
observations only. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import numpy as np
import torch
from _results import write_result

from agentwm.agents.dreamer import resolve_config
from agentwm.agents.dreamer import run_checkpoint as ckpt
from agentwm.agents.dreamer.config import DreamerConfig
from agentwm.agents.dreamer.evaluation import env_specs
from agentwm.checkpoint import read_json
from agentwm.worldmodels.rssm import RSSM

KEYS = ("obs", "action", "reward", "is_first", "is_terminal")


def load_rows(logdir: Path) -> dict[str, torch.Tensor]:
    """The newest checkpoint's replay as one stream per key ``[rows, ...]`` (the first env's)."""
    path = ckpt.latest(logdir)
    if path is None:
        sys.exit(f"dreamer_wm_fit: no checkpoint in {logdir}")
    blocks, rows = ckpt.replay_arrays(path)
    return {k: torch.as_tensor(np.concatenate([b[k] for _, b in blocks], axis=1)[0][:rows]) for k in KEYS}


def windows(data: dict[str, torch.Tensor], starts: np.ndarray, length: int) -> dict[str, torch.Tensor]:
    """``[len(starts), length]`` windows, each begun as a fresh episode (as replay samples them)."""
    idx = torch.as_tensor(starts[:, None] + np.arange(length))
    out = {k: v[idx] for k, v in data.items()}
    out["is_first"] = out["is_first"].clone()
    out["is_first"][:, 0] = True
    out["reward"] = out["reward"].float()
    return out


@torch.no_grad()
def score(model: RSSM, test: dict[str, torch.Tensor], context: int, ahead: list[int], samples: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    seen = {k: v[:, :context] for k, v in test.items()}
    post, _ = model.observe_sequence(seen["obs"], seen["action"], seen["is_first"], generator=gen)
    recon = (model.decode(post) - seen["obs"]).abs().mean((0, 1))
    start = {k: v[:, -1].repeat_interleave(samples, 0) for k, v in post.items() if k in ("deter", "stoch")}
    acts = test["action"][:, context:].repeat_interleave(samples, 0).transpose(0, 1)
    roll = model.imagine(start, acts, acts.shape[0], generator=gen)
    each = model.decode(roll.states)
    each = each.reshape(each.shape[0], -1, samples, each.shape[-1])  # [H+1, W, samples, D]
    decoded = each.mean(2)  # [H+1, W, D]: [k] is step context-1+k
    real = test["obs"].transpose(0, 1)
    last_seen = real[context - 1]
    out: dict[str, Any] = {"recon": recon.round(decimals=4).tolist(), "ahead": {}}
    for k in ahead:
        err = (decoded[k] - real[context - 1 + k]).abs().mean(0)
        err_each = (each[k] - real[context - 1 + k][:, None]).abs().mean((0, 1))
        change = (real[context - 1 + k] - last_seen).abs().mean(0)
        out["ahead"][str(k)] = {"error": err.round(decimals=4).tolist(), "error_per_sample": err_each.round(decimals=4).tolist(),
                                "real_change": change.round(decimals=4).tolist()}  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", required=True)
    p.add_argument("--updates", type=int, default=3000)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="Dreamer setting override for the fitted model, e.g. model.loss_scales={...}, wm_lr=3e-4")
    p.add_argument("--test-rows", type=int, default=5000, help="held-out rows at the end of the replay")
    p.add_argument("--context", type=int, default=16, help="observed steps before imagining")
    p.add_argument("--ahead", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--samples", type=int, default=8, help="latent samples per imagined window")
    p.add_argument("--windows", type=int, default=200, help="held-out windows scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="kept as benchmarks/results/dreamer_wm_fit-NAME.json (default: no suffix)")
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logdir = Path(args.logdir)
    if not (logdir / "config.json").is_file():
        sys.exit(f"dreamer_wm_fit: no Dreamer run in {logdir} (missing config.json)")
    try:
        cfg = resolve_config(overrides=args.sets, base=DreamerConfig(**read_json(logdir / "config.json")))
    except (TypeError, ValueError) as err:  # a bad --set, or a config.json that is not a settings object
        sys.exit(f"dreamer_wm_fit: {err}")
    obs_shape, spec = env_specs(cfg)
    if len(obs_shape) != 1:
        sys.exit(f"dreamer_wm_fit: vector observations only, {cfg.env} gives {tuple(obs_shape)}")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    try:
        data = load_rows(logdir)
    except (OSError, ValueError) as err:  # an unreadable checkpoint (CheckpointError)
        sys.exit(f"dreamer_wm_fit: {err}")
    rows, span = len(data["obs"]), args.context + max(args.ahead)
    split = rows - args.test_rows
    if split < 10 * cfg.batch_length or args.test_rows < span:
        sys.exit(f"dreamer_wm_fit: {rows} replay rows are too few for {args.test_rows} held-out rows")
    # Held-out windows inside one episode, so every imagined step has a real step to compare with.
    inside = [s for s in range(split, rows - span)
              if not data["is_first"][s + 1 : s + span].any() and not data["is_terminal"][s : s + span].any()]  # fmt: skip
    if not inside:
        sys.exit("dreamer_wm_fit: no held-out episode stretch is long enough; lower --ahead or --context")
    starts = np.asarray(inside)[np.linspace(0, len(inside) - 1, min(args.windows, len(inside))).astype(int)]
    test = windows(data, starts, span)
    model = RSSM(obs_shape, spec, cfg.rssm_config())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.wm_lr, eps=1e-8, foreach=True)
    began, curve = time.perf_counter(), []
    for update in range(1, args.updates + 1):
        batch = windows(data, rng.integers(0, split - cfg.batch_length, cfg.batch_size), cfg.batch_length)
        losses, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        model.total_loss(losses).backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.wm_clip)
        opt.step()
        if update % max(1, args.updates // 4) == 0 or update == args.updates:
            row = score(model, test, args.context, args.ahead, args.samples)
            curve.append({"updates": update, **row})
            print(f"update {update}: ahead {max(args.ahead)} error {row['ahead'][str(max(args.ahead))]['error']}",
                  file=sys.stderr)  # fmt: skip
    print(json.dumps(write_result("dreamer_wm_fit", {
        "benchmark": "dreamer_wm_fit", "env": cfg.env, "logdir": str(logdir), "sets": args.sets,
        "train_rows": split, "test_rows": args.test_rows, "windows": len(starts), "updates": args.updates,
        "loss_scales": cfg.rssm_config().loss_scales, "wall_s": round(time.perf_counter() - began, 1),
        "final": curve[-1], "curve": curve,
    }, variant=args.name)))  # fmt: skip


if __name__ == "__main__":
    main()
