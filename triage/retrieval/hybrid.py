"""Fuse dictionary matches, BM25 and dense similarity into one ranked list of departments."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triage.knowledge.loader import KnowledgeBase
from triage.retrieval.bm25 import BM25
from triage.retrieval.embedder import Embedder, cached_passages
from triage.retrieval.terms import TermMatcher
from triage.retrieval.text import Tokenizer

DENSE_QUERY_CHARS = 160


@dataclass(frozen=True)
class Candidate:
    dept_id: str
    name: str
    canonical: str
    score: float
    evidence: tuple[str, ...] = ()
    parts: dict[str, float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class FusionWeights:
    """Relative weight of each signal after normalisation (chosen on the dev set, see README)."""

    terms: float = 1.0
    bm25: float = 0.3
    dense: float = 0.8


class Retriever:
    """Built once per knowledge-base version; immutable afterwards (but for the last query's
    similarities, replaced whole), so threads can share it."""

    def __init__(
        self,
        kb: KnowledgeBase,
        embedder: Embedder | None = None,
        cache_dir: Path | None = None,
        weights: FusionWeights = FusionWeights(),
    ) -> None:
        self.kb = kb
        self.weights = weights
        self.matcher = TermMatcher(kb)
        words = [s for d in kb.departments for e in d.entries for s in (e.term, *e.aliases)]
        words += [w for key, values in kb.synonyms.items() for w in (key, *values)]
        self.tokenizer = Tokenizer(words)
        self.bm25 = BM25({d.id: self._department_tokens(d) for d in kb.departments})
        self.embedder = embedder
        self._entry_dept: list[str] = []
        self._entry_term: list[str] = []
        texts: list[str] = []
        for d in kb.departments:
            for e in d.entries:
                texts.append(f"{e.term}：{'、'.join(e.aliases[:8])}" if e.aliases else e.term)
                self._entry_dept.append(d.id)
                self._entry_term.append(e.term)
        self._dept_index = {d.id: i for i, d in enumerate(kb.departments)}
        self._entry_dept_idx = np.array([self._dept_index[i] for i in self._entry_dept])
        self._entry_vectors = cached_passages(embedder, texts, cache_dir) if embedder else None
        self._last_similarities: tuple[str, np.ndarray] | None = None
        self._last_query: tuple[str, np.ndarray] | None = None

    def _department_tokens(self, dept) -> list[str]:
        tokens: list[str] = []
        for e in dept.entries:
            for surface in (e.term, *e.aliases):
                tokens.extend(self.tokenizer.tokens(surface))
        return tokens

    def _synonyms_of(self, tokens: list[str]) -> list[str]:
        """Query expansion from the synonym table: 嗓子 also searches 咽喉."""
        return [w for t in tokens for w in self.kb.synonyms.get(t, ())]

    def dense_scores(self, text: str) -> dict[str, float]:
        if self.embedder is None or self._entry_vectors is None or not len(self._entry_vectors):
            return {}
        # The opening of a message carries the complaint; long tails only cost time.
        sims = self._similarities(text)
        best = np.full(len(self.kb.departments), -1.0, dtype=np.float32)
        np.maximum.at(best, self._entry_dept_idx, sims)
        return {d.id: float(best[i]) for i, d in enumerate(self.kb.departments)}

    def _similarities(self, text: str) -> np.ndarray:
        """Cosine of the complaint with every entry. Retrieval and the follow-up question ask
        for the same text in one turn, so the last result is kept: one embedding per text."""
        key = text[:DENSE_QUERY_CHARS]
        last = self._last_similarities  # one tuple, replaced whole: safe to share between threads
        if last is not None and last[0] == key:
            return last[1]
        assert self._entry_vectors is not None
        sims = self._entry_vectors @ self.query_vector(key)
        self._last_similarities = (key, sims)
        return sims

    def query_vector(self, text: str) -> np.ndarray:
        """The embedding of a patient's text; the red-flag net and retrieval read the same
        opening of a message, so it is embedded once."""
        last = self._last_query
        if last is not None and last[0] == text:
            return last[1]
        assert self.embedder is not None
        vector = self.embedder.embed_queries([text])[0]
        self._last_query = (text, vector)
        return vector

    def related_entries(self, text: str, limit: int = 60) -> dict[tuple[str, str], float]:
        """The entries nearest to the complaint in meaning: {(dept_id, term): cosine}. Used
        to keep follow-up questions on the patient's topic."""
        if self.embedder is None or self._entry_vectors is None or not len(self._entry_vectors):
            return {}
        sims = self._similarities(text)
        top = np.argsort(-sims)[:limit]
        return {(self._entry_dept[i], self._entry_term[i]): float(sims[i]) for i in top}

    def mentions(self, text: str) -> list[tuple[str, str]]:
        """(word the patient used, knowledge-base term) for each symptom or condition found."""
        matches = self.matcher.match(text, set(self.tokenizer.tokens(text)))
        found: dict[tuple[str, str], None] = {}
        for m in matches:
            posting = next((p for p in m.postings if p.kind in ("symptom", "condition")), None)
            if posting is not None:
                found[(m.surface, posting.term)] = None
        return list(found)

    def retrieve(self, text: str, limit: int = 8) -> list[Candidate]:
        tokens = self.tokenizer.tokens(text)
        matches = self.matcher.match(text, set(tokens))
        parts = {
            "terms": self.matcher.scores(matches),
            "bm25": self.bm25.scores(tokens + self._synonyms_of(tokens)),
            "dense": self.dense_scores(text),
        }
        fused: dict[str, float] = {}
        for name, scores in parts.items():
            weight = getattr(self.weights, name)
            for dept_id, value in _normalise(scores, dense=name == "dense").items():
                fused[dept_id] = fused.get(dept_id, 0.0) + weight * value
        evidence: dict[str, list[str]] = {}
        for m in matches:
            for p in m.postings:
                if p.kind == "treatment":  # a drug the patient took is no reason to show them
                    continue
                label = m.surface if m.surface == p.term else f"{m.surface}→{p.term}"
                evidence.setdefault(p.dept_id, []).append(label)
        ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:limit]
        return [
            Candidate(
                dept_id=dept_id,
                name=self.kb.by_id[dept_id].name,
                canonical=self.kb.by_id[dept_id].canonical,
                score=round(score, 4),
                evidence=tuple(dict.fromkeys(evidence.get(dept_id, ()))),
                parts={k: round(v.get(dept_id, 0.0), 4) for k, v in parts.items()},
            )
            for dept_id, score in ranked
        ]


def _normalise(scores: dict[str, float], dense: bool) -> dict[str, float]:
    """Sparse signals are scaled by their best value; dense cosines are min-max scaled,
    because every department has some similarity to any text."""
    if not scores:
        return {}
    hi, lo = max(scores.values()), min(scores.values())
    if hi <= 0 or (dense and hi == lo):
        return {}
    if dense:
        return {k: (v - lo) / (hi - lo) for k, v in scores.items()}
    return {k: max(0.0, v) / hi for k, v in scores.items()}
