"""Conversation state in Redis: one JSON document per user, with an idle TTL."""

from __future__ import annotations

import json
import time
from typing import Any

import redis


class SessionStore:
    def __init__(self, client: redis.Redis, ttl_s: int = 1800, prefix: str = "triage:session:") -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.prefix = prefix

    def load(self, user: str) -> dict[str, Any]:
        raw = self.client.get(self.prefix + user)
        return json.loads(raw) if raw else {}

    def save(self, user: str, session: dict[str, Any]) -> None:
        self.client.set(self.prefix + user, json.dumps(session, ensure_ascii=False), ex=self.ttl_s)

    def delete(self, user: str) -> None:
        self.client.delete(self.prefix + user)

    # --- consent (PIPL): kept until withdrawn, with the notice version the patient agreed to
    def consent(self, user: str) -> dict[str, Any] | None:
        raw = self.client.get(f"triage:consent:{user}")
        return json.loads(raw) if raw else None

    def grant_consent(self, user: str, notice_version: str) -> None:
        record = {"at": int(time.time()), "notice_version": notice_version}
        self.client.set(f"triage:consent:{user}", json.dumps(record))

    def forget(self, user: str) -> int:
        """Delete everything stored in Redis about one user: session, consent, cached replies,
        the chat page's turns."""
        keys = [self.prefix + user, f"triage:consent:{user}", f"triage:api:turns:{user}", f"triage:api:seq:{user}",
                *self.client.scan_iter(f"triage:result:{user}:*")]
        return int(self.client.delete(*keys))

    def lock(self, user: str, ttl_s: int = 60, wait_s: float = 30) -> redis.lock.Lock:
        """One message per user at a time, so two quick messages never race on the session."""
        return self.client.lock(f"triage:lock:{user}", timeout=ttl_s, blocking_timeout=wait_s)
