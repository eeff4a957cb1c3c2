"""Celery tasks. They receive ids and small fields, never objects.

A message is answered exactly once. The web layer recorded it in the inbox
(``triage.inbox``), which queues it again if its task is lost. A task claims the
message before working on it, so two deliveries never run the same turn; the reply
is computed once and cached by message key; and a "sent" marker is written, with
the inbox settled, after WeChat accepted it, so a redelivery (worker killed after
sending) or a send retry never repeats work or messages.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import redis
from celery import shared_task

from triage import metrics, replies
from triage.inbox import Inbox
from triage.pipeline import Turn
from triage.privacy import user_ref
from triage.runtime import runtime
from triage.wechat.client import WeChatSendError
from triage.wechat.parser import IncomingMessage

log = logging.getLogger(__name__)
RESULT_TTL_S = 24 * 3600
CLAIM_TTL_S = 300  # longer than one delivery can take: Redis wait, model budget, send retries


def _inbox() -> Inbox:
    settings = runtime.settings
    assert settings is not None
    return Inbox(runtime.redis, settings.redeliver_after_s)


def compose_reply(message: IncomingMessage, user: str) -> tuple[str, dict]:
    """The reply text for one message, and facts for the log (no complaint text)."""
    if message.msg_type in ("event", "miniprogrampage"):
        return replies.WELCOME, {"kind": "welcome" if message.msg_type == "event" else "card"}
    if message.msg_type == "image":
        described = _describe_image(message)
        if described is None:
            return replies.IMAGE_REPLY, {"kind": "image"}
        text = f"图片所见：{described}"
    else:
        text = message.content.strip()
    if not text:
        return replies.EMPTY_TEXT, {"kind": "empty"}
    turn = runtime.pipeline().handle_text(user, text, screen=_screen_for(message.from_user))
    return turn.reply, _facts_of(turn)


def _screen_for(openid: str) -> Callable[[str], bool] | None:
    """WeChat's msgSecCheck on the patient's text, when enabled."""
    if runtime.settings is None or not runtime.settings.msg_sec_check:
        return None
    return lambda content: runtime.sender.text_is_safe(openid, content)


def _facts_of(turn: Turn) -> dict:
    """What the log and the metrics keep of one turn (no complaint text)."""
    facts: dict = {"kind": turn.kind}
    if turn.question is not None:
        facts["question"] = turn.question.kind
    if turn.result is not None:
        result = turn.result
        facts.update(
            red_flag=result.red_flag.rule_id if result.red_flag else None,
            department=result.decision.departments[0].name if result.decision.departments else None,
            source=result.decision.source,
            kb_version=result.kb_version,
            timings={k: round(v, 4) for k, v in result.timings.items()},
        )
    return facts


@shared_task(bind=True, name="triage.chat_message", max_retries=0)
def chat_message(self, openid: str, text: str, message_id: str, received_at: float | None = None) -> None:
    """A message from the mini-program's own page (REST API): the same pipeline and session
    as the push path; the bot's turn is stored for the page to poll or stream."""
    settings = runtime.settings
    assert settings is not None
    user = user_ref(openid, settings.secret_key)
    inbox, key = _inbox(), chat_key(message_id)
    if not inbox.is_pending(key) or not inbox.claim(key, self.request.id, CLAIM_TTL_S):
        log.info("already answered or being answered", extra={"user": user, "request_id": message_id})
        return
    started = time.time()
    try:
        turn = runtime.pipeline().handle_text(user, text, screen=_screen_for(openid))
        engine = runtime.engine
        assert engine is not None
        extra = replies.card(turn.result, turn.question, turn.summary_code, engine.kb, engine.booking)
        reply, kind = turn.reply, turn.kind
        _observe(_facts_of(turn))
    except Exception:  # the page must get an answer too
        log.exception("chat triage failed; fallback", extra={"user": user, "request_id": message_id})
        reply, kind, extra = replies.FALLBACK, "fallback", {"quick_replies": [], "card": None}
    store = runtime.redis
    key_turns, key_seq = f"triage:api:turns:{user}", f"triage:api:seq:{user}"
    seq = store.incr(key_seq)
    pipe = store.pipeline()  # the turn and the settled inbox together: a redelivery finds it done
    pipe.rpush(key_turns, json.dumps({"seq": seq, "id": message_id, "kind": kind, "text": reply, **extra},
                                     ensure_ascii=False))  # fmt: skip
    pipe.ltrim(key_turns, -50, -1)
    for k in (key_turns, key_seq):
        pipe.expire(k, settings.session_ttl_s)
    inbox.settle(key, pipe)
    pipe.execute()
    metrics.record_reply(store, kind, time.time() - (received_at or started), user=user if kind == "fallback" else None,
                         failed="triage_error" if kind == "fallback" else None)  # fmt: skip


def chat_key(message_id: str) -> str:
    return f"chat:{message_id}"


def _describe_image(message: IncomingMessage) -> str | None:
    """With a multimodal model configured, the image in words; otherwise None."""
    if runtime.vision is None or not message.media_id:
        return None
    try:
        image, mime = runtime.sender.download_media(message.media_id)
    except WeChatSendError as exc:
        log.warning("image not downloaded: %s", exc)
        return None
    return runtime.vision.describe(image, mime)


REDIS_WAIT_S = 60


@shared_task(bind=True, name="triage.handle_message", max_retries=None)
def handle_message(self, payload: dict, request_id: str, received_at: float | None = None) -> None:
    """Answer one message. If Redis goes away mid-task (a restart), wait for it and run the
    answer again: every step is idempotent (cached result, "sent" marker), and a Celery retry
    would itself need the broker that is gone."""
    deadline = time.monotonic() + REDIS_WAIT_S
    delay = 0.25
    while True:
        try:
            return _answer(self, payload, request_id, received_at or time.time())
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            log.warning("redis unavailable; waiting to finish the message", extra={"request_id": request_id})
            time.sleep(delay)
            delay = min(4.0, delay * 2)


def _answer(self, payload: dict, request_id: str, received_at: float) -> None:
    message = IncomingMessage(**payload)
    settings = runtime.settings
    assert settings is not None
    user = user_ref(message.from_user, settings.secret_key)
    key = message.dedup_key
    store = runtime.redis
    context = {"user": user, "request_id": request_id, "attempt": self.request.retries}
    inbox = _inbox()
    if store.exists(f"triage:sent:{key}"):
        log.info("already answered", extra=context)
        inbox.settle(key)
        return
    if not inbox.claim(key, self.request.id, CLAIM_TTL_S):
        log.info("being answered by another delivery", extra=context)
        return

    result_key = f"triage:result:{user}:{key}"  # per user, so that "删除我的数据" can find it
    reply = store.get(result_key)
    if reply is None:
        started = time.perf_counter()
        sender = runtime.sender
        sender.typing(message.from_user, True)
        try:
            text, facts = compose_reply(message, user)
        except (redis.ConnectionError, redis.TimeoutError):
            raise  # Redis is restarting: wait for it rather than answer with the fallback
        except Exception:  # a bug or an outage must still leave the patient an answer
            log.exception("triage failed; sending fallback", extra=context)
            text, facts = replies.FALLBACK, {"kind": "fallback", "failed": "triage_error"}
            metrics.FALLBACKS.labels("triage_error").inc()
        _observe(facts)
        store.set(result_key, text, ex=RESULT_TTL_S)
        context.update(facts, seconds=round(time.perf_counter() - started, 4))
        reply = text
    else:
        reply = reply.decode()

    try:
        runtime.sender.send_text(message.from_user, reply)
    except WeChatSendError as exc:
        context.update(errcode=exc.errcode)
        if exc.temporary and self.request.retries < settings.task_max_retries:
            log.warning("send failed, will retry", extra=context)
            raise self.retry(countdown=min(30, 2 ** (self.request.retries + 1)), exc=exc) from exc
        log.error("send failed, giving up", extra=context)
        if exc.temporary and reply != replies.FALLBACK:
            _last_try_fallback(message.from_user, context)
        metrics.record_reply(store, "undelivered", time.time() - received_at, failed=f"send {exc.errcode}", user=user)
        inbox.settle(key)
        return
    _mark_sent(store, inbox, key, context)
    kind = str(context.get("kind") or "cached")
    failed = context.get("failed")
    metrics.record_reply(store, kind, time.time() - received_at, failed=failed, user=user if failed else None)
    log.info("answered", extra=context)


def _mark_sent(store, inbox: Inbox, key: str, context: dict) -> None:
    """WeChat has the reply: record it, riding out a Redis restart, because a task whose marker
    is lost is redelivered and would send the same reply a second time."""
    for attempt in range(12):
        try:
            pipe = store.pipeline()
            pipe.set(f"triage:sent:{key}", "1", ex=RESULT_TTL_S)
            inbox.settle(key, pipe)
            pipe.execute()
            return
        except redis.RedisError:
            time.sleep(min(2.0, 0.25 * 2**attempt))
    log.error("sent marker not written; a redelivery may repeat this reply", extra=context)


def _observe(facts: dict) -> None:
    """Per-stage timings, red-flag hits and model fallbacks into Prometheus."""
    for stage, seconds in (facts.get("timings") or {}).items():
        metrics.TASK_SECONDS.labels(stage).observe(seconds)
    if facts.get("red_flag"):
        metrics.RED_FLAGS.labels(facts["red_flag"]).inc()
    if facts.get("source") == "retrieval-fallback":
        metrics.FALLBACKS.labels("model").inc()


def _last_try_fallback(openid: str, context: dict) -> None:
    """After every retry failed, one short message in Chinese, if WeChat takes it."""
    metrics.FALLBACKS.labels("send").inc()
    try:
        runtime.sender.send_text(openid, replies.FALLBACK)
    except WeChatSendError:
        log.error("fallback not delivered", extra=context)
