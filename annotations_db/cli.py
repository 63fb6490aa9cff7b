"""Subcommands owned by annotations_db: ``gazex db upgrade | add-reader | readers | disable-reader | enable-reader |
set-password | export-experiment | export-provenance | check``.

Every subcommand takes ``--url`` (default: GAZEX_DATABASE_URL, else the SQLite file under GAZEX_DATA_DIR or
~/.gazex). The command line has direct access to the database, so it acts as the local administrator.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from contextlib import closing

PASSWORD_ENV = "GAZEX_READER_PASSWORD"


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser("db", help="the review database (migrations, readers, exports)")
    commands = db.add_subparsers(dest="db_command", required=True)
    _add(commands, "upgrade", "create or migrate the database to the newest schema", _upgrade)
    reader = _add(commands, "add-reader", f"create a reader; password from ${PASSWORD_ENV}, stdin or a prompt",
                  _add_reader)
    reader.add_argument("username")
    reader.add_argument("--role", choices=("reader", "admin"), default="reader")
    reader.add_argument("--display-name", default=None)
    _add(commands, "readers", "list readers", _list_readers)
    for name, handler, help_text in (("disable-reader", _disable_reader, "disable a reader (ends their sessions)"),
                                     ("enable-reader", _enable_reader, "enable a reader again (lifts a lockout)")):
        _add(commands, name, help_text, handler).add_argument("username")
    _add(commands, "set-password", f"set a reader's password from ${PASSWORD_ENV}, stdin or a prompt (never the "
         "command line); ends their sessions", _set_password).add_argument("username")
    experiment = _add(commands, "export-experiment", "case x reader x arm CSV of one experiment", _export_experiment)
    experiment.add_argument("experiment_id", type=int)
    experiment.add_argument("--out", required=True)
    provenance = _add(commands, "export-provenance", "sentence provenance log CSV of all signed reviews",
                      _export_provenance)
    provenance.add_argument("--out", required=True)
    _add(commands, "check", "verify an existing database: integrity, protection triggers, the sign-off hash chain; "
                            "names each tampered record (creates nothing)", _check)


def _add(commands: argparse._SubParsersAction, name: str, help_text: str, handler) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--url", default=None, help="database URL (default: GAZEX_DATABASE_URL or the SQLite file)")
    parser.add_argument("--data-dir", default=None, help="directory of the default SQLite file")
    parser.set_defaults(handler=handler)
    return parser


def _service(args: argparse.Namespace):
    from .service import ReviewService

    return ReviewService.open(args.url, data_dir=args.data_dir)


def _upgrade(args: argparse.Namespace) -> int:
    from .engine import resolve_url
    from .migrations import upgrade

    url = resolve_url(args.url, args.data_dir)
    revision = upgrade(url)
    print(f"database at revision {revision}: {_safe(url)}")
    return 0


def _add_reader(args: argparse.Namespace) -> int:
    service = _service(args)
    password = _read_password()
    admins = [r.username for r in service.list_readers() if r.role == "admin"]
    info = service.create_reader(args.username, password, args.role, acting=admins[0] if admins else None,
                                 display_name=args.display_name)
    print(f"created {info.role} {info.username} (id {info.id})")
    return 0


def _read_password() -> str:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _list_readers(args: argparse.Namespace) -> int:
    service = _service(args)
    states = service.account_states()
    for reader in service.list_readers():
        status = "disabled" if states[reader.username].disabled else "enabled"
        print(f"{reader.id}\t{reader.username}\t{reader.role}\t{reader.display_name or ''}\t{status}")
    return 0


def _disable_reader(args: argparse.Namespace) -> int:
    from .accounts import LOCAL_ADMIN

    _service(args).set_reader_disabled(args.username, True, acting=LOCAL_ADMIN)
    print(f"disabled {args.username}; their sessions have ended")
    return 0


def _enable_reader(args: argparse.Namespace) -> int:
    from .accounts import LOCAL_ADMIN

    _service(args).set_reader_disabled(args.username, False, acting=LOCAL_ADMIN)
    print(f"enabled {args.username}")
    return 0


def _set_password(args: argparse.Namespace) -> int:
    from .accounts import LOCAL_ADMIN

    service = _service(args)
    service.set_password(args.username, _read_password(), acting=LOCAL_ADMIN)
    print(f"password of {args.username} set; their sessions have ended")
    return 0


def _export_experiment(args: argparse.Namespace) -> int:
    rows = _service(args).export_experiment_csv(args.experiment_id, args.out)
    print(f"wrote {rows} rows to {args.out}")
    return 0


def _export_provenance(args: argparse.Namespace) -> int:
    rows = _service(args).export_provenance_csv(args.out)
    print(f"wrote {rows} rows to {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Verifies an existing database without changing it: one line per problem, "ok ..." when intact.
    Exit 0 intact, 1 problems found, 2 no database to check (missing file, not a database, unreachable)."""
    from .engine import make_engine, resolve_url

    url = resolve_url(args.url, args.data_dir, create_dir=False)
    refusal = _not_checkable(url)
    if refusal:
        print(refusal)
        return 2
    engine = make_engine(url)
    try:
        problems, summary = _verify(engine)
    except Exception as exc:  # noqa: BLE001 - one line for any database that cannot be read
        print(f"cannot check {_safe(url)}: {_first_line(exc)}")
        return 2
    finally:
        engine.dispose()
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) found" if problems else f"ok: {summary}")
    return 1 if problems else 0


def _not_checkable(url: str) -> str | None:
    """Why a SQLite URL has nothing to check (no file: only `db upgrade` creates one; not a database)."""
    import sqlite3

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database
    if not path or path == ":memory:" or not os.path.isfile(path):
        return f"no database file at {path or '(memory)'}: check creates nothing (`gazex db upgrade` creates one)"
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        return f"{path} is not a readable SQLite database: {_first_line(exc)}"
    return None


def _verify(engine) -> tuple[list[str], str]:
    from .maintenance import chain_summary, integrity_check, verify_record
    from .migrations import current_revision, head_revision

    revision = current_revision(engine)
    if revision is None:
        return [f"{_safe(str(engine.url))} holds no gazex database (`gazex db upgrade` creates one)"], ""
    if revision != head_revision():
        return [f"the database is at revision {revision}, the code at {head_revision()}: run `gazex db upgrade`"], ""
    result = integrity_check(engine)
    problems = [] if result == "ok" else [f"integrity check: {result}"]
    problems += verify_record(engine, progress=sys.stderr.isatty())
    return problems, chain_summary(engine)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
