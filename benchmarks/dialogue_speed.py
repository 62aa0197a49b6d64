"""Throughput of dialogue reply scoring; prints one JSON object.

Scores K candidate replies for one context with the shipped dialogue world model, horizon 3
(each candidate: embed, then 3 imagined exchanges with nearest-utterance rendering), and reports
candidates scored per second:

* ``warm``: the candidates' embeddings are in the embedder's per-text cache (re-scoring, or a
  candidate pool that repeats) - the TARGET is >= 250 candidates/s here on 2 CPU cores;
* ``cold``: every candidate is a new text, so MiniLM encodes it inside the timed call.

    python benchmarks/dialogue_speed.py [--threads 2] [--candidates 250] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONTEXT = [
    "hey! how's your week going?",
    "pretty good, just got back from a trip to the mountains",
    "oh nice, where did you go?",
    "we went hiking near lake tahoe, it was beautiful but freezing at night",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=250, help="candidates per scoring call")
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from agentwm.planning.replies import DialogueScorer
    from agentwm.worldmodels.dialogue import DialogueWorldModel

    torch.set_num_threads(args.threads)
    model = DialogueWorldModel.load(args.model)
    scorer = DialogueScorer(model)
    pool = model.bank_texts
    K = args.candidates
    if len(pool) < K * (args.repeats + 2):
        raise SystemExit(f"the utterance bank has {len(pool)} texts; need {K * (args.repeats + 2)} distinct candidates")
    scorer.score(CONTEXT, pool[:K], args.horizon)  # warm-up: loads MiniLM, caches the context

    def timed(cands: list[str]) -> float:
        t0 = time.perf_counter()
        scorer.score(CONTEXT, cands, args.horizon)
        return time.perf_counter() - t0

    warm = [timed(pool[:K]) for _ in range(args.repeats)]
    cold = [timed(pool[K * (i + 1) : K * (i + 2)]) for i in range(args.repeats)]
    single = [timed(pool[:1]) for _ in range(args.repeats)]
    embed_only = []
    for i in range(args.repeats):
        texts = [t + " ." for t in pool[K * (i + 1) : K * (i + 2)]]  # new strings: not cached
        t0 = time.perf_counter()
        model.embed(texts)
        embed_only.append(time.perf_counter() - t0)
    med = statistics.median
    out = {
        "threads": args.threads, "candidates_per_call": K, "horizon": args.horizon,
        "warm_candidates_per_s": round(K / med(warm), 1),
        "cold_candidates_per_s": round(K / med(cold), 1),
        "embed_only_texts_per_s": round(K / med(embed_only), 1),
        "single_candidate_latency_ms": round(1000 * med(single), 2),
        "target_candidates_per_s": 250,
        "target_met_warm": bool(K / med(warm) >= 250),
        "note": "timings on a shared machine are pessimistic; run on idle cores for the real figure",
    }
    print(json.dumps(out))
    write_result("dialogue_speed", out)


if __name__ == "__main__":
    main()
