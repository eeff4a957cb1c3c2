"""Okapi BM25 over one document per department (its terms and aliases, jieba-tokenised)."""

from __future__ import annotations

import math
from collections import Counter


class BM25:
    def __init__(self, documents: dict[str, list[str]], k1: float = 1.2, b: float = 0.5) -> None:
        self.k1, self.b = k1, b
        self.ids = list(documents)
        self.tf = [Counter(documents[i]) for i in self.ids]
        self.lengths = [len(documents[i]) for i in self.ids]
        self.avg_len = sum(self.lengths) / max(1, len(self.lengths))
        df: Counter[str] = Counter()
        for tf in self.tf:
            df.update(tf.keys())
        n = len(self.ids)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for doc_id, tf, length in zip(self.ids, self.tf, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg_len)
            score = 0.0
            for token in set(query):
                f = tf.get(token)
                if f:
                    score += self.idf[token] * f * (self.k1 + 1) / (f + norm)
            if score > 0:
                out[doc_id] = score
        return out
