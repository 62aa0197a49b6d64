"""A hybrid world model: a learned latent model where it knows, an LLM where it does not.

A learned ensemble (:class:`~agentwm.worldmodels.ensemble.EnsembleDynamics`) is fast and, on the
states it was trained on, accurate; its members' disagreement tells where it is guessing. An LLM
(:class:`~agentwm.worldmodels.llm_outcome.LLMWorldModel`) is slow and costly but knows something about
every state it can read. :class:`HybridWorldModel` uses each where it is strong:

* ``mode="latent_first"``: the latent model imagines every item; only items whose disagreement
  (``uncertainty`` over the horizon: mean or max) exceeds ``threshold`` are also imagined by the
  LLM (at most ``max_consults``, most uncertain first), and their rewards and continues become
  ``(1 - llm_weight) * latent + llm_weight * llm``. Confident items cost no LLM call.
* ``mode="llm_first"``: the LLM imagines every item and proposes the follow-up actions; the latent
  model then replays those actions and scores them. Where the latent model is confident its scores
  stand (weight 0 on the LLM); where it disagrees above ``threshold`` the blend uses ``llm_weight``.

An item the latent model cannot replay (an action ``action_of`` cannot map, or no action at the
first step) is scored by the LLM alone (weight 1) in either mode. Rewards of the two models are
brought to one scale with ``latent_reward_scale`` and ``llm_reward_scale`` before blending.

The latent model may also be a learned TEXT world model that reports disagreement
(:class:`~agentwm.worldmodels.text_learned.LearnedTextWorldModel`, which embeds text itself):
then no bridge is needed, it observes the same texts (and menus) as the LLM, imagines the same
text rows with its own follow-ups, and its values bootstrap the blended rollout. With
``llm_steps=1`` and ``max_consults=1`` a decision that imagines all candidates in one call costs
at most one LLM call, and none where the learned model is sure.

Otherwise the bridge between text and tensors is three callables given to the constructor:

* ``encode_obs(text) -> Tensor [D]``: the latent model's observation for a text observation. Not
  needed when observations come with their vector: ``observe({"observation": texts, "latent": obs})``.
* ``action_of(text) -> Tensor [A] | None``: the latent action (a one-hot row for discrete specs) for
  a text action, or ``None`` when the text names no action the latent model knows.
* ``describe(obs) -> str`` (optional): text for a latent predicted observation ``[D]`` (read from
  ``rollout.states["obs"]``), so items the LLM never saw still get ``extras["text"]``.

Where text action rows run out (``latent_first``), the latent model continues with
``latent_policy`` (a :data:`~agentwm.worldmodels.base.Policy`) when given, else repeats each item's
last mapped action; the LLM, when consulted, proposes its own follow-ups.

The carry is the LLM model's text carry plus the latent carry, flattened as ``"latent:<key>"``
tensors so the planners' :func:`~agentwm.worldmodels.base.repeat_state` tiles it.

Example (BabyAI-style, with a learned ensemble over flat observations)::

    hybrid = HybridWorldModel(
        ensemble, LLMWorldModel(client, scorer=EmbeddingRelevance()),
        encode_obs=lambda text: featurise(text),                  # or observe({"latent": obs, ...})
        action_of=lambda text: ACTIONS.get(text.strip().lower()),  # one-hot rows, None if unknown
        describe=lambda vec: render(vec),
        mode="latent_first", threshold=0.05, llm_weight=0.5,
    )
    state = hybrid.observe({"observation": [text], "latent": obs[None]}, goal=mission)
    rollout = hybrid.imagine(repeat_state(state, 3), [["turn left", "move forward", "pick up"]], 5)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from agentwm.core.aio import run_sync
from agentwm.worldmodels.base import Policy, Rollout, State, TextActions, WorldModel, index_state
from agentwm.worldmodels.llm_outcome import LLMWorldModel

HybridMode = Literal["latent_first", "llm_first"]
"""``latent_first``: consult the LLM only where the latent model is unsure; ``llm_first``: the LLM
proposes and imagines, the latent model verifies and scores. See the module docstring."""

_LATENT = "latent:"


class HybridSettings(BaseModel):
    """Validated settings of :class:`HybridWorldModel` (also accepted as keyword arguments)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: HybridMode = Field(default="latent_first", description="which model leads; see the module docstring")
    threshold: float = Field(
        default=0.1, ge=0.0, description="latent disagreement above which an item is uncertain"
    )
    llm_weight: float = Field(
        default=0.5, ge=0.0, le=1.0, description="weight of the LLM's rewards/continues on uncertain items"
    )
    uncertainty: Literal["mean", "max"] = Field(
        default="mean", description="how an item's disagreement [H] is reduced to one number"
    )
    max_consults: int | None = Field(
        default=None, ge=0, description="latent_first: at most this many items per call go to the LLM"
    )
    llm_steps: int | None = Field(
        default=None, ge=1,
        description="latent_first: the LLM imagines only this many first steps of a consulted item (None: all)",
    )
    latent_reward_scale: float = Field(default=1.0, gt=0.0, description="latent rewards are multiplied by this")
    llm_reward_scale: float = Field(default=1.0, gt=0.0, description="LLM rewards are multiplied by this")


class HybridWorldModel:
    """A latent world model and an LLM world model behind one text world-model interface.

    Args:
        latent: a world model over tensors whose rollouts report ``extras["disagreement"] [H, B]``
            (e.g. ``EnsembleDynamics``; ``disagreement=True`` is passed to ``imagine`` when it takes it),
            or a learned text world model that reports it (no ``action_of``/``encode_obs`` then).
        llm: the :class:`~agentwm.worldmodels.llm_outcome.LLMWorldModel` to consult.
        encode_obs / action_of / describe / latent_policy: see the module docstring.
        settings / **overrides: :class:`HybridSettings` fields (``mode``, ``threshold``, ``llm_weight``, ...).

    Raises:
        TypeError / pydantic.ValidationError: a model or callable of the wrong kind, or bad settings.
    """

    def __init__(
        self,
        latent: WorldModel | Any,
        llm: LLMWorldModel,
        *,
        action_of: Callable[[str], Tensor | None] | None = None,
        encode_obs: Callable[[str], Tensor] | None = None,
        describe: Callable[[Tensor], str] | None = None,
        latent_policy: Policy | None = None,
        settings: HybridSettings | None = None,
        **overrides: Any,
    ) -> None:
        if not (hasattr(latent, "imagine") and hasattr(latent, "observe")):
            raise TypeError(f"latent must be a world model with observe/imagine, got {type(latent).__name__}")
        if not isinstance(llm, LLMWorldModel):
            raise TypeError(f"llm must be an LLMWorldModel, got {type(llm).__name__}")
        for name, fn in (("action_of", action_of), ("encode_obs", encode_obs), ("describe", describe),
                         ("latent_policy", latent_policy)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self._text_latent = callable(getattr(latent, "aimagine", None)) and not hasattr(latent, "action_spec")
        if action_of is None and not self._text_latent:
            raise TypeError("action_of is required for a tensor latent model (text action -> latent action)")
        self.batched = bool(getattr(latent, "batched", False)) and self._text_latent
        base = settings if settings is not None else HybridSettings()
        self.settings = HybridSettings.model_validate({**base.model_dump(), **overrides}) if overrides else base
        self.latent: Any = latent
        self.llm = llm
        self.action_of = action_of
        self.encode_obs = encode_obs
        self.describe = describe
        self.latent_policy = latent_policy
        params = inspect.signature(latent.imagine).parameters
        self._asks_disagreement = "disagreement" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )

    # ------------------------------------------------------------------------------------------
    # Carry

    def observe(
        self, obs: Any, state: State | None = None, action: Any | None = None, *, goal: Any | None = None
    ) -> dict[str, Any]:
        """Fold observations into both carries.

        Args:
            obs: text (or ``B`` texts), or a mapping with ``"observation"`` and optionally ``"goal"``
                and ``"latent"`` (the latent model's observations ``[B, ...]``; else ``encode_obs``).
            state: the previous hybrid carry.
            action: the text action(s) that led here; mapped with ``action_of`` for the latent model.
            goal: as in :meth:`LLMWorldModel.observe`.
        """
        vectors = None
        raw = obs
        if isinstance(obs, Mapping):
            vectors = obs.get("latent")
            goal = obs.get("goal", goal)
            obs = obs.get("observation")
        text_state = self.llm.observe(obs, _text_part(state) if state is not None else None, action, goal=goal)
        B = len(text_state["observation"])
        if self._text_latent:
            prev_text = _latent_part(state) if state is not None else None
            learned = self.latent.observe(raw, prev_text, action, goal=text_state["goal"][0])
            return {**text_state, **{_LATENT + k: v for k, v in learned.items()}}
        if vectors is None:
            if self.encode_obs is None:
                raise ValueError("no latent observation: pass obs={'observation': ..., 'latent': tensor} "
                                 "or give HybridWorldModel(encode_obs=...)")
            vectors = torch.stack([torch.as_tensor(self.encode_obs(t)) for t in text_state["observation"]])
        vectors = torch.as_tensor(vectors)
        if vectors.shape[0] != B:
            raise ValueError(f"latent observations have batch {vectors.shape[0]}, the texts {B}")
        latent_action = None
        if action is not None and state is not None:
            acts = [action] * B if isinstance(action, str) else list(action)
            latent_action, _ = self._map_actions([acts], B)
            latent_action = latent_action[0]
        prev = _latent_part(state) if state is not None else None
        latent_state = self.latent.observe(vectors, prev, latent_action)
        return {**text_state, **{_LATENT + k: v for k, v in latent_state.items()}}

    # ------------------------------------------------------------------------------------------
    # Imagination

    def imagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """Imagine ``horizon`` steps under text ``actions[t][b]``; see the module docstring."""
        return run_sync(self.aimagine(state, actions, horizon))

    async def aimagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """Async :meth:`imagine`: the consulted items' LLM calls run concurrently."""
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {horizon!r}")
        text_state, latent_state = _text_part(state), _latent_part(state)
        B = len(text_state["observation"])
        rows = [list(r) for r in actions] if not isinstance(actions, str) else None
        if rows is None or any(isinstance(r, str) for r in actions):
            raise TypeError("actions must be time-major rows of text: actions[t][b]")
        if self.settings.mode == "latent_first":
            return await self._latent_first(text_state, latent_state, rows, horizon, B)
        return await self._llm_first(text_state, latent_state, rows, horizon, B)

    async def _latent_first(
        self, text_state: dict[str, Any], latent_state: dict[str, Any], rows: list[list[Any]], H: int, B: int
    ) -> Rollout:
        cfg = self.settings
        if self._text_latent:
            lat = await self.latent.aimagine(latent_state, rows, H)
            unverifiable = torch.zeros(B, dtype=torch.bool)
        else:
            fixed, known = self._map_actions(rows, B, H)
            unverifiable = ~known[0]
            lat = self._latent_rollout(latent_state, fixed, known, H)
        dis = _disagreement(lat, H, B)
        unc = dis.amax(0) if cfg.uncertainty == "max" else dis.mean(0)
        consult = (unc > cfg.threshold) | unverifiable
        if cfg.max_consults is not None and int(consult.sum()) > cfg.max_consults:
            priority = torch.where(unverifiable, torch.full_like(unc, float("inf")), unc)
            priority = torch.where(consult, priority, torch.full_like(unc, -float("inf")))
            keep = torch.argsort(priority, descending=True, stable=True)[: cfg.max_consults]
            consult = torch.zeros(B, dtype=torch.bool)
            consult[keep] = True
        alpha = torch.where(unverifiable, 1.0, torch.where(consult, cfg.llm_weight, 0.0))
        texts = self._described(lat, H, B)
        if self._text_latent:
            texts = [list(r) for r in lat.extras.get("text") or texts]
            taken = [list(r) for r in lat.extras["actions"]]
        else:
            taken = [[(r[b] if t < len(r) and r[b] is not None else "") for b in range(B)] for t, r in
                     enumerate(rows + [[None] * B] * (H - len(rows)))]
        llm_rewards = torch.full((H, B), float("nan"))
        llm_continues = torch.full((H, B), float("nan"))
        calls = fallbacks = 0
        idx = consult.nonzero().flatten()
        H_llm = H if cfg.llm_steps is None or bool(unverifiable[idx].any()) else min(cfg.llm_steps, H)
        alpha = alpha[None, :].expand(H, B).clone()
        alpha[H_llm:] = 0.0
        if len(idx):
            sub_rows = [[r[i] for i in idx.tolist()] for r in rows[:H_llm]]
            sub = await self.llm.aimagine(index_state(text_state, idx), sub_rows, H_llm)
            llm_rewards[:H_llm, idx] = sub.rewards
            llm_continues[:H_llm, idx] = sub.continues
            calls = int(sub.extras["llm_calls"])
            fallbacks = int(sub.extras.get("fallbacks", 0))
            for j, b in enumerate(idx.tolist()):
                for t in range(H_llm):
                    texts[t][b] = sub.extras["text"][t][j]
                    taken[t][b] = sub.extras["actions"][t][j]
        return self._blend(lat, llm_rewards, llm_continues, alpha, dis, unc, consult, texts, taken, calls,
                           fallbacks)

    async def _llm_first(
        self, text_state: dict[str, Any], latent_state: dict[str, Any], rows: list[list[Any]], H: int, B: int
    ) -> Rollout:
        cfg = self.settings
        sub = await self.llm.aimagine(text_state, rows, H)
        taken: list[list[str]] = [list(r) for r in sub.extras["actions"]]
        if self._text_latent:
            lat = await self.latent.aimagine(latent_state, taken, H)
            unverifiable = torch.zeros(B, dtype=torch.bool)
        else:
            # Items that finished early have "" actions after their end: repeat their last action.
            fixed, known = self._map_actions(taken, B, H)
            unverifiable = ~known[0]
            lat = self._latent_rollout(latent_state, fixed, known, H)
        dis = _disagreement(lat, H, B)
        unc = dis.amax(0) if cfg.uncertainty == "max" else dis.mean(0)
        uncertain = unc > cfg.threshold
        alpha = torch.where(unverifiable, 1.0, torch.where(uncertain, cfg.llm_weight, 0.0))
        texts = [list(r) for r in sub.extras["text"]]
        return self._blend(
            lat, sub.rewards, sub.continues, alpha, dis, unc, torch.ones(B, dtype=torch.bool), texts, taken,
            int(sub.extras["llm_calls"]), int(sub.extras.get("fallbacks", 0)),
        )

    # ------------------------------------------------------------------------------------------
    # Pieces

    def _map_actions(self, rows: Sequence[Sequence[Any]], B: int, H: int | None = None) -> tuple[Tensor, Tensor]:
        """Text rows → latent actions ``[H, B, A]`` and a mask ``known [H, B]`` of mapped entries.
        Missing entries repeat the item's last mapped action (and stay unknown)."""
        H = len(rows) if H is None else H
        vectors: list[list[Tensor | None]] = []
        for t in range(H):
            row = rows[t] if t < len(rows) else [None] * B
            if len(row) != B:
                raise ValueError(f"actions[{t}] has {len(row)} items; the carry has batch {B}")
            mapped: list[Tensor | None] = []
            for b, text in enumerate(row):
                if text is None or text == "":
                    mapped.append(None)
                    continue
                if not isinstance(text, str):
                    raise TypeError(f"actions[{t}][{b}] must be a str or None, got {type(text).__name__}")
                vec = self.action_of(text) if self.action_of is not None else None
                mapped.append(None if vec is None else torch.as_tensor(vec, dtype=torch.float32).flatten())
            vectors.append(mapped)
        dims = {v.shape[0] for row in vectors for v in row if v is not None}
        if len(dims) > 1:
            raise ValueError(f"action_of returned actions of different sizes {sorted(dims)}")
        spec = getattr(self.latent, "action_spec", None)
        A = dims.pop() if dims else int(getattr(spec, "dim", 1))
        out = torch.zeros(H, B, A)
        known = torch.zeros(H, B, dtype=torch.bool)
        for b in range(B):
            last: Tensor | None = None
            for t in range(H):
                vec = vectors[t][b]
                if vec is not None:
                    last = vec
                    known[t, b] = True
                if last is not None:
                    out[t, b] = last
        return out, known

    def _latent_rollout(self, latent_state: dict[str, Any], fixed: Tensor, known: Tensor, H: int) -> Rollout:
        kwargs: dict[str, Any] = {"disagreement": True} if self._asks_disagreement else {}
        ref = next((v for v in latent_state.values() if isinstance(v, Tensor)), None)
        if ref is not None:
            fixed, known = fixed.to(ref.device), known.to(ref.device)
        latent: WorldModel = self.latent
        if self.latent_policy is not None and not bool(known.all()):
            return latent.imagine(latent_state, _Mixed(fixed, known, self.latent_policy), H, **kwargs)
        return latent.imagine(latent_state, fixed, H, **kwargs)

    def _described(self, lat: Rollout, H: int, B: int) -> list[list[str]]:
        obs = lat.states.get("obs") if isinstance(lat.states, Mapping) else None
        if self.describe is None or not isinstance(obs, Tensor):
            return [[""] * B for _ in range(H)]
        return [[self.describe(obs[t + 1, b]) for b in range(B)] for t in range(H)]

    def _blend(
        self, lat: Rollout, llm_rewards: Tensor, llm_continues: Tensor, alpha: Tensor, dis: Tensor,
        unc: Tensor, consulted: Tensor, texts: list[list[str]], taken: list[list[str]], calls: int,
        fallbacks: int,
    ) -> Rollout:
        cfg = self.settings
        lat_r = lat.rewards.detach().float().cpu() * cfg.latent_reward_scale
        lat_c = lat.continues.detach().float().cpu()
        llm_r = torch.nan_to_num(llm_rewards.float() * cfg.llm_reward_scale)
        llm_c = torch.nan_to_num(llm_continues.float(), nan=1.0)
        a = alpha.float() if alpha.dim() == 2 else alpha.float()[None, :]
        rewards = (1.0 - a) * lat_r + a * llm_r
        continues = (1.0 - a) * lat_c + a * llm_c
        return Rollout(
            states={"latent": lat.states, "text": texts},
            rewards=rewards,
            continues=continues,
            actions=lat.actions,
            values=None if lat.values is None or not self._text_latent else lat.values.detach().float().cpu(),
            extras={
                "text": texts,
                "actions": taken,
                "llm_calls": calls,
                "fallbacks": fallbacks,
                "disagreement": dis,
                "uncertainty": unc,
                "consulted": consulted,
                "llm_weight": alpha[0] if alpha.dim() == 2 else alpha,
                "latent_rewards": lat_r,
                "llm_rewards": llm_rewards,
            },
        )


class _Mixed:
    """A policy that plays the known text-mapped actions and defers to ``policy`` elsewhere."""

    def __init__(self, fixed: Tensor, known: Tensor, policy: Policy) -> None:
        self.fixed, self.known, self.policy, self.t = fixed, known, policy, 0

    def __call__(self, state: State) -> Tensor:
        t = min(self.t, self.fixed.shape[0] - 1)
        self.t += 1
        mask = self.known[t]
        if bool(mask.all()):
            return self.fixed[t]
        proposed = torch.as_tensor(self.policy(state)).to(self.fixed)
        return torch.where(mask[:, None], self.fixed[t], proposed)


def _text_part(state: State) -> dict[str, Any]:
    if not isinstance(state, Mapping):
        raise TypeError("state must be a carry from HybridWorldModel.observe()")
    return {k: v for k, v in state.items() if not k.startswith(_LATENT)}


def _latent_part(state: State | None) -> dict[str, Any]:
    if state is None:
        return {}
    part = {k[len(_LATENT) :]: v for k, v in state.items() if k.startswith(_LATENT)}
    if not part:
        raise ValueError("state has no latent carry ('latent:*' keys); build it with HybridWorldModel.observe()")
    return part


def _disagreement(lat: Rollout, H: int, B: int) -> Tensor:
    dis = lat.extras.get("disagreement")
    if not isinstance(dis, Tensor) or tuple(dis.shape) != (H, B):
        raise ValueError(
            "the latent model must report rollout.extras['disagreement'] [H, B] "
            "(EnsembleDynamics does with disagreement=True or propagation='mean')"
        )
    return dis.detach().float().cpu()
