"""`gazex experiment ...` on a real SQLite file: cases from a study set, progress lines, export, and bad input
that prints one line and creates nothing."""

from __future__ import annotations

import pytest

from annotations_db import ReviewService
from annotations_db.maintenance import snapshot
from db_support import ADMIN, READERS, MovableClock, populate
from training.cli import main as gazex

ALICE, BOB = READERS[0][0], READERS[1][0]


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    service = ReviewService.open(url, clock=MovableClock())
    study_ids, _ = populate(service, 4)
    service.create_study_set("pilot cases")
    for study_id in study_ids[:3]:
        service.add_to_study_set("pilot cases", study_id)
    yield url, service, study_ids
    service.close()


def test_create_from_a_study_set_show_and_export(database, tmp_path, capsys):
    url, service, study_ids = database
    assert gazex(["experiment", "create", "pilot", "--url", url, "--arms", "unaided,draft", "--readers",
                  f"{ALICE},{BOB}", "--study-set", "pilot cases", "--inject", f"{study_ids[0]}:false_finding"]) == 0
    assert "2 readers x 3 cases = 12 reads" in capsys.readouterr().out
    assert gazex(["experiment", "list", "--url", url]) == 0
    assert "pilot\tcrossover\tunaided,draft\topen" in capsys.readouterr().out
    for item in service.worklist(ALICE):
        state = service.open_session(ALICE, item.study.id)
        service.sign_off(ALICE, state.session_id, "accept", "report", active_ms=2000.0, accept_rest=True)
    assert gazex(["experiment", "show", "1", "--url", url]) == 0
    shown = capsys.readouterr().out
    assert f"study {study_ids[0]}: false_finding" in shown
    assert f"{ALICE}: 3/6 done, locked (washout) until " in shown and f"{BOB}: 0/6 done, next: period 1" in shown
    out = tmp_path / "long.csv"
    assert gazex(["experiment", "export", "1", "--url", url, "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 13 and lines[0].startswith("reader,case,study_uid,arm,period,position,sequence")
    assert gazex(["experiment", "close", "1", "--url", url]) == 0
    assert gazex(["experiment", "analyze", "1", "--url", url, "--out", str(tmp_path / "r")]) == 1
    assert "too few signed reads to analyse" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--arms", "unaided,draft,draft_trajectory", "--cases", "1,2"], "cannot balance 3 arms over 2 cases"),
    (["--readers", f"{ALICE},nobody"], "unknown readers: nobody"),
    (["--cases", "1,2,999"], "unknown studies: 999"),
    (["--washout-days", "-3"], "washout_days must be a non-negative whole number"),
    (["--cases", "1,x"], "--cases: 'x' is not a study id"),
    (["--inject", "1:typo"], "injected error kind 'typo' is not one of"),
    (["--study-set", "pilot cases"], "exactly one of --cases, --cases-file or --study-set"),
])
def test_bad_input_is_one_line_and_creates_nothing(database, capsys, arguments, message):
    url, service, _ = database
    before = snapshot(service.engine)
    base = {"--arms": "unaided,draft", "--readers": f"{ALICE},{BOB}", "--cases": "1,2,3"}
    given = dict(zip(arguments[::2], arguments[1::2]))
    argv = ["experiment", "create", "bad", "--url", url]
    for option, value in ({k: v for k, v in base.items() if k not in given} | given).items():
        argv += [option, value]
    assert gazex(argv) == 1
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert snapshot(service.engine) == before
