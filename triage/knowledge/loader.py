"""Load the knowledge base from YAML (the shipped seed) or from plain dicts (the database)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from triage.knowledge.schema import Department


@dataclass(frozen=True)
class KnowledgeBase:
    version: str
    departments: tuple[Department, ...]
    canonical: tuple[str, ...]
    red_flags: dict[str, Any] = field(default_factory=dict)
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    urgency: dict[str, Any] = field(default_factory=dict)
    questions: dict[str, Any] = field(default_factory=dict)
    # Labelled messages (emergencies and near-misses) for the similar-case net under the rules.
    red_flag_examples: tuple[dict[str, Any], ...] = ()
    by_id: dict[str, Department] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dicts(
        cls,
        departments: list[dict[str, Any]],
        canonical: list[str],
        red_flags: dict[str, Any] | None = None,
        synonyms: dict[str, list[str]] | None = None,
        urgency: dict[str, Any] | None = None,
        version: str | None = None,
        questions: dict[str, Any] | None = None,
        red_flag_examples: list[dict[str, Any]] | None = None,
    ) -> KnowledgeBase:
        depts = tuple(Department.model_validate(d) for d in sorted(departments, key=lambda d: d["id"]))
        problems = validate_references(depts, canonical)
        if problems:
            raise ValueError("; ".join(problems))
        digest = hashlib.sha256(
            json.dumps([[d.model_dump(mode="json") for d in depts], canonical, red_flags, synonyms, urgency,
                        questions or {}, red_flag_examples or []],
                       ensure_ascii=False,
                       sort_keys=True).encode()
        ).hexdigest()[:12]  # fmt: skip
        return cls(
            version=version or f"seed-{digest}",
            departments=depts,
            canonical=tuple(canonical),
            red_flags=red_flags or {},
            synonyms={k: tuple(v) for k, v in (synonyms or {}).items()},
            urgency=urgency or {},
            questions=questions or {},
            red_flag_examples=tuple(red_flag_examples or ()),
            by_id={d.id: d for d in depts},
        )

    @classmethod
    def load(cls, directory: Path) -> KnowledgeBase:
        directory = Path(directory)
        departments = [yaml.safe_load(p.read_text("utf-8")) for p in sorted((directory / "departments").glob("*.yaml"))]
        canonical = yaml.safe_load((directory / "canonical_departments.yaml").read_text("utf-8"))

        def optional(name: str) -> Any:
            path = directory / name
            return yaml.safe_load(path.read_text("utf-8")) if path.exists() else None

        return cls.from_dicts(
            departments, canonical, optional("red_flags.yaml"), optional("synonyms.yaml"), optional("urgency.yaml"),
            questions=optional("questions.yaml"), red_flag_examples=optional("red_flag_examples.yaml"),
        )

    def find_by_canonical(self, canonical: str) -> Department | None:
        """The main department for a canonical name (the one without a parent)."""
        matches = [d for d in self.departments if d.canonical == canonical]
        return next((d for d in matches if d.parent is None), matches[0] if matches else None)


def validate_references(departments: tuple[Department, ...], canonical: list[str]) -> list[str]:
    ids = {d.id for d in departments}
    problems = []
    if len(ids) != len(departments):
        problems.append("duplicate department ids")
    for d in departments:
        if d.canonical not in canonical:
            problems.append(f"{d.id}: unknown canonical department {d.canonical!r}")
        if d.parent and d.parent not in ids:
            problems.append(f"{d.id}: unknown parent {d.parent!r}")
    return problems
