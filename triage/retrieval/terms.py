"""Dictionary matching: find the knowledge base's terms and aliases in a complaint.

Matches are maximal (a match inside a longer match is dropped, so 胃痛 inside
胃痛灼烧 counts once) and a symptom preceded by a negation cue (没有发烧) is
ignored. Every match is kept as evidence for the answer.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

from triage.knowledge.loader import KnowledgeBase
from triage.retrieval.text import normalize

NEGATION_CUES = ("没有", "没", "无", "否认", "未见", "未", "不伴", "并无")
# Degree words and fillers patients put inside a symptom: 胸口有点闷, 肚子一直疼, 头老是晕.
FILLERS = re.compile(r"有点儿?|有一点|有些|一点儿?|稍微|比较|特别|非常|挺|很|老是|总是|经常|一直|时不时|有时候?|偶尔|好像|也|还|又")
_CLAUSE_BREAK = re.compile(r"[，,。.；;！!？?、]|但是|不过")


@dataclass(frozen=True)
class Posting:
    dept_id: str
    term: str
    kind: str
    weight: float


@dataclass(frozen=True)
class Match:
    surface: str
    start: int
    postings: tuple[Posting, ...]


class TermMatcher:
    def __init__(self, kb: KnowledgeBase) -> None:
        table: dict[str, dict[str, Posting]] = defaultdict(dict)
        for dept in kb.departments:
            for entry in dept.entries:
                for surface in (entry.term, *entry.aliases):
                    key = normalize(surface)
                    if not key:
                        continue
                    old = table[key].get(dept.id)
                    if old is None or old.weight < entry.weight:
                        table[key][dept.id] = Posting(dept.id, entry.term, entry.kind, entry.weight)
        self.table = {k: tuple(v.values()) for k, v in table.items()}
        self.max_len = max((len(k) for k in self.table), default=1)
        # Specificity: a surface shared by many canonical departments says less.
        canon = {d.id: d.canonical for d in kb.departments}
        self.specificity = {
            k: 1.0 / math.sqrt(len({canon[p.dept_id] for p in v})) for k, v in self.table.items()
        }

    def match(self, text: str, tokens: set[str] | None = None) -> list[Match]:
        """``tokens``: the jieba tokens of the text. A one-character term counts only
        when it stands as a word of its own (脾 in 脾气 is no spleen). Words found only
        once the fillers are removed (胸口有点闷 → 胸口闷) are added."""
        text = normalize(text)
        found = self._match(text, tokens)
        compact = FILLERS.sub("", text)
        if compact != text:
            seen = {m.surface for m in found}
            found += [m for m in self._match(compact, tokens) if m.surface not in seen and len(m.surface) > 1]
        return found

    def _match(self, text: str, tokens: set[str] | None) -> list[Match]:
        found: list[tuple[int, int, str]] = []
        for i in range(len(text)):
            for length in range(min(self.max_len, len(text) - i), 0, -1):
                piece = text[i : i + length]
                if piece in self.table and self._standalone(text, i, piece, tokens):
                    found.append((i, i + length, piece))
                    break  # longest match at this start
        maximal = [
            (s, e, p) for s, e, p in found if not any(s2 <= s and e <= e2 and (s2, e2) != (s, e) for s2, e2, _ in found)
        ]
        return [Match(p, s, self.table[p]) for s, e, p in maximal if not _negated(text, s, self.table[p])]

    @staticmethod
    def _standalone(text: str, start: int, piece: str, tokens: set[str] | None) -> bool:
        if piece.isascii() and piece[0].isalnum():  # "mm" in "22mm" is no myeloma
            before = text[start - 1 : start]
            after = text[start + len(piece) : start + len(piece) + 1]
            return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())
        if len(piece) == 1 and tokens is not None:
            return piece in tokens
        return True

    def scores(self, matches: list[Match]) -> dict[str, float]:
        scores: dict[str, float] = defaultdict(float)
        for m in matches:
            spec = self.specificity[m.surface]
            # Longer surfaces are more informative than single characters.
            length_factor = 0.5 if len(m.surface) == 1 else 1.0
            for p in m.postings:
                scores[p.dept_id] += p.weight * spec * length_factor
        return dict(scores)


def _negated(text: str, start: int, postings: tuple[Posting, ...]) -> bool:
    if not any(p.kind in ("symptom", "population") for p in postings):  # 没怀孕 is no pregnancy
        return False
    window = _CLAUSE_BREAK.split(text[max(0, start - 6) : start])[-1]
    return any(window.endswith(cue) or window.endswith(cue + "有") for cue in NEGATION_CUES) or any(
        cue in window[-4:] for cue in ("没有", "否认", "并无")
    )
