"""Play a TextWorld game with the planning graph and the shipped learned text world model (offline).

    python examples/textworld_graph.py [--game path/to/game.z8] [--horizon 3]

Without ``--game`` a quest-length-5 game is generated (tw-make's generator, in-process, seed 3500
of the test split). The graph simulates every admissible command with the learned model (batched,
several steps deep, follow-ups from the menu and the objective), history folds into the model's
carry, and the episode is checkpointed per step on a thread.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from agentwm.agents.textworld.train import load_model
from agentwm.envs.textworld import TextWorldEnv, make_game
from agentwm.graph import build_planning_graph
from agentwm.graph.text_env import play_text_env
from agentwm.text.embeddings import TextEmbedder
from agentwm.worldmodels.text_learned import LearnedTextWorldModel

MODEL = Path(__file__).resolve().parents[1] / "models" / "textworld-minilm-gru" / "world_model"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--game", type=Path, help="a TextWorld game file (.z8/.ulx); default: generate one")
parser.add_argument("--horizon", type=int, default=3, help="imagined steps per candidate")
args = parser.parse_args()
game = args.game or make_game("quest5", 3500, tempfile.mkdtemp(prefix="tw-"))

world_model = LearnedTextWorldModel(load_model(MODEL), TextEmbedder())
graph = build_planning_graph(world_model=world_model).compile(checkpointer=InMemorySaver())
env = TextWorldEnv(game, max_steps=50)
try:
    episode = play_text_env(
        graph, env, context={"horizon": args.horizon, "gamma": world_model.gamma},
        config={"configurable": {"thread_id": "episode-1"}},
    )
finally:
    env.close()
print(f"won: {episode.won} in {episode.steps} steps, {1000 * episode.seconds / max(episode.steps, 1):.0f} ms/decision,"
      f" {episode.llm_calls} LLM calls, {episode.ties} arbitrary choices")
print(" > " + "\n > ".join(episode.commands))
