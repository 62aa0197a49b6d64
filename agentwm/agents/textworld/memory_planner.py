"""Planning over the remembered map: the learned model's value, imagined several steps deep through an episodic memory.

:class:`MemoryPlanner` imagines, with a :class:`~agentwm.worldmodels.text_memory_model.MemoryWorldModel`,
each command of the menu and each plan the model proposes from its memory (a remembered walk to a
room seen earlier, then a command last offered there), all in one batched ``imagine`` call. Where
the memory knows the outcome (a move along a remembered edge) the imagined state is the real
remembered room folded into the latent; elsewhere the learned model predicts. A plan is scored by
the best of its imagined returns cut after 1..L steps (:func:`best_depth_return`, the planner's
scoring for deeper imagination) and each menu command by its best plan, less the loop penalty. So
the planner can head back to the room where an object was seen, or to an exit not tried yet,
instead of judging a move by a generic imagined room. The ``direct`` ablation cannot do this: it
imagines no next state to look through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from agentwm.agents.textworld.agents import _Embed, _LoopMemory, _Tracker, best_depth_return, loop_adjusted
from agentwm.agents.textworld.direct import DirectScorer
from agentwm.agents.textworld.objective_hint import ObjectiveHint
from agentwm.envs.text import TextStep, split_objective
from agentwm.envs.textworld import is_move, rebase_menu, room_name
from agentwm.worldmodels.base import State, repeat_state
from agentwm.worldmodels.text_latent import TextLatentModel
from agentwm.worldmodels.text_memory_model import MemoryWorldModel


class MemoryPlanner:
    """The learned planner with an episodic transition memory (module docstring).

    Args:
        model: a trained :class:`TextLatentModel`.
        embedder: its sentence embedder.
        depth: longest plan imagined (moves of a walk plus the command at its end); 1 is the
            horizon-1 planner with remembered outcomes. 2, the default: 4 and 6 played the same
            commands on 400 validation games (a longer walk is discounted by γ per step).
        loop_penalty: subtracted per earlier play of the same command from the same observation.
        room_of / is_move: how observations name rooms and which commands leave them (TextWorld's by default).
        rebase: how a remembered room's menu changes with what the player now carries (TextWorld's
            grammar by default, :func:`~agentwm.envs.textworld.rebase_menu`); ``None``: menus as remembered.
        revisit_discount: a plan cut where the memory knows it is back somewhere already visited with no
            progress since (``extras["revisit"]``: an undo walk, a no-op) is multiplied by this (1: off).
        rewards: remembered steps take the reward they really gave (:class:`MemoryWorldModel`); on by
            default (validation: 190 of 200 quest8 games with it, 181-184 without).
        prior: a ``direct`` scorer whose ``Q(h, command)`` is combined with each command's best plan
            score (geometric mean, as :class:`LearnedPlanner`'s ``prior``); ``None``: imagination alone.
        local_walks: also imagine each command here followed by a remembered walk
            (:meth:`MemoryWorldModel.plans`); off (validation did not support it, docs/textworld.md phase 5).
        noops: a command the memory saw change nothing here (:meth:`MemoryWorldModel.noops`) is worth
            exactly γ × the best other command's score (the same state, one step later), whatever the
            learned value or the prior says of it; on by default.
        objective_weight: each command's score times ``exp(w · similarity)`` to the objective's next
            unfinished sentence (:class:`~agentwm.agents.textworld.objective_hint.ObjectiveHint`, the
            ``objective_match`` rule as a score); 0, the default, leaves it out.
    """

    def __init__(
        self, model: TextLatentModel, embedder: _Embed, *, depth: int = 2, loop_penalty: float = 0.5,
        room_of: Callable[[str], str | None] = room_name, is_move: Callable[[str], bool] = is_move,
        rebase: Callable[[Sequence[str], Sequence[str]], Sequence[str]] | None = rebase_menu,
        revisit_discount: float = 1.0, rewards: bool = True, prior: DirectScorer | None = None,
        local_walks: bool = False, noops: bool = True, objective_weight: float = 0.0,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if not 0.0 <= revisit_discount <= 1.0:
            raise ValueError(f"revisit_discount must be in [0, 1], got {revisit_discount}")
        self.revisit_discount, self.local_walks, self.noops = revisit_discount, local_walks, noops
        self.objective_weight = objective_weight
        self.hint = ObjectiveHint(embedder) if objective_weight else None
        self.prior = None if prior is None else _Tracker(prior, embedder)
        self.world = MemoryWorldModel(model, embedder, room_of, is_move, rebase, rewards)
        self.depth, self.loop_penalty = depth, loop_penalty
        self.gamma = model.config.value_gamma
        self.llm_calls = 0
        self.state: State | None = None
        self.last: str | None = None
        self.memory = _LoopMemory()
        self.last_plans: list[tuple[list[str], float]] = []

    def reset(self, first: TextStep) -> None:
        goal = split_objective(first.objective, self.world.model.config.max_goal) or [first.objective]
        self.state = self.world.initial(goal)
        self.last = None
        if self.prior is not None:
            self.prior.reset(first)
        if self.hint is not None:
            self.hint.reset(first.objective)
        self.memory = _LoopMemory()

    @torch.no_grad()
    def scores(self, step: TextStep) -> tuple[list[str], Tensor]:
        """Menu commands and their scores (best imagined plan starting with each, less the loop penalty)."""
        state = self._observe(step)
        menu = list(step.admissible)
        plans = self.world.plans(state, self.depth, self.local_walks)
        H = max(len(p) for p in plans)
        rows = [[p[min(t, len(p) - 1)] for p in plans] for t in range(H)]  # short plans padded; their cuts stop at their length
        rollout = self.world.imagine(repeat_state(state, len(plans)), rows, H)
        weights = torch.where(rollout.extras["revisit"], self.revisit_discount, 1.0)
        per_plan = best_depth_return(rollout, self.gamma, torch.tensor([len(p) for p in plans]), weights)
        index = {c: i for i, c in enumerate(menu)}
        score = torch.full((len(menu),), -float("inf"))
        for p, s in zip(plans, per_plan.tolist()):
            i = index[p[0]]
            score[i] = max(float(score[i]), s)
        self.last_plans = [(p, s) for p, s in zip(plans, per_plan.tolist())]
        if self.prior is not None:  # two estimates of the same discounted value
            assert isinstance(self.prior.model, DirectScorer)
            q = self.prior.model.q_values(self.prior.observe(step), self.prior.embedder.embed(menu)[None])[0]
            score = (score.clamp(min=1e-4) * q.clamp(min=1e-4)).sqrt()
        if self.hint is not None:
            score = score * torch.exp(self.objective_weight * self.hint.similarity(menu))
        if self.noops:  # Bellman with an exact model: Q(s, no-op) = γ · max of the others' Q(s, ·)
            noop = self.world.noops(state, menu)
            if bool(noop.any()) and not bool(noop.all()):
                score = torch.where(noop, self.gamma * score[~noop].max(), score)
        return menu, loop_adjusted(score, self.memory, step.observation, menu, self.loop_penalty, 1.0)

    def _observe(self, step: TextStep) -> State:
        if self.state is None:
            raise RuntimeError("call reset(first_step) before act()")
        self.state = self.world.observe({"observation": step.observation, "admissible": step.admissible, "reward": step.reward}, self.state, self.last)
        return self.state

    def commit(self, step: TextStep, choice: str) -> None:
        """Record that ``choice`` was played at ``step`` (loop memory, the prior's and the hint's trackers)."""
        self.memory.add(step.observation, choice)
        self.last = choice
        if self.hint is not None:
            self.hint.played(choice)
        if self.prior is not None:
            self.prior.last = choice

    def act(self, step: TextStep) -> str:
        menu, score = self.scores(step)
        choice = menu[int(score.argmax())]
        self.commit(step, choice)
        return choice

    @torch.no_grad()
    def observe_played(self, step: TextStep, command: str) -> None:
        """Fold a step already played (``command`` chosen there) without imagining anything: after
        ``reset``, replaying an episode's steps this way leaves the agent exactly as playing them did
        (how a resumed LangGraph thread rebuilds the memory from its history)."""
        if command not in step.admissible:
            raise ValueError(f"command {command!r} is not on that step's menu")
        self._observe(step)
        if self.prior is not None:
            self.prior.observe(step)
        if self.hint is not None:
            self.hint.similarity(list(step.admissible))
        self.commit(step, command)
