"""Save and load :class:`DialogueOutcomeModel` checkpoints: safetensors weights + bank, JSON config.

A checkpoint folder holds ``model.safetensors`` (weights, and the bank's embeddings as fp16),
``config.json`` (the model config and training facts) and ``bank.json`` (the bank's texts and
speaker flags). Each file is written atomically; nothing is unpickled on load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from agentwm.checkpoint import atomic_write
from agentwm.worldmodels.dialogue_outcome import DialogueOutcomeModel, OutcomeModelConfig

FORMAT = "agentwm.dialogue_outcome/1"


def save_outcome_model(folder: str | Path, model: DialogueOutcomeModel, facts: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (with its bank) to ``folder``; ``facts`` (data, splits, figures) go into config.json."""
    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors["bank.emb"] = model.bank_emb.to(torch.float16).contiguous()
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(tensors, tmp))
    bank = json.dumps({"texts": model.bank_texts, "agent": [bool(a) for a in model.bank_agent.tolist()]},
                      ensure_ascii=False)
    atomic_write(folder / "bank.json", lambda tmp: _write_text(tmp, bank))
    config = {"format": FORMAT, "model": model.config.model_dump(), "facts": facts or {}}
    atomic_write(folder / "config.json", lambda tmp: _write_text(tmp, json.dumps(config, indent=2)))
    return folder


def is_outcome_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a checkpoint written by :func:`save_outcome_model`."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text()).get("format") == FORMAT)
    except (json.JSONDecodeError, AttributeError):
        return False


def load_outcome_model(folder: str | Path, *, embed: Any | None = None, cache_dir: str | Path | None = None) -> DialogueOutcomeModel:
    """Load a checkpoint folder (in eval mode); ``embed`` defaults to an on-disk cached MiniLM store.

    Raises:
        FileNotFoundError: a file of the checkpoint is missing.
        ValueError: the folder holds another kind of checkpoint.
    """
    folder = Path(folder)
    for name in ("config.json", "model.safetensors", "bank.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}; expected a folder written by `agentwm train dialogue`")
    raw = json.loads((folder / "config.json").read_text())
    if raw.get("format") != FORMAT:
        raise ValueError(f"{folder} is not a dialogue outcome model (format {raw.get('format')!r}, expected {FORMAT!r})")
    config = OutcomeModelConfig.model_validate(raw["model"])
    if embed is None:
        from agentwm.text.embedding_store import EmbeddingStore

        embed = EmbeddingStore(cache_dir, model_tag=config.embedder)
    model = DialogueOutcomeModel(config, embed=embed)
    tensors = load_file(str(folder / "model.safetensors"))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    bank = json.loads((folder / "bank.json").read_text(encoding="utf-8"))
    model.set_bank(tensors["bank.emb"], bank["texts"], torch.tensor(bank["agent"], dtype=torch.bool))
    model.metadata = dict(raw.get("facts", {}))
    return model.eval()


def _write_text(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")
