"""Agents that play text games through the :class:`~agentwm.envs.text.TextEnv` protocol.

``LearnedPlanner`` imagines every admissible command several steps deep with the learned text
world model (follow-ups proposed by the model among the menu and the objective's sentences) and
ranks them through :func:`agentwm.planning.ranking.rank_candidates`. The ablations see the same
observations and history but never imagine: ``ObjectiveMatchAgent`` (the command most similar to
the next unfinished sentence of the objective), ``DirectAgent`` (a learned ``Q(h, command)``),
``RandomAgent`` and ``ReactiveAgent`` (an LLM's first guess). All learned agents share the same
loop avoidance: a command already played from the very same observation is penalised.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from agentwm.agents.textworld.direct import DirectScorer
from agentwm.agents.textworld.objective_hint import ObjectiveHint
from agentwm.agents.textworld.revisits import VisitMemory, revisit_adjusted
from agentwm.envs.text import TextStep, split_objective
from agentwm.envs.textworld import is_move, room_name
from agentwm.worldmodels.base import State
from agentwm.worldmodels.text_latent import TextLatentModel
from agentwm.worldmodels.text_memory import TransitionMemory


class TextAgent(Protocol):
    """Chooses one command of ``step.admissible``; ``reset`` at each episode's first step."""

    llm_calls: int

    def reset(self, first: TextStep) -> None: ...

    def act(self, step: TextStep) -> str: ...


class _Embed(Protocol):
    def embed(self, texts: Sequence[str]) -> Tensor: ...


class RandomAgent:
    """Uniform choice among the admissible commands."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.llm_calls = 0

    def reset(self, first: TextStep) -> None:
        pass

    def act(self, step: TextStep) -> str:
        return self.rng.choice(step.admissible)


class _LoopMemory:
    """Counts (observation, command) pairs and commands of this episode; repeating them is how agents loop."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.played: Counter[str] = Counter()

    def penalty(self, observation: str, commands: Sequence[str]) -> Tensor:
        return torch.tensor([float(self.seen[(observation, c)]) for c in commands])

    def plays(self, commands: Sequence[str]) -> Tensor:
        """Earlier plays of each command this episode, from any observation."""
        return torch.tensor([float(self.played[c]) for c in commands])

    def add(self, observation: str, command: str) -> None:
        self.seen[(observation, command)] += 1
        self.played[command] += 1


def loop_adjusted(score: Tensor, memory: _LoopMemory, observation: str, commands: Sequence[str], penalty: float, repeat_discount: float) -> Tensor:
    """Scores after loop avoidance: each earlier play of a command (anywhere) discounts its score by
    ``repeat_discount`` (one wasted step when it equals γ), and each earlier play from this very
    observation subtracts ``penalty``."""
    return score * repeat_discount ** memory.plays(commands) - penalty * memory.penalty(observation, commands)


class ObjectiveMatchAgent:
    """No imagination: play the command most similar to the next unfinished objective sentence.

    A sentence counts as actionable when some admissible command is at least ``threshold``
    similar to it; the earliest actionable sentence not yet done is the next step, and playing a
    command for it marks it (and every earlier sentence) done.
    """

    def __init__(self, embedder: _Embed, threshold: float = 0.45) -> None:
        self.embedder, self.threshold = embedder, threshold
        self.llm_calls = 0
        self.sentences: list[str] = []
        self.done = 0
        self.memory = _LoopMemory()

    def reset(self, first: TextStep) -> None:
        self.sentences = split_objective(first.objective)
        self.done = 0
        self.memory = _LoopMemory()

    def act(self, step: TextStep) -> str:
        menu = list(step.admissible)
        rest = self.sentences[self.done :]
        if not rest:
            return menu[0]
        sims = self.embedder.embed(menu) @ self.embedder.embed(rest).T  # [M, S]
        sims = sims - 0.5 * self.memory.penalty(step.observation, menu)[:, None]
        best_per_sentence = sims.max(0).values
        actionable = (best_per_sentence >= self.threshold).nonzero()
        j = int(actionable[0]) if len(actionable) else int(best_per_sentence.argmax())
        choice = menu[int(sims[:, j].argmax())]
        if len(actionable):
            self.done += j + 1
        self.memory.add(step.observation, choice)
        return choice


class _Tracker:
    """Keeps the learned model's carry up to date with what the agent saw and did."""

    def __init__(self, model: TextLatentModel, embedder: _Embed) -> None:
        self.model, self.embedder = model, embedder
        self.state: State | None = None
        self.last: str | None = None

    def reset(self, first: TextStep) -> None:
        goal = split_objective(first.objective, self.model.config.max_goal) or [first.objective]
        emb = self.embedder.embed(goal)[None]
        self.state = self.model.initial(1, emb, torch.ones(1, emb.shape[1]))
        self.last = None

    @torch.no_grad()
    def observe(self, step: TextStep) -> State:
        if self.state is None:
            raise RuntimeError("call reset(first_step) before act()")
        obs = self.embedder.embed([step.observation])
        act = None if self.last is None else self.embedder.embed([self.last])
        self.state = self.model.observe(obs, self.state, act)
        return self.state


class DirectAgent:
    """No imagination: the ``direct`` model's ``Q(h, command)`` picks the command."""

    def __init__(self, model: DirectScorer, embedder: _Embed, loop_penalty: float = 0.5, propose: int | None = None,
                 repeat_discount: float = 1.0, tried_discount: float = 1.0, objective_weight: float = 0.0) -> None:
        self.tracker = _Tracker(model, embedder)
        self.objective_weight = objective_weight  # the control for planners using the hint: Q × exp(w · similarity)
        self.hint = ObjectiveHint(embedder) if objective_weight else None
        self.tried_discount = tried_discount  # a control (docs/textworld.md, phase 5): the memory's rule without imagination
        self.tried: TransitionMemory | None = None
        self.before: str | None = None
        self.repeat_discount = repeat_discount
        self.direct = model
        self.propose = propose
        self.goal: list[str] = []
        self.loop_penalty = loop_penalty
        self.llm_calls = 0
        self.memory = _LoopMemory()

    def reset(self, first: TextStep) -> None:
        self.tracker.reset(first)
        self.memory = _LoopMemory()
        self.goal = split_objective(first.objective, self.direct.config.max_goal)
        self.tried = TransitionMemory(room_name, is_move)
        self.before = None
        if self.hint is not None:
            self.hint.reset(first.objective)

    @torch.no_grad()
    def act(self, step: TextStep) -> str:
        state = self.tracker.observe(step)
        menu = propose_by_objective(self.tracker.embedder, list(step.admissible), self.goal, self.propose)
        q = self.direct.q_values(state, self.tracker.embedder.embed(menu)[None])[0]
        if self.tried_discount != 1.0 and self.tried is not None:  # commands tried in this room that did not win
            if self.before is None or self.tracker.last is None:
                self.tried.start(step.observation, menu)
            else:
                self.tried.record(self.before, self.tracker.last, step.observation, menu, step.reward)
            self.before = step.observation
            failed = torch.tensor([self.tried.reward(self.tried.room, c) == 0.0 for c in menu])
            q = torch.where(failed, q * self.tried_discount, q)
        if self.hint is not None:
            q = q * torch.exp(self.objective_weight * self.hint.similarity(menu))
        score = loop_adjusted(q, self.memory, step.observation, menu, self.loop_penalty, self.repeat_discount)
        choice = menu[int(score.argmax())]
        self.memory.add(step.observation, choice)
        self.tracker.last = choice
        if self.hint is not None:
            self.hint.played(choice)
        return choice


def propose_by_objective(embedder: _Embed, menu: Sequence[str], goal: Sequence[str], k: int | None) -> list[str]:
    """The ``k`` menu commands most similar to any objective sentence (menu order kept); all when ``k`` is None.

    Knows nothing of order or progress: which of them comes next is the ranking's job."""
    if k is None or len(menu) <= k or not goal:
        return list(menu)
    sims = (embedder.embed(list(menu)) @ embedder.embed(list(goal)).T).max(1).values
    keep = set(torch.topk(sims, k).indices.tolist())
    return [m for i, m in enumerate(menu) if i in keep]


class GreedyFollowUp:
    """A follow-up policy inside imagination: the proposal with the best one-step imagined value."""

    def __init__(self, model: TextLatentModel, proposals: Tensor, gamma: float) -> None:
        self.model, self.proposals, self.gamma = model, proposals, gamma

    def __call__(self, state: State) -> Tensor:
        h = state["h"][:, :1]  # the first member proposes (cheaper than all; members then disagree on it)
        N, M = h.shape[0], self.proposals.shape[0]
        wide = {k: v.repeat_interleave(M, 0) for k, v in {**state, "h": h}.items() if isinstance(v, Tensor)}
        acts = self.proposals.repeat(N, 1)
        _, r, c, v = self.model.step(wide, acts)
        score = (r + self.gamma * c * v).mean(1).view(N, M)
        return self.proposals[score.argmax(1)]


def best_depth_return(rollout: Any, gamma: float, lengths: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
    """Per candidate ``[N]``: the best of its imagined returns cut (and bootstrapped by the value) after 1..H steps
    (after 1..``lengths[n]`` steps where given: rows padded past their own length; each cut multiplied by
    ``weights [H, N]`` where given).

    A follow-up can then only raise a candidate's score, never sink it: follow-ups are proposed
    from the current menu, which often lacks the command that comes next after the candidate.
    """
    r, c, v = rollout.rewards, rollout.continues, rollout.values
    H = r.shape[0]
    alive = torch.ones_like(r[0])
    partial = torch.zeros_like(r[0])
    best = torch.full_like(r[0], -float("inf"))
    for t in range(H):
        partial = partial + gamma**t * alive * r[t]
        alive = alive * c[t]
        cut = partial + gamma ** (t + 1) * alive * v[t]
        if weights is not None:
            cut = cut * weights[t]
        if lengths is not None:
            cut = torch.where(lengths > t, cut, torch.full_like(cut, -float("inf")))
        best = torch.maximum(best, cut)
    return best


class LearnedPlanner:
    """Imagination: rank every admissible command by its imagined return under the learned model.

    Args:
        model: a trained :class:`TextLatentModel`.
        embedder: sentence embedder (MiniLM) matching the model's training data.
        horizon: imagined steps per candidate (the first is the candidate, then follow-ups); 1,
            the default: deeper imagination with menu follow-ups did not beat it on the validation games.
        followups: ``"menu"`` (the current admissible commands), ``"menu+objective"`` (also the
            objective's sentences, so the model can imagine steps whose command is not on the
            menu yet) or ``"none"`` (horizon 1).
        loop_penalty: subtracted per earlier play of the same command from the same observation.
        repeat_discount: the score is multiplied by this per earlier play of the command this
            episode, from any observation (1: off); see :func:`loop_adjusted`.
        depth: ``"best"`` (default) scores the best of the imagined rollout's cuts after 1..H steps
            (:func:`best_depth_return`); ``"full"`` the whole rollout (``Rollout.returns``), which
            lost to horizon 1 on the validation games (menu follow-ups drag good candidates down).
        prior: a no-imagination scorer (:class:`DirectScorer`) whose ``Q(h, command)`` is combined
            with the imagined return (geometric mean); ``None`` ranks by imagination alone.
        max_candidates: rank at most this many commands (the first of the menu), ``None`` for all.
        propose: rank only the ``propose`` commands most similar to some objective sentence
            (:func:`propose_by_objective`), ``None`` for the whole menu.
        revisit_discount: the score of a candidate whose imagined next state is a state already
            visited this episode with no task progress since (:class:`VisitMemory`: imagined
            observation at least ``revisit_threshold`` similar, coverage within
            ``progress_tolerance``; with ``revisit_nearest`` only the visit nearest to the imagined
            observation counts) is multiplied by this (1: off; validation did not support it).
            Needs imagination.
        disagreement_penalty: subtracted per unit of the ensemble members' spread of imagined value
            (negative: a bonus); 0, the default: neither helped on the validation games.
    """

    def __init__(
        self, model: TextLatentModel, embedder: _Embed, *, horizon: int = 1, followups: str = "menu",
        loop_penalty: float = 0.5, max_candidates: int | None = None, propose: int | None = None,
        repeat_discount: float = 1.0, prior: DirectScorer | None = None, depth: str = "best",
        revisit_discount: float = 1.0, revisit_threshold: float = 0.9, progress_tolerance: float = 0.02,
        revisit_nearest: bool = False, disagreement_penalty: float = 0.0,
    ) -> None:
        if not 0.0 <= revisit_discount <= 1.0:
            raise ValueError(f"revisit_discount must be in [0, 1], got {revisit_discount}")
        self.revisit_discount, self.revisit_threshold, self.progress_tolerance = revisit_discount, revisit_threshold, progress_tolerance
        self.revisit_nearest, self.disagreement_penalty = revisit_nearest, disagreement_penalty
        self.visits = VisitMemory()
        self.last_revisit: Tensor | None = None
        if depth not in ("full", "best"):
            raise ValueError(f"depth must be 'full' or 'best', got {depth!r}")
        self.depth = depth
        if followups not in ("menu", "menu+objective", "none"):
            raise ValueError(f"followups must be 'menu', 'menu+objective' or 'none', got {followups!r}")
        self.tracker = _Tracker(model, embedder)
        self.horizon = 1 if followups == "none" else horizon
        self.followups, self.loop_penalty, self.max_candidates = followups, loop_penalty, max_candidates
        self.propose, self.repeat_discount = propose, repeat_discount
        self.prior = None if prior is None else _Tracker(prior, embedder)
        self.gamma = model.config.value_gamma
        self.llm_calls = 0
        self.memory = _LoopMemory()
        self.goal: list[str] = []
        self.last_ranking: Any = None

    def reset(self, first: TextStep) -> None:
        self.tracker.reset(first)
        if self.prior is not None:
            self.prior.reset(first)
        self.memory = _LoopMemory()
        self.visits = VisitMemory()
        self.goal = split_objective(first.objective, self.tracker.model.config.max_goal)

    @torch.no_grad()
    def scores(self, step: TextStep) -> tuple[list[str], Tensor]:
        """Candidates and their scores (imagined return minus the loop penalty), after observing ``step``."""
        from agentwm.planning.ranking import rank_candidates

        state = self.tracker.observe(step)
        self.visits.add(self.tracker.embedder.embed([step.observation])[0], state["cover"][0])
        menu = propose_by_objective(self.tracker.embedder, list(step.admissible)[: self.max_candidates], self.goal, self.propose)
        emb = self.tracker.embedder.embed(menu)
        proposals = emb
        if self.followups == "menu+objective" and self.goal:
            proposals = torch.cat([emb, self.tracker.embedder.embed(self.goal)])
        policy = GreedyFollowUp(self.tracker.model, proposals, self.gamma)
        ranking = rank_candidates(
            self.tracker.model, state, emb, horizon=self.horizon, gamma=self.gamma, followup=policy
        )
        self.last_ranking = ranking
        score = ranking.scores if self.depth == "full" or self.horizon == 1 else best_depth_return(ranking.rollout, self.gamma)
        if self.disagreement_penalty and ranking.disagreement is not None:
            score = score - self.disagreement_penalty * ranking.disagreement
        if self.prior is not None:  # geometric mean with the prior's Q: two estimates of the same discounted value
            prior_state = self.prior.observe(step)
            assert isinstance(self.prior.model, DirectScorer)
            q = self.prior.model.q_values(prior_state, emb[None])[0]
            score = (score.clamp(min=1e-4) * q.clamp(min=1e-4)).sqrt()
        rollout = ranking.rollout  # first imagined step: each candidate's predicted observation and coverage
        self.last_revisit = self.visits.revisit(rollout.extras["obs"][0], rollout.states[1]["cover"], self.progress_tolerance, self.revisit_nearest)
        score = revisit_adjusted(score, self.last_revisit, self.revisit_threshold, self.revisit_discount)
        return menu, loop_adjusted(score, self.memory, step.observation, menu, self.loop_penalty, self.repeat_discount)

    def act(self, step: TextStep) -> str:
        menu, score = self.scores(step)
        choice = menu[int(score.argmax())]
        self.memory.add(step.observation, choice)
        self.tracker.last = choice
        if self.prior is not None:
            self.prior.last = choice
        return choice


_NUMBER = re.compile(r"\d+")


class ReactiveAgent:
    """An LLM's first guess: the numbered menu in the prompt, the first number in the reply."""

    def __init__(self, chat_model: Any, max_tokens: int = 8) -> None:
        self.chat, self.max_tokens = chat_model, max_tokens
        self.llm_calls = 0
        self.history: list[str] = []
        self.fallbacks = 0

    def reset(self, first: TextStep) -> None:
        self.history = []

    def act(self, step: TextStep) -> str:
        menu = list(step.admissible)
        lines = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(menu))
        recent = "; ".join(self.history[-4:]) or "nothing yet"
        prompt = (
            f"You play a text game. Task: {step.objective}\nYou did: {recent}\nNow: {step.observation}\n"
            f"Commands:\n{lines}\nReply with the number of the best command only."
        )
        self.llm_calls += 1
        reply = self.chat.invoke(prompt)
        text = str(getattr(reply, "content", reply))
        found = _NUMBER.search(text)
        index = int(found.group()) - 1 if found else -1
        if not 0 <= index < len(menu):
            self.fallbacks += 1
            index = 0
        self.history.append(menu[index])
        return menu[index]
