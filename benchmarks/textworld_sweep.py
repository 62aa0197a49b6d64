"""TextWorld planner options on validation games: wins per variant, with every episode's trajectory kept.

For choosing methods (``docs/textworld.md``, phase 3): each ``--variant NAME=AGENT[:JSON]`` is
``make_agent(AGENT, **JSON)`` played on games ``--start``..``--start+--games`` of ``--split`` in
``--games-dir``; one JSON line per variant is printed, and ``--out`` gets every episode (observation,
menu, command, the agent's scores, the planner's imagined-revisit similarity per candidate).
MiniLM embeddings are kept between runs in ``--emb-cache``.

    python benchmarks/textworld_sweep.py --games-dir games/ --settings quest8 --games 100 \\
        --variant learned=learned --variant direct=direct \\
        --variant 'count=learned:{"cover_rule": "count"}' --out sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# keep this folder off the path so `import textworld` finds the package, not benchmarks/textworld.py
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from agentwm.agents.textworld.factory import make_agent, shared_embedder
from agentwm.agents.textworld.games import list_games
from agentwm.envs.textworld import TextWorldEnv


def _record(agent: Any) -> dict[str, Any]:
    """Wrap the agent's scoring so the last scores of each decision can be read back."""
    last: dict[str, Any] = {}
    if hasattr(agent, "scores"):
        inner = agent.scores

        def scores(step: Any) -> Any:
            menu, score = inner(step)
            last["scores"] = dict(zip(menu, score.tolist()))
            return menu, score

        agent.scores = scores
    elif hasattr(agent, "direct"):
        q_values = agent.direct.q_values

        def q(state: Any, actions: Any) -> Any:
            out = q_values(state, actions)
            last["q"] = out[0].tolist()
            return out

        agent.direct.q_values = q
    return last


def play(game: Path, agent: Any, last: dict[str, Any], max_steps: int) -> dict[str, Any]:
    env = TextWorldEnv(game, max_steps=max_steps)
    step = env.reset()
    agent.reset(step)
    traj = []
    while not step.done:
        command = agent.act(step)
        rec: dict[str, Any] = {"obs": step.observation, "cmd": command, "menu": list(step.admissible)}
        if "scores" in last:
            rec["scores"] = {k: round(v, 3) for k, v in last.pop("scores").items()}
        if "q" in last:
            rec["scores"] = {c: round(v, 3) for c, v in zip(step.admissible, last.pop("q"))}
        if getattr(agent, "last_revisit", None) is not None:
            rec["revisit"] = [round(float(x), 3) for x in agent.last_revisit]
            rec["cover"] = [round(float(x), 3) for x in agent.visits.cover[-1]]
        traj.append(rec)
        step = env.step(command)
    traj.append({"obs": step.observation})
    env.close()
    return {"game": game.stem, "won": bool(step.won), "steps": len(traj) - 1, "traj": traj}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games-dir", required=True, help="folder of games (agentwm textworld make-games)")
    p.add_argument("--settings", nargs="+", default=["quest5", "quest8"], help="settings to play")
    p.add_argument("--split", default="validation", choices=["validation", "test", "train"], help="which seeds")
    p.add_argument("--start", type=int, default=0, help="skip this many games of the split")
    p.add_argument("--games", type=int, default=20, help="games per setting")
    p.add_argument("--variant", action="append", required=True, help="NAME=AGENT[:JSON keyword arguments of make_agent]")
    p.add_argument("--max-steps", type=int, default=50, help="steps per episode")
    p.add_argument("--emb-cache", default=None, help="file keeping MiniLM embeddings between runs")
    p.add_argument("--out", required=True, help="JSON file for every episode")
    args = p.parse_args()
    torch.set_num_threads(1)
    variants = {}
    for v in args.variant:
        name, _, spec = v.partition("=")
        kind, _, kw = spec.partition(":")
        if not name or not kind:
            sys.exit(f"error: --variant {v!r} is not NAME=AGENT[:JSON]")
        variants[name] = (kind, json.loads(kw) if kw else {})
    embedder = shared_embedder()
    cache = Path(args.emb_cache) if args.emb_cache else None
    if cache is not None and cache.exists():
        embedder._cache.update(torch.load(cache))
    result: dict[str, Any] = {}
    for setting in args.settings:
        games = list_games(args.games_dir, setting, args.split)[args.start : args.start + args.games]
        for name, (kind, kw) in variants.items():
            agent = make_agent(kind, **kw)
            last = _record(agent)
            start = time.time()
            episodes = [play(g, agent, last, args.max_steps) for g in games]
            wins = sum(e["won"] for e in episodes)
            row = {"wins": wins, "n": len(episodes), "steps_mean": round(sum(e["steps"] for e in episodes) / max(len(episodes), 1), 1),
                   "lost": [e["game"] for e in episodes if not e["won"]], "sec": round(time.time() - start)}
            print(json.dumps({"setting": setting, "variant": name, **row}), flush=True)
            result.setdefault(setting, {})[name] = {**row, "episodes": episodes}
            if cache is not None:
                torch.save(dict(embedder._cache), cache)
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
