"""MCTS for text games over the learned world model: the root's real menu, deeper nodes their own action sets.

:class:`MCTSAgent` plays a :class:`~agentwm.envs.text.TextEnv` with
:class:`agentwm.planning.mcts.MCTS` (pUCT) over
:class:`~agentwm.worldmodels.text_learned.LearnedTextWorldModel`. At the root the candidates are
the game's admissible commands; a node deeper in the tree expands its own set, the model's
``predicted_menu``: the current menu plus the objective's sentences (``followups="menu+objective"``),
less the commands already imagined on its path (the model predicts no new command text, and the
objective names steps whose command is not on the menu yet). Leaves are valued by the model's
progress value ``V`` and backed up as ``r + γ·c·V``; the loop penalty of the other learned agents
(0.5 per earlier play of a command from the very same observation) lowers the root children's
reward. The command played is the most visited root child, ties broken by its backed-up value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from agentwm.envs.text import TextStep
from agentwm.planning.mcts import MCTS
from agentwm.worldmodels.base import State
from agentwm.worldmodels.text_latent import TextLatentModel
from agentwm.worldmodels.text_learned import Embedder, FollowupPool, LearnedTextWorldModel


class MCTSAgent:
    """pUCT search over the learned text world model with per-node action sets (module docstring).

    Args:
        model: a trained :class:`TextLatentModel` (``models/textworld-minilm-gru/world_model``).
        embedder: the sentence embedder the model was trained with.
        simulations: tree expansions per decision (each is one batched model step over a node's set);
            32 won 39 of 40 validation games (8: 37, the one-step planner: 37).
        followups: the pool of deeper nodes: ``"menu+objective"`` or ``"menu"``.
        loop_penalty: subtracted from the root reward of a command already played from this observation.
        pb_c_init: pUCT's exploration constant (higher: more visits to less valued commands).
        max_candidates: search at most this many root commands (the first of the menu), ``None`` for all.

    Example:
        >>> agent = MCTSAgent(load_model("models/textworld-minilm-gru/world_model"), TextEmbedder())
        >>> agent.reset(step); agent.act(step)   # one of step.admissible
    """

    def __init__(
        self, model: TextLatentModel, embedder: Embedder, *, simulations: int = 32,
        followups: FollowupPool = "menu+objective", loop_penalty: float = 0.5, pb_c_init: float = 1.25,
        max_candidates: int | None = None,
    ) -> None:
        if max_candidates is not None and max_candidates < 1:
            raise ValueError(f"max_candidates must be >= 1 or None, got {max_candidates}")
        self.world = LearnedTextWorldModel(model, embedder, followups=followups, loop_penalty=loop_penalty)
        self.max_candidates = max_candidates
        self.search = MCTS(
            self.world, simulations=simulations, gamma=self.world.gamma, actions=self._actions,
            exploration_fraction=0.0, pb_c_init=pb_c_init, generator=0,
        )
        self.llm_calls = 0
        self.state: State | None = None
        self.last: str | None = None
        self.last_result: Any = None

    def _actions(self, state: State) -> Sequence[str]:
        """A node's candidates: the real menu at the root (empty path), else the model's predicted set."""
        if not state["path"][0]:
            return list(state["menu"][0])[: self.max_candidates]
        return self.world.predicted_menu(state)[0]

    def reset(self, first: TextStep) -> None:
        self.state, self.last = None, None

    @torch.no_grad()
    def act(self, step: TextStep) -> str:
        if not step.admissible:
            raise ValueError("the step has no admissible commands (the episode is over?)")
        obs = {"observation": step.observation, "admissible": list(step.admissible), "goal": step.objective}
        self.state = self.world.observe(obs, self.state, self.last)
        result = self.search.plan(self.state)
        self.last_result = result
        self.last = _most_visited(result.policy[0], result.q[0], result.chosen[0], self._actions(self.state))
        return self.last


def _most_visited(policy: Tensor, q: Tensor, chosen: str, actions: Sequence[str]) -> str:
    """The most visited root command; among equally visited ones, the highest backed-up value."""
    k = len(actions)
    visits, values = policy[:k], q[:k]
    tied = (visits == visits.max()).nonzero().flatten()
    if len(tied) == 1:
        return chosen
    return actions[int(tied[values[tied].argmax()])]
