"""The learned text world model behind the text world-model protocol: text in, ``Rollout`` out.

:class:`~agentwm.worldmodels.text_latent.TextLatentModel` works on sentence embeddings;
:class:`LearnedTextWorldModel` wraps it with a sentence embedder so planners, the planning graph,
MCTS and :class:`~agentwm.worldmodels.composite.HybridWorldModel` hand it text like any
:class:`~agentwm.worldmodels.base.TextWorldModel`:

* ``observe(obs, state, action, goal=...)`` folds one observation (and the command that led to
  it) into the GRU carry, so the history of the episode lives in the carry. ``obs`` may be a
  mapping ``{"observation", "goal", "admissible"}``: ``admissible`` is the game's current menu,
  kept in the carry as the pool the model draws its own follow-up commands from.
* ``imagine(state, actions, horizon)`` rolls every item forward in ONE batched pass per step:
  ``actions[t][b]`` where given, else the model's follow-up: the command of the item's pool (its
  menu, plus the objective's sentences with ``followups="menu+objective"``) with the best one-step
  imagined value. Rewards, continues and the learned progress value come from the model's heads;
  ``extras["disagreement"] [H, B]`` is the ensemble members' spread of value (what the hybrid
  consults the LLM on), ``extras["actions"]`` the commands imagined.
* ``predicted_menu(state)`` is the command pool of a node deeper in a search: the item's pool
  less the commands already imagined on its path (what MCTS expands at depth instead of the
  root's menu; the model predicts no new command text).

Loop avoidance: ``loop_penalty`` is subtracted from the first imagined reward of a command that was
already played from the very same observation in this episode (the carry remembers those pairs),
the way the TextWorld agents penalise it; it is 0 for the model's own follow-ups and for items
imagined from a node deeper in a search (their path is not empty: they are not at that observation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from agentwm.worldmodels.base import Rollout, State, TextActions
from agentwm.worldmodels.text_latent import TextLatentModel

FollowupPool = Literal["menu", "menu+objective"]
_TENSORS = ("h", "goal_emb", "goal_mask", "cover")
_SEP = "\u241e"  # joins an (observation, command) pair in the carry's "seen" list


class Embedder(Protocol):
    """What the model needs to read text: unit sentence embeddings ``[N, D]`` (MiniLM)."""

    def embed(self, texts: Sequence[str]) -> Tensor: ...


def split_goal(goal: str, max_sentences: int) -> list[str]:
    """The objective's sentences (a task given in words is usually a list of steps)."""
    import re

    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", goal.strip()) if p.strip()]
    return parts[:max_sentences] or [goal]


class LearnedTextWorldModel:
    """A :class:`TextLatentModel` read and written as text; see the module docstring.

    Args:
        model: a trained :class:`~agentwm.worldmodels.text_latent.TextLatentModel` (e.g.
            ``agentwm.agents.textworld.train.load_model("models/textworld-minilm-gru/world_model")``).
        embedder: the sentence embedder the model was trained with (``agentwm.text.embeddings.TextEmbedder``).
        followups: the pool of the model's own follow-up commands.
        loop_penalty: subtracted from the first reward of a command already played from the same observation.

    Example:
        >>> wm = LearnedTextWorldModel(load_model(folder), TextEmbedder())
        >>> s = wm.observe({"observation": "You are in a bar.", "admissible": ["take passkey from bar", "go east"]},
        ...                goal="Take the passkey. Then go east.")
        >>> wm.imagine(repeat_state(s, 2), [["take passkey from bar", "go east"]], 3).returns(0.85)
    """

    batched = True
    """Graph simulators imagine all candidates in one call (the model is cheap and batched)."""

    def __init__(
        self, model: TextLatentModel, embedder: Embedder, *, followups: FollowupPool = "menu+objective",
        loop_penalty: float = 0.5,
    ) -> None:
        if not isinstance(model, TextLatentModel):
            raise TypeError(f"model must be a TextLatentModel, got {type(model).__name__}")
        if not callable(getattr(embedder, "embed", None)):
            raise TypeError(f"embedder must have embed(texts) -> Tensor, got {type(embedder).__name__}")
        if followups not in ("menu", "menu+objective"):
            raise ValueError(f"followups must be 'menu' or 'menu+objective', got {followups!r}")
        self.model, self.embedder = model.eval(), embedder
        self.followups, self.loop_penalty = followups, float(loop_penalty)
        self.gamma = model.config.value_gamma

    # ------------------------------------------------------------------------------------------
    # Carry

    def _embed(self, texts: Sequence[str]) -> Tensor:
        device = next(self.model.parameters()).device
        return self.embedder.embed(list(texts)).float().to(device)

    @torch.no_grad()
    def observe(
        self, obs: Any, state: State | None = None, action: Any | None = None, *, goal: str | None = None
    ) -> dict[str, Any]:
        """Fold ``B`` observations (text, texts, or a mapping with ``observation``/``goal``/``admissible``)
        after ``action`` (the command(s) that led here) into the carry; a new carry needs a goal."""
        menu: Any = None
        if isinstance(obs, Mapping):
            goal = obs.get("goal", goal)
            menu = obs.get("admissible")
            obs = obs.get("observation")
        texts = [obs] if isinstance(obs, str) else list(obs) if isinstance(obs, Sequence) else None
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"obs must be a text or a list of texts, got {type(obs).__name__}")
        B = len(texts)
        if state is None:
            if not isinstance(goal, str) or not goal.strip():
                raise ValueError("the first observe() of an episode needs goal='the objective text'")
            state = self._initial(goal, B)
        elif len(state["observation"]) != B:
            raise ValueError(f"obs has {B} items but the carry has {len(state['observation'])}")
        acts = [action] * B if isinstance(action, str) else list(action) if action is not None else [""] * B
        if len(acts) != B or not all(isinstance(a, str) for a in acts):
            raise ValueError(f"action must be a text or {B} texts")
        menus = state["menu"] if menu is None else [[str(m) for m in menu]] * B
        carry = {k: state[k] for k in _TENSORS}
        latent = {"h": carry["h"], "goal": carry["goal_emb"], "goal_mask": carry["goal_mask"], "cover": carry["cover"]}
        act_emb = self._embed(acts) if any(acts) else None
        if act_emb is not None:
            act_emb = act_emb * torch.tensor([1.0 if a else 0.0 for a in acts], device=act_emb.device)[:, None]
        new = self.model.observe(self._embed(texts), latent, act_emb)
        seen = [
            [*s, f"{p}{_SEP}{a}"] if a else list(s)
            for s, p, a in zip(state["seen"], state["observation"], acts)
        ]
        return {
            "observation": texts, "goal": list(state["goal"]), "menu": [list(m) for m in menus], "seen": seen,
            "path": [[] for _ in range(B)],
            "h": new["h"], "goal_emb": new["goal"], "goal_mask": new["goal_mask"], "cover": new["cover"],
        }

    def _initial(self, goal: str, B: int) -> dict[str, Any]:
        sentences = split_goal(goal, self.model.config.max_goal)
        emb = self._embed(sentences)[None].expand(B, -1, -1)
        start = self.model.initial(B, emb, torch.ones(B, emb.shape[1], device=emb.device))
        return {
            "observation": [""] * B, "goal": [goal] * B, "menu": [[] for _ in range(B)], "seen": [[] for _ in range(B)],
            "h": start["h"], "goal_emb": start["goal"], "goal_mask": start["goal_mask"], "cover": start["cover"],
        }

    def predicted_menu(self, state: State) -> list[list[str]]:
        """Per item, the commands a search may expand here: the item's pool less those already
        imagined on its path (see the module docstring)."""
        out = []
        for b, menu in enumerate(state["menu"]):
            pool = list(menu) + (self._goal_sentences(state, b) if self.followups == "menu+objective" else [])
            done = set(state.get("path", [[]] * len(state["menu"]))[b])
            out.append([c for c in dict.fromkeys(pool) if c not in done])
        return out

    def _goal_sentences(self, state: State, b: int) -> list[str]:
        return split_goal(state["goal"][b], self.model.config.max_goal)

    # ------------------------------------------------------------------------------------------
    # Imagination

    def imagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """Imagine ``horizon`` steps of every item in one batched pass per step (see the module docstring)."""
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {horizon!r}")
        if isinstance(actions, str) or any(isinstance(r, str) for r in actions):
            raise TypeError("actions must be time-major rows of text: actions[t][b]")
        rows = [list(r) for r in actions]
        B = len(state["observation"])
        if len(rows) > horizon or any(len(r) != B for r in rows):
            raise ValueError(f"actions must be at most {horizon} rows of {B} texts (one per carry item)")
        with torch.no_grad():
            return self._imagine(state, rows, horizon, B)

    async def aimagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """:meth:`imagine` (CPU-bound and fast: run inline)."""
        return self.imagine(state, actions, horizon)

    def _imagine(self, state: State, rows: list[list[Any]], H: int, B: int) -> Rollout:
        pools = self.predicted_menu(state)
        latent: dict[str, Any] = {
            "h": state["h"], "goal": state["goal_emb"], "goal_mask": state["goal_mask"], "cover": state["cover"],
        }
        paths = [list(p) for p in state.get("path", [[] for _ in range(B)])]
        rewards, conts, values, spread, taken = [], [], [], [], []
        carries: list[State] = [state]
        for t in range(H):
            given = rows[t] if t < len(rows) else [None] * B
            need = [b for b, a in enumerate(given) if not (isinstance(a, str) and a)]
            chosen = self._follow_ups(latent, {b: [c for c in pools[b] if c not in paths[b]] or pools[b] for b in need})
            step_actions = [chosen[b] if b in chosen else str(a) for b, a in enumerate(given)]
            stepped, r, c, v = self.model.step(latent, self._embed(step_actions))
            latent = dict(stepped)
            r = r.mean(1)
            if t == 0 and self.loop_penalty:  # only items at the real observation (a search's root), not imagined nodes
                at_root = torch.tensor([0.0 if p else 1.0 for p in state.get("path", [[]] * B)])
                r = r - self.loop_penalty * (self._repeats(state, step_actions) * at_root).to(r)
            rewards.append(r)
            conts.append(c.mean(1))
            values.append(v.mean(1))
            spread.append(v.std(1, unbiased=False))
            taken.append(step_actions)
            paths = [[*p, a] for p, a in zip(paths, step_actions)]
            carries.append({
                **{k: state[k] for k in ("observation", "goal", "menu", "seen")}, "path": paths,
                "h": latent["h"], "goal_emb": state["goal_emb"], "goal_mask": state["goal_mask"], "cover": latent["cover"],
            })
        return Rollout(
            states=carries,
            rewards=torch.stack(rewards).cpu(),
            continues=torch.stack(conts).cpu(),
            values=torch.stack(values).cpu(),
            extras={
                "disagreement": torch.stack(spread).cpu(), "actions": taken, "text": [[""] * B for _ in range(H)],
                "llm_calls": 0, "fallbacks": 0,
            },
        )

    def _repeats(self, state: State, actions: list[str]) -> Tensor:
        return torch.tensor([
            float(seen.count(f"{obs}{_SEP}{a}"))
            for seen, obs, a in zip(state["seen"], state["observation"], actions)
        ])

    def _follow_ups(self, latent: dict[str, Tensor], options: dict[int, list[str]]) -> dict[int, str]:
        """Per item ``b``, the option with the best one-step imagined value ``r + γ·c·V`` from its
        latent (the first ensemble member proposes); all items' options in one batched step."""
        rows = [(b, c) for b, opts in options.items() for c in opts]
        out = {b: "" for b, opts in options.items() if not opts}
        if not rows:
            return out
        index = torch.tensor([b for b, _ in rows], device=latent["h"].device)
        wide = {k: (v[:, :1] if k == "h" else v).index_select(0, index) for k, v in latent.items()}
        _, r, c, v = self.model.step(wide, self._embed([c for _, c in rows]))
        score = (r + self.gamma * c * v).mean(1).tolist()
        best: dict[int, tuple[float, str]] = {}
        for (b, cmd), sc in zip(rows, score):
            if b not in best or sc > best[b][0]:
                best[b] = (sc, cmd)
        return {**out, **{b: cmd for b, (_, cmd) in best.items()}}
