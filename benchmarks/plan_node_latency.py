"""Latency of the LangGraph planning layer, against the bare planner call measured in the same run.

1. Latent world model (the 5-member ``EnsembleDynamics`` of ``benchmarks/plan_latency.py``, fitted
   briefly on CartPole random transitions): one decision ranks 8 text candidates x 32 samples x
   horizon 15. Timed, each including ``model.observe``:
   * ``bare``: ``rank_candidates`` on the tensors (the floor);
   * ``simulate_node``: the simulate node function called directly (text -> tensors -> outcomes);
   * ``nodes``: simulate + score + choose functions called in a row (the decision without LangGraph);
   * ``plan_node``: the single-node planner (``make_plan_node``) called directly;
   * ``plan_node_graph``: ``invoke`` of a one-node graph holding that planner (how a user embeds it);
   * ``graph``: ``invoke`` of the compiled planning graph (propose -> Send -> simulate -> score -> choose);
   * ``graph_checkpointed``: the same with an ``InMemorySaver`` checkpointer and a thread id.
   Target: p50 <= 20 ms on CPU.
2. LLM world model (``LLMWorldModel`` over a scripted chat model that answers after a fixed
   latency, keyword scorer): wall time of one decision over K candidates divided by that over one
   candidate, with ``invoke`` (sync nodes in LangGraph's thread pool, ``max_concurrency`` = K; and
   with the default pool size) and ``ainvoke`` (async nodes).
   Target: <= 1.5.

Prints one JSON object. Uses the scripted chat model of ``tests/graph_fakes.py``.

    python benchmarks/plan_node_latency.py [--repeats 200] [--latency 0.2] [--k 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from agentwm.envs.gym import action_spec_of, collect_random_transitions
from agentwm.graph import (
    PlanningContext,
    PlanningState,
    build_planning_graph,
    make_choose_node,
    make_plan_node,
    make_score_node,
    make_simulate_node,
)
from agentwm.planning import rank_candidates
from agentwm.text.client import LLMClient
from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics
from agentwm.worldmodels.llm_outcome import LLMWorldModel


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 10) -> dict[str, dict[str, float]]:
    """Time every function ``repeats`` times, one call of each per round (order rotated each
    round), so that load from other processes on a shared machine hits all of them alike."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeats + warmup):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            if i >= warmup:
                times[name].append(1000 * (time.perf_counter() - t0))
                cpu[name].append(1000 * (time.process_time() - c0))
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = {
            "p50_ms": round(statistics.median(ts), 3),
            "p95_ms": round(ts[int(0.95 * (len(ts) - 1))], 3),
            "mean_ms": round(statistics.fmean(ts), 3),
            "cpu_p50_ms": round(statistics.median(cpu[name]), 3),  # process CPU time: less load-sensitive
        }
    return out


def latent(repeats: int, candidates: int, samples: int, horizon: int) -> dict[str, Any]:
    import gymnasium as gym

    torch.manual_seed(0)
    data = collect_random_transitions("CartPole-v1", 1000, seed=0)
    spec = action_spec_of(gym.make("CartPole-v1").action_space)
    model = EnsembleDynamics(4, spec, EnsembleConfig(epochs=5))
    model.fit(data)
    model.eval()
    first = spec.one_hot(torch.arange(candidates) % spec.dim)
    names = [f"push {'left' if i % 2 == 0 else 'right'} #{i}" for i in range(candidates)]
    actions = dict(zip(names, first))
    obs = data["obs"][:1]
    obs_list = obs[0].tolist()
    settings = PlanningContext(horizon=horizon, samples=samples, gamma=0.99)
    ctx = settings.model_dump()

    def bare() -> int:
        ranking = rank_candidates(
            model, model.observe(obs), first, horizon=horizon, samples=samples, gamma=0.99, generator=0
        )
        return ranking.best

    simulate = make_simulate_node(model, actions=actions, settings=settings)
    score, choose = make_score_node(settings=settings), make_choose_node()
    inputs = {"observation": obs_list, "candidates": names}

    def nodes() -> str | None:
        state: dict[str, Any] = dict(inputs)
        state.update(simulate(state, None))
        state.update(score(state, None))
        return choose(state, None)["chosen"]

    plan = make_plan_node(model, actions=actions, settings=settings)
    one_node = StateGraph(PlanningState)
    one_node.add_node("plan", plan)
    one_node.add_edge(START, "plan")
    plan_graph = one_node.compile()

    graph = build_planning_graph(world_model=model, actions=actions, settings=settings).compile()
    saved = build_planning_graph(world_model=model, actions=actions, settings=settings).compile(
        checkpointer=InMemorySaver()
    )
    thread = {"configurable": {"thread_id": "bench"}}
    # the ensemble samples members at random, so repeated decisions between tied candidates may differ
    assert graph.invoke(inputs, context=ctx)["chosen"] in names and nodes() in names and bare() < candidates

    out: dict[str, Any] = {
        "setting": f"{candidates} candidates x {samples} samples x horizon {horizon}, 5-member ensemble, CPU",
        **interleaved(
            {
                "bare": bare,
                "simulate_node": lambda: simulate(inputs, None),
                "nodes": nodes,
                "plan_node": lambda: plan(inputs, None),
                "plan_node_graph": lambda: plan_graph.invoke(inputs),
                "graph": lambda: graph.invoke(inputs, context=ctx),
                "graph_checkpointed": lambda: saved.invoke(inputs, thread, context=ctx),
            },
            repeats,
        ),
    }
    floor = out["bare"]["p50_ms"]
    cpu_floor = out["bare"]["cpu_p50_ms"]
    for key in ("simulate_node", "nodes", "plan_node", "plan_node_graph", "graph", "graph_checkpointed"):
        out[key]["overhead_p50_ms"] = round(out[key]["p50_ms"] - floor, 3)
        out[key]["overhead_cpu_p50_ms"] = round(out[key]["cpu_p50_ms"] - cpu_floor, 3)
    out["target_p50_ms"] = 20.0
    return out


def llm_concurrency(latency: float, k: int, horizon: int, repeats: int) -> dict[str, Any]:
    from graph_fakes import DOOR_RULES, FixedLatencyChatModel, KeywordScorer

    def world() -> LLMWorldModel:
        chat = FixedLatencyChatModel(responses=["Observation: silence\nDone: no"], rules=DOOR_RULES, latency=latency)
        # no cache: every decision pays the chat model's latency again
        return LLMWorldModel(LLMClient(chat, retries=0, cache=False), scorer=KeywordScorer("walk out"), goal="leave")

    many = [f"knock {i} times" for i in range(k - 1)] + ["open the door"]
    ctx = {"horizon": horizon, "gamma": 0.9}
    out: dict[str, Any] = {
        "setting": f"LLMWorldModel, scripted chat model answering after {latency} s, horizon {horizon}"
        f" (each step: outcome call, plus a follow-up action call before later steps), K = {k} vs 1",
        "chat_latency_s": latency,
    }
    # "invoke_default_pool": sync graph without max_concurrency, i.e. LangGraph's default thread
    # pool of min(32, cores + 4) workers (6 on a 2-core machine), so K = 8 runs in two waves there.
    for mode in ("invoke", "invoke_default_pool", "ainvoke"):
        graph = build_planning_graph(world_model=world()).compile()  # one graph serves invoke and ainvoke
        config: dict[str, Any] = {} if mode == "invoke_default_pool" else {"max_concurrency": max(k, 8)}

        def run(candidates: list[str], graph: Any = graph, mode: str = mode, config: dict = config) -> Any:
            inputs = {"observation": "a closed door", "goal": "leave", "candidates": candidates}
            if mode == "ainvoke":
                return asyncio.run(graph.ainvoke(inputs, config, context=ctx))
            return graph.invoke(inputs, config, context=ctx)

        assert run(many)["chosen"] == "open the door"
        run(many[:1])  # warm-up
        ones, ks = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(many[:1])
            ones.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run(many)
            ks.append(time.perf_counter() - t0)
        t1, tk = statistics.median(ones), statistics.median(ks)
        out[mode] = {"one_candidate_s": round(t1, 3), f"k{k}_candidates_s": round(tk, 3), "ratio": round(tk / t1, 3)}
    out["target_ratio"] = 1.5
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per scripted chat-model answer")
    parser.add_argument("--k", type=int, default=8, help="candidates in the LLM concurrency check")
    parser.add_argument("--llm-horizon", type=int, default=2)
    parser.add_argument("--llm-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = {
        "benchmark": "plan_node_latency",
        "torch_threads": torch.get_num_threads(),
        "latent": latent(args.repeats, args.candidates, args.samples, args.horizon),
        "llm": llm_concurrency(args.latency, args.k, args.llm_horizon, args.llm_repeats),
    }
    print(json.dumps(result))
    write_result("plan_node_latency", result)


if __name__ == "__main__":
    main()
