"""The memory planner as a LangGraph node: it decides as the agent does, and a resumed thread decides
exactly as an uninterrupted one (the agent is rebuilt from the thread's history every step)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from agentwm.agents.textworld.direct import DirectScorer
from agentwm.agents.textworld.memory_planner import MemoryPlanner
from agentwm.envs.text import TextStep
from agentwm.graph.text_agent import build_text_agent_graph, make_text_agent_node
from agentwm.graph.text_env import play_text_env
from agentwm.worldmodels.text_latent import TextLatentConfig, TextLatentModel
from tests.hash_embed import HashEmbed

pytestmark = pytest.mark.usefixtures("one_thread")

GOAL = "Take the key. Go east. Go east. Drop the key."
ROOMS = {
    "Hall": "-= Hall =- A bare hall. An exit east.",
    "Den": "-= Den =- A den. Exits east and west.",
    "Attic": "-= Attic =- Dusty. An exit west.",
}


class Rooms:
    """Hall -east- Den -east- Attic; the key lies in the Hall; dropping it in the Attic wins."""

    def reset(self) -> TextStep:
        self.room, self.key, self.t = "Hall", "floor", 0
        return self._step(ROOMS["Hall"] + " A key lies here.")

    def _menu(self) -> tuple[str, ...]:
        moves = {"Hall": ["go east"], "Den": ["go east", "go west"], "Attic": ["go west"]}[self.room]
        items = ["take key"] if self.key == "floor" and self.room == "Hall" else (["drop key", "examine key"] if self.key == "held" else [])
        return (*moves, *items, "look")

    def _step(self, text: str, reward: float = 0.0, done: bool = False, won: bool = False) -> TextStep:
        return TextStep(text, GOAL, self._menu(), reward, done or self.t >= 12, won)

    def step(self, action: str) -> TextStep:
        self.t += 1
        if action == "go east" or action == "go west":
            order = ["Hall", "Den", "Attic"]
            self.room = order[order.index(self.room) + (1 if action == "go east" else -1)]
            return self._step(ROOMS[self.room])
        if action == "take key":
            self.key = "held"
            return self._step("You take the key.")
        if action == "drop key":
            self.key = self.room
            won = self.room == "Attic"
            return self._step("You drop the key.", 1.0 if won else 0.0, done=won, won=won)
        return self._step(ROOMS[self.room] if action == "look" else "A small key.")

    def close(self) -> None:
        pass


def _agent(seed: int = 0) -> MemoryPlanner:
    torch.manual_seed(seed)
    config = TextLatentConfig(emb_dim=16, max_goal=4, hidden=8, proj=8, units=8, members=2)
    model, prior = TextLatentModel(config).eval(), DirectScorer(config).eval()
    return MemoryPlanner(model, HashEmbed(), prior=prior, objective_weight=0.3)


def _play_directly(agent: MemoryPlanner, steps: int) -> list[str]:
    env = Rooms()
    step = env.reset()
    agent.reset(step)
    played = []
    while not step.done and len(played) < steps:
        played.append(agent.act(step))
        step = env.step(played[-1])
    return played


def test_the_node_decides_as_the_agent_does_and_extends_the_history() -> None:
    expected = _play_directly(_agent(), 12)
    assert len(set(expected)) > 1  # not a constant choice: the comparison below can fail
    graph = build_text_agent_graph(_agent()).compile(checkpointer=InMemorySaver())
    episode = play_text_env(graph, Rooms(), config={"configurable": {"thread_id": "t"}}, max_steps=12)
    assert episode.commands == expected
    state = graph.get_state({"configurable": {"thread_id": "t"}}).values
    assert [h["action"] for h in state["history"]] == expected
    assert all(h["admissible"] for h in state["history"]) and state["admissible"] == []
    ranking = state["ranking"]
    assert ranking[0]["candidate"] == expected[-1] and [r["score"] for r in ranking] == sorted((r["score"] for r in ranking), reverse=True)


def _this_step(step: TextStep) -> dict[str, object]:
    """The input of one step without a history (the thread keeps it)."""
    return {"observation": step.observation, "goal": step.objective, "admissible": list(step.admissible), "reward": step.reward}


def test_a_resumed_thread_decides_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    expected = _play_directly(_agent(), 8)
    with SqliteSaver.from_conn_string(str(tmp_path / "threads.sqlite")) as saver:
        thread = {"configurable": {"thread_id": "game"}}
        first = build_text_agent_graph(_agent()).compile(checkpointer=saver)
        env = Rooms()
        step = env.reset()
        played = []
        for _ in range(4):  # the input carries only this step: the thread holds the history
            played.append(first.invoke(_this_step(step), thread)["chosen"])
            step = env.step(played[-1])
        # a new process: a fresh agent object (same weights), the same thread, async calls
        resumed = build_text_agent_graph(_agent()).compile(checkpointer=saver)
        while len(played) < len(expected):
            played.append(asyncio.run(resumed.ainvoke(_this_step(step), thread))["chosen"])
            step = env.step(played[-1])
    assert played == expected


def test_bad_input_is_named_and_an_empty_menu_chooses_nothing() -> None:
    node = make_text_agent_node(_agent())
    out = node({"observation": ROOMS["Hall"], "goal": GOAL, "admissible": []})
    assert out["chosen"] is None and "no admissible" in out["fallbacks"][0]
    with pytest.raises(ValueError, match="observation must be non-empty text"):
        node({"observation": None, "goal": GOAL, "admissible": ["look"]})
    with pytest.raises(ValueError, match="not on that step's menu"):
        node({"observation": ROOMS["Den"], "goal": GOAL, "admissible": ["go west"],
              "history": [{"observation": ROOMS["Hall"], "action": "fly", "admissible": ["go east"]}]})
    # a history written by the planning graph has no menus: the node goes on and says so
    out = node({"observation": ROOMS["Den"], "goal": GOAL, "admissible": ["go west", "look"],
                "history": [{"observation": ROOMS["Hall"], "action": "go east"}]})
    assert out["chosen"] in ("go west", "look") and any("history[0]" in n for n in out["fallbacks"])
    with pytest.raises(TypeError, match="observe_played"):
        make_text_agent_node(object())  # type: ignore[arg-type]

