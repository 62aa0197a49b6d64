"""Training and evaluation of the dialogue world model on Chit-Chat conversations."""

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
