"""Checkpoint folder of a :class:`~agentwm.worldmodels.dialogue.DialogueWorldModel`.

Layout (every file written atomically)::

    model.safetensors   weights (fp32)
    config.json         {"model": DialogueConfig fields, ...training metadata and metrics}
    bank.safetensors    {"emb": [N, E] fp16} unit embeddings of real utterances
    bank.json           the N utterance texts, same order
    README.md           the model card (written by the trainer)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from agentwm.checkpoint import CONFIG, WEIGHTS, atomic_write, load_config, save_module
from agentwm.worldmodels.dialogue import DialogueConfig, DialogueWorldModel

BANK_EMB = "bank.safetensors"
BANK_TEXTS = "bank.json"
DEFAULT_NAME = "dialogue-minilm"


def default_checkpoint() -> Path:
    """The shipped checkpoint: ``$AGENTWM_DIALOGUE_MODEL``, else ``models/dialogue-minilm`` of the
    source checkout (next to the ``agentwm`` package) or of the current directory.

    Raises:
        FileNotFoundError: none of those folders holds a checkpoint; the message lists them.
    """
    env = os.environ.get("AGENTWM_DIALOGUE_MODEL")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[2] / "models" / DEFAULT_NAME,
        Path.cwd() / "models" / DEFAULT_NAME,
    ]
    for path in candidates:
        if (path / WEIGHTS).is_file() and (path / CONFIG).is_file():
            return path
    raise FileNotFoundError(
        "no dialogue checkpoint found in " + ", ".join(str(p) for p in candidates)
        + "; train one with `agentwm train dialogue --logdir models/dialogue-minilm` or set AGENTWM_DIALOGUE_MODEL"
    )


def save_dialogue_model(model: DialogueWorldModel, folder: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Save weights, config (+ ``extra`` metadata) and the utterance bank into ``folder``."""
    folder = Path(folder)
    config = {"family": "dialogue", "model": model.config.model_dump(), **(extra or {})}
    if model.bank_emb is not None:
        bank = model.bank_emb.to(torch.float16).contiguous().cpu()
        texts = json.dumps(model.bank_texts, ensure_ascii=False)

        def write_emb(tmp: str) -> None:
            save_file({"emb": bank}, tmp)

        def write_texts(tmp: str) -> None:
            Path(tmp).write_text(texts, encoding="utf-8")

        atomic_write(folder / BANK_EMB, write_emb)
        atomic_write(folder / BANK_TEXTS, write_texts)
    return save_module(folder, model, config)


def load_dialogue_model(
    folder: str | Path | None = None, *, embedder: Any | None = None, device: str = "cpu"
) -> DialogueWorldModel:
    """Load a checkpoint folder (``None``: :func:`default_checkpoint`) into an eval-mode model.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: the folder holds another family's checkpoint.
    """
    path = default_checkpoint() if folder is None else Path(folder)
    cfg = load_config(path)
    if cfg.get("family") != "dialogue" or "model" not in cfg:
        raise ValueError(f"{path} is not a dialogue world model checkpoint (family={cfg.get('family')!r})")
    model = DialogueWorldModel(DialogueConfig(**cfg["model"]), embedder=embedder)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"no weights at {weights}")
    model.load_state_dict(load_file(str(weights), device=device))
    if (path / BANK_EMB).is_file() and (path / BANK_TEXTS).is_file():
        texts = json.loads((path / BANK_TEXTS).read_text(encoding="utf-8"))
        model.set_bank(load_file(str(path / BANK_EMB))["emb"].float(), texts)
    model.metadata = {k: v for k, v in cfg.items() if k != "model"}
    return model.to(device).eval()
