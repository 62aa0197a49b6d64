"""Play agents on TextWorld games and report wins, steps, time and LLM calls per decision."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agentwm.agents.textworld.agents import TextAgent
from agentwm.envs.textworld import TextWorldEnv


def play_episode(game: str | Path, agent: TextAgent, *, max_steps: int = 50) -> dict[str, Any]:
    """One episode of ``agent`` on ``game``: won, steps, seconds per decision, LLM calls."""
    env = TextWorldEnv(game, max_steps=max_steps)
    try:
        step = env.reset()
        agent.reset(step)
        calls0 = agent.llm_calls
        decisions, seconds = 0, 0.0
        commands = []
        while not step.done:
            start = time.perf_counter()
            command = agent.act(step)
            seconds += time.perf_counter() - start
            decisions += 1
            commands.append(command)
            step = env.step(command)
        return {
            "game": Path(game).name, "won": step.won, "steps": decisions, "ms_per_decision": 1000 * seconds / max(decisions, 1),
            "llm_calls": agent.llm_calls - calls0, "commands": commands,
        }
    finally:
        env.close()


def evaluate(games: Sequence[str | Path], agent: TextAgent, *, max_steps: int = 50, progress: bool = True, desc: str = "play") -> dict[str, Any]:
    """Play one episode per game; win rate, mean steps (all episodes and won ones), ms and LLM calls per decision."""
    rows = []
    bar = tqdm(games, desc=desc, disable=not progress)
    for game in bar:
        rows.append(play_episode(game, agent, max_steps=max_steps))
        bar.set_postfix(wins=sum(r["won"] for r in rows))
    decisions = sum(r["steps"] for r in rows)
    won = [r for r in rows if r["won"]]
    return {
        "games": len(rows),
        "win_rate": len(won) / max(len(rows), 1),
        "steps_mean": statistics.fmean(r["steps"] for r in rows) if rows else 0.0,
        "steps_won_mean": statistics.fmean(r["steps"] for r in won) if won else None,
        "ms_per_decision": sum(r["ms_per_decision"] * r["steps"] for r in rows) / max(decisions, 1),
        "llm_calls_per_decision": sum(r["llm_calls"] for r in rows) / max(decisions, 1),
        "episodes": [{k: r[k] for k in ("game", "won", "steps")} for r in rows],
    }
