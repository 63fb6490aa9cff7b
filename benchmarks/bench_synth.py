"""Benchmark ``gazex synth``: wall time to generate N studies, and where one study's time goes.

    .venv/bin/python benchmarks/bench_synth.py --n 1000 --repeats 3          # the 1,000-study target
    .venv/bin/python benchmarks/bench_synth.py --n 50 --repeats 3 --stages   # quick, plus per-stage CPU table
    PYTHONPATH=/tmp/synth-old .venv/bin/python benchmarks/bench_synth.py --repeats 0 --stages   # an old checkout's stages
    git worktree add /tmp/synth-old 20f5149                                    # the generator before the speed-up
    .venv/bin/python benchmarks/bench_synth.py --n 200 --repeats 3 --against /tmp/synth-old

``--against DIR`` times another checkout's generator and this one in alternation (old, new, old,
new, ...), each run in a fresh subprocess, and prints the old/new ratio of each pair: on a shared
machine whose load drifts, the ratio of neighbouring runs is steadier than either time.

Prints median and spread (min-max) over the repeats, with the machine noted. Each repeat writes
into a fresh temporary directory that is deleted afterwards. Besides wall time it reports the CPU
time of the parent and its worker processes (user + sys): on a machine shared with other jobs the
wall time measures the contention, while CPU s / workers is what the run takes on idle cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from training.synth.generator import generate
from training.synth.study import DEFAULT_SIZE


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()}-core {model}, Python {platform.python_version()}, load avg {load:.1f} at start"


def cpu_seconds() -> float:
    """User + sys CPU time of this process and its finished children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_generation(n: int, size: int, workers: int, raw_gaze: bool) -> tuple[float, float]:
    """(wall s, CPU s) of one generation run; the pool's workers have exited when generate returns."""
    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        cpu0, start = cpu_seconds(), time.perf_counter()
        generate(n, out, seed=0, size=size, workers=workers, raw_gaze=raw_gaze, progress=False)
        return time.perf_counter() - start, cpu_seconds() - cpu0
    finally:
        shutil.rmtree(out, ignore_errors=True)


CHILD = """
import sys, time
from training.synth.generator import generate
n, size, workers, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
generate(n, out, seed=0, size=size, workers=workers, progress=False)
"""


def time_checkout(root: Path, n: int, size: int, workers: int) -> tuple[float, float]:
    """(wall s, CPU s) of generating with the code under ``root``, in a fresh subprocess."""
    out = Path(tempfile.mkdtemp(prefix="bench-synth-vs-"))
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD, str(n), str(size), str(workers), str(out)], env=env, check=True, cwd=root)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def compare(against: Path, n: int, size: int, workers: int, repeats: int) -> None:
    here = Path(__file__).resolve().parent.parent
    print("| pair | old wall s | new wall s | old/new wall | old CPU s | new CPU s | old/new CPU |")
    print("|---|---|---|---|---|---|---|")
    walls, cpus = [], []
    for k in range(repeats):
        old_wall, old_cpu = time_checkout(against, n, size, workers)
        new_wall, new_cpu = time_checkout(here, n, size, workers)
        walls.append(old_wall / new_wall)
        cpus.append(old_cpu / new_cpu)
        print(f"| {k + 1} | {old_wall:.1f} | {new_wall:.1f} | {walls[-1]:.2f} | {old_cpu:.1f} | {new_cpu:.1f} | {cpus[-1]:.2f} |", flush=True)
    print(f"median old/new: wall {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}), "
          f"CPU {statistics.median(cpus):.2f} ({min(cpus):.2f}-{max(cpus):.2f}); load avg at end {os.getloadavg()[0]:.1f}")


STAGES = ("sample anatomy + findings", "render anatomy layers", "draw findings", "finish (exposure, blur, noise)",
          "report", "gaze simulation", "write (DICOM, report, REFLACX CSVs)", "total")


def stage_times(n: int, size: int) -> dict[str, list[float]]:
    """CPU seconds per study for each stage, in this one process set up as a pool worker (one OpenCV
    thread, freed memory kept). Process CPU time, not wall: other jobs on a shared machine matter less."""
    import cv2

    from training.synth.anatomy import finish, render_layers
    from training.synth.findings import adjust_anatomy, draw_findings
    from training.synth.readers import READER_BY_ID, choose_readers, simulate_reading
    from training.synth.report import build_report
    from training.synth.study import STREAM_READERS, STREAM_RENDER, STREAM_REPORT, make_study, sample_study_findings, study_rng
    from training.synth.writer import write_study

    cv2.setNumThreads(1)
    try:
        from training.synth.generator import keep_freed_memory

        keep_freed_memory()  # as a pool worker runs
    except ImportError:  # an older checkout's generator (before de5fef8): its workers did not
        pass
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    out = Path(tempfile.mkdtemp(prefix="bench-synth-stages-"))
    write_study(make_study(0, 0, size), out, raw=False)  # warm caches
    clock = time.process_time
    try:
        for i in range(1, n + 1):
            marks = [clock()]
            anatomy, findings = sample_study_findings(0, i, size)
            marks.append(clock())
            rng = study_rng(0, i, STREAM_RENDER)  # render_image's steps, timed one by one
            shaped = adjust_anatomy(anatomy, findings)
            layers = render_layers(shaped, rng)
            marks.append(clock())
            draw_findings(layers, shaped, findings)
            marks.append(clock())
            finish(layers.combine(), rng, shaped.height)
            marks.append(clock())
            report = build_report(findings, study_rng(0, i, STREAM_REPORT))
            marks.append(clock())
            reader_rng = study_rng(0, i, STREAM_READERS)
            for reader in choose_readers(reader_rng):
                simulate_reading(READER_BY_ID[reader], shaped, findings, report, reader_rng)
            marks.append(clock())
            study = make_study(0, i, size)  # writing needs the whole study: time write_study alone
            t0 = clock()
            write_study(study, out, raw=False)
            marks.append(marks[-1] + clock() - t0)
            for key, a, b in zip(STAGES, marks, marks[1:]):
                times[key].append(b - a)
            times["total"].append(marks[-1] - marks[0])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return times


def print_stages(n: int, size: int) -> None:
    stages = stage_times(n, size)
    print()
    print(f"| stage (1 process, 1 OpenCV thread, {n} studies, CPU time) | median ms | p10 ms | p90 ms |")
    print("|---|---|---|---|")
    for key, values in stages.items():
        v = np.array(values) * 1000
        print(f"| {key} | {np.median(v):.0f} | {np.percentile(v, 10):.0f} | {np.percentile(v, 90):.0f} |")
    print(f"load avg at end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of --n studies (0: none, e.g. with --stages)")
    parser.add_argument("--raw-gaze", action="store_true")
    parser.add_argument("--stages", action="store_true", help="also time each stage of a study (CPU time, 1 process)")
    parser.add_argument("--stage-studies", type=int, default=20, help="studies for --stages (default 20)")
    parser.add_argument("--against", type=Path, help="another checkout to time in alternation with this one (ratio old/new)")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    if args.against:
        compare(args.against.resolve(), args.n, args.size, args.workers, args.repeats)
        return
    if args.repeats > 0:
        time_runs(args)
    if args.stages:
        print_stages(args.stage_studies, args.size)


def time_runs(args: argparse.Namespace) -> None:
    runs, cpus = [], []
    for _ in range(args.repeats):
        load = os.getloadavg()[0]
        wall, cpu = time_generation(args.n, args.size, args.workers, args.raw_gaze)
        runs.append(wall)
        cpus.append(cpu)
        print(f"run: wall {wall:.1f} s, CPU {cpu:.1f} s, load avg {load:.2f} at start, {os.getloadavg()[0]:.2f} at end", flush=True)
    median, cpu = statistics.median(runs), statistics.median(cpus)
    print()
    print("| studies | size px | workers | raw gaze | repeats | wall median s | wall min-max s | studies/s (wall) "
          "| CPU median s | CPU s / workers (idle-core time) | CPU ms per study |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.n} | {args.size} | {args.workers} | {'yes' if args.raw_gaze else 'no'} | {args.repeats} "
          f"| {median:.1f} | {min(runs):.1f}-{max(runs):.1f} | {args.n / median:.2f} "
          f"| {cpu:.1f} ({min(cpus):.1f}-{max(cpus):.1f}) | {cpu / args.workers:.1f} | {1000 * cpu / args.n:.0f} |")


if __name__ == "__main__":
    main()
