"""Seconds per Dreamer update (world model + imagined actor-critic) at batch 16 x 64, per preset.

    python benchmarks/dreamer_update.py                       # all presets, 64x64 images, CPU
    python benchmarks/dreamer_update.py --presets dreamerv3-torch --iters 3 --threads 2
    python benchmarks/dreamer_update.py --device cuda --presets size12m --iters 10   # GPU: named in the JSON
    python benchmarks/dreamer_update.py --device cuda --presets size12m --compile
    python benchmarks/dreamer_update.py --device cuda --presets size12m --cuda-graph --kernels   # one replayed graph
    python benchmarks/dreamer_update.py --device cuda --presets size12m --compile --phases   # kernels per phase

Prints one JSON object: per preset the parameter count, seconds per update (median of ``--iters``
timed updates after ``--warmup`` untimed ones; every timing, min/max and the spread ``(max - min) /
median`` beside it), dynamo's compiles and recompiles during the warm-up and during the timed updates
(``--compile``: each call site compiles once in the warm-up, and a recompile is listed with the guard
that failed), the world-model share, and the ratio against
NM512/dreamerv3-torch's 7.37 s/update measured on this project's 2-core CPU (the issue's figure).
Timings on a shared machine are pessimistic; the JSON records the load average at the start and
the process CPU seconds per update (``cpu_s_per_update``; divided by the thread count it estimates
the wall time on idle cores, up to imperfect parallel scaling).

``--roofline`` also counts the matmul and convolution FLOPs of one update (torch's
``FlopCounterMode``) and measures this machine's best matmul throughput in the same run (fp32, or
bf16 with ``--amp bf16``), so ``roofline_s`` = FLOPs / throughput is a lower bound on seconds per
update for that preset here: no implementation of the same model and batch in that precision can
beat it.

``--amp bf16 --compile`` is the fast CPU setting on CPUs with native bf16 (AVX512-BF16 or AMX):
bf16 autocast, as DreamerV3 computes on accelerators, with the batched modules compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
import torch
from _results import write_result
from _update_phases import phase_table

from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.agents.dreamer.graphed import GraphedUpdate
from agentwm.core.compiled import CompileWatch
from agentwm.worldmodels.base import ActionSpec

REFERENCE_S = 7.37  # dreamerv3-torch, batch 16 x 64, this project's 2-core CPU (issue 3)


def _batch(obs_shape: tuple[int, ...], actions: int, B: int, T: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if len(obs_shape) == 3:  # images as the replay hands them out: channels-last frames
        c, h, w = obs_shape
        obs = torch.rand(B, T, h, w, c, generator=g).permute(0, 1, 4, 2, 3)
    else:
        obs = torch.rand(B, T, *obs_shape, generator=g)
    act = torch.nn.functional.one_hot(torch.randint(actions, (B, T), generator=g), actions).float()
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    batch = {"obs": obs, "action": act, "reward": torch.rand(B, T, generator=g),
             "is_first": first, "is_terminal": torch.rand(B, T, generator=g) < 0.01}  # fmt: skip
    return {k: v.to(device) for k, v in batch.items()}


def _cuda_kernels(fn: Callable[[], object]) -> int:
    """CUDA kernels launched while ``fn`` runs (torch's profiler), what a CUDA graph replays."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def _gflop_per_update(agent: DreamerAgent, batch: dict[str, torch.Tensor]) -> float:
    """Matmul and convolution GFLOPs of one full update (elementwise ops are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        agent.update(batch)
    return counter.get_total_flops() / 1e9


def _matmul_gflops(
    device: torch.device, dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5
) -> float:
    """Best ``dtype`` matmul throughput of ``device`` (GFLOP/s), a practical peak for dense layers."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(preset: str, args: argparse.Namespace) -> dict[str, float | int | str]:
    device = torch.device(args.device)
    # Each preset builds a new agent on the same compiled functions; without a reset the later
    # presets pile up recompilations and can hit dynamo's limit, silently running eager.
    torch._dynamo.reset()
    sets = [f"batch_size={args.batch}", f"batch_length={args.length}", f"compile={str(args.compile).lower()}",
            f"amp={args.amp}", *args.set]
    cfg = resolve_config([preset], sets, device=args.device)
    obs_shape = (3, 64, 64) if args.obs == "image" else (args.obs_dim,)
    agent = DreamerAgent(obs_shape, ActionSpec("discrete", args.actions), cfg).to(device)
    batch = _batch(obs_shape, args.actions, args.batch, args.length, device)
    extra: dict[str, Any] = {}
    if args.kernels and device.type == "cuda":
        agent.update(batch)  # lazy initialisations first
        extra["kernels_per_update"] = _cuda_kernels(lambda: agent.update(batch))
    if args.phases:  # after a first update, so lazy initialisation and compilation are not counted
        agent.update(batch)
        extra["phases"] = phase_table(agent, batch)
    update = agent.update
    if args.cuda_graph:  # the eager warm-up updates, then the capture, are the untimed calls
        graphed = GraphedUpdate(agent, warmup=args.warmup)
        update, args.warmup = graphed, args.warmup + 1
    with CompileWatch() as warm:
        for _ in range(args.warmup):
            update(batch)
        _sync(device)
    times, wm_times, cpu_times = [], [], []
    timed = CompileWatch()
    for _ in range(args.iters):
        t0 = time.perf_counter()
        if not args.cuda_graph:  # (the graphed update owns its gradients' memory: not timed apart)
            with agent._autocast():
                losses, _ = agent.wm.loss(batch)
                loss = agent.wm.total_loss(losses)
            loss.backward()  # type: ignore[no-untyped-call]
            agent.wm_opt.zero_grad(set_to_none=True)
        _sync(device)
        t1, c1 = time.perf_counter(), time.process_time()
        with timed:
            update(batch)
            _sync(device)
        cpu_times.append(time.process_time() - c1)
        wm_times.append(t1 - t0)
        times.append(time.perf_counter() - t1)
    sec = statistics.median(times)
    if args.cuda_graph:
        agent.guard.settle()
        extra["skipped_updates"] = agent.guard.skipped  # NaN/inf updates, decided on the device
    if args.roofline:
        bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
        gflop = _gflop_per_update(agent, batch)
        peak = _matmul_gflops(device, torch.bfloat16 if bf16 else torch.float32)
        extra.update(gflop_per_update=round(gflop, 1), matmul_gflop_per_s=round(peak, 1),
                     roofline_s=round(gflop / peak, 3))
    params = sum(p.numel() for n, p in agent.named_parameters() if not n.startswith("slow_critic"))
    return {"preset": preset, "params": params, "s_per_update": round(sec, 4),
            "s_per_update_min_max": [round(min(times), 4), round(max(times), 4)], "timed_updates": len(times),
            "s_per_update_all": [round(t, 4) for t in times], "spread": round((max(times) - min(times)) / sec, 3),
            "compiles_warmup": warm.compiles, "recompiles_warmup": len(warm.recompiles),
            "compiles_timed": timed.compiles, "recompiles_timed": len(timed.recompiles),
            "recompile_reasons": (warm.recompiles + timed.recompiles)[:10],
            "wm_fwd_bwd_s": None if args.cuda_graph else round(statistics.median(wm_times), 4),
            "cuda_graph": args.cuda_graph,
            "cpu_s_per_update": round(statistics.median(cpu_times), 4),
            "speedup_vs_dreamerv3_torch_cpu": round(REFERENCE_S / sec, 2), **extra}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["debug", "tiny", "size1m", "size12m", "dreamerv3-torch"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--obs", choices=["image", "vector"], default="image")
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--actions", type=int, default=6)
    p.add_argument("--iters", type=int, default=5, help="timed updates (default: 5; the median is reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the imagination step and heads")
    p.add_argument("--amp", choices=["auto", "off", "bf16"], default="auto", help="bf16 autocast (auto: CUDA only)")
    p.add_argument("--roofline", action="store_true", help="count FLOPs and print the lower-bound seconds")
    p.add_argument("--cuda-graph", action="store_true", help="replay the update as one CUDA graph (GraphedUpdate)")
    p.add_argument("--kernels", action="store_true", help="CUDA: count the kernels one eager update launches")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a Dreamer setting for every preset, e.g. compile_observe_chunk=8 (repeatable)")
    p.add_argument("--phases", action="store_true",
                   help="kernels (CUDA) or ATen ops (CPU) and their time per phase of one eager update")
    args = p.parse_args()
    if args.cuda_graph and torch.device(args.device).type != "cuda":
        p.error("--cuda-graph needs --device cuda")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {
        "benchmark": "dreamer_update", "batch": [args.batch, args.length], "obs": args.obs,
        "device": args.device if torch.device(args.device).type != "cuda" else torch.cuda.get_device_name(args.device),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "load_avg_1m": os.getloadavg()[0], "reference_s": REFERENCE_S, "settings": args.set,
    }  # fmt: skip
    results: list[dict[str, float | int | str]] = []
    for preset in args.presets:
        results.append(bench(preset, args))
        print(json.dumps(results[-1]), flush=True)
    variant = "-".join([*args.presets, args.amp, *(["compile"] if args.compile else []),
                        *(["graph"] if args.cuda_graph else []), *(x.replace("=", "") for x in args.set)])
    print(json.dumps(write_result("dreamer_update", {**out, "results": results}, variant=variant)))


if __name__ == "__main__":
    main()
