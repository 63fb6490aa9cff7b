"""A throwaway PostgreSQL cluster (initdb + pg_ctl on a free loopback port) and scratch databases.

Used by the test suite and benchmarks to run against a real PostgreSQL server without any set-up. As root,
PostgreSQL refuses to run, so the cluster is initialised and started as the ``postgres`` system user (created
with ``useradd`` if it does not exist) via ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SUPERUSER = "gazex"
SERVICE_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are missing or the cluster would not start."""


def find_bin_dir() -> Path:
    """The directory holding initdb/pg_ctl: PATH first, then Debian's /usr/lib/postgresql/<ver>/bin (newest)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version, reverse=True)
    if not candidates:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's "
                                  "'postgresql' package (scripts/test.sh does) or set GAZEX_TEST_POSTGRES_URL")
    return Path(candidates[0]).parent


def _major_version(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A running throwaway cluster; ``stop()`` shuts it down and deletes its files."""

    root: Path
    port: int
    bin_dir: Path
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def stop(self) -> None:
        if self.data_dir.exists():
            _run(self, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                 check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(*, fsync: bool = True, attempts: int = 3) -> Cluster:
    bin_dir = find_bin_dir()
    run_as = _service_user() if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="gazex-pg-"))
    if run_as:
        pw = pwd.getpwnam(run_as)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    cluster = Cluster(root=root, port=0, bin_dir=bin_dir, run_as=run_as)
    _run(cluster, [str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", SUPERUSER, "--auth=trust",
                   "-E", "UTF8", "--no-locale"])
    for attempt in range(attempts):
        cluster.port = free_port()
        if _start(cluster, fsync):
            return cluster
    log = (root / "server.log").read_text(errors="replace")[-2000:] if (root / "server.log").exists() else ""
    cluster.stop()
    raise PostgresUnavailable(f"PostgreSQL would not start after {attempts} attempts: {log}")


def _start(cluster: Cluster, fsync: bool) -> bool:
    options = (f"-c listen_addresses=127.0.0.1 -c port={cluster.port} -c unix_socket_directories='' "
               f"-c max_connections=200 -c fsync={'on' if fsync else 'off'}")
    result = _run(cluster, [str(cluster.bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), "-l",
                            str(cluster.root / "server.log"), "-o", options, "-w", "-t", "60", "start"], check=False)
    return result.returncode == 0 and _accepts_connections(cluster.url)


def _accepts_connections(url: str, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            engine = create_engine(url)
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
            return True
        except Exception:  # noqa: BLE001 - still starting
            time.sleep(0.2)
    return False


def _service_user() -> str:
    """PostgreSQL refuses to run as root: use (or create) the 'postgres' system user."""
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       check=True, capture_output=True)
    return SERVICE_USER


def _run(cluster: Cluster, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if cluster.run_as:
        command = ["runuser", "-u", cluster.run_as, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cluster.root)
    if check and result.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


# --- scratch databases on any server --------------------------------------------------------------------------


def create_database(server_url: str, prefix: str = "gazex_test") -> str:
    """Creates an empty database on the server and returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _autocommit(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    maintenance = url.set(database="postgres").render_as_string(hide_password=False)
    _autocommit(maintenance, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def _autocommit(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()
