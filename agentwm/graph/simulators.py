"""Simulators: turn any world model into "simulate these candidates -> one :class:`Outcome` each".

A planning graph holds text candidates and plain-data observations; world models hold tensors or
text carries. A simulator bridges the two and nothing else: it builds the start state, imagines
each candidate with the world model, and reads the imagined returns off the model's ``Rollout``
(``Rollout.returns`` / :func:`agentwm.planning.rank`: the one implementation of the
return math). Scoring the samples and choosing happen in later nodes.

* :class:`LatentSimulator` wraps a tensor :class:`~agentwm.worldmodels.WorldModel` (RSSM,
  ensemble, …): candidate text -> action tensor through a user mapping, observation -> state
  through ``model.observe``; all candidates × samples are imagined in ONE batched call, so it is
  ``batched`` and the graph gives it every candidate in one task.
* :class:`TextSimulator` wraps a :class:`~agentwm.worldmodels.TextWorldModel` (an LLM predicting
  outcomes, a dialogue model): one ``imagine``/``aimagine`` call per candidate with the samples
  as its batch; not batched, so the graph fans candidates out with ``Send`` and their LLM latency
  overlaps.

Anything with the same four members (``name``, ``batched``, ``llm_calls_per_candidate``,
``simulate``/``asimulate``) is a :class:`Simulator` too, e.g. a composite of both.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import torch
from langchain_core.tools import BaseTool
from torch import Tensor

from agentwm.graph.context import PlanningContext
from agentwm.graph.state import Outcome
from agentwm.planning.ranking import Followup, Ranking, arank, rank
from agentwm.text.scorers import LLMJudge
from agentwm.worldmodels.base import State, TextWorldModel, WorldModel

ActionMap = Mapping[str, Tensor] | Callable[[str], Tensor]
"""Candidate text -> action tensor: ``[A]`` (a first action, continued by the follow-up) or
``[H, A]`` (a full sequence). A mapping's keys double as the graph's action menu."""


@dataclass(frozen=True)
class SimulationRequest:
    """Candidates to simulate from one situation, under one run's settings.

    Attributes:
        observation: the situation (text, or a nested list of numbers for latent models).
        goal: the goal text (may be empty).
        candidates: candidate actions, as text.
        indices: their positions in the decision's candidate list.
        settings: horizon, discount, samples and seed of this run.
        history: the episode so far (``{"observation", "action"}`` steps, oldest first).
        admissible: this step's action menu (the pool of a text model's own follow-ups).
    """

    observation: Any
    goal: str
    candidates: Sequence[str]
    indices: Sequence[int]
    settings: PlanningContext
    history: Sequence[Mapping[str, Any]] = ()
    admissible: Sequence[str] = ()

    def __post_init__(self) -> None:
        if len(self.candidates) != len(self.indices):
            raise ValueError(
                f"{len(self.candidates)} candidates but {len(self.indices)} indices; give one index per candidate"
            )


@runtime_checkable
class Simulator(Protocol):
    """What the simulate node needs from a world model."""

    name: str
    batched: bool
    """True: simulate all candidates in one call (one graph task); False: one task per candidate."""

    def llm_calls_per_candidate(self, settings: PlanningContext) -> int:
        """LLM calls one candidate's simulation is expected to cost (0 for latent models); the
        fan-out uses it to keep a decision within ``settings.llm_budget``."""
        ...

    def simulate(self, request: SimulationRequest) -> list[Outcome]:
        """One outcome per requested candidate, in order."""
        ...

    async def asimulate(self, request: SimulationRequest) -> list[Outcome]:
        """``simulate`` for event loops."""
        ...


WorldModelLike = WorldModel | TextWorldModel | Simulator
"""What a graph simulates with: a latent world model, a text world model, or a ready simulator (all protocols)."""


def failed_outcome(candidate: str, index: int, error: str, simulator: str = "") -> Outcome:
    """An outcome that records why a candidate could not be simulated (it is never chosen)."""
    return Outcome(
        candidate=candidate,
        index=index,
        returns=[],
        rewards=[],
        disagreement=None,
        steps=[],
        llm_calls=0,
        simulator=simulator,
        error=error[:500],
    )


# ----------------------------------------------------------------------------------------------
# Latent (tensor) world models


def _default_observe(model: WorldModel, device: torch.device | None) -> Callable[[Any], State]:
    def observe(observation: Any) -> State:
        try:
            obs = torch.as_tensor(observation, dtype=torch.float32, device=device)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                "a latent world model needs `observation` as a (nested) list of numbers in the graph state,"
                f" got {type(observation).__name__}; pass observe=... to build the state yourself"
            ) from exc
        return model.observe(obs.unsqueeze(0))

    return observe


class LatentSimulator:
    """Simulate text candidates with a tensor world model, all of them in one batched ``imagine``.

    Args:
        model: any :class:`~agentwm.worldmodels.WorldModel`.
        actions: candidate text -> action tensor (``[A]`` first actions or ``[H, A]`` sequences,
            one-hot rows for discrete specs); a mapping or a function. A candidate it does not
            know (an LLM invented it, the function raised) gets a failed outcome, not an error.
        observe: observation (plain data from the graph state) -> a start carry of batch 1;
            default ``model.observe(torch.tensor(observation)[None])``.
        followup: what follows a first action (see :func:`~agentwm.planning.rank`).
        device: where to put the default observation tensor and the actions.

    Example:
        >>> sim = LatentSimulator(model, {"left": torch.tensor([1.0, 0.0]), "right": torch.tensor([0.0, 1.0])})
        >>> request = SimulationRequest([0.0, 0.1, 0.0, 0.0], "", ["left", "right"], [0, 1], PlanningContext())
        >>> [o["returns"] for o in sim.simulate(request)]
    """

    name = "latent"
    batched = True

    def __init__(
        self,
        model: WorldModel,
        actions: ActionMap,
        *,
        observe: Callable[[Any], State] | None = None,
        followup: Followup = "random",
        device: torch.device | str | None = None,
    ) -> None:
        if not callable(getattr(model, "imagine", None)) or not callable(getattr(model, "observe", None)):
            raise TypeError(f"model must implement the WorldModel protocol, got {type(model).__name__}")
        if not (isinstance(actions, Mapping) or callable(actions)):
            raise TypeError(
                "actions must map candidate text to an action tensor: a dict {text: tensor} or a function,"
                f" got {type(actions).__name__}"
            )
        if isinstance(actions, Mapping):
            bad = [k for k, v in actions.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
            if bad or not actions:
                raise TypeError(f"actions must be a non-empty dict of str -> torch.Tensor; bad keys: {bad[:5]}")
        self.model = model
        self.actions = actions
        self.device = None if device is None else torch.device(device)
        self.observe = observe or _default_observe(model, self.device)
        self.followup = followup

    @property
    def menu(self) -> list[str]:
        """The candidate texts this simulator knows, when ``actions`` is a mapping."""
        return list(self.actions) if isinstance(self.actions, Mapping) else []

    def llm_calls_per_candidate(self, settings: PlanningContext) -> int:
        return 0

    def _action(self, candidate: str) -> Tensor:
        if isinstance(self.actions, Mapping):
            if candidate not in self.actions:
                known = ", ".join(repr(k) for k in list(self.actions)[:10])
                raise KeyError(f"unknown action {candidate[:80]!r}; known: {known}")
            return self.actions[candidate]
        action = self.actions(candidate)
        if not isinstance(action, Tensor):
            raise TypeError(f"the action function returned {type(action).__name__}, not a tensor")
        return action

    def simulate(self, request: SimulationRequest) -> list[Outcome]:
        settings = request.settings
        outcomes: dict[int, Outcome] = {}
        known: list[tuple[int, str, Tensor]] = []
        for i, candidate in zip(request.indices, request.candidates):
            try:
                known.append((i, candidate, self._action(candidate)))
            except Exception as exc:  # noqa: BLE001 - an unknown or unmappable candidate fails alone
                outcomes[i] = failed_outcome(candidate, i, f"{type(exc).__name__}: {exc}", self.name)
        if known:
            shapes = {tuple(a.shape) for _, _, a in known}
            if len(shapes) > 1:
                raise ValueError(f"all candidate actions must have one shape, got {sorted(shapes)}")
            state = self.observe(request.observation)
            stacked = torch.stack([a for _, _, a in known]).float()
            if self.device is not None:
                stacked = stacked.to(self.device)
            ranking = rank(
                self.model,
                state,
                stacked,
                horizon=settings.horizon if stacked.dim() == 2 else None,
                samples=settings.samples,
                gamma=settings.gamma,
                followup=self.followup,
                generator=settings.seed,
            )
            K, S = ranking.returns.shape
            rewards = ranking.rollout.rewards.reshape(-1, K, S).mean(-1).T  # [K, H]
            returns_list = ranking.returns.tolist()
            rewards_list = rewards.tolist()
            dis_list = None if ranking.disagreement is None else ranking.disagreement.tolist()
            for k, (i, candidate, _) in enumerate(known):
                outcomes[i] = Outcome(
                    candidate=candidate,
                    index=i,
                    returns=returns_list[k],
                    rewards=rewards_list[k],
                    disagreement=None if dis_list is None else dis_list[k],
                    steps=[],
                    llm_calls=0,
                    simulator=self.name,
                    error=None,
                )
        return [outcomes[i] for i in request.indices]

    async def asimulate(self, request: SimulationRequest) -> list[Outcome]:
        # Torch releases the GIL in its kernels; a worker thread keeps the event loop responsive.
        return await asyncio.to_thread(self.simulate, request)


# ----------------------------------------------------------------------------------------------
# Text world models


class TextSimulator:
    """Simulate text candidates with a :class:`~agentwm.worldmodels.TextWorldModel`.

    Each candidate is one ``imagine`` (``aimagine`` in async graphs) call whose batch holds the
    ``samples``; the model proposes follow-up actions itself after the candidate. A model with
    ``batched = True`` (a learned model, cheap per item: :class:`~agentwm.worldmodels.text_learned.LearnedTextWorldModel`)
    imagines all candidates × samples in ONE call instead, and the graph sends it one task.

    The start state (the documented way history reaches the model): ``model.observe`` is folded
    over ``request.history`` (each earlier observation after the action before it), then over the
    current observation after the last action; the goal goes in as ``goal=`` (or a ``"goal"``
    entry). When the step has an ``admissible`` menu, the current observation is given as a
    mapping ``{"observation", "goal", "admissible"}`` (every bundled text model reads it).

    Args:
        model: a text world model (``observe``, ``imagine``, ``aimagine``).
        make_state: ``(observation, goal) -> carry`` of batch 1, replacing the default above
            (history and menu are then yours to fold in).
        llm_calls_per_step: LLM calls per imagined step and sample, for budgeting; ``None``
            estimates an upper bound from the model (or its ``llm`` part, for a hybrid): 1 outcome
            call, plus 1 follow-up proposal between steps when ``settings.propose_followups`` is on,
            plus 1 when its scorer is an ``LLMJudge``. The actual count is read from ``rollout.extras["llm_calls"]``.

    Example:
        >>> sim = TextSimulator(my_text_world_model)
        >>> sim.simulate(SimulationRequest("door is locked", "leave the room", ["use key"], [0], PlanningContext()))
    """

    name = "text"
    batched = False

    def __init__(
        self,
        model: TextWorldModel,
        *,
        make_state: Callable[[Any, str], State] | None = None,
        llm_calls_per_step: int | None = None,
        batched: bool | None = None,
    ) -> None:
        for method in ("observe", "imagine", "aimagine"):
            if not callable(getattr(model, method, None)):
                raise TypeError(
                    f"model must implement the TextWorldModel protocol (observe, imagine, aimagine);"
                    f" {type(model).__name__} has no {method}()"
                )
        if llm_calls_per_step is not None and (
            isinstance(llm_calls_per_step, bool) or not isinstance(llm_calls_per_step, int) or llm_calls_per_step < 0
        ):
            raise ValueError(f"llm_calls_per_step must be an integer >= 0 or None, got {llm_calls_per_step!r}")
        self.model = model
        self.custom_state = make_state
        self.llm_calls_per_step = llm_calls_per_step
        self.batched = bool(getattr(model, "batched", False)) if batched is None else bool(batched)
        try:
            self._observe_takes_goal = "goal" in inspect.signature(model.observe).parameters
        except (TypeError, ValueError):
            self._observe_takes_goal = False

    def make_state(self, request: SimulationRequest) -> State:
        """The start carry of ``request`` (see the class docstring)."""
        if self.custom_state is not None:
            return self.custom_state(request.observation, request.goal)
        steps = [(str(s.get("observation", "")), str(s.get("action", ""))) for s in request.history]
        state: State | None = None
        action: str | None = None
        for obs, act in steps:
            state = self._observe(obs, state, action, request.goal)
            action = act
        current: Any = request.observation
        if request.admissible and isinstance(current, str):
            current = {"observation": current, "admissible": list(request.admissible)}
            if request.goal:
                current["goal"] = request.goal
        return self._observe(current, state, action, request.goal)

    def _observe(self, obs: Any, state: State | None, action: str | None, goal: str) -> State:
        observe: Any = self.model.observe
        if goal and self._observe_takes_goal:
            out = dict(observe(obs, state, action, goal=goal))  # LLMWorldModel.observe takes goal=
        else:
            out = dict(observe(obs, state, action) if state is not None else observe(obs))
        if goal and "goal" not in out:
            out["goal"] = [goal]
        return out

    def llm_calls_per_candidate(self, settings: PlanningContext) -> int:
        H, S = settings.horizon, settings.samples
        if self.llm_calls_per_step is not None:
            return self.llm_calls_per_step * H * S
        llm = self.model  # a composite (HybridWorldModel) consults its ``llm`` part
        if not hasattr(getattr(llm, "settings", None), "propose_followups"):
            llm = getattr(llm, "llm", llm)
        followups = bool(getattr(getattr(llm, "settings", None), "propose_followups", False))
        judge = isinstance(getattr(llm, "scorer", None), LLMJudge)
        return S * (H + (H - 1 if followups else 0) + (H if judge else 0))

    def _options(self, request: SimulationRequest) -> dict[str, Any]:
        settings = request.settings
        return {"horizon": settings.horizon, "samples": settings.samples, "gamma": settings.gamma}

    def _outcomes(
        self, ranking: Ranking, candidates: Sequence[str], indices: Sequence[int], settings: PlanningContext
    ) -> list[Outcome]:
        """One outcome per candidate of a ranking (``K`` candidates × ``S`` samples, rows ``[K, S]``)."""
        rollout = ranking.rollout
        K, S = ranking.returns.shape
        text = rollout.extras.get("text")
        fallbacks = rollout.extras.get("fallbacks")
        calls = rollout.extras.get("llm_calls")
        if isinstance(calls, Tensor):
            calls = int(calls.sum())
        if not isinstance(calls, int) or isinstance(calls, bool):
            calls = self.llm_calls_per_candidate(settings) * K
        per_item = rollout.extras.get("llm_calls_per_item")
        out = []
        for k, (candidate, index) in enumerate(zip(candidates, indices)):
            steps: list[str] = []
            if isinstance(text, Sequence):
                steps = [str(row[k * S]) if isinstance(row, Sequence) and len(row) > k * S else str(row) for row in text]
            if isinstance(per_item, Sequence) and len(per_item) == K * S:
                item_calls = int(sum(int(c) for c in per_item[k * S : (k + 1) * S]))
            else:
                item_calls = calls if k == 0 else 0  # the whole call's cost on its first candidate
            out.append(Outcome(
                candidate=candidate,
                index=index,
                returns=ranking.returns[k].tolist(),
                rewards=rollout.rewards[:, k * S : (k + 1) * S].mean(1).tolist(),
                disagreement=None if ranking.disagreement is None else float(ranking.disagreement[k]),
                steps=steps,
                llm_calls=item_calls,
                simulator=self.name,
                error=None,
                model_fallbacks=int(fallbacks) if isinstance(fallbacks, (int, float)) and k == 0 else 0,
            ))
        return out

    def simulate(self, request: SimulationRequest) -> list[Outcome]:
        if self.batched:
            ranking = rank(self.model, self.make_state(request), list(request.candidates), **self._options(request))
            return self._outcomes(ranking, request.candidates, request.indices, request.settings)
        out = []
        for i, candidate in zip(request.indices, request.candidates):
            ranking = rank(self.model, self.make_state(request), [candidate], **self._options(request))
            out.extend(self._outcomes(ranking, [candidate], [i], request.settings))
        return out

    async def asimulate(self, request: SimulationRequest) -> list[Outcome]:
        if self.batched:
            ranking = await arank(self.model, self.make_state(request), list(request.candidates), **self._options(request))
            return self._outcomes(ranking, request.candidates, request.indices, request.settings)

        async def one(i: int, candidate: str) -> list[Outcome]:
            ranking = await arank(self.model, self.make_state(request), [candidate], **self._options(request))
            return self._outcomes(ranking, [candidate], [i], request.settings)

        batches = await asyncio.gather(*(one(i, c) for i, c in zip(request.indices, request.candidates)))
        return [o for batch in batches for o in batch]


# ----------------------------------------------------------------------------------------------


def as_simulator(
    world_model: WorldModelLike,
    *,
    actions: ActionMap | None = None,
    observe: Callable[[Any], State] | None = None,
    followup: Followup = "random",
) -> Simulator:
    """The simulator for ``world_model``: a :class:`Simulator` as is, a tensor world model (it has
    an ``action_spec``) as a :class:`LatentSimulator` over ``actions``, a text world model (it has
    ``aimagine``) as a :class:`TextSimulator`.

    Raises:
        TypeError: a latent model without ``actions``, or an object that is none of the three.
    """
    if isinstance(world_model, Simulator):
        return world_model
    if hasattr(world_model, "action_spec") and callable(getattr(world_model, "imagine", None)):
        if actions is None:
            raise TypeError(
                "a latent world model needs `actions`: a dict {candidate text: action tensor} or a function"
                " text -> tensor, so text candidates can be imagined"
            )
        return LatentSimulator(cast(WorldModel, world_model), actions, observe=observe, followup=followup)
    if callable(getattr(world_model, "aimagine", None)):
        return TextSimulator(cast(TextWorldModel, world_model))
    raise TypeError(
        "world_model must be a WorldModel (with action_spec), a TextWorldModel (with aimagine) or a"
        f" Simulator, got {type(world_model).__name__}"
    )


def split_actions(actions: ActionMap | Sequence[str | BaseTool] | None) -> tuple[ActionMap | None, list[str]]:
    """``actions`` as (latent action mapping or ``None``, menu of candidate texts): a mapping is
    both, a function only the mapping, a list of texts (or LangChain tools, by name) only the menu.

    Raises:
        TypeError: anything else (a bare string, a list with other items).
    """
    if actions is None:
        return None, []
    if isinstance(actions, Mapping):
        return actions, list(actions)
    if callable(actions):
        return actions, []
    menu = [a.name if isinstance(a, BaseTool) else a for a in actions] if not isinstance(actions, str) else None
    if menu is None or not all(isinstance(a, str) for a in menu):
        raise TypeError(
            "actions must be a dict {text: tensor}, a function text -> tensor, or a list of texts or LangChain tools"
        )
    return None, menu


def mean_return(outcome: Outcome) -> float | None:
    """The mean sample return of an outcome (a preview for streaming), or ``None`` if it failed."""
    returns = outcome.get("returns") or []
    if not returns:
        return None
    value = math.fsum(returns) / len(returns)
    return value if math.isfinite(value) else None
