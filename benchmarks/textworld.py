"""TextWorld: does imagination with a learned text world model win unseen games, beside no-imagination ablations?

For each setting (``quest5``: ``tw-make custom --world-size 5 --nb-objects 10 --quest-length 5``;
``quest8``: ``--world-size 6 --nb-objects 12 --quest-length 8``) the agents play the first
``--games`` test games (seeds 3500+, never used for training; ``--split validation``: seeds 3000+,
for choosing methods) for at most 50 steps:

* ``random``: uniform among the admissible commands;
* ``objective_match`` (no imagination): the command most similar (MiniLM) to the next unfinished
  sentence of the objective;
* ``direct`` (no imagination): a model with the world model's encoder, trained on the same data and
  labels, scoring each command's value at once;
* ``learned_planner``: ``make_agent("learned")`` with its defaults (what ``agentwm textworld play``
  runs): every admissible command's next state imagined under the learned world model and ranked
  by ``Rollout.returns`` (reward + discounted value of the imagined state) through
  ``agentwm.planning.ranking.rank_candidates`` (horizon 1: the best horizon on the validation games);
* ``learned_planner_h3``: the same imagined ``--horizon`` steps deep, follow-ups chosen greedily by
  the model among the current menu, scored by the best cut of each rollout (``--depth best``) or the
  whole rollout (``--depth full``);
* ``learned_planner_revisit`` / ``learned_planner_prior`` (only when named in ``--agents``): the
  planner with the imagined-revisit term (``revisit_discount=0.5``, ``revisit_threshold=0.85``) or
  with the ``direct`` model's Q as a prior (geometric mean), options validation did not adopt;
* ``learned_memory`` (only when named in ``--agents``): the learned world model completed by an
  episodic transition memory (``make_agent("learned_memory")``: remembered outcomes exactly, plans
  over the remembered map; ``agentwm.agents.textworld.memory_planner``), ``learned_memory_prior``
  the same with the ``direct`` model's Q as a prior (geometric mean); ``memory_explorer``: its
  control without a learned model (objective matching plus walks over the same memory);
* ``learned_memory_prior_hint`` / ``direct_hint`` (only when named): the same, each command's score
  times ``exp(w · similarity)`` to the objective's next unfinished sentence (``--hint-weight``;
  ``agentwm.agents.textworld.objective_hint``): the memory planner with it and its no-imagination control;
  ``learned_memory_prior_hint_graph``: that planner as a LangGraph node (``agentwm.graph.text_agent``);
* ``unwinnable``: games TextWorld's own walkthrough cannot win within ``--max-steps`` (parser
  ambiguities such as ``box`` / ``Henderson's box``), and ``win_rate_winnable`` over the rest;
* ``reactive``: SmolLM2's first guess from a numbered menu, on ``--llm-games`` games (slow on CPU);
* ``mcts``: pUCT tree search over the learned world model (``--mcts-simulations``), the root's
  admissible commands, deeper nodes their own action sets (menu + objective sentences less the path);
* ``llm_planner`` / ``hybrid`` (on ``--llm-games`` games, when ``--agents`` names them or is not
  given): the LLM world model over SmolLM2 alone (``--llm-candidates`` commands nearest the
  objective), and the learned model with the LLM consulted where its members disagree
  (``--hybrid-threshold``); see ``agentwm.agents.textworld.llm_agents``.

Also times one decision of the learned planner for 8 candidates × horizon 3 with the texts already
embedded (``plan_ms_8x3``: the model's share), and with fresh texts.

Prints one JSON object and writes it to ``benchmarks/results/textworld.json``.

    python benchmarks/textworld.py --games-dir /path/to/games --models models/textworld-minilm-gru
    python benchmarks/textworld.py --games-dir DIR --games 5 --llm-games 0   # quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# this file is called textworld.py: keep its folder off the path so `import textworld` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from agentwm.agents.textworld.evaluate import evaluate
from agentwm.agents.textworld.factory import make_agent, shared_embedder
from agentwm.agents.textworld.games import list_games, make_games
from agentwm.envs.textworld import walkthrough_wins

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games-dir", required=True, help="folder of test games (made here if missing)")
    p.add_argument("--models", default=str(ROOT / "models" / "textworld-minilm-gru-dest"), help="folder holding world_model/ and direct/ checkpoints")
    p.add_argument("--settings", nargs="+", default=["quest5", "quest8"], help="settings to play")
    p.add_argument("--games", type=int, default=50, help="games per setting")
    p.add_argument("--start", type=int, default=0, help="skip this many games of the split first (e.g. 50: the next games after the first 50)")
    p.add_argument("--split", default="test", choices=["test", "validation"], help="test games (seeds 3500+, the headline figures) or validation games (seeds 3000-3499, for choosing methods)")
    p.add_argument("--llm-games", type=int, default=3, help="games per setting for the LLM agent (0 skips it)")
    p.add_argument("--horizon", type=int, default=3, help="imagined steps of the learned planner")
    p.add_argument("--max-steps", type=int, default=50, help="steps per episode")
    p.add_argument("--agents", nargs="+", default=None, help="play only these rows (default: all); e.g. learned_planner_h3")
    p.add_argument("--depth", default="best", choices=["best", "full"], help="how the deeper learned planner scores its rollouts")
    p.add_argument("--hint-weight", type=float, default=0.3, help="rows *_hint: weight of the objective's next step (ObjectiveHint; chosen on validation)")
    p.add_argument("--cover-rule", default=None, choices=["max", "count"], help="how both learned agents (direct and the planners) track the objective's steps (default: make_agent's)")
    p.add_argument("--jobs", type=int, default=1, help="settings played in parallel processes")
    p.add_argument("--out", default=None, help="where to write the JSON (default: benchmarks/results/textworld.json; textworld-validation.json with --split validation)")
    _add_search_args(p)
    return p.parse_args(argv)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _plan_speed(model_dir: Path, game: Path) -> dict[str, float]:
    """ms per decision for 8 candidates × horizon 3: texts cached (model only), and all texts fresh."""
    from agentwm.agents.textworld.agents import LearnedPlanner
    from agentwm.agents.textworld.train import load_model
    from agentwm.envs.textworld import TextWorldEnv
    from agentwm.text.embeddings import TextEmbedder

    env = TextWorldEnv(game)
    step = env.reset()
    planner = LearnedPlanner(load_model(model_dir / "world_model"), shared_embedder(), horizon=3, max_candidates=8, followups="menu")
    planner.reset(step)
    planner.scores(step)  # warm the cache
    times = []
    for _ in range(20):
        start = time.perf_counter()
        planner.reset(step)
        planner.scores(step)
        times.append(time.perf_counter() - start)
    fresh = []
    for i in range(3):
        emb = TextEmbedder(shared_embedder().encoder)  # same encoder, empty cache
        p = LearnedPlanner(planner.tracker.model, emb, horizon=3, max_candidates=8, followups="menu")
        start = time.perf_counter()
        p.reset(step)
        p.scores(step)
        fresh.append(time.perf_counter() - start)
    env.close()
    times.sort()
    return {"plan_ms_8x3": 1000 * times[len(times) // 2], "plan_ms_8x3_fresh_texts": 1000 * sorted(fresh)[1]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    models = Path(args.models)
    for sub in ("world_model", "direct"):
        if not (models / sub / "config.json").is_file():
            sys.exit(f"error: no {sub} checkpoint in {models} (train with 'agentwm train textworld')")
    result: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/textworld.py", *(argv if argv is not None else sys.argv[1:])]),
        "commit": _commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu(), "threads": torch.get_num_threads(), "max_steps": args.max_steps, "split": args.split, "horizon": args.horizon, "depth": args.depth, "cover_rule": args.cover_rule or "default",
        "models": str(models.relative_to(ROOT) if models.is_relative_to(ROOT) else models),
    }
    if args.jobs > 1 and len(args.settings) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(args.jobs, len(args.settings))) as pool:
            parts = list(pool.map(_run_setting, [(args, s) for s in args.settings]))
    else:
        parts = [_run_setting((args, s)) for s in args.settings]
    for setting, part in zip(args.settings, parts):
        result[setting] = part
    first = list_games(args.games_dir, args.settings[0], args.split)[0]
    result["speed"] = _plan_speed(models, first)
    if not args.agents or "mcts" in args.agents:
        result["speed"].update(_mcts_speed(models, first, args.mcts_simulations))
    print(json.dumps(result))
    _write_result("textworld", result, path=args.out, variant=None if args.split == "test" else args.split)
    return result


def _write_result(name: str, result: dict[str, Any], path: str | None, variant: str | None = None) -> None:
    """benchmarks/_results.write_result, loaded by path (this file keeps its folder off sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_results", Path(__file__).resolve().parent / "_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_result(name, result, path=path, variant=variant)


def _graph_agent(agent: Any) -> Any:
    """``agent`` behind a compiled one-node LangGraph graph, played like any text agent."""
    from agentwm.graph.text_agent import build_text_agent_graph
    from agentwm.graph.text_env import GraphTextAgent

    return GraphTextAgent(build_text_agent_graph(agent).compile())


def _run_setting(job: tuple[argparse.Namespace, str]) -> dict[str, Any]:
    """Every agent on the test games of one setting."""
    args, setting = job
    torch.set_num_threads(1)
    models = Path(args.models)
    chat: Any = None
    made = set(make_games(setting, args.split, args.games, args.games_dir, start=args.start, progress=False))
    games = [g for g in list_games(args.games_dir, setting, args.split) if g in made]  # exactly those seeds
    rule: dict[str, Any] = {} if args.cover_rule is None else {"cover_rule": args.cover_rule}  # the same for every learned agent
    agents: dict[str, Any] = {
        "random": make_agent("random", seed=0),
        "objective_match": make_agent("objective_match"),
        "direct": make_agent("direct", model=models / "direct", **rule),
        "learned_planner": make_agent("learned", model=models / "world_model", **rule),  # what users get: the planner's defaults
        f"learned_planner_h{args.horizon}": make_agent("learned", model=models / "world_model", horizon=args.horizon, followups="menu", depth=args.depth, **rule),
    }
    extra: dict[str, Any] = {  # opt-in rows (name them in --agents): planner options that validation did not adopt
        "learned_planner_revisit": lambda: make_agent("learned", model=models / "world_model", revisit_discount=0.5, revisit_threshold=0.85, **rule),
        "learned_planner_prior": lambda: make_agent("learned", model=models / "world_model", prior=models / "direct", **rule),
        "learned_memory": lambda: make_agent("learned_memory", model=models / "world_model", **rule),
        "learned_memory_prior": lambda: make_agent("learned_memory", model=models / "world_model", prior=models / "direct", **rule),
        "memory_explorer": lambda: make_agent("memory_explorer"),
        # with the objective's next step as a hint (ObjectiveHint, weight 0.3): the memory planner and its control
        "direct_hint": lambda: make_agent("direct", model=models / "direct", objective_weight=args.hint_weight, **rule),
        "learned_memory_prior_hint": lambda: make_agent("learned_memory", model=models / "world_model", prior=models / "direct",
                                                        objective_weight=args.hint_weight, **rule),
        # the same agent as a LangGraph node (agentwm.graph.text_agent), rebuilt from the history every step
        "learned_memory_prior_hint_graph": lambda: _graph_agent(make_agent(
            "learned_memory", model=models / "world_model", prior=models / "direct", objective_weight=args.hint_weight, **rule)),
    }
    agents.update({k: f() for k, f in extra.items() if args.agents and k in args.agents})
    agents.update(_search_agents(args, models))
    if args.agents:
        unknown = set(args.agents) - set(agents) - set(extra) - set(_LLM_ROWS)
        if unknown:
            raise SystemExit(f"error: unknown agents {sorted(unknown)}; choose from {sorted(set(agents) | set(extra))}")
        agents = {k: v for k, v in agents.items() if k in args.agents}
    rows: dict[str, Any] = {}
    for name, agent in agents.items():
        rows[name] = evaluate(games, agent, max_steps=args.max_steps, desc=f"{setting} {name}")
    rows.update(_llm_rows(args, setting, games, models))
    if args.llm_games > 0 and (not args.agents or "reactive" in args.agents):
        if chat is None:
            from agentwm.text.local_chat import smollm2_chat_model

            chat = smollm2_chat_model(max_new_tokens=6)
        rows["reactive"] = evaluate(games[: args.llm_games], make_agent("reactive", chat_model=chat), max_steps=args.max_steps, desc=f"{setting} reactive")
    part: dict[str, Any] = {
        "game_range": [Path(games[0]).stem, Path(games[-1]).stem],
        "games": {k: v["games"] for k, v in rows.items()},
        "win_rate": {k: round(v["win_rate"], 4) for k, v in rows.items()},
        "steps_mean": {k: round(v["steps_mean"], 2) for k, v in rows.items()},
        "steps_won_mean": {k: (None if v["steps_won_mean"] is None else round(v["steps_won_mean"], 2)) for k, v in rows.items()},
        "ms_per_decision": {k: round(v["ms_per_decision"], 1) for k, v in rows.items()},
        "llm_calls_per_decision": {k: round(v["llm_calls_per_decision"], 3) for k, v in rows.items()},
        "not_run": {"llm_planner": "LLMWorldModel over SmolLM2: not wired to TextWorld in this pass",
                    **({} if args.llm_games > 0 else {"reactive": "--llm-games 0"}),
                    "hybrid": "not built yet", "mcts": "not built yet"},
    }
    # games TextWorld's own walkthrough cannot win (parser ambiguities): no agent can; win rates among the rest
    unwinnable = sorted(Path(g).stem for g in games if not walkthrough_wins(g, args.max_steps))
    part["unwinnable"] = unwinnable
    part["win_rate_winnable"] = {
        k: round(sum(e["won"] for e in v["episodes"]) / max(sum(Path(e["game"]).stem not in unwinnable for e in v["episodes"]), 1), 4)
        for k, v in rows.items()
    }
    part["not_run"] = {k: v for k, v in part["not_run"].items() if k not in rows and k not in (*_LLM_ROWS, "mcts")}
    part["not_run"].update({k: f"not asked for (--agents, --llm-games {args.llm_games})" for k in (*_LLM_ROWS, "mcts") if k not in rows})
    if {"objective_match", "direct", "learned_planner"} <= set(rows):
        ablation = max(part["win_rate"]["objective_match"], part["win_rate"]["direct"])
        part["margin_over_best_ablation"] = round(part["win_rate"]["learned_planner"] - ablation, 4)
        ablation = max(part["win_rate_winnable"]["objective_match"], part["win_rate_winnable"]["direct"])
        part["margin_over_best_ablation_winnable"] = round(part["win_rate_winnable"]["learned_planner"] - ablation, 4)
    # every imagining row against the best row that imagines nothing (the hint's control included when run)
    plain = [k for k in ("objective_match", "direct", "direct_hint") if k in rows]
    if plain:
        best = max(part["win_rate"][k] for k in plain)
        part["margin_over_best_ablation_by_agent"] = {
            k: round(part["win_rate"][k] - best, 4)
            for k in ("learned_planner", "learned_memory", "learned_memory_prior", "learned_memory_prior_hint", "learned_memory_prior_hint_graph") if k in rows
        }
    return part


# ---- search and LLM world-model rows (mcts, llm_planner, hybrid)

_LLM_ROWS = ("llm_planner", "hybrid")


def _add_search_args(p: argparse.ArgumentParser) -> None:
    """Flags of the mcts, llm_planner and hybrid rows."""
    p.add_argument("--mcts-simulations", type=int, default=32, help="mcts: tree expansions per decision (32: chosen on the validation games)")
    p.add_argument("--llm-candidates", type=int, default=8, help="llm_planner: commands nearest the objective it imagines (one LLM call each)")
    p.add_argument("--hybrid-threshold", type=float, default=0.0055, help="hybrid: members' disagreement above which the LLM is consulted")


def _search_agents(args: argparse.Namespace, models: Path) -> dict[str, Any]:
    """``mcts``: pUCT over the learned world model, per-node action sets (``agentwm.agents.textworld.search``)."""
    rule: dict[str, Any] = {} if args.cover_rule is None else {"cover_rule": args.cover_rule}
    return {"mcts": make_agent("mcts", model=models / "world_model", simulations=args.mcts_simulations, **rule)}


def _llm_rows(args: argparse.Namespace, setting: str, games: list[Any], models: Path) -> dict[str, Any]:
    """``llm_planner`` and ``hybrid`` on the first ``--llm-games`` games (SmolLM2 on the CPU: slow), when asked for."""
    wanted = [k for k in _LLM_ROWS if args.llm_games > 0 and (not args.agents or k in args.agents)]
    if not wanted:
        return {}
    from agentwm.agents.textworld.llm_agents import make_hybrid, make_llm_planner
    from agentwm.text.local_chat import smollm2_chat_model

    chat = smollm2_chat_model(max_new_tokens=40)
    build = {
        "llm_planner": lambda: make_llm_planner(chat, shared_embedder(), candidates=args.llm_candidates),
        "hybrid": lambda: make_hybrid(chat, shared_embedder(), models / "world_model", threshold=args.hybrid_threshold),
    }
    return {k: evaluate(games[: args.llm_games], build[k](), max_steps=args.max_steps, desc=f"{setting} {k}") for k in wanted}


def _mcts_speed(models: Path, game: Path, simulations: int) -> dict[str, float]:
    """Median ms of one mcts decision over 8 root commands with the texts already embedded."""
    from agentwm.envs.textworld import TextWorldEnv

    env = TextWorldEnv(game)
    step = env.reset()
    env.close()
    agent = make_agent("mcts", model=models / "world_model", simulations=simulations, max_candidates=8)
    agent.reset(step)
    agent.act(step)  # warm the embedding cache
    times = []
    for _ in range(20):
        agent.reset(step)
        start = time.perf_counter()
        agent.act(step)
        times.append(time.perf_counter() - start)
    return {"mcts_ms_8": 1000 * sorted(times)[10], "mcts_simulations": simulations}


if __name__ == "__main__":
    main()
