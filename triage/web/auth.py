"""Staff login for the web pages: session cookie, CSRF token on every form, roles."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from triage.runtime import runtime
from triage.store.users import LoginRefused

bp = Blueprint("auth", __name__, template_folder="templates")

# Which roles may do what. The admin may do everything.
CAN = {
    "edit": {"editor", "reviewer", "admin"},
    "publish": {"reviewer", "admin"},
    "audit": {"reviewer", "admin"},
    "operate": {"operator", "admin"},
}


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    """Every state-changing request from a page must carry the session's token."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        if not session.get("csrf") or not hmac.compare_digest(given, session["csrf"]):
            abort(400, description="CSRF 校验失败，请刷新页面后重试")


def load_staff() -> None:
    g.staff = None
    user_id = session.get("staff_id")
    if user_id is not None:
        g.staff = runtime.users.get(user_id)
        if g.staff is None:
            session.clear()


def login_required(permission: str | None = None) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            if g.get("staff") is None:
                return redirect(url_for("auth.login", next=request.full_path))
            if permission and g.staff.role not in CAN[permission]:
                abort(403, description="您的角色没有此权限")
            return view(*args, **kwargs)

        return wrapped

    return decorator


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        check_csrf()
        try:
            staff = runtime.users.authenticate(request.form.get("username", "").strip()[:64],
                                               request.form.get("password", ""))  # fmt: skip
        except LoginRefused as refused:
            flash(refused.message, "error")
            return render_template("editor/login.html"), 401
        session.clear()  # a fresh session on login: no fixation
        session["staff_id"] = staff.id
        session.permanent = True
        target = request.args.get("next", "")
        home = url_for("ops.console") if staff.role == "operator" else url_for("editor.index")
        return redirect(target if target.startswith("/") and not target.startswith("//") else home)
    return render_template("editor/login.html")


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("auth.login"))
