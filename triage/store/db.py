"""Engine, tables and sessions. SQLite gets WAL and a busy timeout, because the web
process and the workers write to the same file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Consultation(Base):
    """A pre-consultation summary (预问诊): what the patient said and what was recommended."""

    __tablename__ = "consultations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True, index=True)
    user_ref: Mapped[str] = mapped_column(String(64), index=True)  # keyed hash, never the openid
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # triage | red_flag | handoff
    chief_complaint: Mapped[str] = mapped_column(Text)
    duration: Mapped[str | None] = mapped_column(String(40))
    associated: Mapped[list[str]] = mapped_column(JSON, default=list)
    denied: Mapped[list[str]] = mapped_column(JSON, default=list)
    age: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[str | None] = mapped_column(String(2))
    pregnant: Mapped[bool | None] = mapped_column()
    red_flag: Mapped[str | None] = mapped_column(String(64))
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    urgency: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    kb_version: Mapped[str] = mapped_column(String(40), default="")
    turns: Mapped[int] = mapped_column(Integer, default=1)

    def as_dict(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in self.__table__.columns if c.name != "user_ref"} | {
            "created_at": self.created_at.isoformat(timespec="seconds") + "Z"
        }


class AuditEvent(Base):
    """Every staff action: who did what to which record, and when (PIPL)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(timespec="seconds") + "Z", "actor": self.actor,
                "action": self.action, "target": self.target, "detail": self.detail}  # fmt: skip


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)
