"""Admin Experiments section without a browser: create from the form, progress, and the analysis report run
as `gazex experiment analyze` in its own process (real SQLite file, real subprocess)."""

from __future__ import annotations

import pytest

from annotations_db import AccessDenied, InvalidInput, ReviewError, ReviewService
from app import admin_experiments
from db_support import ADMIN, READERS, MovableClock, populate

ALICE, BOB = READERS[0][0], READERS[1][0]


@pytest.fixture
def service(tmp_path):
    svc = ReviewService.open(f"sqlite:///{tmp_path / 'app.sqlite3'}", clock=MovableClock())
    yield svc
    svc.close()


def test_create_progress_and_analysis_report(service):
    study_ids, _ = populate(service, 6)
    cases = " ".join(map(str, study_ids))
    with pytest.raises(AccessDenied):
        admin_experiments.create_from_form(service, ALICE, "x", "crossover", ["unaided", "draft"], ALICE, cases, None,
                                           28, 0)
    with pytest.raises(InvalidInput, match="either as study ids or as a study set"):
        admin_experiments.create_from_form(service, ADMIN[0], "x", "crossover", ["unaided", "draft"], ALICE, "", None,
                                           28, 0)
    with pytest.raises(InvalidInput, match="washout days: 1.5 is not a whole number"):
        admin_experiments.create_from_form(service, ADMIN[0], "x", "crossover", ["unaided", "draft"], ALICE, cases,
                                           None, 1.5, 0)
    assert service.list_experiments() == []
    text = admin_experiments.create_from_form(service, ADMIN[0], "pilot", "crossover", ["unaided", "draft"],
                                              f"{ALICE}, {BOB}", cases, None, 0, 3)
    assert "2 readers x 6 cases = 24 reads" in text
    assert admin_experiments.experiment_rows(service, ADMIN[0])[0][:5] == [1, "pilot", "crossover", "unaided, draft",
                                                                           "open"]
    with pytest.raises(ReviewError, match="too few signed reads"):
        admin_experiments.run_analysis(service, ADMIN[0], 1)
    for reader, slow in ((ALICE, 1.0), (BOB, 1.3)):
        for _ in range(2):
            for n, item in enumerate(service.worklist(reader, status="unread")):
                state = service.open_session(reader, item.study.id)
                seconds = slow * (60 if state.arm == "unaided" else 45) * (1 + 0.1 * (n % 3))
                service.sign_off(reader, state.session_id, "accept", "report", active_ms=seconds * 1000,
                                 accept_rest=True)
    assert "- alice: 12/12 done, finished" in admin_experiments.progress_markdown(service, ADMIN[0], 1)
    frame, paths = admin_experiments.run_analysis(service, ADMIN[0], 1)
    assert frame.startswith('<iframe id="gx-analysis-frame"') and "srcdoc=" in frame and "shorter than unaided" in frame
    assert [p.rsplit("/", 1)[1] for p in paths] == ["report.html", "long_table.csv", "analysis.json"]
