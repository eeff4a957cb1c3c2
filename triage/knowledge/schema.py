"""Typed schema of the shipped knowledge base (``knowledge/*.yaml``).

The YAML files are the seed that the staff editor loads into its database, so
the schema is deliberately flat and explicit: every field a nurse can edit is
named here, with bounds.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Urgency = Literal["emergency", "urgent", "routine", "self_care"]
URGENCY_ORDER: tuple[Urgency, ...] = ("self_care", "routine", "urgent", "emergency")
EntryKind = Literal["symptom", "condition", "body_part", "exam", "treatment", "population"]

_SLUG = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Audience(_Strict):
    age_min: float | None = Field(None, ge=0, le=120, description="Youngest patient (years, inclusive).")
    age_max: float | None = Field(None, ge=0, le=120, description="Oldest patient (years, exclusive).")
    sex: Literal["any", "male", "female"] = Field("any", description="Who the department sees.")


class Entry(_Strict):
    term: str = Field(..., min_length=1, max_length=40, description="Medical term (Chinese).")
    kind: EntryKind = Field(..., description="What sort of fact this entry is.")
    aliases: tuple[str, ...] = Field((), description="Everyday words patients use for the term.")
    weight: float = Field(1.0, ge=0.1, le=1.0, description="How specific the term is to this department.")
    urgency: Urgency | None = Field(None, description="Urgency this term implies on its own, if any.")

    @field_validator("aliases")
    @classmethod
    def _clean_aliases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for alias in value:
            if not alias or len(alias) > 40:
                raise ValueError(f"alias must be 1-40 characters: {alias!r}")
        return value


class Department(_Strict):
    id: str = Field(..., description="ASCII slug, unique, equal to the file name.")
    name: str = Field(..., min_length=2, max_length=20, description="Name shown to patients.")
    canonical: str = Field(..., description="Canonical department this one rolls up to.")
    parent: str | None = Field(None, description="Id of the parent department, for sub-departments.")
    summary: str = Field(..., min_length=4, max_length=200, description="One sentence on what it treats.")
    audience: Audience = Field(default_factory=Audience)
    not_for: tuple[str, ...] = Field((), description="Who should go elsewhere, in Chinese.")
    location: str = Field("", max_length=100, description="Where the clinic is, filled in by the hospital.")
    hours: str = Field("", max_length=100, description="Opening hours, filled in by the hospital.")
    booking_page: str = Field("", max_length=200, description="Mini-program page path for booking.")
    entries: tuple[Entry, ...] = Field(..., min_length=1)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f"id must be a lowercase ASCII slug: {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_terms(self) -> Department:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.term in seen:
                raise ValueError(f"{self.id}: duplicate term {entry.term!r}")
            seen.add(entry.term)
        return self
