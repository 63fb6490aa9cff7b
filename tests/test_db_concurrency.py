"""Concurrent writers and a writer killed with SIGKILL, on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from annotations_db import ReviewService
from annotations_db.maintenance import integrity_check
from db_support import READERS, populate

ALICE = READERS[0][0]
WRITERS = 20
EVENTS_PER_WRITER = 500
# Children open their own engine. Twenty writers are spawned: a child forked from this test process inherits every
# lock another thread of it held at that moment (earlier tests leave app and worker threads running), and on a fresh
# CI clone one forked writer hung (still running 120 s later; 17 s is usual), most likely that way. The SIGKILL tests fork one child, which must inherit the ack pipe.
SPAWN = multiprocessing.get_context("spawn")
FORK = multiprocessing.get_context("fork")


def _write_events(url: str, session_id: int, n: int, start, ack_fd: int | None = None, ready=None) -> None:
    """Child process: n events in client order; after each commit, report the acknowledged seq on ack_fd."""
    service = ReviewService.open(url)
    if ready is not None:
        ready.release()
    start.wait(60)
    for i in range(n):
        ack = service.record_event(ALICE, session_id, "tick", {"i": i, "pad": "x" * 40}, float(i))
        if ack_fd is not None:
            os.write(ack_fd, f"{ack.seq}:{i}\n".encode())
    service.close()


def _open_sessions(service: ReviewService, n: int) -> list[int]:
    study_ids, _ = populate(service, n)
    return [service.open_session(ALICE, study_id).session_id for study_id in study_ids]


@pytest.mark.slow
def test_twenty_concurrent_writer_processes_lose_nothing_and_keep_order(service, db_url):
    session_ids = _open_sessions(service, WRITERS)
    service.close()
    start, ready = SPAWN.Event(), SPAWN.Semaphore(0)
    writers = [SPAWN.Process(target=_write_events, args=(db_url, sid, EVENTS_PER_WRITER, start, None, ready))
               for sid in session_ids]
    for process in writers:
        process.start()
    for _ in writers:  # every writer has imported and opened its engine: the timing below is the writing
        assert ready.acquire(timeout=120), "a writer process did not start"
    began = time.monotonic()
    start.set()
    for process in writers:
        process.join(120)
    elapsed = time.monotonic() - began
    assert [p.exitcode for p in writers] == [0] * WRITERS, "a writer process failed"

    total = 0
    for sid in session_ids:
        events = service.session_events(ALICE, sid)
        seqs = [e["seq"] for e in events]
        assert [e["client_ts"] for e in events] == [float(i) for i in range(EVENTS_PER_WRITER)]
        assert seqs == sorted(set(seqs)) and seqs[0] >= 1  # strictly increasing with client order
        total += len(events)
    assert total == WRITERS * EVENTS_PER_WRITER
    assert integrity_check(service.engine) == "ok"
    print(f"\n{WRITERS}x{EVENTS_PER_WRITER} events on {service.engine.dialect.name}: {elapsed:.1f} s")
    assert elapsed < 60


@pytest.mark.parametrize("kill_after_acks", [1, 150, 400])
def test_writer_killed_with_sigkill_loses_no_acknowledged_event(service, db_url, kill_after_acks):
    (session_id,) = _open_sessions(service, 1)
    service.close()
    read_fd, write_fd = os.pipe()
    start = FORK.Event()
    writer = FORK.Process(target=_write_events, args=(db_url, session_id, 100_000, start, write_fd))
    writer.start()
    os.close(write_fd)
    start.set()
    acked = _read_acks_then_kill(read_fd, writer, kill_after_acks)
    assert len(acked) >= kill_after_acks

    reopened = ReviewService.open(db_url)  # opens cleanly after the crash
    try:
        assert integrity_check(reopened.engine) == "ok"
        stored = {e["seq"]: e["client_ts"] for e in reopened.session_events(ALICE, session_id)}
        missing = [(seq, i) for seq, i in acked if stored.get(seq) != float(i)]
        assert missing == [], f"acknowledged events missing after SIGKILL: {missing[:5]}"
        assert len(stored) - len(acked) in (0, 1)  # at most the commit whose ack was never written
        next_seq = reopened.record_event(ALICE, session_id, "after_crash", {}, None).seq
        assert next_seq > max(stored)
    finally:
        reopened.close()


def _read_acks_then_kill(read_fd: int, writer, kill_after_acks: int) -> list[tuple[int, int]]:
    """Reads acks until kill_after_acks arrived, SIGKILLs the writer mid-stream, then drains the pipe."""
    buffer = b""
    killed = False
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            buffer += chunk
            if not killed and buffer.count(b"\n") >= kill_after_acks:
                os.kill(writer.pid, signal.SIGKILL)
                killed = True
    writer.join(30)
    assert killed and writer.exitcode == -signal.SIGKILL
    lines = buffer.split(b"\n")[:-1]  # a torn last line (no newline) was never fully acknowledged
    return [tuple(int(x) for x in line.split(b":")) for line in lines]
