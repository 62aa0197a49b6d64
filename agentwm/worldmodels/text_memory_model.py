"""Two world models in one: an episodic transition memory where it knows, the learned latent model elsewhere.

:class:`MemoryWorldModel` keeps a :class:`~agentwm.worldmodels.text_memory.TransitionMemory` of
the real steps of the episode beside a learned
:class:`~agentwm.worldmodels.text_latent.TextLatentModel`. In imagination, an item whose next
observation the memory knows (a move along a remembered edge, an outcome seen before) takes the
real remembered text: its embedding is folded into the latent as an observation (the model's
posterior), so the value head scores the real remembered room. Where the memory does not know, the
learned model predicts, as it always does. The result is the usual
:class:`~agentwm.worldmodels.base.Rollout`; ``extras["known"] [H, B]`` says which steps were remembered.

:meth:`MemoryWorldModel.plans` is the model's proposal of what to imagine several steps deep: each
command of the menu, and each remembered walk to another room (its first move on the menu) followed
by each command last offered there (taking an object seen earlier, trying an exit not taken yet).
It plays the role the predicted menu plays for a search: the commands that come after a move are
the destination's, which the memory has seen and the current menu lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from agentwm.worldmodels.base import Rollout, State
from agentwm.worldmodels.text_latent import TextLatentModel
from agentwm.worldmodels.text_learned import Embedder
from agentwm.worldmodels.text_memory import TransitionMemory

_LATENT = ("h", "goal", "goal_mask", "cover")


class MemoryWorldModel:
    """A :class:`TextLatentModel` completed by an episodic :class:`TransitionMemory` (module docstring).

    Args:
        model: the trained latent model.
        embedder: its sentence embedder (``embed(texts) -> [N, D]`` unit rows).
        room_of / is_move: how observations name rooms and which commands leave them
            (``agentwm.envs.textworld.room_name`` / ``is_move`` for TextWorld).
        rebase: ``rebase(menu then, menu now)``: the commands a room last seen with ``menu then`` offers
            now (what the player carries has changed: ``agentwm.envs.textworld.rebase_menu``); ``None``
            keeps remembered menus as they were.
        rewards: a remembered step also takes the reward it really gave, and a command already tried
            in the same room the best reward it gave there (the reward head's guess elsewhere): a
            command seen not to win is not imagined to win.

    Carry (batch ``B``): the latent model's tensors ``h``, ``goal``, ``goal_mask``, ``cover``; per item
    ``room`` (``None``: unknown, e.g. after an imagined move the memory does not know), ``text`` (the
    exact observation, ``None`` once predicted) and ``menu``; and the episode's ``memory``, shared by
    every item (it grows with real steps only).
    """

    def __init__(
        self, model: TextLatentModel, embedder: Embedder, room_of: Callable[[str], str | None], is_move: Callable[[str], bool],
        rebase: Callable[[Sequence[str], Sequence[str]], Sequence[str]] | None = None, rewards: bool = False,
    ) -> None:
        if not isinstance(model, TextLatentModel):
            raise TypeError(f"model must be a TextLatentModel, got {type(model).__name__}")
        self.model, self.embedder, self.is_move = model, embedder, is_move
        self.room_of, self.rebase, self.rewards = room_of, rebase, rewards
        self.gamma = model.config.value_gamma

    def _embed(self, texts: Sequence[str]) -> Tensor:
        return self.embedder.embed(list(texts)).float().cpu()

    # ---- carry
    def initial(self, goal: Sequence[str]) -> dict[str, Any]:
        """The carry before the first observation; ``goal`` is the objective's sentences."""
        if not goal:
            raise ValueError("goal needs at least one sentence")
        emb = self._embed(list(goal)[: self.model.config.max_goal])[None]
        latent = self.model.initial(1, emb, torch.ones(1, emb.shape[1]))
        return {**latent, "room": [None], "text": [None], "menu": [()], "memory": TransitionMemory(self.room_of, self.is_move)}

    @torch.no_grad()
    def observe(self, obs: Mapping[str, Any], state: State, action: str | None = None) -> dict[str, Any]:
        """Fold a real observation ``{"observation": text, "admissible": menu, "reward": r}`` (after ``action``,
        the command that led here, ``None`` at the episode's start) into the latent and the memory."""
        text, menu = str(obs["observation"]), tuple(obs.get("admissible", ()))
        if len(state["room"]) != 1:
            raise ValueError("observe() folds one real observation: the carry must have batch 1")
        memory: TransitionMemory = state["memory"]
        if action is None:
            memory.start(text, menu)
        else:
            before = state["text"][0]
            memory.record(before if before is not None else "", action, text, menu, float(obs.get("reward", 0.0)))
        act = None if action is None else self._embed([action])
        latent = self.model.observe(self._embed([text]), {k: state[k] for k in _LATENT}, act)
        memory.visit(text, latent["cover"][0])
        return {**latent, "room": [memory.room], "text": [text], "menu": [menu], "memory": memory}

    # ---- imagination
    @torch.no_grad()
    def imagine(self, state: State, actions: Sequence[Sequence[str]], horizon: int, tolerance: float = 0.02) -> Rollout:
        """Imagine ``actions[t][b]`` (text, time-major) for ``horizon`` steps, the remembered outcome where the
        memory knows it and the learned prediction elsewhere (members averaged, as the latent model's own).
        ``extras["revisit"] [H, B]``: the step reaches a remembered place already visited with the same
        coverage (within ``tolerance``): no progress since, so the steps there were wasted."""
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1 or len(actions) != horizon:
            raise ValueError(f"need horizon rows of actions, got horizon={horizon!r} and {len(actions)} rows")
        B = len(state["room"])
        if any(len(row) != B for row in actions):
            raise ValueError(f"every row of actions must have {B} texts (one per carry item)")
        memory: TransitionMemory = state["memory"]
        latent = {k: state[k] for k in _LATENT}
        rooms, texts = list(state["room"]), list(state["text"])
        rewards, conts, values, spread, known_rows, obs_rows, revisit_rows = [], [], [], [], [], [], []
        for row in actions:
            outcome = [memory.next(rooms[b], texts[b], a) for b, a in enumerate(row)]
            known = torch.tensor([o is not None for o in outcome])
            real = torch.zeros(B, self.model.config.emb_dim)
            if bool(known.any()):
                idx = known.nonzero().squeeze(1)
                real[idx] = self._embed([outcome[int(i)].text for i in idx])  # type: ignore[union-attr]
            stepped, r, c, v = self.model.step(latent, self._embed(row), real, known)
            latent = {k: stepped[k] for k in _LATENT}
            if self.rewards:  # the reward really seen: of this very outcome, else of the command in this room
                seen = [o.reward if o is not None else memory.reward(rooms[b], a) for b, (a, o) in enumerate(zip(row, outcome))]
                tried = torch.tensor([x is not None for x in seen])
                if bool(tried.any()):
                    value = torch.tensor([x if x is not None else 0.0 for x in seen]).clamp(0, 1)[:, None]
                    r = torch.where(tried[:, None], value.expand_as(r), r)
                    c = torch.where(tried[:, None] & (value < 1), torch.ones_like(c), c)
            for b, (a, o) in enumerate(zip(row, outcome)):
                if o is not None:
                    texts[b], rooms[b] = o.text, o.room
                else:  # predicted: the text is no longer exact; a move the memory does not know leaves the map
                    texts[b] = None
                    rooms[b] = None if self.is_move(a) else rooms[b]
            rewards.append(r.mean(1))
            conts.append(c.mean(1))
            values.append(v.mean(1))
            spread.append(v.std(1, unbiased=False))
            known_rows.append(known)
            revisit_rows.append(torch.tensor([
                t is not None and memory.revisited(t, latent["cover"][b], tolerance) for b, t in enumerate(texts)
            ]))
            obs_rows.append(stepped["pred_obs"].mean(1))
        return Rollout(
            states=[state, {**latent, "room": rooms, "text": texts, "memory": memory}],
            rewards=torch.stack(rewards), continues=torch.stack(conts), values=torch.stack(values),
            extras={"disagreement": torch.stack(spread), "known": torch.stack(known_rows), "revisit": torch.stack(revisit_rows), "obs": torch.stack(obs_rows)},
        )

    def noops(self, state: State, commands: Sequence[str]) -> Tensor:
        """``[len(commands)]`` bool: which commands the memory saw change nothing from item 0's room with its
        current menu (:meth:`TransitionMemory.noop`); playing one only delays the best other plan by a step."""
        memory: TransitionMemory = state["memory"]
        room, menu = state["room"][0], state["menu"][0]
        return torch.tensor([memory.noop(room, c, menu) for c in commands], dtype=torch.bool)

    def plans(self, state: State, depth: int, local_walks: bool = False) -> list[list[str]]:
        """Command sequences worth imagining from item 0 of the carry (module docstring): each menu command,
        then each remembered walk of at most ``depth`` moves, alone and followed by each command last
        offered at its end (other than moves the memory knows: those are walks of their own); with
        ``local_walks`` also each command here that is not a move followed by each walk of at most
        ``depth - 1`` moves (``take X`` then the way to where X goes)."""
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        memory: TransitionMemory = state["memory"]
        menu, room = list(state["menu"][0]), state["room"][0]
        out = [[c] for c in menu]
        if room is None or depth < 2:
            return out
        on_menu = set(menu)
        for dest, walk in memory.routes(room, depth).items():
            if walk[0] not in on_menu:
                continue
            if len(walk) > 1:
                out.append(walk)
            if len(walk) < depth:
                there = memory.menu(dest)
                if self.rebase is not None:
                    there = tuple(self.rebase(there, menu))
                out.extend([*walk, c] for c in there if not (self.is_move(c) and (dest, c) in memory.edges))
        if local_walks:
            walks = [w for w in memory.routes(room, depth - 1).values() if w[0] in on_menu]
            out.extend([c, *w] for c in menu if not self.is_move(c) for w in walks)
        return out
