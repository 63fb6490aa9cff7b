"""Where the database lives and how we connect to it (SQLite by default, PostgreSQL by URL).

SQLite: a file ``gazex.sqlite3`` under the data directory (``GAZEX_DATA_DIR`` or ``~/.gazex``), WAL journal,
foreign keys on, a busy timeout and ``synchronous=NORMAL`` (see ``sqlite_synchronous``). Write
transactions start with ``BEGIN IMMEDIATE`` so concurrent writers never fail with a stale snapshot, and take a
per-database file lock first (``gazex.sqlite3.writelock``, flock): waiting writers are woken the moment the lock
is free instead of sleep-polling in SQLite's busy handler (which let one writer starve for seconds under load).

PostgreSQL: ``GAZEX_DATABASE_URL`` (or an explicit URL), e.g. ``postgresql+psycopg://user:pw@host/db``.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ContextManager, Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_FILE = "gazex.sqlite3"
BUSY_TIMEOUT_MS = 30_000
WRITE = "gazex_write"  # execution option: this connection's transaction writes


def default_data_dir() -> Path:
    return Path(os.environ.get("GAZEX_DATA_DIR") or Path.home() / ".gazex")


def resolve_url(database_url: str | None = None, data_dir: str | os.PathLike | None = None, *,
                create_dir: bool = True) -> str:
    """An explicit URL wins, then GAZEX_DATABASE_URL, then the SQLite file under the data directory (created
    unless create_dir is False)."""
    url = database_url or os.environ.get("GAZEX_DATABASE_URL")
    if url:
        return url
    directory = Path(data_dir) if data_dir else default_data_dir()
    if create_dir:
        directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(directory / SQLITE_FILE).resolve()}"


def make_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_size=5, max_overflow=10, pool_recycle=1800)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute(f"PRAGMA synchronous = {sqlite_synchronous()}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def sqlite_synchronous() -> str:
    """NORMAL (default): with WAL, a commit survives any crash of the process (SIGKILL included); after a power
    cut or OS crash the last commits may be rolled back. FULL: fsync on every commit (power-loss durable,
    about 5-10 ms more per write on this machine). Set GAZEX_SQLITE_SYNCHRONOUS=FULL to choose it."""
    value = os.environ.get("GAZEX_SQLITE_SYNCHRONOUS", "NORMAL").upper()
    if value not in ("NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"GAZEX_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA, not {value!r}")
    return value


def _sqlite_on_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class FileWriteLock:
    """Serialises SQLite writers across threads (threading.Lock) and processes (flock on a side file).

    The file is opened once per process (re-opened after a fork: a shared open file description would share
    the lock)."""

    def __init__(self, lock_path: Path) -> None:
        self._path = lock_path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


def write_lock(engine: Engine) -> "FileWriteLock | None":
    """The writer lock of a SQLite file database; None for PostgreSQL (row locks do the job) or :memory:."""
    database = engine.url.database if is_sqlite(engine) else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return FileWriteLock(Path(f"{database}.writelock"))


def holding(lock: "FileWriteLock | None") -> ContextManager[None]:
    return lock.hold() if lock is not None else nullcontext()
