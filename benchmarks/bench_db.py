"""Time the review database: one interaction-event write, and the export of N signed reviews.

Usage:
    nice -n 10 .venv/bin/python benchmarks/bench_db.py [--backends sqlite,postgresql] [--events 2000]
        [--contenders 4] [--signoffs 10000] [--export-repeats 3]

Event write: ``ReviewService.record_event`` on one open session, timed call by call (after 100 warm-up
writes), alone and with ``--contenders`` other processes writing events to their own sessions at the same
time. SQLite is timed with synchronous=NORMAL (the default) and FULL. PostgreSQL runs on a throwaway local
cluster (initdb + pg_ctl, fsync on) unless GAZEX_TEST_POSTGRES_URL names a server.

Export: an experiment of ``--signoffs`` signed reviews (20 readers x N/20 studies, parallel design; every
review has one event and a sign-off (undecided items accepted at sign-off); every 5th also an accept, an
edit, a human-added sentence and a box decision) is written through the service, then ``export_experiment_csv`` and ``export_provenance_csv``
are timed ``--export-repeats`` times.
Decision acknowledgement (issue 9): ``--decision-readers`` processes (default 20), each a reader with its own open
session, start together (a barrier) and each makes ``--decisions`` sentence decisions (accept / edit / delete in
turn, each with a decision_id) through ``ReviewService.decide_sentence``, ``--think-ms`` apart (0 = back to back,
the worst case); every call is timed from the call to its return (the acknowledgement). The sign-off of each
session ("accept the rest": hash chain, triggers) is timed too.

Prints a table: median, p90, p99, max (event writes), median/p95/max (decisions) or median and min-max (exports).
``--parts events,exports,decisions`` picks what to run. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the throwaway cluster is test scaffolding

import pgcluster  # noqa: E402
from annotations_db import ReviewService  # noqa: E402

READERS = 20
FORK = multiprocessing.get_context("fork")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values_ms: list[float]) -> str:
    return (f"{statistics.median(values_ms):8.2f} | {percentile(values_ms, 90):8.2f} | "
            f"{percentile(values_ms, 99):8.2f} | {max(values_ms):8.2f}")


# --- event writes ------------------------------------------------------------------------------------------


def setup_sessions(url: str, n: int) -> list[int]:
    service = ReviewService.open(url)
    service.create_reader("bench", "bench-password", "admin")
    ids = []
    for i in range(n):
        study = service.register_study(f"bench.{i}", f"/bench/{i}.dcm")
        ids.append(service.open_session("bench", study.id).session_id)
    service.close()
    return ids


def contend(url: str, session_id: int, stop, interval_s: float) -> None:
    """Another reader's browser: one event every interval_s (far busier than a person)."""
    service = ReviewService.open(url)
    i = 0
    while not stop.is_set():
        service.record_event("bench", session_id, "zoom", {"level": i % 8}, float(i))
        i += 1
        time.sleep(interval_s)
    service.close()


def time_events(url: str, n: int, contenders: int, interval_s: float) -> list[float]:
    session_ids = setup_sessions(url, contenders + 1)
    stop = FORK.Event()
    others = [FORK.Process(target=contend, args=(url, sid, stop, interval_s)) for sid in session_ids[1:]]
    for process in others:
        process.start()
    service = ReviewService.open(url)
    for i in range(100):
        service.record_event("bench", session_ids[0], "warmup", {}, float(i))
    times = []
    for i in range(n):
        start = time.perf_counter()
        service.record_event("bench", session_ids[0], "zoom", {"level": i % 8, "x": 0.5, "y": 0.25}, float(i))
        times.append((time.perf_counter() - start) * 1000)
    stop.set()
    for process in others:
        process.join(60)
    service.close()
    return times


# --- export of signed reviews ----------------------------------------------------------------------------------


def bundle(i: int) -> dict:
    sentences = [{"id": f"s{k}", "section": "findings", "region": None, "label": None, "confidence": 0.9,
                  "text": f"Finding {k} of case {i}.", "trajectory": [],
                  "observation_box": {"x_min": 0.1, "y_min": 0.1, "x_max": 0.4, "y_max": 0.4}} for k in (1, 2, 3)]
    return {"schema": "gazex.evidence/1", "model": {"name": "gazex", "version": "v1"},
            "image": {"width": 1000, "height": 1000}, "sentences": sentences, "findings": [], "warnings": []}


def populate_signoffs(url: str, n: int, workers: int) -> tuple[ReviewService, int]:
    service = ReviewService.open(url)
    service.create_reader("admin", "admin-password", "admin")
    readers = [f"r{k:02d}" for k in range(READERS)]
    for name in readers:
        service.create_reader(name, "reader-password", acting="admin")
    model = service.register_model_version("gazex", "v1", "hash", status="active")
    study_ids = []
    for i in range(n // READERS):
        study = service.register_study(f"export.{i}", f"/export/{i}.dcm")
        service.save_draft(study.id, model.id, bundle(i))
        study_ids.append(study.id)
    experiment = service.create_experiment("export bench", design="parallel", arms=["ai_draft", "ai_draft_b"],
                                           readers=readers, study_ids=study_ids, acting="admin")
    service.close()
    processes = [FORK.Process(target=review_cases, args=(url, readers[k::workers], study_ids, k))
                 for k in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    if any(p.exitcode != 0 for p in processes):
        raise RuntimeError("a populating process failed")
    return ReviewService.open(url), experiment


def review_cases(url: str, readers: list[str], study_ids: list[int], worker: int) -> None:
    service = ReviewService.open(url)
    for r, name in enumerate(readers):
        for j, study_id in enumerate(study_ids):
            review_one(service, name, study_id, r * len(study_ids) + j)
        print(f"  worker {worker}: reader {name} done ({len(study_ids)} signed reviews)", flush=True)
    service.close()


def review_one(service: ReviewService, reader: str, study_id: int, i: int) -> None:
    sid = service.open_session(reader, study_id).session_id
    service.record_event(reader, sid, "view", {}, float(i))
    if i % 5 == 0:
        service.decide_sentence(reader, sid, "s1", "accepted", duration_ms=800.0)
        service.decide_sentence(reader, sid, "s2", "edited", final_text=f"Edited finding of case {i}.",
                                error_category="severity", clinically_significant=False)
        service.add_sentence(reader, sid, "Human-added sentence.")
        service.decide_box(reader, sid, "s1", "moved", box=(0.2, 0.2, 0.5, 0.5))
    service.sign_off(reader, sid, "modify" if i % 5 == 0 else "accept", "FINDINGS: ...", active_ms=30_000.0,
                     idle_ms=2_000.0, accept_rest=True)


def time_exports(service: ReviewService, experiment_id: int, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"export_experiment_csv": [], "export_provenance_csv": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            rows = service.export_experiment_csv(experiment_id, os.path.join(tmp, "experiment.csv"))
            times["export_experiment_csv"].append(time.perf_counter() - start)
            start = time.perf_counter()
            sentences = service.export_provenance_csv(os.path.join(tmp, "provenance.csv"))
            times["export_provenance_csv"].append(time.perf_counter() - start)
    print(f"  exported {rows} experiment rows, {sentences} provenance rows")
    return times


# --- driver -----------------------------------------------------------------------------------------------------


# --- decision acknowledgement, many readers at once ---------------------------------------------------------


def setup_decision_sessions(url: str, readers: int, sentences: int) -> list[tuple[str, int]]:
    service = ReviewService.open(url)
    service.create_reader("admin", "admin-password", "admin")
    model = service.register_model_version("gazex", "v1", "hash", status="active")
    pairs = []
    for k in range(readers):
        name = f"d{k:02d}"
        service.create_reader(name, "reader-password", acting="admin")
        study = service.register_study(f"decide.{k}", f"/decide/{k}.dcm")
        draft = bundle(k)
        draft["sentences"] = [{**draft["sentences"][0], "id": f"s{j}", "text": f"Finding {j} of case {k}."}
                              for j in range(1, sentences + 1)]
        service.save_draft(study.id, model.id, draft)
        pairs.append((name, service.open_session(name, study.id).session_id))
    service.close()
    return pairs


def decide_as_reader(url: str, reader: str, session_id: int, n: int, think_s: float, barrier, results) -> None:
    service = ReviewService.open(url)
    kinds = ("accepted", "edited", "deleted")
    barrier.wait(120)
    times = []
    for i in range(n):
        kind = kinds[i % 3]
        start = time.perf_counter()
        service.decide_sentence(reader, session_id, f"s{i + 1}", kind,
                                final_text=f"Edited {i}." if kind == "edited" else None,
                                duration_ms=1500.0, client_ts=time.time() * 1000, decision_id=uuid.uuid4().hex)
        times.append((time.perf_counter() - start) * 1000)
        if think_s:
            time.sleep(think_s)
    start = time.perf_counter()
    service.sign_off(reader, session_id, "modify", "FINDINGS: ...", active_ms=60_000.0, accept_rest=True)
    results.put((reader, times, (time.perf_counter() - start) * 1000))
    service.close()


def time_decisions(url: str, readers: int, n: int, think_ms: float) -> tuple[list[float], list[float]]:
    pairs = setup_decision_sessions(url, readers, n)
    barrier, results = FORK.Barrier(readers), FORK.Queue()
    processes = [FORK.Process(target=decide_as_reader, args=(url, name, sid, n, think_ms / 1000, barrier, results))
                 for name, sid in pairs]
    for process in processes:
        process.start()
    gathered = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
    if any(p.exitcode != 0 for p in processes):
        raise RuntimeError("a deciding reader failed")
    return [t for _, times, _ in gathered for t in times], [signoff for _, _, signoff in gathered]


def p95_summary(values_ms: list[float]) -> str:
    return f"{statistics.median(values_ms):8.2f} | {percentile(values_ms, 95):8.2f} | {max(values_ms):8.2f}"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def backend_urls(backends: list[str], tmp: Path):
    cluster = None
    for backend in backends:
        if backend == "sqlite":
            for sync in ("NORMAL", "FULL"):
                yield (f"sqlite (synchronous={sync})", sync,
                       lambda name, sync=sync: f"sqlite:///{tmp / name}-{sync}.sqlite3")
        else:
            server = os.environ.get("GAZEX_TEST_POSTGRES_URL")
            if server is None:
                cluster = pgcluster.start_cluster()
                server = cluster.url
            yield "postgresql 15 (local, fsync on)", None, lambda name, s=server: pgcluster.create_database(s)
    if cluster is not None:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--contenders", type=int, default=4)
    parser.add_argument("--contender-interval-ms", type=float, default=10.0)
    parser.add_argument("--signoffs", type=int, default=10_000)
    parser.add_argument("--export-repeats", type=int, default=3)
    parser.add_argument("--populate-workers", type=int, default=2, help="processes writing the signed reviews")
    parser.add_argument("--parts", default="events,exports,decisions")
    parser.add_argument("--decision-readers", type=int, default=READERS)
    parser.add_argument("--decisions", type=int, default=30, help="decisions per reader")
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between one reader's decisions")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load()}")
    event_rows, export_rows, decision_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="gazex-bench-") as tmp:
        for label, sync, make_url in backend_urls(args.backends.split(","), Path(tmp)):
            if sync:
                os.environ["GAZEX_SQLITE_SYNCHRONOUS"] = sync
            if "decisions" in parts:
                print(f"{label}: {args.decision_readers} readers x {args.decisions} decisions at once", flush=True)
                acks, signoffs = time_decisions(make_url("decisions"), args.decision_readers, args.decisions,
                                                args.think_ms)
                decision_rows.append(f"| {label} | {args.decision_readers} | {args.think_ms:g} | {len(acks)} | "
                                     f"{p95_summary(acks)} | {p95_summary(signoffs)} |")
            for contenders in ((0, args.contenders) if "events" in parts else ()):
                print(f"{label}: {args.events} event writes, {contenders} concurrent writers", flush=True)
                times = time_events(make_url(f"events{contenders}"), args.events, contenders,
                                    args.contender_interval_ms / 1000)
                event_rows.append(f"| {label} | {contenders} | {args.events} | {summary(times)} |")
            if sync == "FULL" or args.signoffs <= 0 or "exports" not in parts:
                continue  # exports are read-only: timed once per backend
            print(f"{label}: populating {args.signoffs} signed reviews", flush=True)
            service, experiment_id = populate_signoffs(make_url("export"), args.signoffs, args.populate_workers)
            for name, values in time_exports(service, experiment_id, args.export_repeats).items():
                export_rows.append(f"| {label} | {name} | {args.signoffs} | {statistics.median(values):.2f} | "
                                   f"{min(values):.2f}-{max(values):.2f} |")
            service.close()
    print(f"load average at the end: {load()}")
    print("\n| backend | readers at once | think ms | decisions | median ms | p95 ms | max ms | "
          "sign-off median ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(decision_rows))
    print("\n| backend | other writers | writes | median ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(event_rows))
    print("\n| backend | export | signed reviews | median s | min-max s |")
    print("|---|---|---|---|---|")
    print("\n".join(export_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
