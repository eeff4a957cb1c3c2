"""Validate department files: ``python -m triage.knowledge.validate [FILE ...]``."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from triage.knowledge.schema import Department

KNOWLEDGE_DIR = Path(__file__).resolve().parents[2] / "knowledge"


def check_file(path: Path, canonical: set[str]) -> list[str]:
    errors: list[str] = []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        dept = Department.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        return [f"{path.name}: {exc}"]
    if dept.id != path.stem:
        errors.append(f"{path.name}: id {dept.id!r} must equal the file name")
    if dept.canonical not in canonical:
        errors.append(f"{path.name}: canonical {dept.canonical!r} is not a canonical department")
    return errors


def main(argv: list[str]) -> int:
    canonical = set(yaml.safe_load((KNOWLEDGE_DIR / "canonical_departments.yaml").read_text("utf-8")))
    files = [Path(a) for a in argv] or sorted((KNOWLEDGE_DIR / "departments").glob("*.yaml"))
    errors = [e for f in files for e in check_file(f, canonical)]
    for error in errors:
        print(error)
    total = 0
    for f in files:
        data = yaml.safe_load(f.read_text("utf-8")) or {}
        total += sum(1 + len(e.get("aliases", [])) for e in data.get("entries", []))
    print(f"{len(files)} files, {total} terms and aliases, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
