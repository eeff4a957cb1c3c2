"""Staff accounts: hashed passwords (werkzeug's scrypt), roles, lockout after repeated
failures. Every login, failure and lockout goes to the audit log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from triage.store.consultations import AuditLog
from triage.store.db import StaffUser, utcnow

ROLES = {"editor": "编辑", "reviewer": "审核", "admin": "管理员", "operator": "运维"}
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10
_LOCKED = "连续输错次数过多，账号已临时锁定，请15分钟后再试"
_DUMMY_HASH = generate_password_hash("not-a-password")


@dataclass(frozen=True)
class Staff:
    id: int
    username: str
    role: str
    display_name: str

    @property
    def role_label(self) -> str:
        return ROLES[self.role]


class LoginRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserStore:
    def __init__(self, sessions: sessionmaker, audit: AuditLog | None = None) -> None:
        self.sessions = sessions
        self.audit = audit or AuditLog(sessions)

    def create(self, username: str, role: str, password: str | None = None, display_name: str = "",
               actor: str = "system") -> str:  # fmt: skip
        """Create an account; returns the password (generated when none is given)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        password = password or secrets.token_urlsafe(12)
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"password must have at least {MIN_PASSWORD} characters")
        with self.sessions.begin() as db:
            if db.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
                raise ValueError(f"user {username!r} exists")
            db.add(StaffUser(username=username, role=role, display_name=display_name or username,
                             password_hash=generate_password_hash(password)))  # fmt: skip
        self.audit.record(actor, "user.create", username, role=role)
        return password

    def exists(self, username: str) -> bool:
        with self.sessions() as db:
            return db.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None

    def authenticate(self, username: str, password: str) -> Staff:
        now = utcnow()
        event, refusal, staff = "user.login_failed", "用户名或密码错误", None
        with self.sessions.begin() as db:
            user = db.scalar(select(StaffUser).where(StaffUser.username == username))
            if user is None or not user.active:
                check_password_hash(_DUMMY_HASH, password)  # the same time for unknown users
            elif user.locked_until and user.locked_until > now:
                event, refusal = "user.login_while_locked", _LOCKED
            elif not check_password_hash(user.password_hash, password):
                user.failed_logins += 1
                if user.failed_logins >= MAX_FAILURES:
                    user.locked_until, user.failed_logins = now + LOCKOUT, 0
                    event, refusal = "user.locked", _LOCKED
            else:
                user.failed_logins, user.locked_until = 0, None
                event, staff = "user.login", Staff(user.id, user.username, user.role, user.display_name)
        self.audit.record(username[:64], event, username[:128])
        if staff is None:
            raise LoginRefused(refusal)
        return staff

    def get(self, user_id: int) -> Staff | None:
        with self.sessions() as db:
            user = db.get(StaffUser, user_id)
            return Staff(user.id, user.username, user.role, user.display_name) if user and user.active else None
