"""The "My timing" tab reads the reader's sign-offs with a fixed number of queries, however many cases."""

from __future__ import annotations

from sqlalchemy import event

from annotations_db.service import ReviewService
from app import plots


def _sign(service: ReviewService, reader: str, n: int, start: int) -> None:
    for i in range(start, start + n):
        study = service.register_study(f"S{i}", f"/nowhere/{i}.dcm", width=100, height=100)
        sid = service.open_session(reader, study.id).session_id
        service.sign_off(reader, sid, "accept", "Reviewed.", active_ms=1000.0 * (i + 1), idle_ms=500.0,
                         hidden_ms=250.0)


def _statements(service: ReviewService, reader: str) -> tuple[int, list[dict]]:
    seen = []

    def count(*_args):
        seen.append(1)

    event.listen(service.engine, "before_cursor_execute", count)
    try:
        rows = plots.reader_timing_rows(service, reader)
    finally:
        event.remove(service.engine, "before_cursor_execute", count)
    return len(seen), rows


def test_timing_rows_cost_the_same_number_of_queries_for_3_and_12_cases(tmp_path):
    service = ReviewService.open(None, data_dir=str(tmp_path))
    try:
        service.create_reader("admin1", "password123", role="admin")
        service.create_reader("r1", "password123", acting="admin1")
        service.create_reader("r2", "password123", acting="admin1")
        _sign(service, "r1", 3, 0)
        _sign(service, "r2", 2, 100)  # another reader's sign-offs never show
        few, rows = _statements(service, "r1")
        assert [(r["study"], r["active_s"], r["idle_s"], r["hidden_s"]) for r in rows] == [
            (f"S{i}", i + 1.0, 0.5, 0.25) for i in range(3)]
        _sign(service, "r1", 9, 3)
        many, rows = _statements(service, "r1")
        assert len(rows) == 12 and many == few
    finally:
        service.close()
