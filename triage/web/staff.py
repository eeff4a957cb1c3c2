"""Staff API: pre-consultation summaries (预问诊) for the doctors and nurses who see the
patient, and the audit log. Every request is authenticated and every read is audited."""

from __future__ import annotations

import hmac
from functools import wraps

from flask import Blueprint, abort, current_app, g, jsonify, request

from triage.runtime import runtime
from triage.store.consultations import AuditLog

bp = Blueprint("staff", __name__, url_prefix="/staff/api")
URGENCIES = ("emergency", "urgent", "routine", "self_care")


def _tokens() -> dict[str, str]:
    """``TRIAGE_STAFF_TOKENS``: comma-separated ``name:token`` pairs."""
    pairs = [p.split(":", 1) for p in current_app.config["TRIAGE_SETTINGS"].staff_tokens.split(",") if ":" in p]
    return {token.strip(): name.strip() for name, token in pairs if token.strip()}


def staff_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        actor = next((name for token, name in _tokens().items() if given and hmac.compare_digest(given, token)), None)
        if actor is None:
            return jsonify({"error": "需要有效的工作人员令牌"}), 401
        g.actor = actor
        return view(*args, **kwargs)

    return wrapped


def _audit() -> AuditLog:
    return runtime.audit


@bp.get("/consultations/<code>")
@staff_required
def consultation(code: str):
    if not code.isalnum() or len(code) > 12:
        abort(404)
    found = runtime.consultations.get(code)
    _audit().record(g.actor, "consultation.read", code.upper(), found=found is not None)
    if found is None:
        return jsonify({"error": "没有找到该预问诊编号，或已超过保存期限"}), 404
    return jsonify(found)


@bp.get("/consultations")
@staff_required
def consultations():
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
    urgency = request.args.get("urgency") or None
    if urgency is not None and urgency not in URGENCIES:
        return jsonify({"error": f"urgency 只能是 {', '.join(URGENCIES)}"}), 400
    rows = runtime.consultations.recent(limit, urgency)
    _audit().record(g.actor, "consultation.list", urgency or "", count=len(rows))
    return jsonify({"consultations": rows})


@bp.get("/audit")
@staff_required
def audit():
    _audit().record(g.actor, "audit.read")
    return jsonify({"events": _audit().recent(min(request.args.get("limit", 100, type=int), 500))})
