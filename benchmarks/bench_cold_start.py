"""Cold start of `gazex analyze --json` in a fresh process, as a ratio to a bare `python -c "import torch"`.

Usage: python benchmarks/bench_cold_start.py [--repeats 7] [--threads 0]

The two commands alternate (torch, analyze, torch, analyze, ...) in one run, so load drifts on a shared machine
hit both alike; the ratio of the medians is the figure to read (issue 11's target: <= 1.5). Each child's peak
resident memory comes from os.wait4 (ru_maxrss; target <= 800 MB). The study is one in-distribution synthetic
chest film (seed 11), generated before timing starts. Prints median and spread, the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed_child(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process; raises if it fails."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.read().decode()[-400:]}")
    return wall, usage.ru_maxrss / 1024


def one_study(folder: Path) -> Path:
    from training.synth.generator import generate

    generate(1, folder, seed=11, workers=1, progress=False)
    return sorted(folder.rglob("*.dcm"))[0]


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="--threads for gazex analyze (0 = torch default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = one_study(Path(tmp) / "synth")
        torch_cmd = [sys.executable, "-c", "import torch"]
        analyze_cmd = [sys.executable, "-m", "training.cli", "analyze", str(study), "--json",
                       "--threads", str(args.threads)]
        timed_child(analyze_cmd)  # warm the page cache once; not counted
        load_start = os.getloadavg()
        runs: dict[str, list[tuple[float, float]]] = {"torch": [], "analyze": []}
        for _ in range(args.repeats):
            runs["torch"].append(timed_child(torch_cmd))
            runs["analyze"].append(timed_child(analyze_cmd))
        load_end = os.getloadavg()
    walls = {k: [w for w, _ in v] for k, v in runs.items()}
    rss = {k: [m for _, m in v] for k, v in runs.items()}
    ratios = [a / t for a, t in zip(walls["analyze"], walls["torch"])]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; {args.repeats} alternating pairs")
    print(f"import torch       wall s: {spread(walls['torch'])}; peak RSS MiB: {spread(rss['torch'])}")
    print(f"gazex analyze cold wall s: {spread(walls['analyze'])}; peak RSS MiB: {spread(rss['analyze'])}")
    print(f"ratio analyze / import torch: median of medians {statistics.median(walls['analyze']) / statistics.median(walls['torch']):.2f}; "
          f"per pair {spread(ratios)}")
    print(json.dumps({"walls": walls, "rss_mib": rss, "load": [load_start[0], load_end[0]]}))


if __name__ == "__main__":
    main()
