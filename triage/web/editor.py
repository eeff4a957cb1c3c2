"""The staff editor (Simplified Chinese): departments and their words, red-flag rules
with a live tester, "试一试" on the draft, diff, publish, rollback, audit log."""

from __future__ import annotations

import atexit
import re
import threading
from typing import Any

import yaml
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from triage.knowledge.schema import Entry
from triage.redflags import RedFlagRules
from triage.runtime import runtime
from triage.store.knowledge import InvalidKnowledge, digest, to_knowledge_base, validate
from triage.web.auth import CAN, check_csrf, login_required

bp = Blueprint("editor", __name__, url_prefix="/editor", template_folder="templates")
KINDS = {"symptom": "症状", "condition": "疾病", "body_part": "部位", "exam": "检查", "treatment": "治疗",
         "population": "人群"}  # fmt: skip
URGENCY = {"": "（无）", "self_care": "可居家观察", "routine": "一般", "urgent": "较急", "emergency": "紧急"}
_SPLIT = re.compile(r"[、,，;；\s]+")


@bp.before_request
def _csrf() -> None:
    check_csrf()


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    from triage.web.auth import csrf_token

    staff = g.get("staff")
    return {"csrf_token": csrf_token, "staff": staff, "can": (lambda p: staff is not None and staff.role in CAN[p]),
            "KINDS": KINDS, "URGENCY": URGENCY}  # fmt: skip


@bp.get("/")
@login_required("edit")
def index():
    repo = runtime.knowledge
    return render_template("editor/index.html", active=repo.active_number(), changes=repo.diff(),
                           versions=repo.versions()[:5])  # fmt: skip


@bp.get("/departments")
@login_required("edit")
def departments():
    q = request.args.get("q", "").strip()[:40]
    return render_template("editor/departments.html", q=q, departments=runtime.knowledge.departments(q))


@bp.route("/departments/<dept_id>", methods=["GET", "POST"])
@login_required("edit")
def department(dept_id: str):
    repo = runtime.knowledge
    dept = repo.department(dept_id)
    if dept is None:
        abort(404)
    if request.method == "POST":
        f = request.form
        audience = {"age_min": _number(f.get("age_min")), "age_max": _number(f.get("age_max")),
                    "sex": f.get("sex") if f.get("sex") in ("any", "male", "female") else "any"}  # fmt: skip
        fields = {"location": f.get("location", "")[:100], "hours": f.get("hours", "")[:100],
                  "booking_page": f.get("booking_page", "")[:200], "summary": f.get("summary", "")[:200],
                  "audience": audience}  # fmt: skip
        repo.save_department(dept_id, fields, g.staff.username)
        flash("已保存到草稿，发布后生效", "ok")
        return redirect(url_for("editor.department", dept_id=dept_id))
    return render_template("editor/department.html", dept=dept)


@bp.post("/departments/<dept_id>/entries")
@login_required("edit")
def add_entry(dept_id: str):
    f = request.form
    entry = {"term": f.get("term", "").strip(), "kind": f.get("kind", "symptom"),
             "aliases": [a for a in _SPLIT.split(f.get("aliases", "")) if a],
             "weight": _number(f.get("weight")) or 1.0, "urgency": f.get("urgency") or None}  # fmt: skip
    try:
        Entry.model_validate(entry)  # the same bounds the engine enforces
        repo = runtime.knowledge
        if repo.department(dept_id) is None:
            abort(404)
        repo.add_entry(dept_id, entry, g.staff.username)
        flash(f"已添加「{entry['term']}」到草稿，发布后生效", "ok")
    except ValueError as exc:
        flash(f"词条不合法：{str(exc).splitlines()[0][:200]}", "error")
    return redirect(url_for("editor.department", dept_id=dept_id) + "#entries")


@bp.post("/departments/<dept_id>/entries/<int:entry_id>/delete")
@login_required("edit")
def delete_entry(dept_id: str, entry_id: int):
    try:
        runtime.knowledge.delete_entry(dept_id, entry_id, g.staff.username)
        flash("已从草稿删除", "ok")
    except InvalidKnowledge as exc:
        flash("；".join(exc.problems), "error")
    return redirect(url_for("editor.department", dept_id=dept_id) + "#entries")


@bp.route("/redflags", methods=["GET", "POST"])
@login_required("edit")
def redflags():
    repo = runtime.knowledge
    draft = repo.draft()
    text = yaml.safe_dump(draft["red_flags"], allow_unicode=True, sort_keys=False, width=120)
    tested = None
    if request.method == "POST" and request.form.get("action") == "save":
        text = request.form.get("rules", "")
        try:
            body = yaml.safe_load(text)
            RedFlagRules.from_dict(body)  # every pattern compiles, every reply exists
        except Exception as exc:
            flash(f"规则不合法，未保存：{str(exc)[:300]}", "error")
        else:
            repo.save_document("red_flags", body, g.staff.username)
            flash("红旗规则已保存到草稿，发布后生效", "ok")
            return redirect(url_for("editor.redflags"))
    elif request.method == "POST":  # the live tester, on the draft rules
        sample, age = request.form.get("sample", "")[:500], _number(request.form.get("age"))
        hit = RedFlagRules.from_dict(draft["red_flags"]).check(sample, age_years=age)
        tested = {"sample": sample, "age": request.form.get("age", ""), "hit": hit}
    examples = draft.get("red_flag_examples") or []
    return render_template("editor/redflags.html", rules=text, tested=tested, examples=examples[-10:][::-1],
                           example_count=len(examples), categories=_categories(draft["red_flags"]))  # fmt: skip


@bp.route("/redflags/examples", methods=["POST"])
@login_required("edit")
def add_red_flag_example():
    """A phrasing the rules missed (or wrongly caught) becomes an example for the similar-case
    net: staff teach it without writing a pattern."""
    repo = runtime.knowledge
    draft = repo.draft()
    text = request.form.get("text", "").strip()[:500]
    expect = request.form.get("expect") or None
    examples = list(draft.get("red_flag_examples") or [])
    if not text or (expect is not None and expect not in _categories(draft["red_flags"])):
        flash("请填写患者原话并选择类别", "error")
    elif any(e.get("text") == text for e in examples):
        flash("已有相同的示例", "error")
    else:
        example: dict[str, Any] = {"text": text, "expect": expect}
        if (age := _number(request.form.get("age"))) is not None:
            example["age"] = age
        repo.save_document("red_flag_examples", [*examples, example], g.staff.username)
        flash("示例已保存到草稿，发布后生效", "ok")
    return redirect(url_for("editor.redflags") + "#examples")


def _categories(rules: dict[str, Any]) -> dict[str, str]:
    """Red-flag categories of the rules, each with the name of its first rule."""
    found: dict[str, str] = {}
    for rule in (rules or {}).get("rules") or []:
        category = str(rule.get("category") or rule.get("id"))
        found.setdefault(category, str(rule.get("name") or category))
    return found


DOCUMENT_TITLES = {"questions": "追问话术", "urgency": "紧急程度规则", "synonyms": "同义词（口语→词条）"}


@bp.route("/documents/<name>", methods=["GET", "POST"])
@login_required("edit")
def document(name: str):
    if name not in DOCUMENT_TITLES:
        abort(404)
    repo = runtime.knowledge
    draft = repo.draft()
    text = yaml.safe_dump(draft.get(name) or {}, allow_unicode=True, sort_keys=False, width=120)
    if request.method == "POST":
        text = request.form.get("body", "")
        try:
            body = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            flash(f"YAML 格式错误，未保存：{str(exc)[:200]}", "error")
        else:
            problems = validate({**draft, name: body})
            if problems:
                flash("未保存：" + "；".join(problems), "error")
            else:
                repo.save_document(name, body, g.staff.username)
                flash("已保存到草稿，发布后生效", "ok")
                return redirect(url_for("editor.document", name=name))
    return render_template("editor/document.html", name=name, title=DOCUMENT_TITLES[name], body=text)


_draft_engines: dict[str, Any] = {}
_draft_lock = threading.Lock()


def _draft_engine(content: dict[str, Any]):
    """The engine the draft would give, built once per draft (the model is loaded lazily)."""
    from triage.services import build_engine, build_model

    key = digest(content)
    with _draft_lock:
        if key not in _draft_engines:
            settings = current_app.config["TRIAGE_SETTINGS"]
            model = _draft_engines.get("model")
            if model is None:
                model = build_model(settings)
                if model is not None:  # freed before interpreter shutdown tears llama.cpp's bindings down
                    atexit.register(model.close)
            _draft_engines.clear()
            _draft_engines.update(model=model, **{key: build_engine(settings, to_knowledge_base(content, "草稿"), model)})
        return _draft_engines[key]


@bp.route("/try", methods=["GET", "POST"])
@login_required("edit")
def try_it():
    result = None
    form = {"text": "", "age": "", "sex": ""}
    if request.method == "POST":
        form = {k: request.form.get(k, "")[:500] for k in form}
        content = runtime.knowledge.draft()
        problems = validate(content)
        if problems:
            flash("草稿有问题，无法试用：" + "；".join(problems), "error")
        elif form["text"].strip():
            engine = _draft_engine(content)
            findings = engine.examine(form["text"], {"age": _number(form["age"]), "sex": form["sex"] or None})
            result = {"findings": findings, "outcome": engine.conclude(findings)}
    return render_template("editor/try.html", form=form, result=result)


@bp.get("/publish")
@login_required("edit")
def publish_page():
    repo = runtime.knowledge
    draft = repo.draft()
    return render_template("editor/publish.html", changes=repo.diff(draft), versions=repo.versions(),
                           problems=validate(draft))  # fmt: skip


@bp.post("/publish")
@login_required("publish")
def publish():
    try:
        number = runtime.knowledge.publish(g.staff.username, request.form.get("note", "")[:200])
    except InvalidKnowledge as exc:
        flash("发布失败：" + "；".join(exc.problems), "error")
        return redirect(url_for("editor.publish_page"))
    runtime.announce_version(number)
    flash(f"已发布 v{number}，工作进程将在数秒内切换到新版本", "ok")
    return redirect(url_for("editor.publish_page"))


@bp.post("/rollback/<int:number>")
@login_required("publish")
def rollback(number: int):
    try:
        runtime.knowledge.rollback(number, g.staff.username)
    except InvalidKnowledge as exc:
        flash("；".join(exc.problems), "error")
        return redirect(url_for("editor.publish_page"))
    runtime.announce_version(number)
    flash(f"已回滚到 v{number}", "ok")
    return redirect(url_for("editor.publish_page"))


@bp.post("/restore/<int:number>")
@login_required("edit")
def restore(number: int):
    runtime.knowledge.restore_draft(number, g.staff.username)
    flash(f"草稿已恢复为 v{number} 的内容", "ok")
    return redirect(url_for("editor.publish_page"))


@bp.get("/audit")
@login_required("audit")
def audit():
    actor, action = request.args.get("actor", "").strip(), request.args.get("action", "").strip()
    events = [e for e in runtime.audit.recent(1000)
              if (not actor or e["actor"] == actor) and (not action or e["action"].startswith(action))]  # fmt: skip
    return render_template("editor/audit.html", events=events[:300], actor=actor, action=action)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None
