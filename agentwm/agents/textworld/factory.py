"""Build a named TextWorld agent (``learned``, ``learned_memory``, ``direct``, ``memory_explorer``, ``mcts``, ``objective_match``, ``random``, ``reactive``)."""

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


SHIPPED = "textworld-minilm-gru-dest"  # the default checkpoints (docs/textworld.md, phase 4)


def shipped_model(kind: str) -> Path:
    """The shipped checkpoint of ``kind`` (``learned``: ``world_model``, ``direct``: ``direct``) in
    ``models/textworld-minilm-gru-dest`` of the source checkout (next to the package) or of the
    current directory; a one-line error naming both places when neither holds it."""
    sub = "world_model" if kind == "learned" else "direct"
    places = [Path(__file__).resolve().parents[3] / "models" / SHIPPED / sub, Path.cwd() / "models" / SHIPPED / sub]
    for place in places:
        if (place / "config.json").is_file():
            return place
    raise FileNotFoundError(f"agent {kind!r}: no shipped checkpoint in {places[0]} or {places[1]}; pass --model <checkpoint folder>")


def _world_model(agent: str, model: str | Path | None, kwargs: dict[str, Any]) -> Any:
    """The world-model checkpoint ``model`` (default: the shipped one) for ``agent``, its
    ``cover_rule`` taken from ``kwargs``; a one-line error when the folder holds a direct scorer."""
    from agentwm.agents.textworld.train import load_model

    wm = load_model(model if model is not None else shipped_model("learned"))
    if isinstance(wm, DirectScorer):
        raise ValueError(f"{model} holds a direct scorer; {agent} needs a world model checkpoint")  # noqa: TRY004 (a wrong folder: a bad value)
    wm.cover_rule = kwargs.pop("cover_rule", "max")
    if wm.cover_rule not in ("max", "count"):
        raise ValueError(f"cover_rule must be 'max' or 'count', got {wm.cover_rule!r}")
    return wm


def make_agent(name: str, *, model: str | Path | None = None, horizon: int | None = None, seed: int = 0, **kwargs: Any) -> TextAgent:
    """The agent called ``name``; ``model`` is the checkpoint folder for ``learned`` and ``direct``
    (default: the shipped one, :func:`shipped_model`).

    ``horizon`` (imagined steps, ``learned`` only) defaults to :class:`LearnedPlanner`'s, chosen on
    validation games; ``cover_rule`` (``"max"`` or ``"count"``, both learned agents) sets how the
    model's carry tracks the objective's steps (:attr:`TextLatentModel.cover_rule`); other keyword
    arguments go to the agent's constructor."""
    if name == "random":
        return RandomAgent(seed)
    if name == "objective_match":
        return ObjectiveMatchAgent(shared_embedder())
    if name == "memory_explorer":
        from agentwm.agents.textworld.memory_explorer import MemoryExplorerAgent

        return MemoryExplorerAgent(shared_embedder(), **kwargs)
    if name == "reactive":
        return ReactiveAgent(kwargs["chat_model"])
    if name == "mcts":
        from agentwm.agents.textworld.search import MCTSAgent

        return MCTSAgent(_world_model(name, model, kwargs), shared_embedder(), **kwargs)
    if name == "learned_memory":
        from agentwm.agents.textworld.memory_planner import MemoryPlanner
        from agentwm.agents.textworld.train import load_model

        wm = _world_model(name, model, kwargs)
        if horizon is not None:
            kwargs["depth"] = horizon
        if kwargs.get("prior") is not None:
            prior = load_model(kwargs["prior"]) if not isinstance(kwargs["prior"], DirectScorer) else kwargs["prior"]
            if not isinstance(prior, DirectScorer):
                raise ValueError(f"prior {kwargs['prior']} holds a world model; the prior must be trained with --kind direct")
            prior.cover_rule = wm.cover_rule
            kwargs["prior"] = prior
        if kwargs.get("rebase", True) is not True:  # JSON false: remembered menus as they were
            kwargs["rebase"] = None
        else:
            kwargs.pop("rebase", None)
        return MemoryPlanner(wm, shared_embedder(), **kwargs)
    if name in ("learned", "direct"):
        if model is None:
            model = shipped_model(name)
        from agentwm.agents.textworld.train import load_model

        net = load_model(model)
        cover_rule = kwargs.pop("cover_rule", "max")
        if cover_rule not in ("max", "count"):
            raise ValueError(f"cover_rule must be 'max' or 'count', got {cover_rule!r}")
        net.cover_rule = cover_rule
        if name == "direct":
            if not isinstance(net, DirectScorer):
                raise ValueError(f"{model} holds a world model; the direct agent needs a model trained with --kind direct")
            return DirectAgent(net, shared_embedder(), **kwargs)  # an unknown option is a TypeError, not ignored
        if horizon is not None:
            kwargs["horizon"] = horizon
        if kwargs.get("prior") is not None:
            prior = load_model(kwargs["prior"])
            if not isinstance(prior, DirectScorer):
                raise ValueError(f"prior {kwargs['prior']} holds a world model; the prior must be trained with --kind direct")
            prior.cover_rule = cover_rule
            kwargs["prior"] = prior
        return LearnedPlanner(net, shared_embedder(), **kwargs)
    raise ValueError(f"unknown agent {name!r}; choose learned, learned_memory, direct, memory_explorer, mcts, objective_match, random or reactive")
