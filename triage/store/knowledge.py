"""The knowledge base in the database: a draft staff edit, and published versions.

Publishing validates the draft exactly as the engine will load it, freezes it as a
numbered version and makes it the active one; rollback re-activates an older one.
Versions are never edited. The YAML in ``knowledge/`` is the seed (import) and the
format a hospital keeps under version control (export).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import String, cast, func, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from triage.knowledge.loader import KnowledgeBase
from triage.redflags import RedFlagRules
from triage.similar_flags import example_problems
from triage.store.consultations import AuditLog
from triage.store.db import KbDepartment, KbDocument, KbEntry, KbVersion
from triage.urgency import UrgencyRules

DOCUMENTS = {  # name in the database → file in knowledge/
    "canonical": "canonical_departments.yaml",
    "synonyms": "synonyms.yaml",
    "urgency": "urgency.yaml",
    "red_flags": "red_flags.yaml",
    "questions": "questions.yaml",
    "red_flag_examples": "red_flag_examples.yaml",
}
DEPARTMENT_FIELDS = ("name", "canonical", "parent", "summary", "audience", "not_for", "location", "hours",
                     "booking_page")  # fmt: skip


class InvalidKnowledge(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def to_knowledge_base(content: dict[str, Any], version: str | None = None) -> KnowledgeBase:
    return KnowledgeBase.from_dicts(content["departments"], content["canonical"], content.get("red_flags"),
                                    content.get("synonyms"), content.get("urgency"), version=version,
                                    questions=content.get("questions"),
                                    red_flag_examples=content.get("red_flag_examples"))  # fmt: skip


def validate(content: dict[str, Any]) -> list[str]:
    """Everything the engine will check when it loads this content, as readable problems."""
    problems: list[str] = []
    try:
        to_knowledge_base(content)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        problems.append(f"科室或词条不合法：{_short(exc)}")
    try:
        RedFlagRules.from_dict(content.get("red_flags") or {})
    except Exception as exc:  # a regex that does not compile, a missing reply template ...
        problems.append(f"红旗规则不合法：{_short(exc)}")
    problems += [f"红旗示例不合法：{p}" for p in example_problems(content.get("red_flag_examples"))]
    try:
        UrgencyRules.from_dict(content.get("urgency"))
    except Exception as exc:
        problems.append(f"紧急程度规则不合法：{_short(exc)}")
    questions = content.get("questions") or {}
    if not isinstance(questions, dict) or not all(isinstance(v, str) and v.strip() for v in questions.values()):
        problems.append("追问文本必须是“名称: 文本”的形式")
    elif "symptom" in questions and "{symptom}" not in questions["symptom"]:
        problems.append("症状追问文本必须包含 {symptom}")
    ids = {d["id"] for d in content["departments"]}
    for d in content["departments"]:
        if d.get("parent") and d["parent"] not in ids:
            problems.append(f"科室 {d['id']} 的上级科室 {d['parent']} 不存在")
    return problems


def digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


class KnowledgeRepo:
    def __init__(self, sessions: sessionmaker, audit: AuditLog | None = None) -> None:
        self.sessions = sessions
        self.audit = audit or AuditLog(sessions)

    # --- seed and export ---------------------------------------------------------------------
    def is_empty(self) -> bool:
        with self.sessions() as db:
            return db.scalar(select(func.count()).select_from(KbDepartment)) == 0

    def import_seed(self, directory: Path, actor: str = "system") -> int:
        """Load the YAML seed into an empty database and publish it as version 1."""
        if not self.is_empty():
            raise InvalidKnowledge(["数据库中已有知识库，不能重复导入"])
        directory = Path(directory)
        departments = [yaml.safe_load(p.read_text("utf-8")) for p in sorted((directory / "departments").glob("*.yaml"))]
        documents = {name: yaml.safe_load((directory / file).read_text("utf-8")) if (directory / file).exists() else {}
                     for name, file in DOCUMENTS.items()}  # fmt: skip
        with self.sessions.begin() as db:
            for d in departments:
                db.add(_department_row(d))
            for name, body in documents.items():
                db.add(KbDocument(name=name, body=body))
        self.audit.record(actor, "kb.import", str(directory), departments=len(departments))
        return self.publish(actor, "导入随附知识库")

    def adopt_new_documents(self, directory: Path, actor: str = "system") -> int | None:
        """After a software upgrade that brings a new kind of document (such as the red-flag
        examples), take it from the shipped seed into the draft; publish it as a new version
        when the draft held no unpublished edits (else a reviewer publishes it with them).
        Returns the new version number, if one was published."""
        directory = Path(directory)
        draft = self.draft()
        new = {name: yaml.safe_load((directory / file).read_text("utf-8")) for name, file in DOCUMENTS.items()
               if draft.get(name) is None and (directory / file).exists()}  # fmt: skip
        if not new or self.is_empty():
            return None
        active = self.active_content() or {}
        unchanged = digest({**active, **dict.fromkeys(new)}) == digest({**draft, **dict.fromkeys(new)})
        for name, body in new.items():
            self.save_document(name, body, actor)
        if not unchanged:
            return None
        return self.publish(actor, f"随软件升级导入新文档：{'、'.join(new)}")

    def export(self, directory: Path, number: int | None = None) -> Path:
        """Write a version (the active one by default) as the YAML the seed uses."""
        content = self.version_content(number) if number else self.active_content()
        if content is None:
            raise InvalidKnowledge(["没有已发布的版本"])
        directory = Path(directory)
        (directory / "departments").mkdir(parents=True, exist_ok=True)
        for d in content["departments"]:
            (directory / "departments" / f"{d['id']}.yaml").write_text(_yaml(d), "utf-8")
        for name, file in DOCUMENTS.items():
            (directory / file).write_text(_yaml(content.get(name)), "utf-8")
        return directory

    # --- the draft ----------------------------------------------------------------------------
    def draft(self) -> dict[str, Any]:
        with self.sessions() as db:
            departments = db.scalars(select(KbDepartment).options(selectinload(KbDepartment.entries))
                                     .order_by(KbDepartment.id)).all()  # fmt: skip
            documents = {doc.name: doc.body for doc in db.scalars(select(KbDocument))}
            return {"departments": [_department_dict(d) for d in departments],
                    **{name: documents.get(name) for name in DOCUMENTS}}  # fmt: skip

    def departments(self, search: str = "") -> list[dict[str, Any]]:
        with self.sessions() as db:
            query = select(KbDepartment, func.count(KbEntry.id)).outerjoin(KbEntry).group_by(KbDepartment.id)
            if search:
                like = f"%{search}%"
                hit = select(KbEntry.department_id).where(KbEntry.term.like(like) | cast(KbEntry.aliases, String).like(like))
                query = query.where(KbDepartment.name.like(like) | KbDepartment.id.like(like)
                                    | KbDepartment.id.in_(hit))  # fmt: skip
            rows = db.execute(query.order_by(KbDepartment.canonical, KbDepartment.id)).all()
            return [{"id": d.id, "name": d.name, "canonical": d.canonical, "entries": n} for d, n in rows]

    def department(self, dept_id: str) -> dict[str, Any] | None:
        with self.sessions() as db:
            row = db.get(KbDepartment, dept_id, options=[selectinload(KbDepartment.entries)])
            return _department_dict(row, with_ids=True) if row else None

    def save_department(self, dept_id: str, fields: dict[str, Any], actor: str) -> None:
        with self.sessions.begin() as db:
            row = _get(db, dept_id)
            for key in DEPARTMENT_FIELDS:
                if key in fields:
                    setattr(row, key, fields[key])
        self.audit.record(actor, "kb.department.save", dept_id, fields=sorted(fields))

    def add_entry(self, dept_id: str, entry: dict[str, Any], actor: str) -> None:
        term = entry["term"].strip()
        with self.sessions.begin() as db:
            row = _get(db, dept_id)
            existing = next((e for e in row.entries if e.term == term), None)
            if existing is not None:  # adding a known term merges its aliases
                existing.aliases = list(dict.fromkeys([*existing.aliases, *entry.get("aliases", [])]))
            else:
                position = max((e.position for e in row.entries), default=-1) + 1
                row.entries.append(KbEntry(position=position, term=term, kind=entry.get("kind", "symptom"),
                                           aliases=list(entry.get("aliases", [])), weight=entry.get("weight", 1.0),
                                           urgency=entry.get("urgency")))  # fmt: skip
        self.audit.record(actor, "kb.entry.add", f"{dept_id}/{term}", aliases=entry.get("aliases", []))

    def delete_entry(self, dept_id: str, entry_id: int, actor: str) -> None:
        with self.sessions.begin() as db:
            row = db.get(KbEntry, entry_id)
            if row is None or row.department_id != dept_id:
                raise InvalidKnowledge(["词条不存在"])
            term = row.term
            db.delete(row)
        self.audit.record(actor, "kb.entry.delete", f"{dept_id}/{term}")

    def save_document(self, name: str, body: Any, actor: str) -> None:
        if name not in DOCUMENTS:
            raise InvalidKnowledge([f"未知文档 {name}"])
        with self.sessions.begin() as db:
            db.merge(KbDocument(name=name, body=body))
        self.audit.record(actor, "kb.document.save", name)

    # --- versions -----------------------------------------------------------------------------
    def publish(self, actor: str, note: str = "") -> int:
        content = self.draft()
        problems = validate(content)
        if problems:
            raise InvalidKnowledge(problems)
        with self.sessions.begin() as db:
            number = (db.scalar(select(func.max(KbVersion.number))) or 0) + 1
            db.execute(update(KbVersion).values(active=False))
            db.add(KbVersion(number=number, digest=digest(content), published_by=actor, note=note,
                             content=content, active=True))  # fmt: skip
        self.audit.record(actor, "kb.publish", f"v{number}", note=note)
        return number

    def rollback(self, number: int, actor: str) -> None:
        with self.sessions.begin() as db:
            if db.get(KbVersion, number) is None:
                raise InvalidKnowledge([f"版本 v{number} 不存在"])
            db.execute(update(KbVersion).values(active=False))
            db.execute(update(KbVersion).where(KbVersion.number == number).values(active=True))
        self.audit.record(actor, "kb.rollback", f"v{number}")

    def restore_draft(self, number: int, actor: str) -> None:
        """Make the draft equal to a published version (e.g. to undo unpublished edits)."""
        content = self.version_content(number)
        if content is None:
            raise InvalidKnowledge([f"版本 v{number} 不存在"])
        with self.sessions.begin() as db:
            for row in db.scalars(select(KbDepartment)):
                db.delete(row)
            db.flush()
            for d in content["departments"]:
                db.add(_department_row(d))
            for name in DOCUMENTS:
                db.merge(KbDocument(name=name, body=content.get(name)))
        self.audit.record(actor, "kb.draft.restore", f"v{number}")

    def active_number(self) -> int | None:
        with self.sessions() as db:
            return db.scalar(select(KbVersion.number).where(KbVersion.active))

    def active_content(self) -> dict[str, Any] | None:
        with self.sessions() as db:
            row = db.scalar(select(KbVersion).where(KbVersion.active))
            return row.content if row else None

    def version_content(self, number: int) -> dict[str, Any] | None:
        with self.sessions() as db:
            row = db.get(KbVersion, number)
            return row.content if row else None

    def versions(self) -> list[dict[str, Any]]:
        with self.sessions() as db:
            rows = db.scalars(select(KbVersion).order_by(KbVersion.number.desc())).all()
            return [{"number": v.number, "digest": v.digest, "published_by": v.published_by, "note": v.note,
                     "created_at": v.created_at.isoformat(timespec="seconds") + "Z", "active": v.active}
                    for v in rows]  # fmt: skip

    def diff(self, draft: dict[str, Any] | None = None) -> list[str]:
        """The draft (loaded here unless given) against the active version, one line per change."""
        return diff_contents(self.active_content() or {"departments": []}, draft or self.draft())


def diff_contents(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    before = {d["id"]: d for d in old.get("departments", [])}
    after = {d["id"]: d for d in new.get("departments", [])}
    for dept_id in sorted(after.keys() - before.keys()):
        lines.append(f"+ 新增科室 {after[dept_id]['name']}（{dept_id}）")
    for dept_id in sorted(before.keys() - after.keys()):
        lines.append(f"- 删除科室 {before[dept_id]['name']}（{dept_id}）")
    for dept_id in sorted(before.keys() & after.keys()):
        a, b = before[dept_id], after[dept_id]
        name = b["name"]
        for key in DEPARTMENT_FIELDS:
            if a.get(key) != b.get(key):
                lines.append(f"~ {name}：{key} {a.get(key)!r} → {b.get(key)!r}")
        old_entries = {e["term"]: e for e in a["entries"]}
        new_entries = {e["term"]: e for e in b["entries"]}
        for term in new_entries.keys() - old_entries.keys():
            lines.append(f"+ {name}：新增词条「{term}」{_aliases(new_entries[term])}")
        for term in old_entries.keys() - new_entries.keys():
            lines.append(f"- {name}：删除词条「{term}」")
        for term in old_entries.keys() & new_entries.keys():
            o, n = old_entries[term], new_entries[term]
            added = [x for x in n.get("aliases", []) if x not in o.get("aliases", [])]
            removed = [x for x in o.get("aliases", []) if x not in n.get("aliases", [])]
            if added:
                lines.append(f"+ {name}：「{term}」新增说法 {'、'.join(added)}")
            if removed:
                lines.append(f"- {name}：「{term}」删除说法 {'、'.join(removed)}")
            for key in ("kind", "weight", "urgency"):
                if o.get(key) != n.get(key):
                    lines.append(f"~ {name}：「{term}」{key} {o.get(key)!r} → {n.get(key)!r}")
    if old:
        lines += _example_changes(old.get("red_flag_examples") or [], new.get("red_flag_examples") or [])
    for doc in DOCUMENTS.keys() - {"red_flag_examples"}:
        if old.get(doc) != new.get(doc) and old:
            lines.append(f"~ 文档 {doc} 已修改")
    return sorted(lines, key=lambda line: line[2:])


def _example_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    before = {e.get("text"): e for e in old}
    after = {e.get("text"): e for e in new}
    added, removed = after.keys() - before.keys(), before.keys() - after.keys()
    if len(added) + len(removed) > 50:  # a whole set adopted or replaced: counted, not listed
        return [f"~ 红旗示例：新增 {len(added)} 条，删除 {len(removed)} 条"]
    lines = [f"+ 红旗示例「{t}」（{after[t].get('expect') or '非急症'}）" for t in added]
    lines += [f"- 红旗示例「{t}」" for t in removed]
    lines += [f"~ 红旗示例「{t}」类别 {before[t].get('expect')!r} → {after[t].get('expect')!r}"
              for t in before.keys() & after.keys() if before[t].get("expect") != after[t].get("expect")]  # fmt: skip
    return lines


def _department_row(d: dict[str, Any]) -> KbDepartment:
    row = KbDepartment(id=d["id"], **{k: d.get(k) for k in DEPARTMENT_FIELDS if k in d})
    row.entries = [KbEntry(position=i, term=e["term"], kind=e["kind"], aliases=list(e.get("aliases") or []),
                           weight=e.get("weight", 1.0), urgency=e.get("urgency"))
                   for i, e in enumerate(d.get("entries", []))]  # fmt: skip
    return row


def _department_dict(row: KbDepartment, with_ids: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id, **{k: getattr(row, k) for k in DEPARTMENT_FIELDS}}
    out["audience"] = row.audience or {}
    out["not_for"] = list(row.not_for or [])
    out["entries"] = []
    for e in row.entries:
        entry: dict[str, Any] = {"term": e.term, "kind": e.kind, "aliases": list(e.aliases or []),
                                 "weight": e.weight}  # fmt: skip
        if e.urgency:
            entry["urgency"] = e.urgency
        if with_ids:
            entry["entry_id"] = e.id
        out["entries"].append(entry)
    return out


def _get(db: Session, dept_id: str) -> KbDepartment:
    row = db.get(KbDepartment, dept_id, options=[selectinload(KbDepartment.entries)])
    if row is None:
        raise InvalidKnowledge([f"科室 {dept_id} 不存在"])
    return row


def _aliases(entry: dict[str, Any]) -> str:
    return f"（{'、'.join(entry.get('aliases', []))}）" if entry.get("aliases") else ""


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120)


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:300]
