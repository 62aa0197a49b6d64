"""Text: sentence embeddings, LLM backends, prompts and robust parsing of model output.

The names below load on first use (PEP 562): importing one submodule, e.g. the on-disk embedding
cache a scorer needs, does not pull in LangChain and transformers (seconds of a cold CLI call).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agentwm.extras import missing_extra

if TYPE_CHECKING:
    from agentwm.text.client import Completion, LLMClient, LLMError, StructuredResult
    from agentwm.text.embeddings import TextEmbedder, default_embedding_model
    from agentwm.text.local_chat import LocalChatModel, smollm2_chat_model
    from agentwm.text.scorers import EmbeddingRelevance, LLMJudge, Scores, TextScorer

_LAZY = {
    "Completion": "client", "LLMClient": "client", "LLMError": "client", "StructuredResult": "client",
    "TextEmbedder": "embeddings", "default_embedding_model": "embeddings",
    "LocalChatModel": "local_chat", "smollm2_chat_model": "local_chat",
    "EmbeddingRelevance": "scorers", "LLMJudge": "scorers", "Scores": "scorers", "TextScorer": "scorers",
}  # fmt: skip

__all__ = [
    "Completion",
    "EmbeddingRelevance",
    "LLMClient",
    "LLMError",
    "LLMJudge",
    "LocalChatModel",
    "Scores",
    "StructuredResult",
    "TextEmbedder",
    "TextScorer",
    "default_embedding_model",
    "smollm2_chat_model",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        try:
            module = importlib.import_module(f"agentwm.text.{_LAZY[name]}")
        except ModuleNotFoundError as err:
            raise missing_extra(err, "llm", "agentwm.text") from None
        return getattr(module, name)
    raise AttributeError(f"module 'agentwm.text' has no attribute {name!r}")
