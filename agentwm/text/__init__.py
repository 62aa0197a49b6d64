"""Text: sentence embeddings, LLM backends, prompts and robust parsing of model output."""

from agentwm.text.embeddings import TextEmbedder, default_embedding_model

__all__ = ["TextEmbedder", "default_embedding_model"]
