"""Every accepted message, kept in Redis until it is answered.

Celery's Redis transport can lose a task in two narrow windows: a publish that fails
after the push was already acknowledged as seen, and a task popped from the queue in
the instant Redis went down, before it was filed as unacknowledged. A patient must not
be left without an answer by either, so the web layer records each message here before
queueing it, the task settles it once the reply is out, and a sweeper in the workers
queues again whatever stays unsettled. Tasks claim a message before working on it, so a
second delivery never runs the same turn twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)
DUE = "triage:inbox:due"  # sorted set: message key -> when to queue it again
BODY = "triage:inbox:body"  # hash: message key -> {"task", "args", "at"}

# Records the message, unless its dedup key shows it was seen already (WeChat's retries).
_ACCEPT = """
if KEYS[3] ~= '' and not redis.call('SET', KEYS[3], ARGV[4], 'NX', 'EX', ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

# The same delivery (a redelivery after a worker died, a send retry) may take its claim again.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Pending:
    key: str
    task: str
    args: list
    accepted_at: float


class Inbox:
    def __init__(self, client: redis.Redis, redeliver_after_s: float = 60.0) -> None:
        self.redis = client
        self.redeliver_after_s = redeliver_after_s
        self._accept = client.register_script(_ACCEPT)
        self._claim = client.register_script(_CLAIM)

    def accept(self, key: str, task: str, args: list, dedup: tuple[str, int] | None = None) -> bool:
        """Record a message before it is queued. With ``dedup=(key, ttl)``, False when that key
        was seen already: nothing is recorded then."""
        now = time.time()
        body = json.dumps({"task": task, "args": args, "at": now}, ensure_ascii=False)
        dedup_key, dedup_ttl = dedup or ("", 0)
        keys = [DUE, BODY, dedup_key]
        return bool(self._accept(keys=keys, args=[key, body, now + self.redeliver_after_s, "1", dedup_ttl]))

    def due_now(self, key: str) -> None:
        """Its task could not be queued: the next sweep should queue it."""
        self.redis.zadd(DUE, {key: 0}, xx=True)

    def is_pending(self, key: str) -> bool:
        return self.redis.hexists(BODY, key)

    def claim(self, key: str, owner: str, ttl_s: int) -> bool:
        """Only one delivery of a message works on it at a time."""
        return bool(self._claim(keys=[f"triage:inbox:claim:{key}"], args=[owner, ttl_s]))

    def settle(self, key: str, pipe: redis.client.Pipeline | None = None) -> None:
        """Answered, or given up: pass the pipeline that records the answer, so both happen together."""
        target = pipe if pipe is not None else self.redis.pipeline()
        target.zrem(DUE, key).hdel(BODY, key).delete(f"triage:inbox:claim:{key}")
        if pipe is None:
            target.execute()

    def overdue(self, now: float | None = None, limit: int = 100) -> list[Pending]:
        """Messages whose time has come to be queued again; each is postponed by one period."""
        now = time.time() if now is None else now
        keys = [k.decode() for k in self.redis.zrangebyscore(DUE, "-inf", now, start=0, num=limit)]
        if not keys:
            return []
        bodies = self.redis.hmget(BODY, keys)
        pipe = self.redis.pipeline()
        found = []
        for key, body in zip(keys, bodies, strict=True):
            if body is None:  # settled in between
                pipe.zrem(DUE, key)
                continue
            record = json.loads(body)
            found.append(Pending(key, record["task"], record["args"], record["at"]))
            pipe.zadd(DUE, {key: now + self.redeliver_after_s})
        pipe.execute()
        return found

    def size(self) -> int:
        return int(self.redis.zcard(DUE))


SWEEP_LOCK = "triage:inbox:sweeping"


def sweep(inbox: Inbox, publish: Callable[[Pending], None], give_up_after_s: float, every_s: int = 10) -> dict:
    """Queue overdue messages again and drop those past ``give_up_after_s``. One worker sweeps
    at a time, at most every ``every_s`` seconds (the lock's lifetime is the period)."""
    if not inbox.redis.set(SWEEP_LOCK, 1, nx=True, ex=every_s):
        return {}
    now = time.time()
    done: dict = {"requeued": 0, "given_up": 0}
    for pending in inbox.overdue(now):
        if now - pending.accepted_at > give_up_after_s:
            inbox.settle(pending.key)
            log.error(
                "message given up unanswered", extra={"task": pending.task, "age_s": round(now - pending.accepted_at)}
            )
            done["given_up"] += 1
            continue
        publish(pending)
        log.warning("message queued again", extra={"task": pending.task, "age_s": round(now - pending.accepted_at)})
        done["requeued"] += 1
    return done
