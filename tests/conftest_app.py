"""Shared set-up for the app's tests: a real SQLite file, real synthetic studies, the real model.

Imported by tests/test_app_handlers.py and tests/test_app_e2e.py (not a conftest.py, so that other
parts' tests are not affected). Drafts are computed once per module by the app's own
InferenceWorker with the shipped GazeX checkpoint (or the one GAZEX_MODEL names).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotations_db.service import ReviewService

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # launch.py is a top-level script, not part of a package

ADMIN = ("admin", "admin-pass-123")
READER = ("reader1", "reader-pass-1")
OTHER = ("reader2", "reader-pass-2")
N_STUDIES = 3


@dataclass
class AppWorld:
    data_dir: Path
    service: ReviewService
    studies: list[tuple[int, str, str]]
    context: object  # app.main.AppContext


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_world(tmp_dir: Path, n_studies: int = N_STUDIES) -> AppWorld:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import launch
    from app.runtime import build_context

    service = ReviewService.open(None, data_dir=str(tmp_dir))
    service.create_reader(*ADMIN, "admin")
    service.create_reader(*READER, "reader", acting=ADMIN[0])
    service.create_reader(*OTHER, "reader", acting=ADMIN[0])
    studies = launch.ensure_demo_studies(service, tmp_dir, n_studies, seed=11)
    model = os.environ.get("GAZEX_MODEL")  # default: the shipped checkpoint (gazex_core/weights/gazex-tiny)
    context = build_context(service, Path(model) if model else None)
    context.worker.enqueue_drafts(studies)
    assert context.worker.wait_idle(600), context.worker.progress.as_text()
    assert context.worker.progress.failed == 0, context.worker.progress.last_error
    return AppWorld(tmp_dir, service, studies, context)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> AppWorld:
    w = make_world(tmp_path_factory.mktemp("gazex_app"))
    yield w
    if w.context.worker is not None:
        w.context.worker.stop()
