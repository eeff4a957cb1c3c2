"""A local stand-in for WeChat's servers, used by ``make run``, the demo and the tests.

It speaks the real request and response shapes and errcodes of the endpoints
the service calls, records what it received, and can be told to fail.
Control endpoints live under ``/_fake/``:

- ``GET /_fake/messages``: customer-service messages received (``?touser=``)
- ``GET /_fake/calls``: every API call, in order
- ``POST /_fake/fail``: ``{"endpoint": "message/custom/send", "errcode": 40001, "times": 1}``,
  or ``"http_status": 500``, or ``"delay_s": 3``
- ``POST /_fake/reset``: forget everything
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    44002: "empty post data",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
    87014: "risky content",
}


@dataclass
class _Failure:
    errcode: int | None = None
    http_status: int | None = None
    delay_s: float = 0.0
    times: int = 1


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, list[_Failure]] = field(default_factory=dict)
    risky_words: tuple[str, ...] = ("违禁词测试",)


_TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def create_fake_wechat(appid: str = "wx0000000000000000", secret: str = "dev-app-secret") -> Flask:
    app = Flask("fake_wechat")
    state = _State()
    app.extensions["fake_state"] = state

    def error(code: int, status: int = 200):
        return jsonify({"errcode": code, "errmsg": ERRMSG.get(code, "error")}), status

    def injected(endpoint: str):
        """Apply a queued failure for this endpoint, if any."""
        with state.lock:
            queue = state.failures.get(endpoint) or []
            failure = queue[0] if queue else None
            if failure:
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
        if failure is None:
            return None
        if failure.delay_s:
            time.sleep(failure.delay_s)
        if failure.http_status:
            return "upstream error", failure.http_status
        if failure.errcode is not None:
            if failure.errcode in (40001, 42001):
                with state.lock:  # the token really becomes invalid, as on WeChat
                    state.tokens.clear()
            return error(failure.errcode)
        return None

    def record(endpoint: str, payload: Any) -> None:
        with state.lock:
            state.calls.append({"endpoint": endpoint, "payload": payload, "at": time.time()})

    def issue_token() -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        with state.lock:
            state.tokens.add(token)
        return {"access_token": token, "expires_in": 7200}

    def token_ok() -> bool:
        with state.lock:
            return request.args.get("access_token", "") in state.tokens

    @app.get("/cgi-bin/token")
    def token():
        record("cgi-bin/token", dict(request.args))
        if (failed := injected("cgi-bin/token")) is not None:
            return failed
        if request.args.get("appid") != appid:
            return error(40013)
        if request.args.get("secret") != secret:
            return error(40125)
        return jsonify(issue_token())

    @app.post("/cgi-bin/stable_token")
    def stable_token():
        data = request.get_json(silent=True) or {}
        record("cgi-bin/stable_token", {k: v for k, v in data.items() if k != "secret"})
        if (failed := injected("cgi-bin/stable_token")) is not None:
            return failed
        if data.get("appid") != appid:
            return error(40013)
        if data.get("secret") != secret:
            return error(40125)
        return jsonify(issue_token())

    @app.post("/cgi-bin/message/custom/send")
    def custom_send():
        data = request.get_json(force=True, silent=True)
        record("message/custom/send", data)
        if (failed := injected("message/custom/send")) is not None:
            return failed
        if not token_ok():
            return error(40001)
        if not isinstance(data, dict) or not data.get("touser") or not data.get("msgtype"):
            return error(44002 if not data else 47001)
        with state.lock:
            state.messages.append({**data, "received_at": time.time()})
        return jsonify({"errcode": 0, "errmsg": "ok"})

    @app.post("/cgi-bin/message/custom/typing")
    def custom_typing():
        data = request.get_json(force=True, silent=True) or {}
        record("message/custom/typing", data)
        if (failed := injected("message/custom/typing")) is not None:
            return failed
        if not token_ok():
            return error(40001)
        if data.get("command") not in ("Typing", "CancelTyping"):
            return error(47001)
        return jsonify({"errcode": 0, "errmsg": "ok"})

    @app.get("/cgi-bin/media/get")
    def media_get():
        record("cgi-bin/media/get", {"media_id": request.args.get("media_id")})
        if (failed := injected("cgi-bin/media/get")) is not None:
            return failed
        if not token_ok():
            return error(40001)
        if not request.args.get("media_id"):
            return error(40007)
        # A 1x1 PNG: enough for the image path to be exercised end to end.
        return Response(_TINY_PNG, mimetype="image/png")

    @app.get("/sns/jscode2session")
    def jscode2session():
        record("sns/jscode2session", {"js_code": request.args.get("js_code")})
        if (failed := injected("sns/jscode2session")) is not None:
            return failed
        if request.args.get("appid") != appid or request.args.get("secret") != secret:
            return error(40125)
        code = request.args.get("js_code", "")
        if not code or code.startswith("invalid"):
            return error(40029)
        # A stable openid per code, so a test can log the same user in twice.
        return jsonify({"openid": f"o_fake_{code[:24]}", "session_key": secrets.token_urlsafe(16)})

    @app.post("/wxa/msg_sec_check")
    def msg_sec_check():
        data = request.get_json(force=True, silent=True) or {}
        record("wxa/msg_sec_check", {"len": len(str(data.get("content", "")))})
        if (failed := injected("wxa/msg_sec_check")) is not None:
            return failed
        if not token_ok():
            return error(40001)
        if data.get("version") != 2 or not data.get("openid"):
            return error(47001)
        risky = any(word in str(data.get("content", "")) for word in state.risky_words)
        result = {"suggest": "risky", "label": 20001} if risky else {"suggest": "pass", "label": 100}
        return jsonify({"errcode": 0, "errmsg": "ok", "result": result, "detail": [], "trace_id": secrets.token_hex(8)})

    @app.get("/_fake/messages")
    def fake_messages():
        touser = request.args.get("touser")
        with state.lock:
            items = [m for m in state.messages if touser is None or m.get("touser") == touser]
        return jsonify(items)

    @app.get("/_fake/calls")
    def fake_calls():
        with state.lock:
            return jsonify(list(state.calls))

    @app.post("/_fake/fail")
    def fake_fail():
        data = request.get_json(force=True)
        failure = _Failure(
            errcode=data.get("errcode"),
            http_status=data.get("http_status"),
            delay_s=float(data.get("delay_s", 0)),
            times=int(data.get("times", 1)),
        )
        with state.lock:
            state.failures.setdefault(data["endpoint"], []).append(failure)
        return jsonify({"ok": True})

    @app.post("/_fake/reset")
    def fake_reset():
        with state.lock:
            state.messages.clear()
            state.calls.clear()
            state.failures.clear()
            state.tokens.clear()
        return jsonify({"ok": True})

    return app


def main() -> None:  # pragma: no cover - process entry point
    from werkzeug.serving import run_simple

    from triage.config import get_settings

    settings = get_settings()
    app = create_fake_wechat(settings.wechat_appid, settings.wechat_secret)
    run_simple("127.0.0.1", settings.fake_wechat_port, app, threaded=True)


if __name__ == "__main__":  # pragma: no cover
    main()
