"""A scripted LangChain chat model: canned answers chosen by substring rules, for smoke-testing a
deployment (``AGENTWM_CHAT_MODEL=scripted:rules.json``) and for tests, with no LLM at all."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Answers with the reply of the first ``rules`` pair whose substring occurs in the prompt
    (all messages' text, joined), else ``default``.

    Example:
        >>> chat = ScriptedChatModel(rules=[("Propose", '["wait", "open the door"]')], default="ok")
        >>> chat.invoke("Propose two actions").content
        '["wait", "open the door"]'
    """

    rules: list[tuple[str, str]] = Field(default_factory=list, description="(substring, reply) pairs, first match wins")
    default: str = Field(default="", description="reply when no rule matches")

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedChatModel:
        """Rules from a JSON file ``{"rules": [[substring, reply], ...], "default": reply}``."""
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"scripted chat model: cannot read rules from {file}: {exc}") from exc
        rules = data.get("rules", []) if isinstance(data, dict) else None
        if not isinstance(rules, list) or not all(
            isinstance(r, Sequence) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in rules
        ):
            raise ValueError(f"scripted chat model: {file} must hold {{'rules': [[substring, reply], ...]}}")
        return cls(rules=[(str(a), str(b)) for a, b in rules], default=str(data.get("default", "")))

    @property
    def _llm_type(self) -> str:
        return "agentwm-scripted"

    def reply(self, messages: Sequence[BaseMessage]) -> str:
        """The scripted answer to ``messages``."""
        prompt = "\n".join(str(m.text) for m in messages)
        return next((answer for needle, answer in self.rules if needle in prompt), self.default)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.reply(messages)))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop)
