"""Time the dataset loaders on real public tables and on a generated synthetic set.

Usage: nice -n 10 .venv/bin/python benchmarks/bench_loaders.py [--synthetic DIR] [--repeats 3]

* IU X-Ray: torchxrayvision's NLMCXR_reports.tgz (3,955 XML reports, read in place).
* VinDr-CXR: torchxrayvision's vinbigdata-train.csv.gz (67,914 box rows, 15,000 images).
* synthetic: a ``gazex synth`` output folder (DICOM headers read, REFLACX gaze, raw samples if present).
Prints median and spread (min-max) of the wall time over repeats, and per-study time.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import time
from pathlib import Path

from training.data.loaders import IuXrayLoader, SyntheticLoader, VindrCxrLoader


def txv_data() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def timed(loader, repeats: int) -> tuple[list[float], int, int]:
    times, n, issues = [], 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = loader.load()
        times.append(time.perf_counter() - start)
        n, issues = len(result), len(result.issues)
    return times, n, issues


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--synthetic", type=Path, default=None, help="a gazex synth output folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = [
        ("iu-xray NLMCXR_reports.tgz", IuXrayLoader(txv_data() / "NLMCXR_reports.tgz")),
        ("vindr vinbigdata-train.csv.gz", VindrCxrLoader(txv_data() / "vinbigdata-train.csv.gz")),
    ]
    if args.synthetic:
        cases.append((f"synthetic {args.synthetic.name}", SyntheticLoader(args.synthetic)))
    print(f"machine: {platform.machine()}, 2-core CPU (shared), python {platform.python_version()}, repeats {args.repeats}\n")
    print(f"{'dataset':<34}{'studies':>8}{'issues':>8}{'median s':>10}{'min-max s':>14}{'ms/study':>10}")
    for name, loader in cases:
        times, n, issues = timed(loader, args.repeats)
        median = statistics.median(times)
        print(f"{name:<34}{n:>8}{issues:>8}{median:>10.2f}{f'{min(times):.2f}-{max(times):.2f}':>14}"
              f"{1000 * median / max(n, 1):>10.2f}")


if __name__ == "__main__":
    main()
