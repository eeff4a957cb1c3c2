"""Pre-consultation summaries: written when a triage ends, read by staff, deleted on
request or after the retention period."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from triage.store.db import AuditEvent, Consultation, utcnow

# No 0/O, 1/I/L (read out at the clinic) and no G/M/U (a digit before them reads like a
# dose, "5MG", which the reply guardrails would rightly refuse).
_CODE_ALPHABET = "23456789ABCDEFHJKNPQRSTVWXYZ"


def new_code(length: int = 6) -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))


class ConsultationStore:
    def __init__(self, sessions: sessionmaker, retention_days: int = 30) -> None:
        self.sessions = sessions
        self.retention_days = retention_days

    def save(self, user: str, summary: dict[str, Any]) -> str:
        """Store one summary and return its code. Expired rows go at the same time, so
        retention holds without a scheduler."""
        with self.sessions.begin() as db:
            db.execute(delete(Consultation).where(Consultation.created_at < self._cutoff()))
            for _ in range(5):
                code = new_code()
                if db.scalar(select(Consultation.id).where(Consultation.code == code)) is None:
                    break
            db.add(Consultation(code=code, user_ref=user, **summary))
        return code

    def get(self, code: str) -> dict[str, Any] | None:
        with self.sessions() as db:
            row = db.scalar(select(Consultation).where(Consultation.code == code.upper(),
                                                       Consultation.created_at >= self._cutoff()))  # fmt: skip
            return row.as_dict() if row else None

    def latest_for(self, user: str) -> dict[str, Any] | None:
        with self.sessions() as db:
            row = db.scalar(select(Consultation).where(Consultation.user_ref == user,
                                                       Consultation.created_at >= self._cutoff())
                            .order_by(Consultation.id.desc()).limit(1))  # fmt: skip
            return row.as_dict() if row else None

    def recent(self, limit: int = 50, urgency: str | None = None) -> list[dict[str, Any]]:
        query = select(Consultation).where(Consultation.created_at >= self._cutoff())
        if urgency:
            query = query.where(Consultation.urgency == urgency)
        with self.sessions() as db:
            return [r.as_dict() for r in db.scalars(query.order_by(Consultation.id.desc()).limit(limit))]

    def forget(self, user: str) -> int:
        with self.sessions.begin() as db:
            return db.execute(delete(Consultation).where(Consultation.user_ref == user)).rowcount or 0

    def _cutoff(self):
        return utcnow() - timedelta(days=self.retention_days)


class AuditLog:
    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def record(self, actor: str, action: str, target: str = "", **detail: Any) -> None:
        with self.sessions.begin() as db:
            db.add(AuditEvent(actor=actor, action=action, target=target, detail=detail))

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.sessions() as db:
            return [e.as_dict() for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))]
