"""Which follow-up question to ask next, if any.

A question is asked only when its answer can change the outcome:
- a slot the rules need (age and sex, pregnancy, duration) is asked only if
  probing the rules with different values of it gives a different department
  or urgency;
- a symptom question is asked only while no department is clearly ahead, and
  the symptom is chosen so that "yes" and "no" split the remaining candidates'
  weight as evenly as possible.
At most ``max_questions`` are asked; the patient can always cut it short.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from triage.guardrails import is_safe
from triage.knowledge.loader import KnowledgeBase
from triage.patient import PatientFacts
from triage.retrieval.hybrid import Candidate

# What the rules produce for one set of patient facts: top department and urgency.
Outcome = tuple[str | None, str]
Probe = Callable[[dict[str, Any]], Outcome]

DENIED_FACTOR = 0.75  # a "no" to a department's symptom lowers that department's weight


@dataclass(frozen=True)
class Question:
    kind: str  # describe | age_sex | sex | pregnancy | duration | symptom
    text: str
    term: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "term": self.term}


# Used when the knowledge base has no questions document (knowledge/questions.yaml).
DEFAULT_QUESTIONS = {
    "describe": "请再具体说说：哪里不舒服？有什么症状？大概持续多久了？",
    "age_sex": "请问患者的年龄和性别？（例如：“女，28” 或 “男孩，3岁”）",
    "sex": "请问患者是男性还是女性？",
    "pregnancy": "请问目前是否怀孕或可能怀孕？（回复“是”“否”或“不确定”）",
    "duration": "这种情况持续多久了？严重程度如何？（例如：“3天，能忍受” 或 “半年，时好时坏”）",
    "symptom": "请问有没有{symptom}的情况？请回复“有”或“没有”。",
    "hint": "（回复“直接推荐”可立即获得建议）",
}
_AGE_PROBES = ({"age": 3}, {"age": 10}, {"age": 35}, {"age": 80})
_SEX_PROBES = ({"sex": "男"}, {"sex": "女"})
_DURATION_PROBES = ({"duration_days": 1}, {"duration_days": 5}, {"duration_days": 90})


class FollowUp:
    def __init__(self, kb: KnowledgeBase, max_questions: int = 3, clear_ratio: float = 0.7) -> None:
        self.kb = kb
        self.texts = {**DEFAULT_QUESTIONS, **{k: str(v) for k, v in (kb.questions or {}).items()}}
        self.hint = self.texts["hint"]
        self.max_questions = max_questions
        self.clear_ratio = clear_ratio

    def is_clear(self, candidates: Sequence[Candidate]) -> bool:
        """One department clearly ahead: the runner-up has well under the leader's score."""
        if len(candidates) < 2:
            return True
        return candidates[1].score <= self.clear_ratio * candidates[0].score

    def next_question(
        self,
        candidates: Sequence[Candidate],
        slots: dict[str, Any],
        asked: Sequence[str],
        probe: Probe,
        facts: PatientFacts | None = None,
        related: dict[tuple[str, str], float] | None = None,
    ) -> Question | None:
        """``slots``: what the patient answered; ``facts``: what their own words already say;
        ``related``: knowledge-base entries near the complaint in meaning, {(dept_id, term): similarity}."""
        if len(asked) >= self.max_questions:
            return None
        if facts is not None:  # a fact stated in the complaint needs no question
            stated = {"age": facts.age_years, "sex": facts.sex, "duration_days": facts.duration_days,
                      "pregnant": True if facts.pregnant else None}  # fmt: skip
            slots = {
                **{k: v for k, v in stated.items() if v is not None},
                **{k: v for k, v in slots.items() if v is not None},
            }
        if "describe" not in asked and not any(c.evidence for c in candidates[:3]):
            return Question("describe", self.texts["describe"])
        child = facts is not None and facts.probable_child  # a child's age is always worth knowing
        if slots.get("age") is None and "age_sex" not in asked and (child or _changes(probe, _AGE_PROBES, slots)):
            return Question("age_sex", self.texts["age_sex"])
        if slots.get("sex") is None and not {"age_sex", "sex"} & set(asked) and _changes(probe, _SEX_PROBES, slots):
            return Question("sex", self.texts["sex"])
        if (
            slots.get("pregnant") is None
            and "pregnancy" not in asked
            and slots.get("sex") == "女"
            and 14 <= (slots.get("age") or 30) < 50
            and _changes(probe, ({"pregnant": True}, {"pregnant": False}), slots)
        ):
            return Question("pregnancy", self.texts["pregnancy"])
        if not self.is_clear(candidates):
            question = self._symptom_question(candidates, slots, asked, related)
            if question is not None:
                return question
        if slots.get("duration_days") is None and "duration" not in asked and _changes(probe, _DURATION_PROBES, slots):
            return Question("duration", self.texts["duration"])
        return None

    def _symptom_question(
        self,
        candidates: Sequence[Candidate],
        slots: dict[str, Any],
        asked: Sequence[str],
        related: dict[tuple[str, str], float] | None,
    ) -> Question | None:
        """A symptom on the patient's topic (near the complaint in meaning, when embeddings
        are available) whose yes/no splits the leading candidates' weight most evenly."""
        pool = list(candidates[:3])
        total = sum(max(c.score, 1e-6) for c in pool)
        weight = {c.dept_id: max(c.score, 1e-6) / total for c in pool}
        known = {e.split("→")[-1] for c in pool for e in c.evidence}
        known |= set(slots.get("has", [])) | set(slots.get("denied", []))
        known |= {a.split(":", 1)[1] for a in asked if a.startswith("symptom:")}
        has_term = {c.dept_id: {e.term for e in self.kb.by_id[c.dept_id].entries} for c in pool}
        best: tuple[float, Any] | None = None
        for c in [c for c in pool[:2] if c.canonical != "急诊科"]:  # separate the two leaders first
            for entry in self.kb.by_id[c.dept_id].entries:
                # Emergency signs are the red-flag rules' business, not a question to ask.
                if entry.kind != "symptom" or entry.weight < 0.6 or entry.term in known or entry.urgency == "emergency":
                    continue
                closeness = 1.0 if related is None else related.get((c.dept_id, entry.term), 0.0)
                if closeness <= 0:
                    continue
                split = sum(weight[d] for d, terms in has_term.items() if entry.term in terms)
                value = _entropy(split) * entry.weight * closeness
                if best is None or value > best[0]:
                    best = (value, entry)
        if best is None or best[0] <= 0:
            return None
        entry = best[1]
        if not is_safe(entry.term) or not all(is_safe(a) for a in entry.aliases[:3]):
            return None  # never a question that reads like advice about drugs
        # Everyday words first (the aliases are written that way), the medical term after.
        lay = next((a for a in entry.aliases if 2 <= len(a) <= 8 and _is_chinese(a)), None)
        shown = f"「{lay}」（{entry.term}）" if lay else f"「{entry.term}」"
        return Question("symptom", self.texts["symptom"].replace("{symptom}", shown), term=entry.term)


def discount_denied(candidates: list[Candidate], denied: Sequence[str], kb: KnowledgeBase) -> list[Candidate]:
    """Lower the departments whose symptoms the patient said they do not have."""
    if not denied:
        return candidates
    out = []
    for c in candidates:
        terms = {e.term for e in kb.by_id[c.dept_id].entries}
        hits = sum(1 for t in denied if t in terms)
        out.append(replace(c, score=round(c.score * DENIED_FACTOR**hits, 4)) if hits else c)
    return sorted(out, key=lambda c: -c.score)


def _changes(probe: Probe, variants: Sequence[dict[str, Any]], slots: dict[str, Any]) -> bool:
    """Whether filling this slot could change the department or the urgency."""
    outcomes = {probe({**slots, **variant}) for variant in variants}
    return len(outcomes) > 1


def _is_chinese(text: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in text)


def _entropy(p: float) -> float:
    if p <= 0 or p >= 1:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))
