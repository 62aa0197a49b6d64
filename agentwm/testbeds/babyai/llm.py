"""The LLM and hybrid world models for BabyAI, and a scripted chat model for deterministic runs.

* ``planner-llm``: :class:`~agentwm.worldmodels.llm_outcome.LLMWorldModel` predicts, from the text
  observation, what each proposed action leads to; the reward is the MiniLM relevance of the
  imagined text to the mission, as progress (potential-based: ``score(s') - score(s)``), plus a
  bonus of 1 when the LLM says the episode ends (in BabyAI an episode ends only on success).
* ``planner-hybrid``: :class:`~agentwm.worldmodels.composite.HybridWorldModel` in ``latent_first``
  mode: the learned ensemble imagines every candidate from the symbolic vector, and the LLM is
  consulted only for candidates whose ensemble disagreement exceeds ``threshold``.

``chat="smollm2"`` uses the local SmolLM2-135M-Instruct (GGUF; ``agentwm.text.local_chat``), ~15 tokens/s
on two CPU cores. ``chat="scripted"`` uses :class:`ScriptedBabyAIChat`, a deterministic stand-in
that exercises the whole path (prompts, parsing, scoring, call counting) at no cost, for CI.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import torch
from torch import Tensor

from agentwm.envs.babyai import ACTION_SPEC, ACTIONS
from agentwm.extras import missing_extra
from agentwm.testbeds.babyai.agents import Proposer, TextPlanner
from agentwm.text.client import LLMClient
from agentwm.text.scorers import TextScorer
from agentwm.worldmodels.base import WorldModel
from agentwm.worldmodels.composite import HybridWorldModel
from agentwm.worldmodels.llm_outcome import LLMWorldModel

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
except ModuleNotFoundError as err:
    raise missing_extra(err, "llm", "agentwm.testbeds.babyai.llm") from None

ChatKind = Literal["scripted", "smollm2"]


class ScriptedBabyAIChat(BaseChatModel):
    """A deterministic chat model that answers the LLM world model's prompts by rule.

    Outcome prompts ("Current state: ... Action: ...") get ``Observation: after <action>, <the
    state's first sighting line>`` and ``Done: no``; next-action prompts get ``Action: move forward``.
    It knows nothing about BabyAI's physics: it is there so that CI runs the real prompt, parse,
    score and count path without a model download or minutes of CPU time.
    """

    @property
    def _llm_type(self) -> str:
        return "scripted-babyai"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = str(messages[-1].content) if messages else ""
        action = re.search(r"^Action: (.+)$", prompt, re.MULTILINE)
        if action is None:
            answer = "Action: move forward"
        else:
            seen = re.search(r"^You see: (.+)$", prompt, re.MULTILINE)
            sight = seen[1] if seen else "no objects in view"
            answer = f"Observation: after you {action[1].strip()}, you see {sight}\nDone: no"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


def chat_model(kind: ChatKind, max_new_tokens: int = 48) -> BaseChatModel:
    """The chat model behind the LLM world model: ``"scripted"`` or the local ``"smollm2"``."""
    if kind == "scripted":
        return ScriptedBabyAIChat()
    if kind == "smollm2":
        from agentwm.text.local_chat import smollm2_chat_model

        return smollm2_chat_model(max_new_tokens=max_new_tokens)
    raise ValueError(f"chat must be 'scripted' or 'smollm2', got {kind!r}")


def _action_of(text: str) -> Tensor | None:
    """A text action → its one-hot row over :data:`~agentwm.envs.babyai.ACTIONS` (None if unknown)."""
    clean = text.strip().lower().rstrip(".")
    if clean in ACTIONS:
        return ACTION_SPEC.one_hot(torch.tensor(ACTIONS.index(clean)))
    return None


def make_text_agents(
    chat: ChatKind,
    latent: WorldModel,
    proposer: Proposer,
    *,
    gamma: float = 0.9,
    horizon: int = 1,
    threshold: float = 0.05,
    scorer: TextScorer | None = None,
) -> list[TextPlanner]:
    """The ``planner-llm`` and ``planner-hybrid`` agents over one shared LLM client.

    Args:
        chat: which chat model (see :func:`chat_model`).
        latent: the learned BabyAI ensemble (for the hybrid).
        proposer: the shared proposer.
        gamma: discount of imagined rewards.
        horizon: imagined steps per candidate; the LLM proposes follow-ups after the first.
        threshold: ensemble disagreement above which the hybrid consults the LLM.
        scorer: rewards imagined text; MiniLM relevance to the mission when ``None``.
    """
    client = LLMClient(chat_model(chat), retries=1)
    llm = LLMWorldModel(client, scorer=scorer, reward="progress", terminal_bonus=1.0, max_history=2)
    hybrid = HybridWorldModel(latent, llm, action_of=_action_of, mode="latent_first", threshold=threshold,
                              llm_weight=0.5)

    def calls() -> int:
        return int(client.stats["calls"])

    return [
        TextPlanner(llm, proposer, horizon=horizon, gamma=gamma, calls=calls, name="planner-llm"),
        TextPlanner(hybrid, proposer, horizon=horizon, gamma=gamma, calls=calls, name="planner-hybrid",
                    with_latent=True),
    ]
