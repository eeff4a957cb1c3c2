"""Prometheus metrics, shared by every process (gunicorn workers and Celery workers write
to ``PROMETHEUS_MULTIPROC_DIR`` when it is set; ``triage run`` sets it), and a per-minute
roll-up in Redis for the operator page (last hour and last day, no Prometheus needed).

Labels never carry openids or complaint text.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 30)
PUSHES = Counter("triage_pushes_total", "Message pushes received, by outcome.", ["outcome"])
TASK_SECONDS = Histogram("triage_stage_seconds", "Time per pipeline stage.", ["stage"], buckets=LATENCY_BUCKETS)
REPLY_SECONDS = Histogram("triage_reply_seconds", "Push received → reply accepted by WeChat.", ["kind"],
                          buckets=LATENCY_BUCKETS)  # fmt: skip
REPLIES = Counter("triage_replies_total", "Replies sent, by kind (triage, question, red_flag, fallback ...).", ["kind"])
RED_FLAGS = Counter("triage_red_flag_hits_total", "Red-flag rule hits.", ["rule"])
WECHAT_ERRORS = Counter("triage_wechat_errors_total", "WeChat API errors, by errcode.", ["errcode"])
FALLBACKS = Counter("triage_fallbacks_total", "Fallbacks used, by reason.", ["reason"])
REDELIVERIES = Counter("triage_redeliveries_total", "Messages whose task was lost: queued again or given up.",
                       ["outcome"])  # fmt: skip
MODEL_TOKENS = Counter("triage_model_tokens_total", "Tokens the model evaluated.")
MODEL_SECONDS = Counter("triage_model_seconds_total", "Seconds the model spent evaluating them.")

OPS_PREFIX = "triage:ops:"
MINUTE_TTL_S = 26 * 3600
FAILURES_KEPT = 50


def exposition(client: redis.Redis | None, kb_version: str | None) -> bytes:
    """The /metrics body: every process's metrics, plus gauges read from Redis now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    gauges = []
    if client is not None:
        try:
            gauges.append(("triage_queue_depth", "Messages waiting in the queue.", client.llen("triage")))
            gauges.append(("triage_unanswered_messages", "Accepted messages not answered yet (the inbox).",
                           client.zcard("triage:inbox:due")))  # fmt: skip
            gauges.append(("triage_active_sessions", "Conversations with a live session.",
                           sum(1 for _ in client.scan_iter("triage:session:*", count=1000))))  # fmt: skip
            gauges.append(("triage_workers_ready", "Worker processes that announced readiness.",
                           sum(1 for _ in client.scan_iter("triage:worker:*"))))  # fmt: skip
        except redis.RedisError:
            gauges.append(("triage_redis_up", "Redis reachable from the web process.", 0))
    lines = [f"# HELP {name} {help_}\n# TYPE {name} gauge\n{name} {value}\n" for name, help_, value in gauges]
    if kb_version:
        lines.append("# HELP triage_kb_info Knowledge-base version served.\n# TYPE triage_kb_info gauge\n"
                     f'triage_kb_info{{version="{kb_version}"}} 1\n')  # fmt: skip
    return body + "".join(lines).encode()


def record_reply(client: redis.Redis, kind: str, seconds: float, failed: str | None = None,
                 user: str | None = None) -> None:  # fmt: skip
    """Count one answered message in Prometheus and in the per-minute Redis roll-up."""
    REPLIES.labels(kind).inc()
    REPLY_SECONDS.labels(kind).observe(seconds)
    minute = int(time.time() // 60)
    key = f"{OPS_PREFIX}m:{minute}"
    try:
        pipe = client.pipeline()
        pipe.hincrby(key, "messages", 1)
        pipe.hincrby(key, f"kind:{kind}", 1)
        if failed:
            pipe.hincrby(key, "failures", 1)
            pipe.lpush(f"{OPS_PREFIX}failures", json.dumps({"at": int(time.time()), "user": user, "reason": failed}))
            pipe.ltrim(f"{OPS_PREFIX}failures", 0, FAILURES_KEPT - 1)
        pipe.rpush(f"{key}:latency", round(seconds, 4))
        pipe.expire(key, MINUTE_TTL_S)
        pipe.expire(f"{key}:latency", MINUTE_TTL_S)
        pipe.execute()
    except redis.RedisError as exc:  # metrics never break the answer
        log.warning("ops roll-up not written: %s", type(exc).__name__)


def record_queue_depth(client: redis.Redis) -> None:
    """Sampled by the web process at most once a minute, for the operator page's chart."""
    minute = int(time.time() // 60)
    key = f"{OPS_PREFIX}m:{minute}"
    try:
        if client.hsetnx(key, "queue", client.llen("triage")):
            client.expire(key, MINUTE_TTL_S)
    except redis.RedisError:
        pass


def series(client: redis.Redis, minutes: int, step: int = 1) -> list[dict[str, Any]]:
    """Per-step points for the operator page: messages, failures, red flags, p50/p95, queue."""
    now = int(time.time() // 60)
    points = []
    for start in range(now - minutes + 1, now + 1, step):
        keys = [f"{OPS_PREFIX}m:{m}" for m in range(start, start + step)]
        pipe = client.pipeline()
        for key in keys:
            pipe.hgetall(key)
            pipe.lrange(f"{key}:latency", 0, -1)
        raw = pipe.execute()
        counts: dict[str, int] = {}
        latencies: list[float] = []
        queue = 0
        for fields, lat in zip(raw[::2], raw[1::2], strict=True):
            for k, v in fields.items():
                name = k.decode()
                if name == "queue":
                    queue = max(queue, int(v))
                else:
                    counts[name] = counts.get(name, 0) + int(v)
            latencies.extend(float(x) for x in lat)
        latencies.sort()
        points.append({
            "minute": start,
            "messages": counts.get("messages", 0),
            "failures": counts.get("failures", 0),
            "fallbacks": counts.get("kind:fallback", 0),
            "red_flags": counts.get("kind:red_flag", 0),
            "p50": _quantile(latencies, 0.5),
            "p95": _quantile(latencies, 0.95),
            "queue": queue,
        })  # fmt: skip
    return points


def recent_failures(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.lrange(f"{OPS_PREFIX}failures", 0, FAILURES_KEPT - 1)]


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]
