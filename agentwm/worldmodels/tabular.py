"""A count-based world model of a task with finitely many states and actions (Dyna's model).

The model keeps, for every ``(s, a, s')``, how often the transition was seen, the summed reward
and how many of those times the episode ended. From these it gives the maximum-likelihood
next-state distribution, the mean reward and the continue probability of each transition, which
is exact for deterministic tasks (Taxi, FrozenLake without slip) and converges for stochastic ones
(slippery FrozenLake).

It implements the :class:`~agentwm.worldmodels.base.WorldModel` protocol, so the same planners and
search (random shooting, MCTS) run over it as over the learned latent models. The state is the
integer observation, ``{"obs": LongTensor [B]}``; actions are one-hot rows.

Pairs ``(s, a)`` never tried have no data: imagination keeps the state, gives reward
``unknown_reward`` and continue 1, and marks the step in ``extras["known"] [H, B]`` (False), so a
planner can tell a guess from a fact.

Dyna's inner loop samples thousands of single transitions per second, so :meth:`TabularModel.sample`
works on NumPy views of the count tables (the tables themselves are torch buffers, so ``state_dict``
and safetensors checkpoints hold the whole model).

Example::

    model = TabularModel(16, 4)
    model.update(0, 2, 0.0, 1, terminated=False)
    rollout = model.imagine(model.observe([0]), torch.eye(4)[[[2]]], 1)   # actions [H=1, B=1, A=4]
    rollout.states["obs"]                                                 # tensor([[0], [1]])
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from agentwm.worldmodels.base import (
    ActionsOrPolicy,
    ActionSpec,
    Rollout,
    State,
    check_tensor,
    resolve_actions,
)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class TabularModel(nn.Module):
    """Maximum-likelihood tabular model of ``(s, a) -> (r, s', continue)``.

    Args:
        n_states: number of discrete observations ``S``.
        n_actions: number of discrete actions ``A``.
        unknown_reward: reward imagined for a pair never tried (0 by default; an optimistic value
            turns planning over the model into exploration, as in R-max).
    """

    counts: Tensor
    reward_sum: Tensor
    terminal_count: Tensor

    def __init__(self, n_states: int, n_actions: int, unknown_reward: float = 0.0) -> None:
        super().__init__()
        self.n_states = _positive_int("n_states", n_states)
        self.n_actions = _positive_int("n_actions", n_actions)
        self.unknown_reward = float(unknown_reward)
        shape = (n_states, n_actions, n_states)
        self.register_buffer("counts", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("reward_sum", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("terminal_count", torch.zeros(shape, dtype=torch.float64))
        self._outcomes: dict[tuple[int, int], list[int]] = {}
        self._seen: list[tuple[int, int]] = []
        self.register_load_state_dict_post_hook(  # type: ignore[no-untyped-call]
            lambda module, keys: module._reindex()
        )

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec("discrete", self.n_actions)

    # ------------------------------------------------------------------------------------------
    # Learning: count what happened.

    def _check_pair(self, s: int, a: int) -> None:
        if not 0 <= s < self.n_states:
            raise ValueError(f"state must lie in [0, {self.n_states}), got {s}")
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action must lie in [0, {self.n_actions}), got {a}")

    def update(self, s: int, a: int, reward: float, next_s: int, terminated: bool) -> None:
        """Record one real transition. ``terminated`` is gymnasium's flag (not a time-limit cut)."""
        s, a, next_s = int(s), int(a), int(next_s)
        self._check_pair(s, a)
        if not 0 <= next_s < self.n_states:
            raise ValueError(f"next state must lie in [0, {self.n_states}), got {next_s}")
        counts = self.counts.numpy()
        if counts[s, a].sum() == 0:
            self._seen.append((s, a))
        if counts[s, a, next_s] == 0:
            self._outcomes.setdefault((s, a), []).append(next_s)
        counts[s, a, next_s] += 1
        self.reward_sum.numpy()[s, a, next_s] += reward
        self.terminal_count.numpy()[s, a, next_s] += float(terminated)

    def _reindex(self) -> None:
        """Rebuild the sampling indexes from the count tables (after ``load_state_dict``)."""
        counts = self.counts.numpy()
        self._outcomes = {}
        for s, a, s2 in zip(*np.nonzero(counts)):
            self._outcomes.setdefault((int(s), int(a)), []).append(int(s2))
        self._seen = list(self._outcomes)

    @property
    def seen(self) -> Sequence[tuple[int, int]]:
        """The ``(s, a)`` pairs tried at least once, in the order they were first tried."""
        return self._seen

    def known(self, s: int, a: int) -> bool:
        """Whether ``(s, a)`` was ever tried."""
        return (int(s), int(a)) in self._outcomes

    def sample(self, s: int, a: int, rng: random.Random) -> tuple[float, int, float]:
        """One imagined transition from a tried pair: ``(reward, next_state, continue_probability)``.

        Raises:
            KeyError: ``(s, a)`` was never tried.
        """
        outcomes = self._outcomes.get((s, a))
        if outcomes is None:
            raise KeyError(f"(state {s}, action {a}) was never tried; sample only pairs in model.seen")
        counts = self.counts.numpy()[s, a]
        if len(outcomes) == 1:
            s2 = outcomes[0]
        else:
            s2 = rng.choices(outcomes, weights=[float(counts[o]) for o in outcomes])[0]
        n = float(counts[s2])
        reward = float(self.reward_sum.numpy()[s, a, s2]) / n
        cont = 1.0 - float(self.terminal_count.numpy()[s, a, s2]) / n
        return reward, s2, cont

    # ------------------------------------------------------------------------------------------
    # Protocol.

    def initial(self, batch_size: int) -> dict[str, Tensor]:
        """State 0 for every row: ``{"obs": zeros [B]}``."""
        return {"obs": torch.zeros(_positive_int("batch_size", batch_size), dtype=torch.long)}

    def observe(self, obs: Any, state: State | None = None, action: Tensor | None = None) -> dict[str, Tensor]:
        """Integer observations (an int, a list, an array or a tensor of ``B`` ints) → ``{"obs": [B]}``."""
        x = torch.as_tensor(np.asarray(obs)).reshape(-1)
        if x.is_floating_point() or x.dtype == torch.bool:
            raise TypeError(f"obs must be integer state ids, got dtype {x.dtype}")
        x = x.long()
        if x.numel() == 0 or int(x.min()) < 0 or int(x.max()) >= self.n_states:
            raise ValueError(f"obs must be non-empty state ids in [0, {self.n_states}), got {x.tolist()}")
        return {"obs": x}

    def imagine(
        self,
        state: State,
        actions: ActionsOrPolicy,
        horizon: int | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """Sample ``H`` steps from ``state["obs"] [B]`` under one-hot ``actions [H, B, A]`` or a policy.

        Returns a :class:`Rollout` with ``states={"obs": [H+1, B]}``, mean ``rewards``, the
        ``continues`` probability of each sampled transition, and ``extras["known"] [H, B]``.
        """
        if not isinstance(state, Mapping) or "obs" not in state:
            raise ValueError("state must be a mapping with 'obs' [B]; build it with observe()")
        obs = state["obs"]
        if not isinstance(obs, Tensor) or obs.dim() != 1 or obs.is_floating_point():
            raise ValueError("state['obs'] must be an integer tensor [B]; build it with observe()")
        batch, A = int(obs.shape[0]), self.n_actions
        given, policy, horizon = resolve_actions(actions, self.action_spec, horizon, batch)
        counts = self.counts.float()
        totals = counts.sum(-1)  # [S, A]
        path, rewards, continues, known, taken = [obs], [], [], [], []
        s = obs.long()
        for t in range(horizon):
            if given is not None:
                act = given[t]
            else:
                assert policy is not None
                act = check_tensor("policy(state)", policy({"obs": s}), [batch, A])
            taken.append(act)
            a = act.argmax(-1)
            n = totals[s, a]
            seen = n > 0
            probs = torch.where(seen[:, None], counts[s, a], torch.zeros_like(counts[s, a]))
            probs[~seen, s[~seen]] = 1.0  # untried: stay put
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            c = self.counts[s, a, nxt].clamp_min(1.0)
            r = torch.where(seen, self.reward_sum[s, a, nxt] / c, torch.full_like(c, self.unknown_reward))
            cont = torch.where(seen, 1.0 - self.terminal_count[s, a, nxt] / c, torch.ones_like(c))
            rewards.append(r.float())
            continues.append(cont.float())
            known.append(seen)
            s = nxt
            path.append(s)
        return Rollout(
            states={"obs": torch.stack(path)},
            rewards=torch.stack(rewards),
            continues=torch.stack(continues),
            actions=torch.stack(taken).float(),
            extras={"known": torch.stack(known)},
        )
