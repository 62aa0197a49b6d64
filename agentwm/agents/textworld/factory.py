"""Build a named TextWorld agent (``learned``, ``direct``, ``objective_match``, ``random``, ``reactive``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentwm.agents.textworld.agents import (
    DirectAgent,
    LearnedPlanner,
    ObjectiveMatchAgent,
    RandomAgent,
    ReactiveAgent,
    TextAgent,
)
from agentwm.agents.textworld.direct import DirectScorer

_EMBEDDER: Any = None


def shared_embedder() -> Any:
    """One MiniLM embedder (with its cache) for every agent of the process."""
    global _EMBEDDER
    if _EMBEDDER is None:
        from agentwm.text.embeddings import TextEmbedder

        _EMBEDDER = TextEmbedder()
    return _EMBEDDER


def make_agent(name: str, *, model: str | Path | None = None, horizon: int = 3, seed: int = 0, **kwargs: Any) -> TextAgent:
    """The agent called ``name``; ``model`` is the checkpoint folder for ``learned`` and ``direct``."""
    if name == "random":
        return RandomAgent(seed)
    if name == "objective_match":
        return ObjectiveMatchAgent(shared_embedder())
    if name == "reactive":
        return ReactiveAgent(kwargs["chat_model"])
    if name in ("learned", "direct"):
        if model is None:
            raise ValueError(f"agent {name!r} needs --model <checkpoint folder>")
        from agentwm.agents.textworld.train import load_model

        net = load_model(model)
        if name == "direct":
            if not isinstance(net, DirectScorer):
                raise ValueError(f"{model} holds a world model; the direct agent needs a model trained with --kind direct")
            return DirectAgent(net, shared_embedder(), propose=kwargs.get("propose"), repeat_discount=kwargs.get("repeat_discount", 1.0))
        return LearnedPlanner(net, shared_embedder(), horizon=horizon, **kwargs)
    raise ValueError(f"unknown agent {name!r}; choose learned, direct, objective_match, random or reactive")
