"""Text: sentence embeddings, LLM backends, prompts and robust parsing of model output."""

from agentwm.extras import missing_extra

try:
    from agentwm.text.client import Completion, LLMClient, LLMError, StructuredResult
    from agentwm.text.embeddings import TextEmbedder, default_embedding_model
    from agentwm.text.local_chat import LocalChatModel, smollm2_chat_model
    from agentwm.text.scorers import EmbeddingRelevance, LLMJudge, Scores, TextScorer
except ModuleNotFoundError as err:
    raise missing_extra(err, "llm", "agentwm.text") from None

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
