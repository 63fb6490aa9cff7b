"""Database test fixtures: every DB test runs on a real SQLite file AND a real PostgreSQL server.

PostgreSQL: GAZEX_TEST_POSTGRES_URL (a server URL; each test gets its own scratch database on it) or, by
default, a throwaway cluster started once per test session with initdb + pg_ctl on a free loopback port
(as the 'postgres' system user when running as root). Missing PostgreSQL binaries FAIL the postgres tests.
Registered in tests/conftest.py; self-contained (no other part's fixtures involved).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class MovableClock:
    """Real UTC time plus an offset the test can advance (washout periods without waiting weeks)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


@pytest.fixture(scope="session")
def postgres_server_url():
    """URL of a PostgreSQL server for the whole test session (started here unless given)."""
    import pgcluster

    given = os.environ.get("GAZEX_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        cluster = pgcluster.start_cluster()
    except pgcluster.PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL tests need a server and could not start one: {exc}", pytrace=False)
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path: Path):
    """A fresh, empty database on each backend: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gazex.sqlite3'}"
        return
    import pgcluster

    url = pgcluster.create_database(request.getfixturevalue("postgres_server_url"))
    try:
        yield url
    finally:
        pgcluster.drop_database(url)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def service(db_url: str, clock: MovableClock):
    from annotations_db import ReviewService

    svc = ReviewService.open(db_url, clock=clock)
    try:
        yield svc
    finally:
        svc.close()


ADMIN = ("chief", "chief-pass-1")
READERS = (("alice", "alice-pass-1"), ("bob", "bob-pass-12"))


def bundle(study_uid: str, n_sentences: int = 3) -> dict:
    """A small EvidenceBundle JSON dict (schema gazex.evidence/1) with boxes on all but the last sentence."""
    sentences = []
    for i in range(1, n_sentences + 1):
        box = {"x_min": 0.1 * i, "y_min": 0.1, "x_max": 0.1 * i + 0.2, "y_max": 0.5} if i < n_sentences else None
        sentences.append({"id": f"s{i}", "section": "findings" if i < n_sentences else "impression",
                          "region": None, "label": None, "text": f"Sentence {i} of {study_uid}.", "confidence": 0.9,
                          "observation_box": box, "trajectory": [{"x": 0.5, "y": 0.5, "dwell_ms": 200, "clue_box": None}]})
    return {"schema": "gazex.evidence/1", "model": {"name": "gazex", "version": "v1"},
            "image": {"width": 1000, "height": 1000}, "sentences": sentences, "findings": [], "timing_ms": {},
            "warnings": []}


def populate(service, n_studies: int = 3, *, drafts: bool = True):
    """Admin, two readers, n studies, an active model version and its drafts. Returns (study ids, model id)."""
    service.create_reader(*ADMIN, "admin")
    for username, password in READERS:
        service.create_reader(username, password, "reader", acting=ADMIN[0])
    model = service.register_model_version("gazex", "v1", "hash-v1", status="active", path="/models/v1")
    study_ids = []
    for i in range(n_studies):
        study = service.register_study(f"1.2.826.0.1.{i}", f"/data/s{i}.dcm", width=1000, height=1000,
                                       meta={"sex": "F", "age_band": "60-70"})
        if drafts:
            service.save_draft(study.id, model.id, bundle(study.study_uid))
        study_ids.append(study.id)
    return study_ids, model.id


def gazex_db(argv: list[str]) -> int:
    """Runs `gazex <argv>` with only annotations_db's subcommands (as training.cli composes them)."""
    import argparse

    from annotations_db.cli import add_subcommands

    parser = argparse.ArgumentParser(prog="gazex")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)
