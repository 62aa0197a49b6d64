"""TextWorld through the planning graph: the learned text world model (and the hybrid) as a user wires them.

The same unseen test games as ``benchmarks/textworld.py`` (seeds 3500+), played by

* ``graph_learned_h{H}``: ``build_planning_graph(world_model=LearnedTextWorldModel(...))``, one
  ``invoke`` per step with the game's menu as ``admissible`` and the episode's ``history``
  (``agentwm.graph.text_env.GraphTextAgent``), for each ``--horizons`` H;
* ``planner_h{H}``: the same model through ``LearnedPlanner`` (no graph; the reference);
* ``objective_match``: the no-imagination ablation;
* ``hybrid_h{H}`` (with ``--hybrid-games N``): the graph over ``HybridWorldModel(learned, LLMWorldModel(SmolLM2))``,
  the LLM consulted for the first imagined step of at most one candidate per decision, where the
  learned model's disagreement exceeds ``--threshold``.

Per agent: win rate, mean steps, ms per decision, LLM calls per decision, and for graph agents the
share of decisions whose choice fell to candidate order (``ties_per_decision``). Prints one JSON
object and writes ``benchmarks/results/textworld_graph[-<variant>].json``.

    python benchmarks/textworld_graph.py --games-dir /work/twdata/games --games 20 --horizons 1 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from agentwm.agents.textworld.evaluate import evaluate
from agentwm.agents.textworld.factory import make_agent, shared_embedder
from agentwm.agents.textworld.games import list_games
from agentwm.agents.textworld.train import load_model
from agentwm.graph import build_planning_graph
from agentwm.graph.text_env import GraphTextAgent
from agentwm.worldmodels.text_learned import LearnedTextWorldModel
from benchmarks._results import write_result

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games-dir", required=True, help="folder of test games (benchmarks/textworld.py makes them)")
    p.add_argument("--model", default=str(ROOT / "models" / "textworld-minilm-gru-dest" / "world_model"), help="world-model checkpoint")
    p.add_argument("--settings", nargs="+", default=["quest5", "quest8"], help="settings to play")
    p.add_argument("--games", type=int, default=20, help="test games per setting")
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 3], help="imagined steps per candidate")
    p.add_argument("--agents", nargs="+", default=["graph", "planner", "objective_match"], help="which agent families to play")
    p.add_argument("--hybrid-games", type=int, default=0, help="games per setting for the hybrid (SmolLM2; slow on CPU)")
    p.add_argument("--threshold", type=float, default=0.02, help="hybrid: disagreement above which the LLM is consulted")
    p.add_argument("--llm-weight", type=float, default=0.5, help="hybrid: weight of the LLM's reward where consulted")
    p.add_argument("--max-steps", type=int, default=50, help="steps per episode")
    p.add_argument("--variant", default=None, help="results file suffix (a quick look must not overwrite a full run)")
    return p.parse_args(argv)


class _Counted(GraphTextAgent):
    """A graph agent that counts the decisions whose choice fell to candidate order."""

    def ties(self) -> int:
        return sum(any(n.startswith("choose: best score") or "ignored the action" in n for n in f) for f in self.fallbacks)


def _graph_agent(world_model: Any, horizon: int, gamma: float) -> _Counted:
    graph = build_planning_graph(world_model=world_model).compile()
    return _Counted(graph, context={"horizon": horizon, "gamma": gamma})


def _hybrid(learned: LearnedTextWorldModel, args: argparse.Namespace) -> Any:
    from agentwm.text.client import LLMClient
    from agentwm.text.local_chat import smollm2_chat_model
    from agentwm.text.scorers import EmbeddingRelevance
    from agentwm.worldmodels.composite import HybridWorldModel
    from agentwm.worldmodels.llm_outcome import LLMWorldModel

    chat = smollm2_chat_model(max_new_tokens=40)
    llm = LLMWorldModel(LLMClient(chat, retries=0), scorer=EmbeddingRelevance(shared_embedder()), propose_followups=False)
    return HybridWorldModel(learned, llm, threshold=args.threshold, max_consults=1, llm_steps=1, llm_weight=args.llm_weight)


def run_setting(args: argparse.Namespace, setting: str, learned: LearnedTextWorldModel) -> dict[str, Any]:
    games = list_games(args.games_dir, setting, "test")[: args.games]
    if not games:
        sys.exit(f"error: no {setting} test games in {args.games_dir}")
    rows: dict[str, Any] = {}
    ties: dict[str, float] = {}
    for h in args.horizons:  # the planner plays first: the first agent to meet a text pays its MiniLM encoding
        if "planner" in args.agents:
            planner = make_agent("learned", model=args.model, horizon=h, followups="none" if h == 1 else "menu+objective")
            rows[f"planner_h{h}"] = evaluate(games, planner, max_steps=args.max_steps, desc=f"{setting} planner h{h}")
        if "graph" in args.agents:
            agent = _graph_agent(learned, h, learned.gamma)
            rows[f"graph_learned_h{h}"] = evaluate(games, agent, max_steps=args.max_steps, desc=f"{setting} graph h{h}")
            ties[f"graph_learned_h{h}"] = agent.ties() / max(len(agent.fallbacks), 1)
    if "objective_match" in args.agents:
        rows["objective_match"] = evaluate(games, make_agent("objective_match"), max_steps=args.max_steps, desc=f"{setting} objective_match")
    if args.hybrid_games > 0:
        hybrid = _hybrid(learned, args)
        h = max(args.horizons)
        agent = _graph_agent(hybrid, h, learned.gamma)
        rows[f"hybrid_h{h}"] = evaluate(games[: args.hybrid_games], agent, max_steps=args.max_steps, desc=f"{setting} hybrid")
        ties[f"hybrid_h{h}"] = agent.ties() / max(len(agent.fallbacks), 1)
        agent = _graph_agent(learned, h, learned.gamma)
        rows[f"graph_learned_h{h}_same_games"] = evaluate(games[: args.hybrid_games], agent, max_steps=args.max_steps, desc=f"{setting} graph same")
    return {
        "games": {k: v["games"] for k, v in rows.items()},
        "win_rate": {k: round(v["win_rate"], 4) for k, v in rows.items()},
        "steps_mean": {k: round(v["steps_mean"], 2) for k, v in rows.items()},
        "ms_per_decision": {k: round(v["ms_per_decision"], 1) for k, v in rows.items()},
        "llm_calls_per_decision": {k: round(v["llm_calls_per_decision"], 3) for k, v in rows.items()},
        "ties_per_decision": {k: round(v, 4) for k, v in ties.items()},
    }


def decision_ms(learned: LearnedTextWorldModel, game: Path, horizon: int = 3, reps: int = 20) -> dict[str, float]:
    """Median ms of one graph decision over 8 admissible commands × ``horizon`` (texts embedded once
    before: the graph's and model's share), and of the model's batched imagination alone."""
    import time

    from agentwm.envs.textworld import TextWorldEnv
    from agentwm.graph.text_env import step_input
    from agentwm.planning.ranking import rank

    env = TextWorldEnv(game)
    step = env.reset()
    env.close()
    menu = list(step.admissible)[:8]
    graph = build_planning_graph(world_model=learned).compile()
    inputs = {**step_input(step), "admissible": menu}
    context = {"horizon": horizon, "gamma": learned.gamma}
    graph.invoke(inputs, context=context)
    times, model_times = [], []
    for _ in range(reps):
        start = time.perf_counter()
        graph.invoke(inputs, context=context)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        state = learned.observe({"observation": step.observation, "admissible": menu}, goal=step.objective)
        rank(learned, state, menu, horizon=horizon, gamma=learned.gamma)
        model_times.append(time.perf_counter() - start)
    return {
        "candidates": len(menu), "horizon": horizon,
        "graph_ms": round(1000 * sorted(times)[reps // 2], 1), "model_ms": round(1000 * sorted(model_times)[reps // 2], 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    learned = LearnedTextWorldModel(load_model(args.model), shared_embedder())
    result: dict[str, Any] = {"max_steps": args.max_steps, "horizons": args.horizons}
    for setting in args.settings:
        result[setting] = run_setting(args, setting, learned)
    result["speed_8x3"] = decision_ms(learned, list_games(args.games_dir, args.settings[0], "test")[0])
    write_result("textworld_graph", result, variant=args.variant)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
