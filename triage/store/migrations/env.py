"""Alembic environment: the engine is handed in by ``triage.store.migrate``."""

from __future__ import annotations

from alembic import context

from triage.store.db import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    # render_as_batch: SQLite alters tables by copying them; PostgreSQL does not need it.
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")  # fmt: skip
    with context.begin_transaction():
        context.run_migrations()
