"""A simulated 4-reader x 40-case x 3-arm crossover through the ReviewService, then `gazex experiment analyze`."""

from __future__ import annotations

import json
import math

from annotations_db import ReviewService
from db_support import ADMIN, MovableClock, populate
from experiment_support import ARMS, Truth, run_simulated_readers
from training.cli import main as gazex

READERS = ["alice", "bob", "carol", "dave"]


def test_simulated_crossover_through_the_service_recovers_the_draft_effect(tmp_path, capsys):
    clock = MovableClock()
    url = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    service = ReviewService.open(url, clock=clock)
    study_ids, _ = populate(service, 40)
    for name in READERS[2:]:
        service.create_reader(name, f"{name}-pass-1", "reader", acting=ADMIN[0])
    assert gazex(["experiment", "create", "pilot", "--url", url, "--design", "crossover", "--arms", ",".join(ARMS),
                  "--readers", ",".join(READERS), "--cases", ",".join(map(str, study_ids)), "--washout-days", "28",
                  "--seed", "11"] + [f"--inject={s}:false_finding" for s in study_ids[::4]]) == 0
    assert "4 readers x 40 cases = 480 reads" in capsys.readouterr().out
    truth = Truth()
    run_simulated_readers(service, clock, 1, truth, seed=5)
    assert gazex(["experiment", "show", "1", "--url", url]) == 0
    assert capsys.readouterr().out.count("120/120 done, finished") == 4

    out = tmp_path / "report"
    assert gazex(["experiment", "analyze", "1", "--url", url, "--out", str(out)]) == 0
    result = json.loads((out / "analysis.json").read_text())
    draft = result["time"]["effects"]["draft"]
    # one study: the estimate is near the truth and clearly non-null (CI coverage is the 50-study test's job)
    assert abs(math.log(draft["ratio"]) - math.log(truth.ratio["draft"])) < 0.1 and draft["p"] < 0.05
    assert draft["ci95"][1] < 1.0
    detection = {row["arm"]: row for row in result["detection"]["per_arm"]}
    assert detection["draft"]["injected_reads"] == 40 and "unaided" not in detection
    for arm, row in detection.items():
        assert row["ci95"][0] <= truth.detect[arm] <= row["ci95"][1]
    arms = {row["arm"]: row for row in result["arms"]}
    assert arms["unaided"]["acceptance_rate"] is None and 0.9 < arms["draft"]["acceptance_rate"] <= 1.0
    html = (out / "report.html").read_text()
    assert "<script src" not in html and "Plotly.newPlot" in html and "% shorter than unaided" in html
    table = (out / "long_table.csv").read_text().splitlines()
    assert table[0].startswith("reader,case,study_uid,arm,period") and len(table) == 481
    service.close()
