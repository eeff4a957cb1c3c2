"""The mini-program's REST API, ``/api/v1``: wx.login → our own token, consent, chat
(send returns at once; turns arrive by polling or server-sent events), the patient's
own summary, and deletion. The same pipeline and session as the WeChat push path, so a
patient can switch channels. Errors are JSON: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from functools import wraps
from typing import Any

import redis
import requests
from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context
from kombu.exceptions import OperationalError

from triage import replies
from triage.inbox import Inbox
from triage.privacy import user_ref
from triage.runtime import runtime
from triage.sessions import SessionStore

bp = Blueprint("api", __name__, url_prefix="/api/v1")
TOKEN_TTL_S = 2 * 3600
MESSAGES_PER_MINUTE = 20
LOGINS_PER_IP_PER_MINUTE = 30
MAX_TEXT = 1000


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return jsonify({"error": {"code": exc.code, "message": exc.message}}), exc.status


@bp.errorhandler(redis.RedisError)
@bp.errorhandler(OperationalError)
def _unavailable(_exc: Exception):
    return jsonify({"error": {"code": "unavailable", "message": "服务暂时繁忙，请稍后再试；紧急情况请拨打120"}}), 503


def _settings():
    return current_app.config["TRIAGE_SETTINGS"]


def token_required(view):
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any):
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        raw = runtime.redis.get(f"triage:api:token:{token}") if token else None
        if raw is None:
            raise ApiError(401, "unauthorized", "登录已过期，请重新进入小程序")
        g.openid = json.loads(raw)["openid"]
        g.user = user_ref(g.openid, _settings().secret_key)
        g.token = token
        return view(*args, **kwargs)

    return wrapped


@bp.post("/login")
def login():
    """wx.login's code → code2Session → a short-lived token of ours. The session_key stays here."""
    code = str((request.get_json(silent=True) or {}).get("code", ""))[:128]
    _rate_limit(f"login-ip:{request.remote_addr}", LOGINS_PER_IP_PER_MINUTE)
    if not code:
        raise ApiError(400, "missing_code", "缺少登录凭证 code")
    s = _settings()
    try:
        res = requests.get(s.wechat_api_base.rstrip("/") + "/sns/jscode2session", timeout=s.wechat_timeout_s,
                           params={"appid": s.wechat_appid, "secret": s.wechat_secret, "js_code": code,
                                   "grant_type": "authorization_code"})  # fmt: skip
        data = res.json()
    except (requests.RequestException, ValueError) as exc:
        raise ApiError(503, "wechat_unavailable", "微信登录服务暂时不可用，请稍后再试") from exc
    if data.get("errcode") or not data.get("openid"):
        raise ApiError(401, "login_failed", "微信登录失败，请重新打开小程序")
    token = secrets.token_urlsafe(32)
    runtime.redis.set(f"triage:api:token:{token}", json.dumps({"openid": data["openid"],
                      "session_key": data.get("session_key")}), ex=TOKEN_TTL_S)  # fmt: skip
    return jsonify({"token": token, "expires_in": TOKEN_TTL_S})


@bp.get("/consent")
@token_required
def consent_status():
    s = _settings()
    record = SessionStore(runtime.redis, s.session_ttl_s).consent(g.user)
    return jsonify({"notice": replies.consent_notice(s.retention_days, max(1, s.session_ttl_s // 60)),
                    "version": replies.NOTICE_VERSION, "agreed": record is not None,
                    "agreed_at": record and record["at"]})  # fmt: skip


@bp.post("/consent")
@token_required
def consent_agree():
    SessionStore(runtime.redis).grant_consent(g.user, replies.NOTICE_VERSION)
    return jsonify({"agreed": True, "version": replies.NOTICE_VERSION})


@bp.delete("/consent")
@token_required
def consent_withdraw():
    """Withdrawing consent deletes everything, as "撤回同意" does in the chat."""
    _forget(g.user)
    return jsonify({"agreed": False, "deleted": True})


@bp.post("/messages")
@token_required
def send_message():
    text = str((request.get_json(silent=True) or {}).get("text", "")).strip()
    if not text:
        raise ApiError(400, "empty_text", "请输入文字描述")
    if len(text) > MAX_TEXT:
        raise ApiError(413, "text_too_long", f"描述请不超过{MAX_TEXT}字")
    _rate_limit(g.user)
    from triage.tasks import chat_key, chat_message

    message_id = uuid.uuid4().hex[:16]
    args = [g.openid, text, message_id, time.time()]
    inbox = Inbox(runtime.redis, _settings().redeliver_after_s)
    inbox.accept(chat_key(message_id), chat_message.name, args)  # kept until answered, whatever befalls the queue
    try:
        chat_message.apply_async(args=args, retry=False)
    except (redis.RedisError, OperationalError):
        inbox.due_now(chat_key(message_id))  # the workers' sweeper queues it
    return jsonify({"id": message_id, "status": "queued"}), 202


@bp.get("/messages")
@token_required
def poll_messages():
    after = request.args.get("after", 0, type=int)
    return jsonify({"turns": turns_after(g.user, after)})


@bp.get("/events")
@token_required
def events():
    """Server-sent events: each bot turn as it is ready. Closes after ~25 s; EventSource
    reconnects with Last-Event-ID, so nothing is missed."""
    user = g.user
    after = int(request.headers.get("Last-Event-ID") or request.args.get("after", 0, type=int))

    def stream():
        cursor, deadline = after, time.monotonic() + 25
        yield "retry: 1000\n\n"
        while time.monotonic() < deadline:
            for turn in turns_after(user, cursor):
                cursor = turn["seq"]
                yield f"id: {cursor}\nevent: turn\ndata: {json.dumps(turn, ensure_ascii=False)}\n\n"
            time.sleep(0.3)

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip


@bp.get("/summary")
@token_required
def summary():
    found = runtime.consultations.latest_for(g.user)
    if found is None:
        raise ApiError(404, "no_summary", "还没有预问诊摘要")
    return jsonify(found)


@bp.delete("/me")
@token_required
def delete_me():
    _forget(g.user)
    runtime.redis.delete(f"triage:api:token:{g.token}")
    return jsonify({"deleted": True, "message": "您的对话、授权记录和导诊结果已全部删除"})


@bp.get("/openapi.json")
def openapi():
    return jsonify(OPENAPI)


def turns_after(user: str, after: int) -> list[dict[str, Any]]:
    raw = runtime.redis.lrange(f"triage:api:turns:{user}", 0, -1)
    return [t for t in (json.loads(x) for x in raw) if t["seq"] > after]


def _forget(user: str) -> None:
    SessionStore(runtime.redis).forget(user)
    runtime.consultations.forget(user)


def _rate_limit(who: str, limit: int = 0) -> None:
    """Per user (or per address for logins) and minute: a flood never delays the others."""
    key = f"triage:rl:api:{who}:{int(time.time() // 60)}"
    count = runtime.redis.incr(key)
    runtime.redis.expire(key, 120)
    if count > (limit or MESSAGES_PER_MINUTE):
        raise ApiError(429, "rate_limited", "发送太频繁，请稍等一分钟再试")


def _op(summary_: str, responses: dict[str, str], body: dict | None = None, auth: bool = True) -> dict:
    op: dict[str, Any] = {"summary": summary_, "responses": {k: {"description": v} for k, v in responses.items()}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if auth:
        op["security"] = [{"bearer": []}]
    return op


_TEXT = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "maxLength": MAX_TEXT}}}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "导诊助手 mini-program API", "version": "1"},
    "servers": [{"url": "/api/v1"}],
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/login": {"post": _op("wx.login code → token", {"200": "token", "400": "no code", "401": "login failed"},
                               {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}},
                               auth=False)},
        "/consent": {
            "get": _op("The notice and whether the user agreed", {"200": "status", "401": "no token"}),
            "post": _op("Agree to the notice", {"200": "agreed", "401": "no token"}),
            "delete": _op("Withdraw consent (deletes everything)", {"200": "deleted", "401": "no token"}),
        },
        "/messages": {
            "post": _op("Send a message; the reply arrives as a turn", {"202": "queued", "400": "empty", "401": "no token",
                                                                         "413": "too long", "429": "rate limited"}, _TEXT),
            "get": _op("Bot turns after a cursor (?after=seq)", {"200": "turns", "401": "no token"}),
        },
        "/events": {"get": _op("Bot turns as server-sent events", {"200": "text/event-stream", "401": "no token"})},
        "/summary": {"get": _op("The user's latest pre-consultation summary", {"200": "summary", "404": "none"})},
        "/me": {"delete": _op("Delete everything about the user", {"200": "deleted", "401": "no token"})},
        "/openapi.json": {"get": _op("This document", {"200": "OpenAPI 3"}, auth=False)},
    },
}  # fmt: skip
