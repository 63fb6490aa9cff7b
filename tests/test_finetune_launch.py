"""The Admin tab starts `gazex finetune` as its own process: the database password never appears on that
process's command line (every local user can read it in the process list); it travels in the environment."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from annotations_db.service import ReviewService
from app import admin_models

PASSWORD = "s3cret-Pw-4711"


@pytest.mark.postgres
def test_the_finetune_process_reaches_the_database_without_its_password_on_the_command_line(
        postgres_server_url, tmp_path):
    import pgcluster

    database = pgcluster.create_database(postgres_server_url)
    url = make_url(database).set(password=PASSWORD)  # the throwaway cluster trusts loopback: any password works
    service = ReviewService.open(url.render_as_string(hide_password=False), data_dir=str(tmp_path))
    try:
        service.create_reader("admin1", "password123", role="admin")
        proc = admin_models.start_finetune(service, "admin1", log_dir=tmp_path / "logs")
        assert PASSWORD not in " ".join(map(str, proc.args)) and "--database-url" not in proc.args
        assert proc.wait(timeout=300) == 2  # exit 2: bad input (no model version), i.e. it reached the database
        log = next((tmp_path / "logs").glob("finetune_*.log")).read_text()
        assert "no active model version" in log and PASSWORD not in log
        assert PASSWORD in admin_models.finetune_environment(service)["GAZEX_DATABASE_URL"]
    finally:
        service.close()
        pgcluster.drop_database(database)
