"""Shared pytest set-up. Each part keeps its fixtures in its own module and registers them here."""

# --- annotations_db: db_url (SQLite file + PostgreSQL), postgres_server_url, service, clock -------------------
from db_support import clock, db_url, postgres_server_url, service  # noqa: E402,F401

# --- interop: orthanc_url (a real Orthanc with DICOMweb on loopback) ------------------------------------------
from interop_support import orthanc_url  # noqa: E402,F401
