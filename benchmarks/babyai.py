"""BabyAI test bed: does lookahead with a world model beat acting on the proposer's first guess?

Agents, all on the same proposer (``HeuristicProposer``) and the same episode seeds per level:

* ``reactive``: the proposer's preferred action, no lookahead;
* ``planner-latent``: ranks the proposer's candidates by imagined return under the learned latent
  world model (``models/babyai-ensemble``, an ensemble trained on BabyAI transitions);
* ``planner-llm``: ranks them with ``LLMWorldModel`` (the LLM predicts the outcome of each
  candidate from the text observation; reward = MiniLM relevance of the imagined text to the mission);
* ``planner-hybrid``: ``HybridWorldModel``: the latent model's score, with the LLM consulted where the
  ensemble's disagreement is high.

The LLM rows run on ``--llm-episodes`` episodes per level (the local SmolLM2-135M answers at ~15
tokens/s on CPU, far too slow for hundreds of episodes); the output states every row's episode count.
``--llm scripted`` uses a scripted chat model (deterministic, for CI); ``--llm smollm2`` the real one.

Prints one JSON object and a markdown table; saves the JSON to ``benchmarks/out/babyai.json``.

    python benchmarks/babyai.py                       # 100 episodes x 3 levels; LLM rows on 5 (scripted)
    python benchmarks/babyai.py --llm smollm2 --llm-episodes 2
    python benchmarks/babyai.py --quick               # CI smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from agentwm.envs.babyai import LEVELS
from agentwm.testbeds.babyai.agents import (
    BabyAIAgent,
    HeuristicProposer,
    LatentPlanner,
    ReactiveAgent,
    evaluate,
    summarize,
)
from agentwm.testbeds.babyai.llm import make_text_agents
from agentwm.testbeds.babyai.model import (
    DEFAULT_MODEL,
    BabyAIModelConfig,
    load_babyai_model,
    train_babyai_model,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", nargs="+", default=list(LEVELS), help="BabyAI level ids")
    p.add_argument("--episodes", type=int, default=100, help="episodes per level for reactive and latent planner")
    p.add_argument("--llm-episodes", type=int, default=5, help="episodes per level for the LLM and hybrid rows")
    p.add_argument("--llm", default="scripted", choices=["scripted", "smollm2", "none"],
                   help="chat model behind the LLM world model: scripted (deterministic, CI), smollm2, none")
    p.add_argument("--llm-max-steps", type=int, default=None,
                   help="cap on steps of the LLM and hybrid rows' episodes (default: the level's own limit)")
    p.add_argument("--seed", type=int, default=0, help="first episode seed; episodes use seed, seed+1, ...")
    p.add_argument("--model", default=None, help="latent model folder (default: models/babyai-ensemble)")
    p.add_argument("--train", action="store_true", help="train the latent model in this run instead of loading it")
    p.add_argument("--horizon", type=int, default=3, help="imagined steps per candidate sequence (latent planner)")
    p.add_argument("--samples", type=int, default=5, help="imaginations per candidate sequence (latent planner)")
    p.add_argument("--gamma", type=float, default=0.9, help="discount of imagined rewards")
    p.add_argument("--quick", action="store_true", help="CI smoke run: 2 episodes per level, 1 for LLM rows")
    p.add_argument("--out", default=None, help="also write the bare JSON object here (benchmarks/results/babyai.json always)")
    args = p.parse_args(argv)
    if args.quick:
        args.episodes, args.llm_episodes = min(args.episodes, 2), min(args.llm_episodes, 1)
    if args.episodes < 1 or args.llm_episodes < 0:
        p.error("--episodes must be >= 1 and --llm-episodes >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    t_start = time.perf_counter()
    if args.train:
        model, _ = train_babyai_model(BabyAIModelConfig(transitions=3000 if args.quick else 40_000, epochs=5 if args.quick else 60))
        model_source = "trained in this run"
    else:
        folder = Path(args.model) if args.model else DEFAULT_MODEL
        model = load_babyai_model(folder)
        model_source = str(folder)
    proposer = HeuristicProposer()
    agents: list[tuple[BabyAIAgent, int, int | None]] = [
        (ReactiveAgent(proposer), args.episodes, None),
        (LatentPlanner(model, proposer, horizon=args.horizon, samples=args.samples, gamma=args.gamma),
         args.episodes, None),
    ]
    if args.llm != "none" and args.llm_episodes > 0:
        for agent in make_text_agents(args.llm, model, proposer, gamma=args.gamma):
            agents.append((agent, args.llm_episodes, args.llm_max_steps))

    results: dict[str, dict[str, Any]] = {}
    for level in args.levels:
        results[level] = {}
        for agent, episodes, max_steps in agents:
            seeds = range(args.seed, args.seed + episodes)
            t0 = time.perf_counter()
            summary = summarize(evaluate(level, agent, seeds, max_steps))
            summary["wall_s"] = round(time.perf_counter() - t0, 2)
            results[level][agent.name] = summary
            print(f"{level:26s} {agent.name:16s} {summary['success_rate']:.2f} ({episodes} episodes)",
                  file=sys.stderr, flush=True)

    delta = {
        level: round(100 * (r["planner-latent"]["success_rate"] - r["reactive"]["success_rate"]), 1)
        for level, r in results.items()
    }
    out: dict[str, Any] = {
        "benchmark": "babyai",
        "levels": args.levels,
        "episodes": {a.name: n for a, n, _ in agents},
        "llm_max_steps": args.llm_max_steps,
        "seeds": f"{args.seed}..{args.seed + args.episodes - 1}",
        "llm": args.llm,
        "latent_model": model_source,
        "planner": {"horizon": args.horizon, "samples": args.samples, "gamma": args.gamma, "followup": "exhaustive",
                    "margin": 0.05, "stuck_after": 3, "text_planners_horizon": 1},
        "results": results,
        "latent_minus_reactive_success_points": delta,
        "mean_latent_minus_reactive_success_points": round(sum(delta.values()) / len(delta), 1),
        "target_points": 20.0,
        "quick": args.quick,
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared; timings are pessimistic)",
        "total_wall_s": round(time.perf_counter() - t_start, 1),
    }
    if args.out:  # the bare object, where the caller asked for it
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
    write_result("babyai", out, variant="quick" if args.quick else None)
    print(json.dumps(out))
    print(markdown_table(out))
    return out


def markdown_table(out: dict[str, Any]) -> str:
    """One row per level and agent: success, steps, LLM calls and milliseconds per decision."""
    lines = [
        "| level | agent | episodes | success | mean steps | LLM calls / decision | ms / decision (p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for level, rows in out["results"].items():
        for name, r in rows.items():
            lines.append(
                f"| {level.removeprefix('BabyAI-').removesuffix('-v0')} | {name} | {int(r['episodes'])} |"
                f" {100 * r['success_rate']:.0f}% | {r['mean_steps']:.1f} | {r['llm_calls_per_decision']:.2f} |"
                f" {r['ms_per_decision']:.1f} ({r['ms_per_decision_p50']:.1f}) |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
