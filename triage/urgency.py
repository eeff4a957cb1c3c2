"""Urgency from rules in ``knowledge/urgency.yaml``: deterministic and explainable.

The red-flag rules own "emergency"; these rules choose between urgent, routine
and self_care from the patient's facts (age, temperature, duration, severity,
pregnancy) and the words of the complaint. The model may raise the result but
never lower it (see ``Decider``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from triage.knowledge.schema import URGENCY_ORDER, Urgency
from triage.patient import PatientFacts

_SEVERITY_ORDER = ("mild", "moderate", "severe")


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str | None = Field(None, description="Regex that must occur in the complaint.")
    only: str | None = Field(None, description="Regex every mentioned symptom must match.")
    age_min: float | None = Field(None, ge=0, le=120)
    age_max: float | None = Field(None, ge=0, le=120)
    temperature_min: float | None = Field(None, ge=35, le=43)
    temperature_max: float | None = Field(None, ge=35, le=43)
    duration_min_days: float | None = Field(None, ge=0)
    duration_max_days: float | None = Field(None, ge=0)
    pregnant: bool | None = None
    not_pregnant: bool | None = None
    not_chronic: bool | None = Field(None, description="Duration unknown or under 30 days.")
    severity: str | None = Field(None, pattern="^(mild|moderate|severe)$")
    severity_not: str | None = Field(None, pattern="^(mild|moderate|severe)$")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(..., pattern=r"^[a-z][a-z0-9_]{1,63}$")
    level: Urgency = "self_care"
    reason: str = Field(..., min_length=2, max_length=40, description="Shown to the patient, in Chinese.")
    when: Condition


@dataclass(frozen=True)
class Assessment:
    level: Urgency
    rule_id: str | None = None
    reason: str | None = None


class UrgencyRules:
    def __init__(self, raise_rules: list[Rule], self_care_rules: list[Rule]) -> None:
        self.raise_rules = raise_rules
        self.self_care_rules = self_care_rules
        self._patterns = {
            value: re.compile(value)
            for rule in (*raise_rules, *self_care_rules)
            for value in (rule.when.pattern, rule.when.only)
            if value
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> UrgencyRules:
        data = data or {}
        return cls(
            [Rule.model_validate(r) for r in data.get("raise", [])],
            [Rule.model_validate({**r, "level": "self_care"}) for r in data.get("self_care", [])],
        )

    def assess(self, text: str, facts: PatientFacts, mentioned: list[str], base: Urgency) -> Assessment:
        """``base``: the level the matched knowledge-base entries imply.
        ``mentioned``: the symptom words the dictionary found in the complaint."""
        best = Assessment(base)
        for rule in self.raise_rules:
            if URGENCY_ORDER.index(rule.level) > URGENCY_ORDER.index(best.level) and self._holds(
                rule.when, text, facts, mentioned
            ):
                best = Assessment(rule.level, rule.id, rule.reason)
        if best.level != "routine" or best.rule_id is not None:
            return best
        for rule in self.self_care_rules:
            if self._holds(rule.when, text, facts, mentioned):
                return Assessment("self_care", rule.id, rule.reason)
        return best

    def _holds(self, when: Condition, text: str, facts: PatientFacts, mentioned: list[str]) -> bool:
        if when.pattern and not self._patterns[when.pattern].search(text):
            return False
        if when.only:
            only = self._patterns[when.only]
            if not mentioned or not all(only.search(word) for word in mentioned):
                return False
        checks = (
            (when.age_min, facts.age_years, lambda bound, value: value >= bound),
            (when.age_max, facts.age_years, lambda bound, value: value < bound),
            (when.temperature_min, facts.temperature, lambda bound, value: value >= bound),
            (when.duration_min_days, facts.duration_days, lambda bound, value: value >= bound),
            (when.duration_max_days, facts.duration_days, lambda bound, value: value <= bound),
        )
        for bound, value, ok in checks:
            if bound is not None and (value is None or not ok(bound, value)):
                return False
        if (
            when.temperature_max is not None
            and facts.temperature is not None
            and facts.temperature > when.temperature_max
        ):
            return False
        if when.pregnant and not facts.pregnant:
            return False
        if when.not_pregnant and facts.pregnant:
            return False
        if when.not_chronic and facts.duration_days is not None and facts.duration_days >= 30:
            return False
        if when.severity and facts.severity != when.severity:
            return False
        return not (
            when.severity_not
            and facts.severity is not None
            and _SEVERITY_ORDER.index(facts.severity) >= _SEVERITY_ORDER.index(when.severity_not)
        )
