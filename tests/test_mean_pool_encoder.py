"""The light MiniLM encoder gives sentence-transformers' vectors, and only for folders it can reproduce."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("sentence_transformers")

from agentwm.text.embeddings import TextEmbedder, default_embedding_model
from agentwm.text.mean_pool_encoder import MeanPoolEncoder, plain_mean_pool_folder

TEXTS = [
    "hello there",
    "I need the hats and the ball, you can have the books",
    "",
    "word " * 400,  # past the 256-token limit: truncated as sentence-transformers truncates
    "Ünïcödé 💡 text?",
    "The quick brown fox jumps over the lazy dog. " * 8,
    "a",
]


@pytest.mark.usefixtures("one_thread")
def test_mean_pool_encoder_gives_sentence_transformers_vectors() -> None:
    from sentence_transformers import SentenceTransformer

    folder = default_embedding_model()
    assert plain_mean_pool_folder(folder)
    ours = MeanPoolEncoder(folder).encode(TEXTS, batch_size=3)
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True).encode(
        TEXTS, batch_size=3, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
    )
    assert ours.shape == (len(TEXTS), 384)
    torch.testing.assert_close(ours, reference.float(), rtol=0, atol=1e-5)
    assert isinstance(TextEmbedder().encoder, MeanPoolEncoder)  # the default takes the light path


def _folder_with_pooling(tmp_path: Path, **pooling: bool) -> Path:
    source = default_embedding_model()
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    shutil.copy(source / "modules.json", folder / "modules.json")
    config = json.loads((source / "1_Pooling" / "config.json").read_text())
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({**config, **pooling}))
    return folder


def test_other_pipelines_are_left_to_sentence_transformers(tmp_path: Path) -> None:
    assert plain_mean_pool_folder(_folder_with_pooling(tmp_path / "a"))
    assert not plain_mean_pool_folder(_folder_with_pooling(tmp_path / "b", pooling_mode_cls_token=True))
    assert not plain_mean_pool_folder(_folder_with_pooling(tmp_path / "c", pooling_mode_mean_tokens=False))
    assert not plain_mean_pool_folder(tmp_path / "missing")
    dense = _folder_with_pooling(tmp_path / "d")
    modules = json.loads((dense / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (dense / "modules.json").write_text(json.dumps(modules))
    assert not plain_mean_pool_folder(dense)
