"""Shared pytest set-up. Each part keeps its fixtures in its own module and registers them here.

A session-scoped fixture must be registered here, not imported into test modules: pytest caches a fixture per
module that defines (or imports) it, so each importing test file would build its own copy."""

import pytest

# --- annotations_db: db_url (SQLite file + PostgreSQL), postgres_server_url, service, clock -------------------
from db_support import clock, db_url, postgres_server_url, service  # noqa: E402,F401

# --- interop: orthanc_url (a real Orthanc with DICOMweb on loopback) ------------------------------------------
from interop_support import orthanc_url  # noqa: E402,F401


# --- fine-tuning: flawed_world (one synthetic world with a flawed base model for tests/test_finetune_*.py) -----
@pytest.fixture(scope="session")
def flawed_world(tmp_path_factory):
    from finetune_support import build_flawed_world  # imports torch: only for the tests that use the world

    return build_flawed_world(tmp_path_factory.mktemp("finetune_world"))
