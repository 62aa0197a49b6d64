"""A sentence encoder for sentence-transformers folders of the plain kind (a transformer, mean
pooling, unit normalisation), run through ``transformers`` alone.

Why not ``SentenceTransformer`` itself: importing ``sentence_transformers`` costs ~4.5 s of CPU on
this project's machine (torch ~1.2 s, ``transformers`` ~0.6 s more), most of a cold
``agentwm score dialogue`` call whose texts are new. The pipeline of such a folder is three steps,
so it is run here with the same tokenizer, weights and truncation, and gives the same vectors
(tested against ``SentenceTransformer``). Folders with any other pipeline (CLS or max pooling,
dense layers, prompts) keep ``SentenceTransformer``: see :func:`plain_mean_pool_folder`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

_STEPS = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
          "sentence_transformers.models.Normalize")  # fmt: skip


def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def plain_mean_pool_folder(folder: Path) -> bool:
    """Whether ``folder`` holds exactly a transformer, mean pooling and normalisation (nothing else
    this encoder would have to reproduce)."""
    try:
        modules = _read(folder / "modules.json")
        if [m.get("type") for m in modules] != list(_STEPS) or modules[0].get("path", "") != "":
            return False
        pooling = _read(folder / modules[1]["path"] / "config.json")
        wanted = {"pooling_mode_mean_tokens": True}
        others = {k: v for k, v in pooling.items() if k.startswith("pooling_mode_") and k not in wanted}
        if pooling.get("pooling_mode_mean_tokens") is not True or any(others.values()):
            return False
        extra = _read(folder / "config_sentence_transformers.json") if (folder / "config_sentence_transformers.json").is_file() else {}
        return not extra.get("prompts") and not extra.get("default_prompt_name")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


class MeanPoolEncoder:
    """``encode(texts) -> [N, dim]`` as ``SentenceTransformer.encode`` gives for a plain mean-pooling
    folder (the subset of its arguments :class:`~agentwm.text.embeddings.TextEmbedder` uses)."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        folder = Path(folder)
        settings = _read(folder / "sentence_bert_config.json") if (folder / "sentence_bert_config.json").is_file() else {}
        self.max_length = int(settings.get("max_seq_length") or 512)
        self.lower = bool(settings.get("do_lower_case", False))
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a bar per load would draw on every CLI call
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        finally:
            if bars:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        self.device = device

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 32, normalize_embeddings: bool = True, **_: Any) -> Tensor:
        """Vectors ``[len(texts), dim]`` (float32, on the encoder's device). Texts go in batches of
        similar length, as sentence-transformers sorts them, so padding stays short."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = torch.empty(len(texts), self.get_sentence_embedding_dimension(), device=self.device)
        for lo in range(0, len(texts), batch_size):
            rows = order[lo : lo + batch_size]
            batch = [texts[i].lower() if self.lower else texts[i] for i in rows]
            tokens = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                    return_tensors="pt").to(self.device)  # fmt: skip
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if normalize_embeddings:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[rows] = pooled.float()
        return out
