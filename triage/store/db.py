"""Engine, tables and sessions. SQLite gets WAL and a busy timeout, because the web
process and the workers write to the same file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker


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


# --- the knowledge base: the draft staff edit, and the published, immutable versions ----------


class KbDepartment(Base):
    __tablename__ = "kb_departments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    canonical: Mapped[str] = mapped_column(String(20))
    parent: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(String(200))
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    not_for: Mapped[list[str]] = mapped_column(JSON, default=list)
    location: Mapped[str] = mapped_column(String(100), default="")
    hours: Mapped[str] = mapped_column(String(100), default="")
    booking_page: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    entries: Mapped[list[KbEntry]] = relationship(
        back_populates="department", cascade="all, delete-orphan", order_by="KbEntry.position"
    )


class KbEntry(Base):
    __tablename__ = "kb_entries"
    __table_args__ = (UniqueConstraint("department_id", "term"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("kb_departments.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    term: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    urgency: Mapped[str | None] = mapped_column(String(16))
    department: Mapped[KbDepartment] = relationship(back_populates="entries")


class KbDocument(Base):
    """The parts edited as a whole: canonical names, synonyms, urgency rules, red-flag rules
    (with their reply templates), follow-up question texts."""

    __tablename__ = "kb_documents"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class KbVersion(Base):
    """A published knowledge base: numbered, frozen, never edited; rollback re-activates one."""

    __tablename__ = "kb_versions"

    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    published_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # editor | reviewer | admin | operator
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


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


def create_schema(engine: Engine, lock_dir: Path | None = None) -> None:
    """Bring the database to the newest schema with Alembic (the migrations are the schema)."""
    from triage.store.migrate import upgrade

    upgrade(engine, lock_dir=lock_dir)
