"""TextWorld search agents: MCTS over the learned model (per-node action sets, loop penalty at the root,
agreement with the one-step planner), the LLM planner and hybrid rows, and the benchmark's mcts row."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from agentwm.agents.textworld.search import _most_visited
from tests.benchmark_module import load_benchmark
from tests.text_fakes import ScriptedChat, field, first_human

torch.set_num_threads(1)


def test_most_visited_breaks_ties_by_backed_up_value() -> None:
    acts = ["a", "b", "c"]
    assert _most_visited(torch.tensor([0.2, 0.6, 0.2]), torch.tensor([0.9, 0.1, 0.0]), "b", acts) == "b"
    assert _most_visited(torch.tensor([0.4, 0.2, 0.4]), torch.tensor([0.1, 0.9, 0.5]), "a", acts) == "c"


textworld = pytest.importorskip("textworld", reason="TextWorld is not installed (pip install 'agentwm[text]')")


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from agentwm.envs.textworld import make_game

    folder = tmp_path_factory.mktemp("games")
    return [make_game("tiny", seed, folder) for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def model() -> Any:
    from agentwm.agents.textworld.factory import shipped_model
    from agentwm.agents.textworld.train import load_model

    return load_model(shipped_model("learned"))


def test_mcts_agent_wins_tiny_games(games: list[Path]) -> None:
    from agentwm.agents.textworld.evaluate import evaluate
    from agentwm.agents.textworld.factory import make_agent

    result = evaluate(games, make_agent("mcts", simulations=8), max_steps=15, progress=False)
    assert result["win_rate"] == 1.0 and result["llm_calls_per_decision"] == 0.0, result


def test_deeper_nodes_expand_their_own_action_sets(games: list[Path], model: Any) -> None:
    from agentwm.agents.textworld.factory import shared_embedder
    from agentwm.agents.textworld.search import MCTSAgent
    from agentwm.envs.textworld import TextWorldEnv

    agent = MCTSAgent(model, shared_embedder(), simulations=12)
    given: list[list[str]] = []
    imagine = agent.world.imagine
    agent.world.imagine = lambda s, a, h: (given.append(list(a[0])), imagine(s, a, h))[1]  # type: ignore[method-assign]
    env = TextWorldEnv(games[0])
    step = env.reset()
    agent.reset(step)
    choice = agent.act(step)
    env.close()
    menu = list(step.admissible)
    goal = agent.world.predicted_menu(agent.state)[0][len(menu):]  # the objective's sentences
    assert choice in menu and given[0] == menu and goal
    deeper = given[1:]
    assert deeper and all(d != menu for d in deeper)
    # below the root: the menu and the objective's sentences, less the path (so each set is smaller than the pool)
    assert all(set(d) <= set(menu) | set(goal) and set(d) & set(goal) and len(d) < len(menu) + len(goal) for d in deeper)
    # a node below the root never re-offers the command that led to it
    child = agent.world.imagine(agent.state, [[menu[0]]], 1).states[1]
    assert menu[0] not in agent._actions(child) and set(goal) <= set(agent._actions(child))
    assert agent.last_result.policy.shape[-1] == len(menu)


def test_one_simulation_chooses_like_the_one_step_planner(games: list[Path], model: Any) -> None:
    """With one simulation MCTS expands the root and visits its best child r + γ·c·V (loop penalty
    included): the horizon-1 planner's choice, step for step, loops and all."""
    from agentwm.agents.textworld.agents import LearnedPlanner
    from agentwm.agents.textworld.factory import shared_embedder
    from agentwm.agents.textworld.search import MCTSAgent
    from agentwm.envs.textworld import TextWorldEnv

    for game in games[:2]:
        mcts = MCTSAgent(model, shared_embedder(), simulations=1)
        planner = LearnedPlanner(model, shared_embedder(), horizon=1, followups="none")
        env = TextWorldEnv(game, max_steps=8)
        step = env.reset()
        mcts.reset(step)
        planner.reset(step)
        while not step.done:
            a, b = mcts.act(step), planner.act(step)
            assert a == b
            step = env.step(a)
        env.close()


def test_loop_penalty_applies_at_the_root_only(model: Any) -> None:
    from agentwm.agents.textworld.factory import shared_embedder
    from agentwm.worldmodels.text_learned import LearnedTextWorldModel

    obs = {"observation": "You are in a bar. A box is here.", "admissible": ["open box", "go east"]}
    rewards = {}
    for penalty in (0.0, 0.5):
        wm = LearnedTextWorldModel(model, shared_embedder(), loop_penalty=penalty)
        s0 = wm.observe(obs, goal="Open the box. Then go east.")
        s1 = wm.observe(obs, s0, "open box")  # "open box" was played from this very observation
        root = wm.imagine(s1, [["open box"]], 1)
        deeper = wm.imagine(root.states[1], [["open box"]], 1)
        rewards[penalty] = (float(root.rewards[0, 0]), float(deeper.rewards[0, 0]))
    assert rewards[0.0][0] - rewards[0.5][0] == pytest.approx(0.5, abs=1e-5)
    assert rewards[0.0][1] == pytest.approx(rewards[0.5][1], abs=1e-6)


def test_mcts_bad_input(tmp_path: Path) -> None:
    from agentwm.agents.textworld.factory import make_agent, shipped_model

    with pytest.raises(ValueError, match="max_candidates"):
        make_agent("mcts", max_candidates=0)
    with pytest.raises(ValueError, match="simulations"):
        make_agent("mcts", simulations=0)
    with pytest.raises(ValueError, match="direct scorer"):
        make_agent("mcts", model=shipped_model("direct"))


def _outcome(win_action: str) -> Any:
    """Fake LLM world model: the winning action's outcome repeats the objective's words."""
    def script(messages: list[Any], kwargs: dict[str, Any]) -> str:
        action = field(first_human(messages), "Action")
        return "Observation: you take the key; the task is done" if action == win_action else "Observation: nothing happens"
    return script


def test_llm_planner_ranks_with_one_call_per_candidate(games: list[Path]) -> None:
    from agentwm.agents.textworld.factory import shared_embedder
    from agentwm.agents.textworld.llm_agents import make_llm_planner
    from agentwm.envs.textworld import TextWorldEnv

    env = TextWorldEnv(games[0])
    step = env.reset()
    env.close()
    menu = list(step.admissible)
    target = menu[-1]
    chat = ScriptedChat(script=_outcome(target))
    agent = make_llm_planner(chat, shared_embedder(), candidates=None)
    step = dataclasses.replace(step, objective="Take the key. The task is done.")  # what the winning outcome says
    agent.reset(step)
    assert agent.act(step) == target
    assert agent.llm_calls == len(menu) == chat.calls


def test_hybrid_without_consults_is_the_learned_planner(games: list[Path]) -> None:
    from agentwm.agents.textworld.factory import make_agent, shared_embedder, shipped_model
    from agentwm.agents.textworld.llm_agents import make_hybrid
    from agentwm.envs.textworld import TextWorldEnv

    for threshold, consults in ((1e9, False), (0.0, True)):
        chat = ScriptedChat(script=_outcome("none"))
        hybrid = make_hybrid(chat, shared_embedder(), shipped_model("learned"), threshold=threshold)
        planner = make_agent("learned")
        env = TextWorldEnv(games[1], max_steps=6)
        step = env.reset()
        hybrid.reset(step)
        planner.reset(step)
        decisions = same = 0
        while not step.done:
            a, b = hybrid.act(step), planner.act(step)
            decisions, same = decisions + 1, same + (a == b)
            step = env.step(b)
        env.close()
        if consults:
            assert 0 < hybrid.llm_calls <= decisions  # at most one consult per decision
        else:
            assert hybrid.llm_calls == 0 and same == decisions


def test_benchmark_writes_the_mcts_row(games: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTWM_RESULTS_DIR", str(tmp_path / "results"))
    bench = load_benchmark("textworld")
    folder = tmp_path / "games"
    folder.mkdir()
    from agentwm.envs.textworld import make_game

    make_game("tiny", 3500, folder)
    out = tmp_path / "search.json"
    result = bench.main(["--games-dir", str(folder), "--settings", "tiny", "--games", "1", "--llm-games", "0",
                         "--agents", "mcts", "--mcts-simulations", "4", "--out", str(out)])
    row = result["tiny"]
    assert set(row["win_rate"]) == {"mcts"} and row["games"]["mcts"] == 1
    assert "mcts" not in row["not_run"] and "hybrid" in row["not_run"]
    assert result["speed"]["mcts_simulations"] == 4 and result["speed"]["mcts_ms_8"] > 0
    assert json.loads(out.read_text())["result"]["tiny"]["win_rate"] == row["win_rate"]
