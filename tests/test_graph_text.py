"""The planning graph over text environments (issue 16 item 4 and its friction list): per-step menus
matched tolerantly, input candidates that hold for one decision on a thread, history folded into the
world model's observe, ties and ignored actions reported, async graphs on SqliteSaver, the learned
text world model batched in the graph, MCTS with per-node actions, the hybrid's LLM calls."""

from __future__ import annotations

import asyncio
import sqlite3
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from graph_fakes import FixedLatencyChatModel, KeywordScorer
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from agentwm.envs.text import TextStep
from agentwm.graph import build_planning_graph
from agentwm.graph.text_env import GraphTextAgent, play_text_env
from agentwm.planning.mcts import MCTS
from agentwm.planning.ranking import rank
from agentwm.text.client import LLMClient
from agentwm.worldmodels.base import Rollout, State, repeat_state
from agentwm.worldmodels.composite import HybridWorldModel
from agentwm.worldmodels.llm_outcome import LLMWorldModel
from agentwm.worldmodels.text_latent import TextLatentConfig, TextLatentModel
from agentwm.worldmodels.text_learned import LearnedTextWorldModel

pytestmark = pytest.mark.usefixtures("one_thread")

THREAD = {"configurable": {"thread_id": "episode"}}


class HashEmbedder:
    """Deterministic unit vectors per text (no MiniLM needed); counts embedded batches."""

    def __init__(self, dim: int = 16) -> None:
        self.dim, self.calls = dim, 0

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        self.calls += 1
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def small_learned(loop_penalty: float = 0.5) -> LearnedTextWorldModel:
    torch.manual_seed(0)
    config = TextLatentConfig(emb_dim=16, max_goal=4, hidden=16, proj=8, units=16, members=3)
    return LearnedTextWorldModel(TextLatentModel(config), HashEmbedder(), loop_penalty=loop_penalty)


class RecordingTextModel:
    """A text world model whose imagined value is a table lookup; it records every observe call and
    can ignore the action (every candidate imagines the same text: a junk answer that parsed)."""

    batched = True  # one imagine call per decision, so one start state is folded per decision

    def __init__(self, values: dict[str, float], *, ignore_action: bool = False) -> None:
        self.values, self.ignore_action = values, ignore_action
        self.observed: list[tuple[Any, str | None]] = []

    def observe(self, obs: Any, state: State | None = None, action: Any = None, *, goal: str | None = None) -> State:
        text = obs["observation"] if isinstance(obs, dict) else obs
        self.observed.append((obs, action))
        return {"observation": [text], "goal": [goal or ""]}

    def imagine(self, state: State, actions: Any, horizon: int) -> Rollout:
        first = list(actions[0])
        rewards = torch.tensor([[0.0 if self.ignore_action else self.values.get(a, 0.0) for a in first]])
        text = [["nothing happens" if self.ignore_action else f"after {a}" for a in first]]
        return Rollout(states={"observation": [state["observation"]] * 2}, rewards=rewards,
                       continues=torch.ones_like(rewards), extras={"text": text, "llm_calls": 0})

    async def aimagine(self, state: State, actions: Any, horizon: int) -> Rollout:
        return self.imagine(state, actions, horizon)


# ----------------------------------------------------------------------------------------------
# Candidates, menus and history on a thread


def test_input_candidates_hold_for_one_decision_on_a_thread(tmp_path: Path) -> None:
    wm = RecordingTextModel({"wait": 1.0, "shout": -1.0})
    with sqlite3.connect(tmp_path / "t.db", check_same_thread=False) as conn:
        graph = build_planning_graph(world_model=wm).compile(checkpointer=SqliteSaver(conn))
        first = graph.invoke({"observation": "a", "candidates": ["shout", "wait"]}, THREAD, context={"horizon": 1})
        assert first["chosen"] == "wait" and first["proposal"]["candidates"] == ["shout", "wait"]
        assert first["candidates"] == [], "given candidates are cleared when the decision ends"
        second = graph.invoke({"observation": "b"}, THREAD, context={"horizon": 1})
    assert second["chosen"] is None and second["choice"]["reason"] == "no_candidates", "not the previous list"
    assert second["fallbacks"] == ["propose: no candidates given and no proposer", "choose: no candidates to choose from"]
    menu_graph = build_planning_graph(world_model=wm, actions=["shout", "wait", "sing"]).compile(checkpointer=InMemorySaver())
    menu_graph.invoke({"observation": "a", "candidates": ["shout"]}, THREAD, context={"horizon": 1})
    later = menu_graph.invoke({"observation": "b"}, THREAD, context={"horizon": 1})
    assert later["proposal"]["source"] == "actions" and later["proposal"]["candidates"] == ["shout", "wait", "sing"]


def test_the_one_node_planner_ends_its_decision_the_same_way() -> None:
    from langgraph.graph import START, StateGraph

    from agentwm.graph import PlanningState, make_plan_node

    wm = RecordingTextModel({"wait": 1.0})
    builder = StateGraph(PlanningState)
    builder.add_node("plan", make_plan_node(wm, end_decision=True))
    builder.add_edge(START, "plan")
    app = builder.compile(checkpointer=InMemorySaver())
    first = app.invoke({"observation": "a", "candidates": ["shout", "wait"]}, THREAD, context={"horizon": 1})
    second = app.invoke({"observation": "b"}, THREAD, context={"horizon": 1})
    assert first["chosen"] == "wait" and first["history"] == [{"observation": "a", "action": "wait"}]
    assert second["chosen"] is None and second["proposal"]["source"] == "none"


def test_per_step_menu_and_tolerant_matching_of_proposals_and_given_candidates() -> None:
    wm = RecordingTextModel({"take passkey from bar": 1.0, "go east": 0.5, "open locker": 2.0})
    # the second step's menu (with "go west") reaches the proposer's prompt
    chat = FixedLatencyChatModel(
        responses=['["take the passkey", "dance a jig"]'], rules=[("go west", "1. open the locker\n2. go east")]
    )
    graph = build_planning_graph(world_model=wm, proposer=chat).compile(checkpointer=InMemorySaver())
    step1 = {"observation": "a bar", "admissible": ["take passkey from bar", "go east"], "goal": "win"}
    out = graph.invoke(step1, THREAD, context={"horizon": 1})
    assert out["proposal"]["source"] == "llm" and out["proposal"]["candidates"] == ["take passkey from bar"]
    assert out["chosen"] == "take passkey from bar" and out["fallbacks"] == []
    step2 = {"observation": "a locker", "admissible": ["open locker", "go east", "go west"]}
    out = graph.invoke(step2, THREAD, context={"horizon": 1})
    assert out["proposal"]["candidates"] == ["open locker", "go east"] and out["chosen"] == "open locker"
    assert chat.calls == 2
    given = build_planning_graph(world_model=wm).compile().invoke(
        {"observation": "a bar", "admissible": step1["admissible"], "candidates": ["take the passkey", "fly"]},
        context={"horizon": 1},
    )
    assert given["proposal"]["candidates"] == ["take passkey from bar"]
    assert any("'fly' names no entry" in n for n in given["fallbacks"])
    no_proposer = build_planning_graph(world_model=wm).compile().invoke(step2, context={"horizon": 1})
    assert no_proposer["proposal"]["source"] == "actions" and no_proposer["chosen"] == "open locker"


def test_history_is_carried_in_state_and_folded_into_observe() -> None:
    wm = RecordingTextModel({"go east": 1.0, "go west": 0.0})
    graph = build_planning_graph(world_model=wm).compile(checkpointer=InMemorySaver())
    for obs in ("room 1", "room 2", "room 3"):
        wm.observed.clear()
        out = graph.invoke({"observation": obs, "admissible": ["go west", "go east"], "goal": "east"}, THREAD,
                           context={"horizon": 1})
    assert out["history"] == [{"observation": f"room {i}", "action": "go east"} for i in (1, 2, 3)]
    # the third decision's start state: room 1, then room 2 after go east, then room 3 (with its menu) after go east
    texts = [(o["observation"] if isinstance(o, dict) else o, a) for o, a in wm.observed]
    assert texts == [("room 1", None), ("room 2", "go east"), ("room 3", "go east")]
    assert wm.observed[-1][0]["admissible"] == ["go west", "go east"]


def test_ignored_actions_and_ties_are_reported_not_hidden() -> None:
    junk = RecordingTextModel({}, ignore_action=True)
    out = build_planning_graph(world_model=junk).compile().invoke(
        {"observation": "x", "candidates": ["open locker", "close locker", "go east"]}, context={"horizon": 1}
    )
    assert out["chosen"] == "open locker" and out["choice"]["reason"] == "best_score"
    assert any("imagined the same outcome" in n and "ignored the action" in n for n in out["fallbacks"])
    assert any(n.startswith("choose: best score") and "[0, 1, 2]" in n for n in out["fallbacks"])
    clear = build_planning_graph(world_model=RecordingTextModel({"go east": 1.0})).compile().invoke(
        {"observation": "x", "candidates": ["open locker", "go east"]}, context={"horizon": 1}
    )
    assert clear["fallbacks"] == [] and clear["chosen"] == "go east"


def test_async_graph_runs_on_a_sync_sqlitesaver_and_resumes_the_thread(tmp_path: Path) -> None:
    wm = RecordingTextModel({"go east": 1.0})
    path = tmp_path / "async.db"

    async def play(conn: sqlite3.Connection, obs: str) -> dict[str, Any]:
        graph = build_planning_graph(world_model=wm).compile(checkpointer=SqliteSaver(conn))
        return await graph.ainvoke({"observation": obs, "admissible": ["go west", "go east"]}, THREAD,
                                   context={"horizon": 1})

    with sqlite3.connect(path, check_same_thread=False) as conn:
        first = asyncio.run(play(conn, "room 1"))
    with sqlite3.connect(path, check_same_thread=False) as conn:  # a new process would reopen the file
        second = asyncio.run(play(conn, "room 2"))
        graph = build_planning_graph(world_model=wm).compile(checkpointer=SqliteSaver(conn))
        saved = graph.get_state(THREAD).values  # the sync path reads what the async one wrote
    assert first["chosen"] == second["chosen"] == "go east"
    assert [h["observation"] for h in second["history"]] == ["room 1", "room 2"] == [h["observation"] for h in saved["history"]]


# ----------------------------------------------------------------------------------------------
# The learned text world model


def test_learned_model_batches_candidates_and_remembers_loops() -> None:
    wm = small_learned(loop_penalty=0.0)
    menu = ["take passkey from bar", "go east", "open locker"]
    s = wm.observe({"observation": "a bar", "admissible": menu}, goal="Take the passkey. Then go east.")
    together = rank(wm, s, menu, horizon=3, gamma=0.85).scores
    apart = torch.cat([rank(wm, s, [c], horizon=3, gamma=0.85).scores for c in menu])
    assert torch.allclose(together, apart, atol=1e-5)
    roll = wm.imagine(repeat_state(s, 3), [menu], 3)
    assert roll.values is not None and roll.extras["disagreement"].shape == (3, 3)
    assert all(path[0] == c for path, c in zip(roll.states[1]["path"], menu))
    deeper = wm.predicted_menu(roll.states[1])
    assert all(c not in deeper[i] for i, c in enumerate(menu)), "a node's menu leaves out what its path did"
    # loop avoidance: the same command from the same observation costs exactly loop_penalty
    penal = small_learned(loop_penalty=0.5)
    s1 = penal.observe({"observation": "a bar", "admissible": menu}, goal="Take the passkey. Then go east.")
    s2 = penal.observe("a bar", s1, action="go east")
    base = small_learned(loop_penalty=0.0)
    b1 = base.observe({"observation": "a bar", "admissible": menu}, goal="Take the passkey. Then go east.")
    b2 = base.observe("a bar", b1, action="go east")
    diff = rank(base, b2, menu, horizon=1, gamma=0.85).scores - rank(penal, s2, menu, horizon=1, gamma=0.85).scores
    assert diff.tolist() == pytest.approx([0.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="goal"):
        wm.observe("no goal yet")


def test_graph_imagines_all_candidates_of_the_learned_model_in_one_call() -> None:
    wm = small_learned()
    calls: list[int] = []
    original = wm.imagine

    def counted(state: State, actions: Any, horizon: int) -> Rollout:
        calls.append(len(actions[0]))
        return original(state, actions, horizon)

    wm.imagine = counted  # type: ignore[method-assign]
    menu = ["take passkey from bar", "go east", "open locker", "look"]
    out = build_planning_graph(world_model=wm).compile().invoke(
        {"observation": "a bar", "goal": "Take the passkey.", "admissible": menu}, context={"horizon": 3}
    )
    assert calls == [4] and len(out["simulations"]) == 4 and out["chosen"] in menu
    assert out["ranking"][0]["score"] == max(s["returns"][0] - 0.0 for s in out["simulations"])


def test_mcts_deeper_nodes_expand_the_models_predicted_menu() -> None:
    wm = small_learned()
    menu = ["take passkey from bar", "go east", "open locker"]
    s = wm.observe({"observation": "a bar", "admissible": menu}, goal="Take the passkey. Then open the locker.")
    seen: list[list[str]] = []
    original = wm.imagine

    def recording(state: State, actions: Any, horizon: int) -> Rollout:
        if actions:
            seen.append(list(actions[0]))
        return original(state, actions, horizon)

    wm.imagine = recording  # type: ignore[method-assign]
    result = MCTS(wm, actions=menu, simulations=12, gamma=0.85, exploration_fraction=0.0).plan(s)
    assert result.chosen[0] in menu and seen[0] == menu
    assert len(seen) > 1 and all(acts != menu for acts in seen[1:]), "deeper nodes never reuse the root's list"
    assert any("Then open the locker." in acts for acts in seen[1:])  # the objective's steps are in the pool
    with pytest.raises(ValueError, match="predicted_menu"):
        MCTS(RecordingTextModel({}), actions=menu)


# ----------------------------------------------------------------------------------------------
# Hybrid: the LLM only where the learned model is unsure


def hybrid(threshold: float) -> tuple[HybridWorldModel, FixedLatencyChatModel]:
    chat = FixedLatencyChatModel(responses=["Observation: the locker opens\nDone: no"])
    llm = LLMWorldModel(LLMClient(chat, retries=0, cache=False), scorer=KeywordScorer("opens"))
    return HybridWorldModel(small_learned(), llm, threshold=threshold, max_consults=1, llm_steps=1), chat


def test_hybrid_text_consults_the_llm_at_most_once_per_decision_and_only_when_unsure() -> None:
    menu = ["open locker", "go east", "look"]
    step = {"observation": "a locker", "goal": "Open the locker.", "admissible": menu}
    sure, chat = hybrid(threshold=1e9)
    out = build_planning_graph(world_model=sure).compile().invoke(step, context={"horizon": 3})
    assert out["llm_calls"] == 0 and chat.calls == 0 and out["chosen"] in menu
    unsure, chat = hybrid(threshold=0.0)
    out = build_planning_graph(world_model=unsure).compile().invoke(step, context={"horizon": 3})
    assert out["llm_calls"] == chat.calls == 1
    state = unsure.observe(step)
    roll = unsure.imagine(repeat_state(state, 3), [menu], 3)
    assert int(roll.extras["consulted"].sum()) == 1 and roll.values is not None
    assert roll.extras["llm_weight"].shape == (3,)


# ----------------------------------------------------------------------------------------------
# Any text environment, a few lines


class Corridor:
    """A two-room text game: take the key, then go east (won); anything else changes nothing."""

    def __init__(self) -> None:
        self.t = 0

    def _step(self, obs: str, menu: tuple[str, ...], done: bool = False, won: bool = False) -> TextStep:
        return TextStep(obs, "Take the key. Then go east.", menu, float(won), done, won)

    def reset(self) -> TextStep:
        self.t = 0
        return self._step("a key lies here", ("take key from floor", "go west", "look"))

    def step(self, action: str) -> TextStep:
        self.t += 1
        if action == "take key from floor":
            return self._step("you hold the key", ("go east", "drop key", "look"))
        if action == "go east":
            return self._step("you are out", (), done=True, won=True)
        return self._step("nothing changes", ("take key from floor", "go west", "look"), done=self.t >= 5)

    def close(self) -> None:
        pass


def test_any_text_env_plugs_into_the_graph_in_a_few_lines() -> None:
    wm = RecordingTextModel({"take key from floor": 1.0, "go east": 2.0})
    graph = build_planning_graph(world_model=wm).compile(checkpointer=InMemorySaver())
    episode = play_text_env(graph, Corridor(), context={"horizon": 1}, config=THREAD)
    assert episode.won and episode.commands == ["take key from floor", "go east"] and episode.ties == 0
    agent = GraphTextAgent(build_planning_graph(world_model=wm).compile(), context={"horizon": 1})  # no thread
    env = Corridor()
    first = env.reset()
    agent.reset(first)
    assert agent.act(first) == "take key from floor" and agent.history[-1]["action"] == "take key from floor"
    with pytest.raises(TypeError, match="compile"):
        GraphTextAgent(build_planning_graph(world_model=wm))


@pytest.mark.slow  # ~20-40 s: generates a TextWorld game and loads MiniLM
def test_the_shipped_learned_model_plays_a_textworld_game_through_the_graph(tmp_path: Path) -> None:
    """The graph over the shipped checkpoint plays a generated game like the graph-free planner does."""
    pytest.importorskip("textworld")
    from agentwm.agents.textworld.agents import LearnedPlanner
    from agentwm.agents.textworld.evaluate import evaluate
    from agentwm.agents.textworld.factory import shared_embedder
    from agentwm.agents.textworld.train import load_model
    from agentwm.envs.textworld import make_game

    root = Path(__file__).resolve().parent.parent
    model = load_model(root / "models" / "textworld-minilm-gru" / "world_model")
    games = [make_game("tiny", seed, tmp_path) for seed in (0, 1)]
    wm = LearnedTextWorldModel(model, shared_embedder())
    agent = GraphTextAgent(build_planning_graph(world_model=wm).compile(), context={"horizon": 1, "gamma": wm.gamma})
    via_graph = evaluate(games, agent, max_steps=15, progress=False)
    direct = evaluate(games, LearnedPlanner(model, shared_embedder(), horizon=1, followups="none"), max_steps=15, progress=False)
    assert [e["steps"] for e in via_graph["episodes"]] == [e["steps"] for e in direct["episodes"]]
    assert via_graph["win_rate"] == direct["win_rate"] > 0  # the same decisions: the graph adds no noise
