"""The mini-program message push: URL verification and message receipt.

Every push is answered in milliseconds: verify, parse, deduplicate, queue,
answer ``success``. The model never runs here.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid

import redis
from flask import Blueprint, Response, current_app, request
from kombu.exceptions import OperationalError

from triage.config import Settings
from triage.inbox import Inbox
from triage.metrics import PUSHES
from triage.pipeline import command_of
from triage.privacy import user_ref
from triage.runtime import runtime
from triage.tasks import handle_message
from triage.wechat.crypto import DecryptError, PushCrypto, SignatureError
from triage.wechat.parser import PushError, parse_fields, to_message
from triage.wechat.passive import transfer_to_agent

bp = Blueprint("webhook", __name__, url_prefix="/wechat")
log = logging.getLogger(__name__)


def _settings() -> Settings:
    return current_app.config["TRIAGE_SETTINGS"]


def _crypto() -> PushCrypto:
    s = _settings()
    return PushCrypto(s.wechat_token, s.wechat_aes_key, s.wechat_appid)


def _plain(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


PUSHES_PER_USER_PER_MINUTE = 30


def _flooding(ref: str) -> bool:
    key = f"triage:rl:push:{ref}:{int(time.time() // 60)}"
    pipe = runtime.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    return int(pipe.execute()[0]) > PUSHES_PER_USER_PER_MINUTE


@bp.get("/push")
def verify() -> Response:
    args = request.args
    crypto = _crypto()
    try:
        crypto.check_signature(args.get("signature", ""), args.get("timestamp", ""), args.get("nonce", ""))
        echostr = args.get("echostr", "")
        if args.get("msg_signature"):  # safe mode: echostr is encrypted
            echostr = crypto.decrypt(echostr, args["msg_signature"], args.get("timestamp", ""), args.get("nonce", ""))
    except (SignatureError, DecryptError) as exc:
        log.warning("verification refused", extra={"reason": str(exc)})
        return _plain("forbidden", 403)
    return _plain(echostr)


@bp.post("/push")
def receive() -> Response:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    args = request.args
    crypto = _crypto()
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    try:
        crypto.check_signature(args.get("signature", ""), timestamp, nonce)
        body = request.get_data(cache=False)
        fmt = "json" if (request.is_json or body.lstrip()[:1] == b"{") else "xml"
        fields = parse_fields(body, fmt)
        encrypted = "Encrypt" in fields
        if encrypted:  # safe or compatible mode
            plaintext = crypto.decrypt(fields["Encrypt"], args.get("msg_signature", ""), timestamp, nonce)
            fields = parse_fields(plaintext.encode(), fmt)
        message = to_message(fields)
    except SignatureError as exc:
        log.warning("push refused", extra={"reason": str(exc), "request_id": request_id})
        PUSHES.labels("rejected_signature").inc()
        return _plain("forbidden", 403)
    except DecryptError as exc:
        log.warning("push refused", extra={"reason": str(exc), "request_id": request_id})
        PUSHES.labels("rejected_decrypt").inc()
        return _plain("bad encrypted body", 400)
    except PushError as exc:
        log.warning("push refused", extra={"reason": exc.reason, "request_id": request_id})
        PUSHES.labels(f"rejected_{exc.status}").inc()
        return _plain(exc.reason, exc.status)

    settings = _settings()
    ref = user_ref(message.from_user, settings.secret_key)
    if not message.is_supported:
        log.info("push ignored", extra={"msg_type": message.msg_type, "user": ref, "request_id": request_id})
        PUSHES.labels("ignored").inc()
        return _plain("success")

    inbox = Inbox(runtime.redis, settings.redeliver_after_s)
    key, args = message.dedup_key, [message.to_dict(), request_id, time.time()]
    try:
        if not inbox.accept(key, handle_message.name, args, dedup=(f"triage:dedup:{key}", settings.dedup_ttl_s)):
            log.info("duplicate push", extra={"user": ref, "request_id": request_id})
            PUSHES.labels("duplicate").inc()
            return _plain("success")
        if _flooding(ref):  # one sender's flood must not fill the queue ahead of other patients
            inbox.settle(key)
            log.warning("push rate-limited", extra={"user": ref, "request_id": request_id})
            PUSHES.labels("rate_limited").inc()
            return _plain("success")
    except redis.RedisError as exc:
        # Nothing recorded: let WeChat retry later rather than lose the message; never hang the request.
        log.error("redis unavailable", extra={"error": type(exc).__name__, "request_id": request_id})
        PUSHES.labels("unavailable").inc()
        return _plain("temporarily unavailable", 503)
    try:
        handle_message.apply_async(args=args, retry=False)
    except (redis.RedisError, OperationalError) as exc:
        # The message is recorded; the workers' sweeper queues it. WeChat's retry would only be a duplicate.
        log.warning("queueing deferred", extra={"error": type(exc).__name__, "request_id": request_id})
        with contextlib.suppress(redis.RedisError):
            inbox.due_now(key)
    log.info("push queued", extra={"msg_type": message.msg_type, "user": ref, "request_id": request_id})
    PUSHES.labels("queued").inc()
    if message.msg_type == "text" and command_of(message.content) == "handoff":
        # "转人工": WeChat routes the conversation to a human agent; the queued task records
        # the hand-off and its summary for the agent, and tells the patient to wait.
        body, mimetype = transfer_to_agent(message, fmt, crypto if encrypted else None)
        log.info("handed to a human agent", extra={"user": ref, "request_id": request_id})
        return Response(body, mimetype=mimetype)
    return _plain("success")
