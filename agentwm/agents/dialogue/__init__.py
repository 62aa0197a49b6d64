"""Dialogue training loops: the Chit-Chat next-turn model and the outcome model of any conversation logs."""

from agentwm.agents.dialogue.train import (
    DialogueData,
    DialogueTrainConfig,
    cached_embeddings,
    default_cache_dir,
    evaluate,
    load_data,
    main_embed_all,
    make_batch,
    sample_conversations,
    train_dialogue,
    write_model_card,
)

__all__ = [
    "DialogueData",
    "DialogueTrainConfig",
    "cached_embeddings",
    "default_cache_dir",
    "evaluate",
    "load_data",
    "main_embed_all",
    "make_batch",
    "sample_conversations",
    "train_dialogue",
    "write_model_card",
]
