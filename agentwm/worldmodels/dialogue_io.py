"""Checkpoint folder of a :class:`~agentwm.worldmodels.dialogue.DialogueWorldModel` (files only;
the model builds itself from them in ``DialogueWorldModel.load``, so this module does not import it).

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
from torch import Tensor, nn

from agentwm.checkpoint import CONFIG, WEIGHTS, atomic_write, load_config, save_module

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


def save_dialogue_files(
    folder: str | Path, module: nn.Module, config: Mapping[str, Any], bank: tuple[Tensor, list[str]] | None
) -> Path:
    """Save ``module``'s weights, ``config`` (JSON) and the utterance ``bank`` (embeddings, texts) into ``folder``."""
    folder = Path(folder)
    if bank is not None:
        emb = bank[0].to(torch.float16).contiguous().cpu()
        texts = json.dumps(bank[1], ensure_ascii=False)

        def write_emb(tmp: str) -> None:
            save_file({"emb": emb}, tmp)

        def write_texts(tmp: str) -> None:
            Path(tmp).write_text(texts, encoding="utf-8")

        atomic_write(folder / BANK_EMB, write_emb)
        atomic_write(folder / BANK_TEXTS, write_texts)
    return save_module(folder, module, dict(config))


def read_dialogue_files(
    folder: str | Path | None = None, device: str = "cpu"
) -> tuple[dict[str, Any], dict[str, Tensor], tuple[Tensor, list[str]] | None]:
    """Read a checkpoint folder (``None``: :func:`default_checkpoint`): its config, weights and bank.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: the folder holds another family's checkpoint.
    """
    path = default_checkpoint() if folder is None else Path(folder)
    cfg = load_config(path)
    if cfg.get("family") != "dialogue" or "model" not in cfg:
        raise ValueError(f"{path} is not a dialogue world model checkpoint (family={cfg.get('family')!r})")
    weights = path / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"no weights at {weights}")
    bank = None
    if (path / BANK_EMB).is_file() and (path / BANK_TEXTS).is_file():
        texts = json.loads((path / BANK_TEXTS).read_text(encoding="utf-8"))
        bank = (load_file(str(path / BANK_EMB))["emb"].float(), texts)
    return cfg, load_file(str(weights), device=device), bank
