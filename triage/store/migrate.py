"""Alembic, driven from code: ``upgrade(engine)`` at start-up (web, worker, CLI), and
``flask --app triage db upgrade`` for operators. The scripts live in ``migrations/``."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head", lock_dir: Path | None = None) -> None:
    """Idempotent. ``lock_dir``: processes starting together on one host (web and worker)
    take turns, so two never create the same table at once."""
    if lock_dir is None:
        command.upgrade(alembic_config(engine), revision)
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            command.upgrade(alembic_config(engine), revision)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
