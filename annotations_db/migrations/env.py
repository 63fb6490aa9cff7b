"""Alembic environment: always runs on the connection handed over by annotations_db.migrations."""

from __future__ import annotations

from alembic import context

from annotations_db.models import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through annotations_db.migrations.upgrade(url) or `gazex db upgrade`")
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
