"""An LLM as a world model: "if I do X here, what happens?", scored against the goal.

:class:`LLMWorldModel` implements the :class:`~agentwm.worldmodels.base.TextWorldModel` protocol.
Its carry is plain text per batch item::

    {"observation": [str] * B, "goal": [str] * B, "history": [[str, ...]] * B}

``imagine(state, actions, horizon)`` runs ``horizon`` steps. At step ``t`` item ``b`` takes
``actions[t][b]``; where the rows run out (or an entry is ``None``) and ``propose_followups`` is on,
the LLM first proposes the action ("what would I do next?"). The LLM then predicts the outcome
(:data:`~agentwm.text.prompts.OUTCOME_PROMPT`, answer :class:`~agentwm.text.prompts.Outcome`:
new observation and a done flag). The scorer rewards the imagined state against the goal. The
result is the same :class:`~agentwm.worldmodels.base.Rollout` as latent models give, so
``rollout.returns(gamma)`` and every planner apply unchanged.

Per step ``t`` and item ``b``:

* ``rewards[t, b]``: ``score(s_{t+1})`` (``reward="relevance"``) or ``score(s_{t+1}) - score(s_t)``
  (``"progress"``: potential-based, so the return telescopes to how much closer the item got), plus
  ``terminal_bonus`` on the step that ends the episode. Set a bonus where done means success;
  otherwise ending early forfeits the rewards of the remaining steps.
* ``continues[t, b]``: 0 from the step the item is done (by the LLM's flag, or ``done_detector``),
  and items that are done are not simulated further (no more calls, reward 0).

Fallbacks (never raised; ``extras["fallbacks"]`` counts the (step, item) cells that used one and
``extras["fallback_mask"] [H, B]`` marks them): an outcome the LLM does not deliver or
that cannot be read leaves the state unchanged, not done, rewarded by the scorer on the unchanged
state; a follow-up proposal that fails repeats the item's previous action (``"wait"`` at step 0).

Cost: within a step, identical requests are sent once. With ``samples_temperature`` set, identical
rows (a planner's samples of one candidate) are instead sampled separately at that temperature,
each under its own cache slot. ``aimagine`` runs the items of a step concurrently
(``asyncio.gather``), so K candidates take about the wall time of one with a remote chat model;
``imagine`` runs the same code on a private event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from agentwm.core.aio import run_sync
from agentwm.extras import missing_extra

try:  # the LLM stack first, so its absence is one line naming the extra
    from langchain_core.messages import BaseMessage

    from agentwm.text.client import LLMClient, StructuredResult
    from agentwm.text.prompts import NEXT_ACTION_PROMPT, OUTCOME_PROMPT, NextAction, Outcome, format_history
    from agentwm.text.scorers import EmbeddingRelevance, Scores, TextScorer
except ModuleNotFoundError as err:
    raise missing_extra(err, "llm", "agentwm.worldmodels.llm_outcome") from None
from agentwm.worldmodels.base import Rollout, State, TextActions

T = TypeVar("T")

DoneDetector = Callable[[str, str], bool]
"""``(imagined observation, goal) -> done``; replaces the LLM's done flag when given."""

RewardMode = Literal["relevance", "progress"]

FALLBACK_ACTION = "wait"
"""Action used when a follow-up proposal fails at the first step (there is no previous action)."""


class LLMWorldModelSettings(BaseModel):
    """Validated settings of :class:`LLMWorldModel` (also accepted as keyword arguments)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    propose_followups: bool = Field(
        default=True, description="let the LLM propose actions where the given rows run out"
    )
    samples_temperature: float | None = Field(
        default=None, ge=0.0, le=2.0,
        description="sample identical rows separately at this temperature; None: deterministic, deduplicated",
    )
    reward: RewardMode = Field(default="relevance", description="relevance: score(s'); progress: score(s') - score(s)")
    terminal_bonus: float = Field(default=0.0, description="added to the reward of the step that ends the episode")
    max_history: int = Field(default=4, ge=0, description="history lines shown to the LLM")
    max_concurrency: int | None = Field(default=None, ge=1, description="most LLM requests in flight at once")
    max_text: int = Field(default=600, ge=16, description="imagined observations are cut to this many characters")


class LLMWorldModel:
    """A chat model predicting outcomes of text actions; see the module docstring.

    Args:
        client: the :class:`~agentwm.text.client.LLMClient` to ask.
        scorer: rewards imagined states (``score(states, goals) -> Scores``); ``None`` uses
            :class:`~agentwm.text.scorers.EmbeddingRelevance` (MiniLM, loaded on first use).
        done_detector: ``"llm"`` reads the done flag from the LLM's answer; a callable
            ``(observation, goal) -> bool`` decides instead; ``"never"`` keeps every item going.
        goal: default goal for :meth:`observe` calls that give none.
        outcome_prompt / next_action_prompt: replacements for the default templates (same variables).
        settings / **overrides: :class:`LLMWorldModelSettings` fields.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> llm = FakeListChatModel(responses=["Observation: the door is open\\nDone: yes"])
        >>> wm = LLMWorldModel(LLMClient(llm), scorer=my_scorer, goal="open the door")
        >>> rollout = wm.imagine(wm.observe("a closed door"), [["open the door"]], horizon=1)
        >>> rollout.extras["text"], rollout.continues
        ([['the door is open']], tensor([[0.]]))
    """

    def __init__(
        self,
        client: LLMClient,
        *,
        scorer: TextScorer | None = None,
        done_detector: DoneDetector | Literal["llm", "never"] = "llm",
        goal: str | None = None,
        outcome_prompt: Any | None = None,
        next_action_prompt: Any | None = None,
        settings: LLMWorldModelSettings | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(client, LLMClient):
            raise TypeError(f"client must be an LLMClient, got {type(client).__name__}")
        if scorer is not None and not isinstance(scorer, TextScorer):
            raise TypeError("scorer must have score(states, goals) and ascore(states, goals)")
        if not (done_detector in ("llm", "never") or callable(done_detector)):
            raise ValueError(f"done_detector must be 'llm', 'never' or a callable, got {done_detector!r}")
        base = settings if settings is not None else LLMWorldModelSettings()
        self.settings = (
            LLMWorldModelSettings.model_validate({**base.model_dump(), **overrides}) if overrides else base
        )
        self.client = client
        self._scorer = scorer
        self.done_detector = done_detector
        self.goal = goal
        self.outcome_prompt = OUTCOME_PROMPT if outcome_prompt is None else outcome_prompt
        self.next_action_prompt = NEXT_ACTION_PROMPT if next_action_prompt is None else next_action_prompt

    @property
    def scorer(self) -> TextScorer:
        if self._scorer is None:
            self._scorer = EmbeddingRelevance()
        return self._scorer

    # ------------------------------------------------------------------------------------------
    # Carry

    def initial(self, batch_size: int, goal: str | None = None) -> dict[str, Any]:
        """Empty observations for ``batch_size`` items (the goal from ``goal`` or the default)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return self.observe([""] * batch_size, goal=goal)

    def observe(
        self, obs: Any, state: State | None = None, action: Any | None = None, *, goal: str | Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Fold observations into the carry.

        Args:
            obs: a text, a list of ``B`` texts, or a mapping with ``"observation"`` (and ``"goal"``).
            state: the previous carry; its goals and history carry over, and the previous
                observation and ``action`` become a history line.
            action: the action (text, or ``B`` texts) that led from ``state`` to ``obs``.
            goal: the goal (one for all, or ``B``); else the mapping's, the carry's, or the default.

        Raises:
            TypeError / ValueError: malformed observations, mismatched batch sizes, or no goal anywhere.
        """
        if isinstance(obs, Mapping):
            goal = obs.get("goal", goal)
            obs = obs.get("observation")
        texts = _texts("obs", obs)
        B = len(texts)
        if goal is None and state is not None and "goal" in state:
            goal = state["goal"]
        if goal is None:
            goal = self.goal
        if goal is None:
            raise ValueError("no goal: pass goal=..., a mapping with 'goal', or LLMWorldModel(goal=...)")
        goals = _broadcast("goal", goal, B)
        history: list[list[str]] = [[] for _ in range(B)]
        if state is not None:
            prev = _texts("state['observation']", state.get("observation"))
            if len(prev) != B:
                raise ValueError(f"obs has {B} items but the carry has {len(prev)}")
            old = state.get("history") or [[] for _ in range(B)]
            acts = _broadcast("action", action, B) if action is not None else [""] * B
            history = [
                [*list(h), _history_line(p, a)] if p or a else list(h) for h, p, a in zip(old, prev, acts)
            ]
        return {"observation": texts, "goal": goals, "history": history}

    # ------------------------------------------------------------------------------------------
    # Imagination

    def imagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """Imagine ``horizon`` steps; see the module docstring. Runs the async code on a private loop."""
        return run_sync(self.aimagine(state, actions, horizon))

    async def aimagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """Imagine ``horizon`` steps with the items of each step in flight together.

        Raises:
            TypeError / ValueError: a malformed carry or actions, or too few action rows with
                ``propose_followups`` off. Failed LLM calls never raise (see Fallbacks).
        """
        obs, goals, history = _check_state(state)
        B = len(obs)
        rows = _check_actions(actions, B, horizon, self.settings.propose_followups)
        H = horizon
        cfg = self.settings
        options: dict[str, Any] = {}
        if cfg.samples_temperature is not None:
            options["temperature"] = cfg.samples_temperature
        samples = _sample_ids(obs, goals, history, rows) if cfg.samples_temperature is not None else [0] * B
        limit = asyncio.Semaphore(cfg.max_concurrency) if cfg.max_concurrency else None

        rewards = torch.zeros(H, B)
        continues = torch.zeros(H, B)
        fallbacks = torch.zeros(H, B, dtype=torch.bool)
        dones = torch.zeros(H, B, dtype=torch.bool)
        texts: list[list[str]] = []
        taken: list[list[str]] = []
        states: list[list[str]] = [list(obs)]
        calls = [0] * B
        alive = [True] * B
        cur = list(obs)
        hist = [list(h) for h in history]
        prev_action = [FALLBACK_ACTION] * B
        prev_score: torch.Tensor | None = None
        if cfg.reward == "progress":
            start = await self.scorer.ascore(cur, goals)
            prev_score = start.values.float()
            calls[0] += start.calls

        for t in range(H):
            live = [b for b in range(B) if alive[b]]
            # 1. The action of each live item: given, or proposed by the LLM.
            step_actions = [""] * B
            need = []
            for b in live:
                given = rows[t][b] if t < len(rows) else None
                if given is None:
                    need.append(b)
                else:
                    step_actions[b] = given
            if need:
                proposals = await self._batched(
                    {
                        b: self.next_action_prompt.format_messages(
                            goal=goals[b], observation=cur[b], history=format_history(hist[b], cfg.max_history)
                        )
                        for b in need
                    },
                    NextAction, "action", samples, options, limit, calls,
                )
                for b, result in zip(need, proposals):
                    value = result.value
                    if isinstance(value, NextAction):
                        step_actions[b] = value.action[: cfg.max_text]
                    else:
                        step_actions[b] = prev_action[b]
                        fallbacks[t, b] = True
            # 2. The outcome of each live item's action.
            outcomes = await self._batched(
                {
                    b: self.outcome_prompt.format_messages(
                        goal=goals[b], observation=cur[b], action=step_actions[b],
                        history=format_history(hist[b], cfg.max_history),
                    )
                    for b in live
                },
                Outcome, "observation", samples, options, limit, calls,
            )
            nxt = list(cur)
            done_now = [False] * B
            for b, result in zip(live, outcomes):
                value = result.value
                if isinstance(value, Outcome):
                    nxt[b] = value.observation[: cfg.max_text]
                    if self.done_detector == "llm":
                        done_now[b] = bool(value.done)
                else:
                    fallbacks[t, b] = True
                if callable(self.done_detector) and isinstance(value, Outcome):
                    done_now[b] = bool(self.done_detector(nxt[b], goals[b]))
            # 3. Rewards of the imagined states (one batched scorer call for the live items).
            if live:
                scored: Scores = await self.scorer.ascore([nxt[b] for b in live], [goals[b] for b in live])
                calls[live[0]] += scored.calls
                values = scored.values.float().reshape(len(live))
                for i, b in enumerate(live):
                    r = float(values[i])
                    if prev_score is not None:
                        r, prev_score[b] = r - float(prev_score[b]), r
                    if done_now[b]:
                        r += cfg.terminal_bonus
                    rewards[t, b] = r
                    continues[t, b] = 0.0 if done_now[b] else 1.0
                    dones[t, b] = done_now[b]
            for b in live:
                hist[b].append(_history_line(cur[b], step_actions[b]))
                prev_action[b] = step_actions[b]
                alive[b] = not done_now[b]
            cur = nxt
            texts.append(list(nxt))
            taken.append(step_actions)
            states.append(list(nxt))

        return Rollout(
            states={"observation": states, "goal": list(goals)},
            rewards=rewards,
            continues=continues,
            extras={
                "text": texts,
                "actions": taken,
                "llm_calls": int(sum(calls)),
                "llm_calls_per_item": calls,
                "fallbacks": int(fallbacks.sum()),
                "fallback_mask": fallbacks,
                "done": dones,
            },
        )

    async def _batched(
        self,
        requests: dict[int, list[BaseMessage]],
        schema: type[BaseModel],
        text_field: str,
        samples: list[int],
        options: dict[str, Any],
        limit: asyncio.Semaphore | None,
        calls: list[int],
    ) -> list[StructuredResult]:
        """One structured request per distinct (messages, sample) among the items, all in flight
        together; results in item order. Calls are charged to the first item of each group, and a
        raised error becomes a ``None`` result."""
        groups: dict[str, list[int]] = {}
        for b, messages in requests.items():
            key = repr(([(m.type, m.content) for m in messages], samples[b]))
            groups.setdefault(key, []).append(b)

        async def one(b: int) -> StructuredResult:
            try:
                if limit is None:
                    return await self.client.astructured_request(
                        requests[b], schema, text_field=text_field, sample=samples[b],
                        format_instructions=False, **options,
                    )
                async with limit:
                    return await self.client.astructured_request(
                        requests[b], schema, text_field=text_field, sample=samples[b],
                        format_instructions=False, **options,
                    )
            except Exception:  # noqa: BLE001 - a failed request degrades to the fallback
                return StructuredResult(None, self.client.retries + 1)

        results = await asyncio.gather(*(one(members[0]) for members in groups.values()))
        by_item: dict[int, StructuredResult] = {}
        for members, result in zip(groups.values(), results):
            calls[members[0]] += result.calls
            for b in members:
                by_item[b] = result
        return [by_item[b] for b in requests]


# ----------------------------------------------------------------------------------------------
# Helpers


def _history_line(observation: str, action: str) -> str:
    obs = observation if len(observation) <= 200 else observation[:197] + "..."
    return f"in '{obs}' did '{action}'" if action else f"saw '{obs}'"


def _texts(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(value).__name__}")
    out = list(value)
    if not out:
        raise ValueError(f"{name} is empty; it needs at least one item")
    for i, item in enumerate(out):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(item).__name__}")
    return out


def _broadcast(name: str, value: Any, B: int) -> list[str]:
    items = _texts(name, value)
    if len(items) == 1 and B > 1:
        return items * B
    if len(items) != B:
        raise ValueError(f"{name} has {len(items)} items; expected 1 or {B}")
    return items


def _check_state(state: State) -> tuple[list[str], list[str], list[list[str]]]:
    if not isinstance(state, Mapping) or "observation" not in state or "goal" not in state:
        raise TypeError("state must be a carry from observe(): a mapping with 'observation' and 'goal' lists")
    obs = _texts("state['observation']", state["observation"])
    goals = _broadcast("state['goal']", state["goal"], len(obs))
    history = state.get("history") or [[] for _ in obs]
    if isinstance(history, str) or len(history) != len(obs):
        raise ValueError(f"state['history'] must hold one list of strings per item ({len(obs)})")
    return obs, goals, [[str(h) for h in items] for items in history]


def _check_actions(actions: TextActions, B: int, horizon: int, followups: bool) -> list[list[str | None]]:
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive int, got {horizon!r}")
    if isinstance(actions, str) or not isinstance(actions, Sequence):
        raise TypeError("actions must be time-major rows of text: actions[t][b]")
    rows: list[list[str | None]] = []
    for t, given in enumerate(actions):
        if isinstance(given, str):
            raise TypeError(
                f"actions[{t}] is a string; actions are time-major rows actions[t][b] "
                "(for one step of B candidates pass [candidates])"
            )
        row: list[str | None] = list(given)
        if len(row) != B:
            raise ValueError(f"actions[{t}] has {len(row)} items; the carry has batch {B}")
        for b, a in enumerate(row):
            if a is not None and not isinstance(a, str):
                raise TypeError(f"actions[{t}][{b}] must be a str or None, got {type(a).__name__}")
        rows.append(row)
    if len(rows) > horizon:
        raise ValueError(f"actions has {len(rows)} rows, more than horizon={horizon}")
    if not followups and (len(rows) < horizon or any(a is None for r in rows for a in r)):
        raise ValueError(
            f"actions has {len(rows)} complete rows for horizon={horizon} and propose_followups is off; "
            "give every action or turn propose_followups on"
        )
    return rows


def _sample_ids(
    obs: list[str], goals: list[str], history: list[list[str]], rows: list[list[str | None]]
) -> list[int]:
    """Occurrence index of each row among identical rows (same start and actions): sample 0, 1, ..."""
    seen: dict[Any, int] = {}
    ids = []
    for b in range(len(obs)):
        key = (obs[b], goals[b], tuple(history[b]), tuple(row[b] for row in rows))
        ids.append(seen.get(key, 0))
        seen[key] = ids[-1] + 1
    return ids


