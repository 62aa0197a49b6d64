"""TextWorld agents that consult an LLM world model: the LLM alone (``llm_planner``) and the ``hybrid``.

Both rank the candidates of each decision by their imagined return through
:func:`agentwm.planning.ranking.rank`, in one ``imagine`` call (so a local chat model generates the
candidates' outcomes as one batch), and apply the loop penalty the learned agents use (0.5 per
earlier play of a command from the very same observation):

* ``llm_planner``: :class:`~agentwm.worldmodels.llm_outcome.LLMWorldModel` over a chat model
  (SmolLM2 by default) predicts each candidate's outcome; the imagined observation is rewarded by
  its MiniLM similarity to the objective. An LLM call per candidate, so the candidates are the
  ``candidates`` commands nearest the objective (the issue's graph used at most 8).
* ``hybrid``: :class:`~agentwm.worldmodels.composite.HybridWorldModel` over the learned model and
  the same LLM world model: the LLM is consulted only where the learned members' disagreement
  exceeds ``threshold``, for at most one candidate per decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agentwm.agents.textworld.agents import _LoopMemory, loop_adjusted, propose_by_objective
from agentwm.envs.text import TextStep, split_objective
from agentwm.worldmodels.base import State


class WorldModelAgent:
    """Ranks each decision's candidates with a text world model's imagined return (module docstring).

    Args:
        world_model: a text world model with ``observe(mapping, state, action)`` and ``imagine``.
        embedder: MiniLM, to keep the ``candidates`` commands nearest the objective.
        candidates: rank at most this many commands (``None``: the whole menu).
        horizon, gamma: imagined steps and their discount.
        loop_penalty: subtracted per earlier play of a command from the very same observation.
    """

    def __init__(self, world_model: Any, embedder: Any, *, candidates: int | None = 8, horizon: int = 1,
                 gamma: float = 0.85, loop_penalty: float = 0.5) -> None:
        if candidates is not None and candidates < 1:
            raise ValueError(f"candidates must be >= 1 or None, got {candidates}")
        self.world, self.embedder = world_model, embedder
        self.candidates, self.horizon, self.gamma, self.loop_penalty = candidates, horizon, gamma, loop_penalty
        self.llm_calls = 0
        self.state: State | None = None
        self.last: str | None = None
        self.goal: list[str] = []
        self.memory = _LoopMemory()

    def reset(self, first: TextStep) -> None:
        self.state, self.last, self.memory = None, None, _LoopMemory()
        self.goal = split_objective(first.objective)

    @torch.no_grad()
    def act(self, step: TextStep) -> str:
        from agentwm.planning.ranking import rank

        obs = {"observation": step.observation, "goal": step.objective, "admissible": list(step.admissible)}
        self.state = self.world.observe(obs, self.state, self.last)
        menu = propose_by_objective(self.embedder, list(step.admissible), self.goal, self.candidates)
        ranking = rank(self.world, self.state, menu, horizon=self.horizon, gamma=self.gamma)
        self.llm_calls += int(ranking.rollout.extras.get("llm_calls", 0))
        score = loop_adjusted(ranking.scores.float().cpu(), self.memory, step.observation, menu, self.loop_penalty, 1.0)
        choice = menu[int(score.argmax())]
        self.memory.add(step.observation, choice)
        self.last = choice
        return choice


def _llm_world_model(chat: Any, embedder: Any) -> Any:
    from agentwm.text.client import LLMClient
    from agentwm.text.scorers import EmbeddingRelevance
    from agentwm.worldmodels.llm_outcome import LLMWorldModel

    return LLMWorldModel(LLMClient(chat, retries=0), scorer=EmbeddingRelevance(embedder), propose_followups=False)


def make_llm_planner(chat: Any, embedder: Any, *, candidates: int | None = 8, gamma: float = 0.85) -> WorldModelAgent:
    """``llm_planner``: the LLM world model alone, horizon 1, the ``candidates`` commands nearest the objective."""
    return WorldModelAgent(_llm_world_model(chat, embedder), embedder, candidates=candidates, horizon=1, gamma=gamma)


def make_hybrid(chat: Any, embedder: Any, model: str | Path, *, threshold: float = 0.0055, llm_weight: float = 0.5,
                candidates: int | None = None) -> WorldModelAgent:
    """``hybrid``: the learned model (checkpoint ``model``), the LLM consulted for at most one
    candidate per decision where the members disagree by more than ``threshold`` (horizon 1)."""
    from agentwm.agents.textworld.direct import DirectScorer
    from agentwm.agents.textworld.train import load_model
    from agentwm.worldmodels.composite import HybridWorldModel
    from agentwm.worldmodels.text_learned import LearnedTextWorldModel

    net = load_model(model)
    if isinstance(net, DirectScorer):
        raise ValueError(f"{model} holds a direct scorer; the hybrid needs a world model checkpoint")  # noqa: TRY004 (a bad folder, as make_agent says)
    learned = LearnedTextWorldModel(net, embedder, loop_penalty=0.0)  # the agent applies the penalty once
    hybrid = HybridWorldModel(learned, _llm_world_model(chat, embedder), threshold=threshold, max_consults=1,
                              llm_steps=1, llm_weight=llm_weight)
    return WorldModelAgent(hybrid, embedder, candidates=candidates, horizon=1, gamma=learned.gamma)
