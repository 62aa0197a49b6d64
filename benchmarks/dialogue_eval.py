"""Held-out evaluation of the dialogue world model; prints one JSON object.

On the test conversations of the fixed split (never seen in training or model selection):

1. response selection: Recall@1 of the true next turn among 10 candidates, with 9 random turns of
   other conversations and with 9 turns of the same conversation (hard negatives);
2. Spearman correlation of the predicted mean rating with the participants' real ratings;
3. cosine of the predicted next-turn embedding with the real one, against the last turn's;
4. accuracy of the continue head.

Baselines for (1): MiniLM cosine between the candidate and the mean of the context (the issue's
"context vs candidate" baseline), and the stronger cosine with the last context turn alone.
TARGET: Recall@1 on random negatives >= baseline + 10 points; ``target_met`` is judged against the
stronger (last-turn) baseline, ``r1_random_gain_vs_context_cos_points`` against the context one.

    python benchmarks/dialogue_eval.py [--model models/dialogue-minilm] [--conversations N]

Test-turn embeddings come from the disk cache (~/.cache/agentwm) or are computed once (~6k texts).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--conversations", type=int, default=None, help="evaluate on a random subset of N")
    parser.add_argument("--per-conversation", type=int, default=4, help="positions scored per conversation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from agentwm.agents.dialogue.train import evaluate, load_data
    from agentwm.worldmodels.dialogue import DialogueWorldModel

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = DialogueWorldModel.load(args.model)
    data = load_data(splits=("test",), progress=False)
    test = data.split("test")
    if args.conversations is not None:
        test = sorted(random.Random(args.seed).sample(test, min(args.conversations, len(test))))
    figures = evaluate(model, data, test, per_conversation=args.per_conversation, seed=args.seed)
    baseline = max(figures["r1_random_cos_last"], figures["r1_random_cos_ctx"])
    out = {
        "test_conversations": len(test),
        **{k: round(v, 4) for k, v in figures.items()},
        "r1_random_baseline": round(baseline, 4),
        "r1_random_gain_points": round(100 * (figures["r1_random"] - baseline), 1),
        "r1_random_gain_vs_context_cos_points": round(100 * (figures["r1_random"] - figures["r1_random_cos_ctx"]), 1),
        "target_gain_points": 10.0,
        "target_met": bool(figures["r1_random"] - baseline >= 0.10),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(out))
    write_result("dialogue_eval", out, variant="subset" if args.conversations else None)


if __name__ == "__main__":
    main()
