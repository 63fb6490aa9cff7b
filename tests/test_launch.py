"""launch.py's first-run behaviour: one default data directory shared with every gazex command, output that
shows only what a user needs (no library INFO lines), passwords printed and saved only when generated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # launch.py is a top-level script, not part of a package

import launch  # noqa: E402
from annotations_db.engine import default_data_dir  # noqa: E402
from annotations_db.service import ReviewService  # noqa: E402


def test_every_entry_point_defaults_to_the_same_data_directory(monkeypatch, tmp_path):
    from training.cli import build_parser

    for value in (str(tmp_path / "site"), None):
        if value is None:
            monkeypatch.delenv("GAZEX_DATA_DIR", raising=False)
        else:
            monkeypatch.setenv("GAZEX_DATA_DIR", value)
        expected = default_data_dir()
        assert launch.parse_args([]).data_dir == str(expected)
        args = build_parser().parse_args(["models", "list"])
        assert (Path(args.data_dir) if args.data_dir else default_data_dir()) == expected
    assert default_data_dir() == Path.home() / ".gazex"


def test_first_launch_set_up_prints_no_library_info_lines(tmp_path):
    code = ("import launch; from annotations_db.service import ReviewService; launch.quiet_logging(); "
            "import logging; logging.getLogger('app.runtime').info('model version 1'); "
            f"ReviewService.open(None, data_dir={str(tmp_path)!r}).close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    lines = (out.stdout + out.stderr).splitlines()
    assert any("model version 1" in line for line in lines)  # our own INFO lines still show
    assert not [line for line in lines if "alembic" in line.lower() or "Running upgrade" in line], lines
    assert (tmp_path / "gazex.sqlite3").is_file()


def test_passwords_are_printed_and_saved_only_when_generated(monkeypatch, tmp_path):
    monkeypatch.setenv("GAZEX_ADMIN_PASSWORD", "given-by-the-site-admin")
    monkeypatch.delenv("GAZEX_DEMO_PASSWORD", raising=False)
    service = ReviewService.open(None, data_dir=str(tmp_path))
    try:
        created = launch.ensure_accounts(service, tmp_path)
        assert [(role, user) for role, user, _ in created] == [("admin", "admin"), ("reader", "demo")]
        admin_password, demo_password = created[0][2], created[1][2]
        assert admin_password is None and demo_password
        saved = (tmp_path / "credentials.txt").read_text()
        assert "given-by-the-site-admin" not in saved and saved == f"reader\tdemo\t{demo_password}\n"
        assert (tmp_path / "credentials.txt").stat().st_mode & 0o077 == 0
        assert service.authenticate("admin", "given-by-the-site-admin") is not None
        assert launch.ensure_accounts(service, tmp_path) == []  # second launch: nothing new, nothing printed
    finally:
        service.close()
