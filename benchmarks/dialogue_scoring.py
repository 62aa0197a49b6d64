"""Speed of reply scoring by an outcome model through the user's path; prints one JSON object.

Measures what a user calls, nothing beside it:

* ``score_replies``: candidates per second through ``score_replies(context, candidates, model=m)``
  with a trained outcome model (default ``models/dialogue-dond``), horizon 3, ``--samples`` futures
  per candidate, ``--candidates`` candidates a call (real DoND utterances). ``cached``: the
  candidates' embeddings are in the on-disk/in-memory store (re-scoring, a repeating pool);
  ``uncached``: every candidate is new text, MiniLM encodes it inside the timed call (its one-off
  load is timed apart, as ``encoder_load_s``). Each context is new in every call, so the context
  carry is never reused; the scorer object is (one per model).
* ``cli``: wall and CPU seconds of a cold ``agentwm score dialogue --model MODEL --context-file
  FILE`` process (import, load, score, print), median of ``--repeats``: ``cached_texts`` (the texts
  were scored before: the shared embedding cache has them) and ``new_texts`` (an empty cache: MiniLM
  loads). The TARGET is <= 5 s for the cold call. The machine's load average is recorded with it:
  on a shared CPU, wall time runs well above CPU time.

    python benchmarks/dialogue_scoring.py [--model models/dialogue-dond] [--candidates 64] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import ROOT, write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONTEXT = ["i would like the book and the hats", "i need the hats , you can have the book and the ball"]
PRIVATE = {"counts": [1, 2, 1], "values": [4, 2, 2]}


def _utterances(model: Any, n: int) -> list[str]:
    """``n`` distinct agent-side utterances of the model's bank (real DoND turns)."""
    texts = [t for t, a in zip(model.bank_texts, model.bank_agent.tolist()) if a]
    if len(texts) < n:
        raise SystemExit(f"the model's bank holds {len(texts)} agent turns; need {n}")
    return texts[:n]


def library(model_dir: str, k: int, samples: int, horizon: int, calls: int) -> dict[str, Any]:
    """Candidates/s through score_replies with cached and uncached candidate embeddings."""
    import torch

    from agentwm.planning.replies import score_replies
    from agentwm.worldmodels.dialogue_outcome_io import load_outcome_model

    with tempfile.TemporaryDirectory() as cache:  # a fresh store: the "uncached" texts really are new
        model = load_outcome_model(model_dir, cache_dir=cache)
        pool = _utterances(model, k * calls)
        t0 = time.perf_counter()
        model.embed_texts(["warm up the encoder"])  # MiniLM's one-off load, timed apart
        encoder_load = time.perf_counter() - t0

        passes = iter(range(100))

        def timed(batches: list[list[str]]) -> float:
            run = next(passes)
            contexts = [[f"{CONTEXT[0]} ({run}.{i})", CONTEXT[1]] for i in range(len(batches))]
            model.embed_texts([t for c in contexts for t in c])  # new contexts every call (no carry reuse),
            start = time.perf_counter()  # embedded before the clock: the candidates are what is measured
            for ctx, cands in zip(contexts, batches):
                score_replies(ctx, cands, horizon, model=model, samples=samples, private_context=PRIVATE)
            return len(batches) * k / (time.perf_counter() - start)

        batches = [pool[i * k : (i + 1) * k] for i in range(calls)]
        uncached = timed(batches)
        cached = statistics.median(timed(batches) for _ in range(3))
    return {"candidates_per_call": k, "samples": samples, "horizon": horizon, "calls": calls,
            "uncached_candidates_per_s": round(uncached, 1), "cached_candidates_per_s": round(cached, 1),
            "encoder_load_s": round(encoder_load, 2), "torch_threads": torch.get_num_threads()}  # fmt: skip


def _cli_once(model_dir: str, context_file: str, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "agentwm", "score", "dialogue", "--model", model_dir, "--context-file",
                    context_file], env=env, check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli(model_dir: str, repeats: int) -> dict[str, Any]:
    """Cold ``agentwm score dialogue`` processes: texts in the shared cache, and an empty cache."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp) / "c.json"
        ctx.write_text(json.dumps({"context": CONTEXT, "private_context": PRIVATE,
                                   "candidates": ["ok , deal", "i need the hats", "you can have the ball"]}))
        _cli_once(model_dir, str(ctx), env)  # puts the texts into the shared cache (and warms the disk)
        cached = [_cli_once(model_dir, str(ctx), env) for _ in range(repeats)]
        new = [_cli_once(model_dir, str(ctx), {**env, "AGENTWM_CACHE": str(Path(tmp) / f"c{i}")})
               for i in range(repeats)]  # fmt: skip

    def med(runs: list[tuple[float, float]]) -> dict[str, float]:
        return {"wall_s": round(statistics.median(w for w, _ in runs), 2),
                "cpu_s": round(statistics.median(c for _, c in runs), 2)}

    out = {"command": f"agentwm score dialogue --model {model_dir} --context-file c.json", "repeats": repeats,
           "cached_texts": med(cached), "new_texts": med(new), "target_wall_s": 5.0}
    out["target_met_cached_texts"] = out["cached_texts"]["wall_s"] <= 5.0  # type: ignore[index]
    out["target_met_new_texts"] = out["new_texts"]["wall_s"] <= 5.0  # type: ignore[index]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/dialogue-dond", help="outcome model folder")
    p.add_argument("--candidates", type=int, default=64, help="candidates per score_replies call")
    p.add_argument("--samples", type=int, default=4, help="sampled futures per candidate")
    p.add_argument("--horizon", type=int, default=3, help="imagined turns per candidate, the candidate included")
    p.add_argument("--calls", type=int, default=4, help="score_replies calls per measurement")
    p.add_argument("--repeats", type=int, default=3, help="cold CLI processes per setting (median)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    result = {"score_replies": library(args.model, args.candidates, args.samples, args.horizon, args.calls),
              "cli": cli(args.model, args.repeats), "target_candidates_per_s": 250}
    result["target_met_cached"] = result["score_replies"]["cached_candidates_per_s"] >= 250  # type: ignore[index]
    write_result("dialogue_scoring", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
