"""Database health and diagnostics: integrity check, row snapshot (used by tests to prove "changed nothing")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, select, text

from .models import Base


def integrity_check(engine: Engine) -> str:
    """'ok' when the database is sound: SQLite PRAGMA integrity_check + foreign_key_check; on PostgreSQL a
    full read of every table (the server itself guarantees page integrity)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            result = connection.exec_driver_sql("PRAGMA integrity_check").scalar_one()
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            return result if not broken else f"foreign key violations: {broken[:5]}"
        for table in Base.metadata.sorted_tables:
            connection.execute(select(table)).fetchall()
        return "ok"


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every existing table (ordered by primary key): compare two snapshots to prove nothing
    changed. Tables of later revisions that the database does not have yet are left out."""
    with engine.connect() as connection:
        present = set(inspect(connection).get_table_names())
        return {table.name: [tuple(row) for row in connection.execute(
                    select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables if table.name in present}


def checkpoint(engine: Engine) -> None:
    """SQLite: fold the WAL back into the main file (useful before copying the file)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
