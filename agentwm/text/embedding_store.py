"""Sentence embeddings cached on disk across processes: each distinct text is encoded once, ever.

Shards of ``(texts .json, embeddings .safetensors)`` live under ``<root>/emb-<model_tag>/`` (the
layout the Chit-Chat trainer writes, so caches are shared). A shard counts only once its texts file
exists, and each file is written atomically, so a killed process loses at most one shard. The
encoder itself is built only on the first text that is not cached: scoring known texts starts in
well under a second instead of paying for loading MiniLM.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from agentwm.checkpoint import atomic_write

DEFAULT_TAG = "all-MiniLM-L6-v2"


def default_cache_dir() -> Path:
    """``$AGENTWM_CACHE`` or ``~/.cache/agentwm`` (outside any repository)."""
    return Path(os.environ.get("AGENTWM_CACHE", Path.home() / ".cache" / "agentwm"))


class EmbeddingStore:
    """Unit-vector text embeddings ``[N, dim]`` (float32) backed by an on-disk, append-only cache.

    Args:
        cache_dir: cache root (default :func:`default_cache_dir`); ``None`` and ``persist=False``
            keeps everything in memory.
        model_tag: names the encoder, so two encoders never share vectors.
        encoder: ``embed(list[str]) -> Tensor`` object, or a zero-argument factory called on the
            first miss; default: the offline MiniLM :class:`~agentwm.text.TextEmbedder`.
        shard: texts per shard file written.
        persist: write new vectors to disk.

    Example:
        >>> store = EmbeddingStore()
        >>> store.embed(["deal", "no deal"]).shape
        torch.Size([2, 384])
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        model_tag: str = DEFAULT_TAG,
        encoder: Any | Callable[[], Any] | None = None,
        shard: int = 2048,
        persist: bool = True,
    ) -> None:
        if shard < 1:
            raise ValueError(f"shard must be >= 1, got {shard}")
        self.folder = Path(cache_dir or default_cache_dir()) / f"emb-{model_tag}"
        self.shard, self.persist = shard, persist
        self._encoder = encoder
        self._vectors: dict[str, Tensor] = {}
        self._loaded_shards: set[str] = set()
        self.encoded = 0
        """Texts this store had to encode (cache misses)."""
        self.refresh()

    def refresh(self) -> None:
        """Read shards written since the last look (another process may have added some)."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("shard-*.safetensors")):
            names = path.with_suffix(".json")
            if path.name in self._loaded_shards or not names.is_file():
                continue
            texts = json.loads(names.read_text(encoding="utf-8"))
            emb = load_file(str(path))["emb"].float()
            if emb.shape[0] != len(texts):
                raise ValueError(f"embedding cache shard {path} has {emb.shape[0]} rows for {len(texts)} texts; delete it")
            self._vectors.update(zip(texts, emb))
            self._loaded_shards.add(path.name)

    def __contains__(self, text: object) -> bool:
        return text in self._vectors

    def __len__(self) -> int:
        return len(self._vectors)

    def _encoder_object(self) -> Any:
        if self._encoder is None:
            from agentwm.text.embeddings import TextEmbedder

            self._encoder = TextEmbedder(batch_size=128, cache_size=0)
        elif callable(self._encoder) and not hasattr(self._encoder, "embed"):
            self._encoder = self._encoder()
        return self._encoder

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> Tensor:
        """Embeddings ``[len(texts), dim]``; texts never seen are encoded and written to disk."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of strings; wrap a single text in a list")
        texts = list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._add(missing, progress)
        if not texts:
            dim = next(iter(self._vectors.values())).shape[0] if self._vectors else 0
            return torch.zeros(0, dim)
        return torch.stack([self._vectors[t] for t in texts])

    def _add(self, missing: list[str], progress: bool) -> None:
        from tqdm import tqdm

        encoder = self._encoder_object()
        bar = tqdm(total=len(missing), desc="embedding texts", unit="text", disable=not progress)
        for i in range(0, len(missing), self.shard):
            chunk = missing[i : i + self.shard]
            rows = encoder.embed(chunk).to(torch.float32)
            self.encoded += len(chunk)
            if self.persist:
                half = rows.to(torch.float16).contiguous()
                name = hashlib.sha1("\x00".join(chunk).encode("utf-8")).hexdigest()[:16]
                path = self.folder / f"shard-{name}.safetensors"
                atomic_write(path, functools.partial(_save_rows, half))
                payload = json.dumps(chunk, ensure_ascii=False)
                atomic_write(path.with_suffix(".json"), functools.partial(_write_text_to, payload))
                self._loaded_shards.add(path.name)
                rows = half.float()  # the same precision a later process reads back
            self._vectors.update(zip(chunk, rows))
            bar.update(len(chunk))
        bar.close()


def _write_text_to(text: str, path: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


def _save_rows(rows: Tensor, path: str) -> None:
    save_file({"emb": rows}, path)
