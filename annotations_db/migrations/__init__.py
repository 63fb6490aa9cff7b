"""Alembic migrations shipped inside the package, configured programmatically (no alembic.ini).

``upgrade(url)`` brings a database to head; ``ReviewService.open`` and ``gazex db upgrade`` call it.
Concurrent upgraders are serialised: ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from ..engine import WRITE, holding, make_engine, write_lock

HERE = Path(__file__).resolve().parent
FIRST_REVISION = "0001"
_ADVISORY_LOCK_KEY = 0x6A7A6578  # any constant shared by all gazex processes


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


@cache
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_engine(engine: Engine, revision: str = "head") -> str | None:
    """Upgrades to ``revision`` in one transaction; returns the revision the database is at afterwards."""
    with holding(write_lock(engine)), engine.connect() as connection:
        connection = connection.execution_options(**{WRITE: True})
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    return current_revision(engine)


def upgrade(url: str, revision: str = "head") -> str | None:
    engine = make_engine(url)
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def ensure_head(engine: Engine) -> None:
    """Cheap when already at head (one SELECT); otherwise runs the upgrade."""
    if current_revision(engine) != head_revision():
        upgrade_engine(engine)
