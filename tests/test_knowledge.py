"""The shipped knowledge base validates: a bad edit fails CI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from triage.config import PROJECT_DIR
from triage.knowledge.loader import KnowledgeBase
from triage.knowledge.validate import check_file

KNOWLEDGE = PROJECT_DIR / "knowledge"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load(KNOWLEDGE)


def test_every_department_file_validates():
    canonical = set(yaml.safe_load((KNOWLEDGE / "canonical_departments.yaml").read_text("utf-8")))
    errors = [e for f in sorted((KNOWLEDGE / "departments").glob("*.yaml")) for e in check_file(f, canonical)]
    assert errors == []


def test_every_canonical_department_is_covered(kb):
    assert set(kb.canonical) <= {d.canonical for d in kb.departments}
    for name in ("小儿内科", "小儿外科", "生殖医学科", "疼痛科", "营养科", "变态反应科"):
        assert any(d.name == name for d in kb.departments), name


def test_breadth(kb):
    surfaces = sum(1 + len(e.aliases) for d in kb.departments for e in d.entries)
    assert surfaces >= 5000
    assert all(len(d.entries) >= 20 for d in kb.departments)


def test_audience_rules(kb):
    by_name = {d.name: d for d in kb.departments}
    assert by_name["妇科"].audience.sex == "female"
    assert by_name["男科"].audience.sex == "male"
    assert by_name["儿科"].audience.age_max is not None


def test_no_alias_is_listed_twice_within_an_entry(kb):
    for d in kb.departments:
        for e in d.entries:
            dupes = [a for a, n in Counter(e.aliases).items() if n > 1]
            assert not dupes, f"{d.id}/{e.term}: {dupes}"


def test_invalid_department_is_refused(tmp_path: Path):
    bad = tmp_path / "bad_dept.yaml"
    bad.write_text("id: bad_dept\nname: 坏科室\ncanonical: 不存在科\nsummary: 测试用的坏数据\nentries:\n"
                   "  - {term: 头痛, kind: symptom, weight: 3}\n", encoding="utf-8")  # fmt: skip
    errors = check_file(bad, {"神经内科"})
    assert errors and "weight" in errors[0]
