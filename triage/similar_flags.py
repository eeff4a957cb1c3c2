"""A second deterministic net under the red-flag rules: similar cases.

Rules catch the phrasings their authors thought of; patients keep finding new ones
("右边身子像灌了铅", "心突然狂跳，要从嗓子眼蹦出来"). So a message the rules let
through is compared, in meaning (the retrieval embedder), with the knowledge base's
labelled examples (``knowledge/red_flag_examples.yaml``: emergencies in many phrasings
and near-misses that share their words: negations, past events, jokes, lessons). It is
escalated only when its closest emergency example is closer than its closest
near-miss by a clear margin, and it is then answered from that category's rule
template, like any red flag.

It can only add an escalation, never withdraw one the rules made; the language model
is never consulted; the same message always gets the same answer. Staff teach it a
missed phrasing by adding an example in the editor, without writing a pattern.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triage.redflags import RedFlagHit, RedFlagRules, affirmed_only
from triage.retrieval.embedder import Embedder, cached_queries
from triage.retrieval.hybrid import DENSE_QUERY_CHARS as WINDOW_CHARS  # the same opening retrieval embeds

INFANT_YEARS = 0.25


@dataclass(frozen=True)
class _Example:
    text: str
    category: str | None  # None: a near-miss


def example_problems(raw: Any) -> list[str]:
    """What is wrong with a list of examples, in Chinese, for the editor's publish check."""
    if not raw:
        return []
    if not isinstance(raw, list):
        return ["示例必须是列表，每条包含 text 和 expect"]
    problems = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not str(item.get("text") or "").strip():
            problems.append(f"第 {i} 条缺少 text")
        elif item.get("expect") is not None and not isinstance(item["expect"], str):
            problems.append(f"第 {i} 条的 expect 必须是类别名或 null")
        if len(problems) >= 5:
            break
    return problems


class SimilarCases:
    def __init__(
        self,
        examples: list[dict[str, Any]] | tuple[dict[str, Any], ...],
        embedder: Embedder,
        rules: RedFlagRules,
        margin: float = 0.02,
        cache_dir: Path | None = None,
        embed_query: Callable[[str], np.ndarray] | None = None,
    ) -> None:
        self.margin = margin
        self._embed_query = embed_query or (lambda text: embedder.embed_queries([text])[0])
        # One reply per category: the template of the category's first rule.
        self._replies: dict[str, tuple[str, str]] = {}
        for rule in rules.rules:
            self._replies.setdefault(rule.category, (rule.name, rule.reply))
        self._examples = [
            _Example(str(e["text"]), e.get("expect"))
            for e in examples
            if e.get("expect") is None or e.get("expect") in self._replies
        ]
        vectors = cached_queries(embedder, [e.text[:WINDOW_CHARS] for e in self._examples], cache_dir)
        emergency = np.array([e.category is not None for e in self._examples], dtype=bool)
        self._emergency_vectors, self._near_miss_vectors = vectors[emergency], vectors[~emergency]
        self._emergencies = [e for e in self._examples if e.category is not None]

    def __len__(self) -> int:
        return len(self._examples)

    def check(self, text: str, age_years: float | None = None, sex: str | None = None) -> RedFlagHit | None:
        # Embeddings cannot tell "不头晕" from "头晕": the net reads only what the patient affirms.
        text = affirmed_only(text).strip("，, ")
        if not text or not len(self._emergencies) or not len(self._near_miss_vectors):
            return None
        # Both ends of a long message are read: the complaint opens it, a later turn ends it.
        windows = [text[:WINDOW_CHARS]] + ([text[-WINDOW_CHARS:]] if len(text) > WINDOW_CHARS else [])
        best: tuple[float, int] | None = None
        for window in windows:
            query = self._embed_query(window)
            emergency = self._emergency_vectors @ query
            for i in np.argsort(-emergency)[:5]:  # the closest emergency that can apply to this patient
                if self._applies(self._emergencies[int(i)], age_years, sex):
                    lead = float(emergency[i] - (self._near_miss_vectors @ query).max())
                    if best is None or lead > best[0]:
                        best = (lead, int(i))
                    break
        if best is None or best[0] <= self.margin:
            return None
        example = self._emergencies[best[1]]
        assert example.category is not None
        name, reply = self._replies[example.category]
        return RedFlagHit(f"similar_{example.category}", example.category, name, f"相似示例：{example.text[:40]}", reply)

    @staticmethod
    def _applies(example: _Example, age_years: float | None, sex: str | None) -> bool:
        """An example about a baby, a pregnancy or a testicle cannot flag the wrong patient."""
        if example.category == "infant_fever" and age_years is not None and age_years >= INFANT_YEARS:
            return False
        if example.category == "testicular" and sex == "女":
            return False
        return not (example.category == "pregnancy" and sex == "男")
