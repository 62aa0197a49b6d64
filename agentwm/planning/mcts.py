"""Monte Carlo tree search with pUCT (as in AlphaZero/MuZero) over any discrete-action world model.

The tree is grown one model step at a time through the protocol alone: expanding a node calls
``model.imagine(state tiled over its k actions, actions [1, k, ...], 1)`` once, which gives every
child its reward, continue probability, carry and, when the model supplies ``Rollout.values``, its
value ``V(s')``. So the same search runs over

* latent models with one-hot actions (:class:`~agentwm.worldmodels.muzero.MuZeroModel`, the
  ensemble, RSSM, the tabular model): the actions are ``model.action_spec``'s ``A`` one-hot rows;
* text world models (an LLM predicting outcomes, the learned text model): give ``actions=`` the
  root's candidate strings, or a function from a node's carry to its candidate strings; each
  expansion is then one ``imagine`` call over ``[[a_1, ..., a_k]]``. A text game's menu changes
  as it is played, so a list is the ROOT's menu only: deeper nodes expand the model's
  ``predicted_menu(carry)`` (one list per carry item; :class:`~agentwm.worldmodels.text_learned.LearnedTextWorldModel`
  has one), or the function's answer; reusing the root's list at every depth must be asked for
  with ``fixed_actions=True`` (a dialogue whose replies never change).

Priors come from the node's carry: a ``"policy_logits"`` entry ``[1, k]`` (MuZero's prediction
head puts it there) or, failing that, a uniform prior. At the root, Dirichlet noise is mixed into
the prior for exploration in self-play. Leaf values come from ``Rollout.values``; a model without
values can be given ``rollout_horizon > 0``, and the leaf is then scored by the discounted return
(``Rollout.returns``) of a rollout of that length under random actions (text models propose
their own follow-ups). Backed-up values use the node's reward and continue probability, and the
pUCT exploitation term uses Q values min-max normalised over the tree, so rewards of any scale work.

How the child carry is read from a one-step rollout: ``rollout.states`` is a mapping of
time-major entries (``[2, B, ...]`` tensors or ``[2][B]`` lists) or a sequence of two carries;
entry 1 is taken.

Example:
    >>> mcts = MCTS(model, simulations=50, gamma=0.997, dirichlet_alpha=0.25, generator=0)
    >>> result = mcts.plan(model.observe(obs))        # result.action [1, A], result.policy [1, A]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from agentwm.planning.base import (
    GeneratorLike,
    PlanCarry,
    PlanResult,
    check_float,
    check_generator,
    check_int,
    check_state_finite,
    make_generator,
    state_device,
)
from agentwm.worldmodels.base import ActionSpec, State, index_state, repeat_state, state_batch_size

TextCandidates = Sequence[str] | Callable[[State], Sequence[str]]
"""Candidate text actions: one fixed list, or a function from a node's carry (batch 1) to its list."""


@dataclass
class _Node:
    prior: float
    state: State | None = None
    reward: float = 0.0
    cont: float = 1.0
    value_estimate: float = 0.0
    visits: int = 0
    value_sum: float = 0.0
    actions: list[Any] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    is_root: bool = False

    @property
    def expanded(self) -> bool:
        return bool(self.children)

    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else self.value_estimate


class _MinMax:
    """Running bounds of the Q values seen in one tree, for normalising pUCT's exploitation term."""

    def __init__(self) -> None:
        self.low, self.high = math.inf, -math.inf

    def update(self, x: float) -> None:
        self.low, self.high = min(self.low, x), max(self.high, x)

    def normalise(self, x: float) -> float:
        return (x - self.low) / (self.high - self.low) if self.high > self.low else 0.5


@dataclass
class MCTSResult(PlanResult):
    """A :class:`PlanResult` with what search adds.

    Attributes:
        policy: ``[B, k]`` root visit-count distribution (MuZero's policy target).
        root_value: ``[B]`` the search's value of each root.
        chosen: per root, the action taken as given to the model (an index for one-hot models,
            the string for text models).
        q: ``[B, k]`` each root child's backed-up ``r + γ·c·V`` (0 past a root's own ``k``), e.g.
            to break ties in visit counts.
    """

    policy: Tensor = field(default_factory=lambda: torch.zeros(0))
    root_value: Tensor = field(default_factory=lambda: torch.zeros(0))
    chosen: list[Any] = field(default_factory=list)
    q: Tensor = field(default_factory=lambda: torch.zeros(0))


class MCTS:
    """pUCT tree search over a world model; see the module docstring.

    Args:
        model: any world model with ``imagine``; one-hot discrete ``action_spec`` unless ``actions``
            is given.
        simulations: tree expansions per decision.
        gamma: discount of backed-up returns.
        actions: text candidates for text world models: the root's list, or a function of the node
            carry (every node); see the module docstring for deeper nodes.
        fixed_actions: a list of ``actions`` is offered at every depth (the action set never changes).
        dirichlet_alpha: concentration of the root noise (MuZero: 0.25 for board games, 0.3 Atari).
        exploration_fraction: weight of the noise in the root prior; 0 turns noise off (evaluation).
        pb_c_base, pb_c_init: MuZero's pUCT constants ``c(N) = c_init + log((N + c_base + 1) / c_base)``.
        temperature: visit counts are raised to ``1 / temperature`` to pick the action; 0 picks
            the most visited.
        rollout_horizon: for models without values, score new leaves by a rollout this long (0: no
            rollout, the leaf value is 0).
        generator: RNG for noise, action sampling and rollouts (see ``GeneratorLike``).
    """

    def __init__(
        self,
        model: Any,
        *,
        simulations: int = 50,
        gamma: float = 0.997,
        actions: TextCandidates | None = None,
        fixed_actions: bool = False,
        dirichlet_alpha: float = 0.25,
        exploration_fraction: float = 0.25,
        pb_c_base: float = 19652.0,
        pb_c_init: float = 1.25,
        temperature: float = 0.0,
        rollout_horizon: int = 0,
        generator: GeneratorLike = None,
    ) -> None:
        if not callable(getattr(model, "imagine", None)):
            raise TypeError(f"model must have imagine(state, actions, horizon), got {type(model).__name__}")
        self.model = model
        self.text = actions is not None
        self.spec: ActionSpec | None = None
        if actions is None:
            spec = getattr(model, "action_spec", None)
            if not isinstance(spec, ActionSpec) or spec.kind != "discrete":
                raise ValueError(
                    "MCTS needs a discrete ActionSpec on the model, or text candidates via actions=..."
                )
            self.spec = spec
        elif not callable(actions):
            if isinstance(actions, str) or not actions or not all(isinstance(a, str) for a in actions):
                raise ValueError("actions must be a non-empty list of strings or a function returning one")
            actions = list(actions)
            if not fixed_actions and not callable(getattr(model, "predicted_menu", None)):
                raise ValueError(
                    "actions= is the root's list; deeper nodes need their own: give actions=function(carry) -> list,"
                    f" a model with predicted_menu(carry) ({type(model).__name__} has none), or fixed_actions=True"
                    " when the same actions apply at every depth"
                )
        self.candidates = actions
        self.fixed_actions = bool(fixed_actions)
        self.simulations = check_int("simulations", simulations)
        self.gamma = check_float("gamma", gamma, 0.0, 1.0)
        self.dirichlet_alpha = check_float("dirichlet_alpha", dirichlet_alpha, 0.0, math.inf, open_low=True)
        self.exploration_fraction = check_float("exploration_fraction", exploration_fraction, 0.0, 1.0)
        self.pb_c_base = check_float("pb_c_base", pb_c_base, 0.0, math.inf, open_low=True)
        self.pb_c_init = check_float("pb_c_init", pb_c_init, 0.0)
        self.temperature = check_float("temperature", temperature, 0.0)
        self.rollout_horizon = check_int("rollout_horizon", rollout_horizon, minimum=0)
        self._generator = check_generator(generator)
        self._seeded: dict[torch.device, torch.Generator | None] = {}

    # ------------------------------------------------------------------------------------------

    def plan(self, state: State, carry: PlanCarry | None = None) -> MCTSResult:
        """Search from each of the ``B`` roots in ``state``; ``carry`` is accepted and unused (the
        tree is rebuilt every decision, as in MuZero)."""
        batch = state_batch_size(check_state_finite(state))
        rng = self._rng(state_device(state))
        policies, values, chosen, indices, qs = [], [], [], [], []
        for b in range(batch):
            root = self._search(index_state(state, slice(b, b + 1)), rng)
            visits = torch.tensor([float(c.visits) for c in root.children])
            policy = visits / visits.sum()
            if self.temperature == 0.0:
                index = int(visits.argmax())
            else:
                weights = visits ** (1.0 / self.temperature)
                index = int(torch.multinomial(weights / weights.sum(), 1, generator=rng))
            policies.append(policy)
            qs.append(torch.tensor([self._q(c) for c in root.children]))
            values.append(root.value())
            chosen.append(root.actions[index])
            indices.append(index)
        k = max(len(p) for p in policies)
        policy_out = torch.zeros(batch, k)
        q_out = torch.zeros(batch, k)
        for b, (p, q) in enumerate(zip(policies, qs)):
            policy_out[b, : len(p)] = p
            q_out[b, : len(q)] = q
        action = torch.nn.functional.one_hot(torch.tensor(indices), k).float()
        root_value = torch.tensor(values)
        info = {"plan/root_value": root_value.mean(), "plan/policy_entropy": _entropy(policy_out).mean()}
        return MCTSResult(
            action=action, actions=action[None], score=root_value, carry=None, info=info,
            policy=policy_out, root_value=root_value, chosen=chosen, q=q_out,
        )

    # ------------------------------------------------------------------------------------------

    def _rng(self, device: torch.device) -> torch.Generator | None:
        if device not in self._seeded:
            self._seeded[device] = make_generator(self._generator, device)
        return self._seeded[device]

    @torch.no_grad()
    def _search(self, root_state: State, rng: torch.Generator | None) -> _Node:
        root = _Node(prior=1.0, state=root_state, is_root=True)
        stats = _MinMax()
        self._expand(root, stats, rng)
        self._add_noise(root, rng)
        for _ in range(self.simulations):
            node, path = root, [root]
            while node.expanded:
                node = self._select(node, stats)
                path.append(node)
            # A new leaf: its carry, reward and value are known from its parent's expansion.
            value = node.value_estimate
            self._expand(node, stats, rng)
            self._backup(path, value, stats)
        return root

    def _expand(self, node: _Node, stats: _MinMax, rng: torch.Generator | None) -> None:
        """One ``imagine`` call over every action of ``node``: children get carry, reward, value."""
        assert node.state is not None
        acts: list[Any]
        if self.text:
            acts = self._text_actions(node)
            if not acts:
                return  # no candidates: a terminal leaf
            given: Any = [acts]
        else:
            assert self.spec is not None
            acts = list(range(self.spec.dim))
            given = torch.eye(self.spec.dim, device=state_device(node.state))[None]
        k = len(acts)
        rollout = self.model.imagine(repeat_state(node.state, k), given, 1)
        nxt = _step_carry(rollout.states, 1)
        rewards, conts = rollout.rewards[0].float().tolist(), rollout.continues[0].float().tolist()
        if rollout.values is not None:
            values = rollout.values[0].float().tolist()
        elif self.rollout_horizon > 0:
            values = self._rollout_values(nxt, k, rng)
        else:
            values = [0.0] * k
        priors = _priors(node.state, k)
        node.actions = acts
        node.children = [
            _Node(
                prior=priors[i], state=index_state(nxt, slice(i, i + 1)), reward=rewards[i],
                cont=conts[i], value_estimate=values[i],
            )
            for i in range(k)
        ]
        # Unvisited children are ranked by their one-step estimate r + gamma * c * V(s'), which
        # the expansion gave for free, rather than by a constant.
        for child in node.children:
            stats.update(self._q(child))

    def _text_actions(self, node: _Node) -> list[Any]:
        """The candidates of a node: the function's, the root's list (at the root, or everywhere
        with ``fixed_actions``), else the model's predicted menu for the node's carry."""
        assert self.candidates is not None and node.state is not None
        if callable(self.candidates):
            return list(self.candidates(node.state))
        if node.is_root or self.fixed_actions:
            return list(self.candidates)
        predicted = self.model.predicted_menu(node.state)
        return list(predicted[0]) if predicted else []

    def _rollout_values(self, states: State, k: int, rng: torch.Generator | None) -> list[float]:
        """Discounted returns of ``rollout_horizon``-step rollouts from each child (random actions,
        or the text model's own follow-ups)."""
        H = self.rollout_horizon
        if self.text:
            rollout = self.model.imagine(states, [], H)
        else:
            assert self.spec is not None
            idx = torch.randint(self.spec.dim, (H, k), generator=rng, device=state_device(states))
            rollout = self.model.imagine(states, self.spec.one_hot(idx), H)
        return [float(v) for v in rollout.returns(self.gamma).tolist()]

    def _add_noise(self, root: _Node, rng: torch.Generator | None) -> None:
        if self.exploration_fraction == 0.0 or not root.children:
            return
        # torch's Dirichlet takes no generator; NumPy's does, seeded from ours for reproducibility.
        seed = int(torch.randint(2**62, (1,), generator=rng))
        noise = np.random.default_rng(seed).dirichlet([self.dirichlet_alpha] * len(root.children)).tolist()
        f = self.exploration_fraction
        for child, n in zip(root.children, noise):
            child.prior = (1 - f) * child.prior + f * n

    def _q(self, child: _Node) -> float:
        return child.reward + self.gamma * child.cont * child.value()

    def _select(self, node: _Node, stats: _MinMax) -> _Node:
        c = math.log((node.visits + self.pb_c_base + 1) / self.pb_c_base) + self.pb_c_init
        scale = c * math.sqrt(node.visits)
        best, best_score = node.children[0], -math.inf
        for child in node.children:
            q = stats.normalise(self._q(child))
            score = q + scale * child.prior / (1 + child.visits)
            if score > best_score:
                best, best_score = child, score
        return best

    def _backup(self, path: list[_Node], value: float, stats: _MinMax) -> None:
        for node in reversed(path):
            node.value_sum += value
            node.visits += 1
            stats.update(node.reward + self.gamma * node.cont * node.value())
            value = node.reward + self.gamma * node.cont * value


# ----------------------------------------------------------------------------------------------


def _step_carry(states: Any, t: int) -> State:
    """The carry at time ``t`` of a rollout's time-major states (see the module docstring)."""
    if isinstance(states, Mapping):
        out: dict[str, Any] = {}
        for key, value in states.items():
            if isinstance(value, Tensor) or (isinstance(value, Sequence) and not isinstance(value, str)):
                out[key] = value[t]
            else:
                out[key] = value
        return out
    if isinstance(states, Sequence) and not isinstance(states, str):
        step = states[t]
        if not isinstance(step, Mapping):
            raise TypeError(f"rollout.states[{t}] must be a carry mapping, got {type(step).__name__}")
        return step
    raise TypeError(
        "MCTS reads child carries from rollout.states: a mapping of time-major entries or a list of "
        f"carries, got {type(states).__name__}"
    )


def _priors(state: State, k: int) -> list[float]:
    """Softmax of the carry's ``policy_logits [1, k]``, or uniform."""
    logits = state.get("policy_logits") if isinstance(state, Mapping) else None
    if isinstance(logits, Tensor) and logits.shape[-1] == k:
        return [float(p) for p in torch.softmax(logits.reshape(-1, k)[0].float(), -1).tolist()]
    return [1.0 / k] * k


def _entropy(p: Tensor) -> Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(-1)
