"""Imagination throughput of the RSSM presets: imagined steps per second.

1,024 start states x horizon 15 under ``torch.no_grad()`` (the fast path), for a 64x64x3 image task
with 18 discrete actions, both with a given action sequence and under a small policy MLP (feat ->
256 -> 18 logits, one sampled one-hot action per state and step). One imagined step is one state
advanced one step *including* its reward and continue predictions (the full ``Rollout``). Each
figure is the best of ``--repeats`` runs after a warm-up, because other processes share the cores.
``matmul_gflops`` is a 1024x1024 @ 1024x1536 fp32 matmul timed alongside, to show how busy the
machine was; ``matmul_mflop_per_step`` counts the matmul work one imagined step needs, and
``achieved_matmul_gflops_actions`` how fast imagination ran it, so the two can be compared. Prints one JSON object; CUDA is measured too when present.

    python benchmarks/imagine.py [--presets debug,size1m,size12m,dreamerv3-torch] [--repeats 7] [--compile]
    python benchmarks/imagine.py --presets dreamerv3-torch --bf16 --threads 2   # bf16 autocast: speed and error

Target on a 2-core CPU: ``dreamerv3-torch`` >= 30,000 imagined steps/s (NM512/dreamerv3-torch does
about 10,700/s on the same machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch.utils.flop_counter import FlopCounterMode

from agentwm.agents.dreamer.params import count_agent_params
from agentwm.core import MLP, sample_indices
from agentwm.worldmodels.base import ActionSpec
from agentwm.worldmodels.rssm import RSSM, RSSMConfig

OBS = (3, 64, 64)
SPEC = ActionSpec("discrete", 18)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_seconds(fn: Callable[[], object], device: str, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(device: str, repeats: int) -> float:
    a = torch.randn(1024, 1024, device=device)
    w = torch.randn(1536, 1024, device=device)
    seconds = best_seconds(lambda: torch.nn.functional.linear(a, w), device, repeats * 3)
    return round(2 * 1024 * 1024 * 1536 / seconds / 1e9, 1)


@torch.no_grad()
def measure(
    name: str, device: str, batch: int, horizon: int, repeats: int, compile: bool, amp: bool = False
) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = RSSMConfig.preset(name)
    model = RSSM(OBS, SPEC, cfg).to(device).eval()
    # Random but valid start states (hard one-hot codes); the cost does not depend on their values.
    state = {
        "deter": torch.tanh(torch.randn(batch, cfg.deter, device=device)),
        "stoch": torch.nn.functional.one_hot(torch.randint(cfg.classes, (batch, cfg.stoch)), cfg.classes)
        .float()
        .to(device),
    }
    actions = SPEC.one_hot(torch.randint(SPEC.dim, (horizon, batch))).to(device)
    policy_net = MLP(model.feat_dim, SPEC.dim, 256, 1).to(device).eval()

    def policy(s: dict[str, torch.Tensor]) -> torch.Tensor:
        return SPEC.one_hot(sample_indices(policy_net(model.feat(s))))

    steps = batch * horizon
    with FlopCounterMode(display=False) as counter:  # matmul FLOPs of one call (gathers not counted)
        model.imagine(state, actions)
    flops = counter.get_total_flops()
    given = best_seconds(lambda: model.imagine(state, actions), device, repeats)
    with_policy = best_seconds(lambda: model.imagine(state, policy, horizon), device, repeats)
    out = {
        "steps_per_s_actions": round(steps / given),
        "steps_per_s_policy": round(steps / with_policy),
        "ms_per_call_actions": round(1000 * given, 1),
        "ms_per_call_policy": round(1000 * with_policy, 1),
        "matmul_mflop_per_step": round(flops / steps / 1e6, 2),
        "achieved_matmul_gflops_actions": round(flops / given / 1e9, 1),
    }
    if compile:  # torch.compile of the step and heads; warm-up calls pay the compilation
        compiled = best_seconds(lambda: model.imagine(state, actions, compile=True), device, repeats)
        out["steps_per_s_actions_compiled"] = round(steps / compiled)
    if amp:  # after the fp32 figures, in the same process
        out.update(_bf16(model, state, actions, device, repeats, steps, compile))
    return out


def _bf16(model: RSSM, state: dict[str, torch.Tensor], actions: torch.Tensor, device: str, repeats: int,
          steps: int, compile: bool) -> dict[str, float]:
    """bf16-autocast imagination: its speed, and how far it lands from fp32 on the same start,
    actions and random numbers after one step (before any sampled latent can differ; later steps
    diverge wherever one sampled class differs, as two fp32 runs with other seeds would)."""
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def run(bf16: bool, seed: int | None = None, horizon: int | None = None):  # type: ignore[no-untyped-def]
        if seed is not None:
            torch.manual_seed(seed)
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            return model.imagine(state, actions[:horizon] if horizon else actions, compile=compile)

    seconds = best_seconds(lambda: run(True), device, repeats)
    # The reward head's output layer starts at zero (so its error would be zero): give it weights as
    # a trained one has, for the error figures only.
    out_layer = model.reward_head.out
    assert out_layer is not None
    saved = out_layer.weight.detach().clone()
    torch.nn.init.normal_(out_layer.weight, std=0.05)
    ref, low = run(False, 0, 1), run(True, 0, 1)
    out_layer.weight.copy_(saved)
    deter_ref, deter_low = ref.states["deter"][1].float(), low.states["deter"][1].float()
    assert ref.rewards is not None and low.rewards is not None
    reward_ref = ref.rewards.float()
    return {
        "steps_per_s_actions_bf16": round(steps / seconds),
        "bf16_deter_rel_error_step1": round(float((deter_low - deter_ref).norm() / deter_ref.norm()), 4),
        "bf16_reward_abs_error_step1": round(float((low.rewards.float() - reward_ref).abs().mean()), 4),
        "reward_std_step1": round(float(reward_ref.std()), 4),
        "bf16_same_latent_sample_step1": round(float((ref.states["stoch"][1].argmax(-1) == low.states["stoch"][1].argmax(-1)).float().mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="debug,size1m,size12m,dreamerv3-torch",
                        help="comma-separated preset names (size25m and up are slow on CPU)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compile", action="store_true", help="also measure imagine(..., compile=True)")
    parser.add_argument("--bf16", action="store_true", help="also measure bf16 autocast and its error against fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = [p for p in args.presets.split(",") if p]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out: dict[str, object] = {
        "benchmark": "imagine",
        "setting": f"{args.batch} start states x horizon {args.horizon}, 64x64x3 image task, 18 actions, "
        "no_grad fast path, reward+continue heads included, best of repeats",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "target_steps_per_s_cpu": {"dreamerv3-torch": 30000},
        "params": {p: count_agent_params(RSSMConfig.preset(p))["total"] for p in presets},
    }
    for device in devices:
        result: dict[str, object] = {"matmul_gflops_before": matmul_gflops(device, args.repeats)}
        for preset in presets:
            result[preset] = measure(preset, device, args.batch, args.horizon, args.repeats, args.compile, args.bf16)
        result["matmul_gflops_after"] = matmul_gflops(device, args.repeats)
        out[device] = result
    if torch.cuda.is_available():
        out["cuda_device"] = torch.cuda.get_device_name()
    print(json.dumps(out))
    variant = "-".join([*(["bf16"] if args.bf16 else []), *(["compile"] if args.compile else [])])
    write_result("imagine", out, variant=variant or None)


if __name__ == "__main__":
    main()
