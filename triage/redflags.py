"""Deterministic red-flag rules: emergencies are recognised by rules, before anything else.

The rules are data (``knowledge/red_flags.yaml``; the staff editor keeps them in
the database): patterns, required co-occurrences, exclusions, age and sex
conditions, and reply templates. A hit is answered from its template at once;
no model output can change it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_CLAUSE = re.compile(r"[，,。.；;！!？?\n]|但是|(?<![透喘吸说])不过(?!气)|可是|然而")
_SPACES = re.compile(r"\s+")
# Phrases that contain 不/没 but deny nothing ("喘不上气" is breathlessness, not its absence).
_FIXED_NEGATIVE_WORDS = re.compile(
    "喘不|上不来|透不过|恨不得|吸不|叫不|喊不|不省人事|人事不省|说不|止不住|流不止|不听使唤|使不上|动不了|不能动|抬不|拿不|握不|不缓解|"
    "不管用|不一样|不褪|按不|看不|不清|不利索|不连贯|站不|醒不|不出|不让|不止|不想|不如|没劲|没力|没了|没反应|没意思|没用|不下去|不了"
)
_NOT_NEGATIONS = ("不小心", "不知道", "不一会", "不停", "不断", "不久", "不注意", "没注意", "没看住", "没留神", "不留神")
_INFANT_AGE = re.compile(
    r"新生儿|刚出生|出生(?:才|刚)?\d{1,2}天|满月|(?<![孕怀\d])(?:[1-9]\d?|[一二两三四五六七八九十]{1,2})(?:天|周)(?:大|的宝宝|的婴儿|的孩子)"
    r"|(?<![孕怀\d])(?:[12]|[一两二])(?:个多?半?月|月)(?:大|的宝宝|的婴儿|的孩子|宝宝)?"
    r"|(?:宝宝|婴儿|孩子)(?:出生)?(?:才|刚)?(?:[1-9]\d?(?:天|周)|[一两二12]个多?半?月)"
)


@dataclass(frozen=True)
class RedFlagHit:
    rule_id: str
    category: str
    name: str
    matched: str
    reply: str


@dataclass(frozen=True)
class _Rule:
    id: str
    category: str
    name: str
    any: tuple[re.Pattern[str], ...]
    with_groups: tuple[tuple[re.Pattern[str], ...], ...]
    unless: tuple[re.Pattern[str], ...]
    age_max_years: float | None
    sex: str | None
    reply: str
    negatable: bool


def normalize(text: str) -> str:
    """Full-width to half-width, lowercase; a run of spaces separates phrases like a comma
    (people typing on a phone often use spaces instead of punctuation)."""
    return _SPACES.sub("，", unicodedata.normalize("NFKC", text or "").strip()).lower()


def _compile(rule_id: str, patterns: Any) -> tuple[re.Pattern[str], ...]:
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(f"red-flag rule {rule_id!r}: patterns must be a list of non-empty strings")
    try:
        return tuple(re.compile(normalize(p) if p.isascii() else p) for p in patterns)
    except re.error as exc:
        raise ValueError(f"red-flag rule {rule_id!r}: invalid pattern: {exc}") from exc


class RedFlagRules:
    def __init__(self, version: str, rules: list[_Rule], negations: list[str], figurative: list[str],
                 past_markers: list[str]) -> None:  # fmt: skip
        self.version = version
        self.rules = rules
        self._negation = re.compile("(?:" + "|".join(map(re.escape, negations)) + ")") if negations else None
        self._figurative = re.compile("|".join(figurative)) if figurative else None
        self._past = re.compile("|".join(past_markers)) if past_markers else None

    @classmethod
    def load(cls, path: str | Path) -> RedFlagRules:
        return cls.from_dict(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RedFlagRules:
        if not data or not data.get("rules"):
            raise ValueError("red-flag rules: no rules given")
        replies = data.get("replies") or {}
        rules: list[_Rule] = []
        seen: set[str] = set()
        for raw in data["rules"]:
            rule_id = raw.get("id")
            if not rule_id or rule_id in seen:
                raise ValueError(f"red-flag rule {rule_id!r}: missing or duplicate id")
            seen.add(rule_id)
            if raw.get("reply") not in replies:
                raise ValueError(f"red-flag rule {rule_id!r}: unknown reply {raw.get('reply')!r}")
            rules.append(
                _Rule(
                    id=rule_id,
                    category=str(raw.get("category") or rule_id),
                    name=str(raw.get("name") or rule_id),
                    any=_compile(rule_id, raw.get("any")),
                    with_groups=tuple(_compile(rule_id, g) for g in raw.get("with") or []),
                    unless=_compile(rule_id, raw["unless"]) if raw.get("unless") else (),
                    age_max_years=raw.get("age_max_years"),
                    sex=raw.get("sex"),
                    reply=str(replies[raw["reply"]]).strip(),
                    negatable=bool(raw.get("negatable", True)),
                )
            )
        try:
            return cls(str(data.get("version", "1")), rules, list(data.get("negations") or []),
                       list(data.get("figurative") or []), list(data.get("past_markers") or []))  # fmt: skip
        except re.error as exc:
            raise ValueError(f"red-flag rules: invalid negation/figurative/past pattern: {exc}") from exc

    def _clauses(self, text: str) -> list[str]:
        clauses = [c for c in _CLAUSE.split(text) if c]
        if self._past is not None:  # a clause about the past ("去年心梗") is not a current emergency
            clauses = [c for c in clauses if not self._past.search(c)]
        return clauses

    def _find(self, patterns: tuple[re.Pattern[str], ...], clauses: list[str], negatable: bool) -> str | None:
        for clause in clauses:
            for pattern in patterns:
                for m in pattern.finditer(clause):
                    if negatable and self._negated(clause, m):
                        continue
                    return m.group(0)
        return None

    def _negated(self, clause: str, m: re.Match[str]) -> bool:
        if self._negation is None:
            return False
        before = clause[max(0, m.start() - 4) : m.start()]
        for phrase in _NOT_NEGATIONS:
            before = before.replace(phrase, "")
        if before.endswith(("是不是", "是否")):  # "是不是心梗" asks, it does not deny
            return False
        if self._negation.search(before):
            return True
        inside = _FIXED_NEGATIVE_WORDS.sub("", m.group(0))  # "嘴也不歪", "脖子不硬"
        return bool(self._negation.search(inside))

    def check(self, text: str, age_years: float | None = None, sex: str | None = None) -> RedFlagHit | None:
        try:
            norm = normalize(str(text))[:4000]
        except Exception:  # pragma: no cover - normalisation of any str is total; be safe anyway
            return None
        if not norm:
            return None
        literal = self._figurative.sub("，", norm) if self._figurative is not None else norm
        clauses = self._clauses(literal)
        infant = (age_years is not None and age_years < 0.25) or (age_years is None and bool(_INFANT_AGE.search(norm)))
        for rule in self.rules:
            if rule.age_max_years is not None and not (
                infant if rule.age_max_years <= 0.25 else age_years is not None and age_years < rule.age_max_years
            ):
                continue
            if rule.sex and sex and rule.sex != sex:
                continue
            matched = self._find(rule.any, clauses, rule.negatable)
            if matched is None:
                continue
            extra = [self._find(group, clauses, rule.negatable) for group in rule.with_groups]
            if any(e is None for e in extra):
                continue
            if rule.unless and any(p.search(literal) for p in rule.unless):
                continue
            return RedFlagHit(rule.id, rule.category, rule.name, "+".join([matched, *extra]), rule.reply)
        return None
