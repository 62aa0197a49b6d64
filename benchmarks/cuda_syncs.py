"""Every host-device sync in one Dreamer update on a GPU, with the line that caused it.

    python benchmarks/cuda_syncs.py --preset size12m            # the device-guarded update (CUDA graphs)
    python benchmarks/cuda_syncs.py --preset size12m --host-guard

torch's sync debug mode warns at each synchronizing CUDA call; this records each warning with
the innermost agentwm frame. A capturable update must list none (``tests/test_cuda.py`` fails at the
first; this lists them all, which saves a GPU round trip per sync when fixing them). Prints one
JSON object and writes it under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py
import torch
from _results import write_result

from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.worldmodels.base import ActionSpec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="size12m")
    p.add_argument("--host-guard", action="store_true", help="the default (host-side) NaN/inf guard")
    args = p.parse_args()
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU")
    torch.manual_seed(0)
    cfg = resolve_config([args.preset], ["batch_size=16", "batch_length=64"], device="cuda")
    agent = DreamerAgent((3, 64, 64), ActionSpec("discrete", 6), cfg).to("cuda")
    if not args.host_guard:
        agent.use_device_guard()
    g = torch.Generator().manual_seed(0)
    first = torch.zeros(16, 64, dtype=torch.bool)
    first[:, 0] = True
    batch = {"obs": torch.rand(16, 64, 3, 64, 64, generator=g),
             "action": torch.nn.functional.one_hot(torch.randint(6, (16, 64), generator=g), 6).float(),
             "reward": torch.rand(16, 64, generator=g), "is_first": first,
             "is_terminal": torch.zeros(16, 64, dtype=torch.bool)}  # fmt: skip
    batch = {k: v.cuda() for k, v in batch.items()}
    agent.update(batch)  # lazy initialisations
    torch.cuda.synchronize()
    seen: Counter[str] = Counter()

    def record(message: object, *rest: object, **kw: object) -> None:
        frames = [f for f in traceback.extract_stack()[:-1] if "/agentwm/" in f.filename]
        where = f"{frames[-1].filename.rsplit('/agentwm/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
        seen[f"{where} {str(message)[:80]}"] += 1

    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record  # type: ignore[assignment]
        agent.update(batch)
        torch.cuda.set_sync_debug_mode("default")
    out = {"benchmark": "cuda_syncs", "preset": args.preset, "device": torch.cuda.get_device_name(0),
           "guard": "host" if args.host_guard else "device", "syncs": sum(seen.values()), "where": dict(seen)}  # fmt: skip
    print(json.dumps(write_result("cuda_syncs", out, variant=f"{args.preset}-{out['guard']}")))


if __name__ == "__main__":
    main()
