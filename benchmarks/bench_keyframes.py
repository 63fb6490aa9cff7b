"""Time sentence_keyframes per sentence on REFLACX-like recordings.

Usage: nice -n 10 .venv/bin/python benchmarks/bench_keyframes.py [--repeats 7] [--recordings 20]

Each recording: a 2544x3056 image (a typical MIMIC-CXR DICOM), 8 dictated sentences
of 3-6 s, gaze at 3-5 spots per sentence window, EyeLink-like pixels_per_degree 50.
Two input kinds are timed: fixations (what main_data has, ~3-4 per second) and raw
1000 Hz samples (gaze_data). Prints median and spread (p10-p90, min-max) of the
per-sentence time over repeats.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from training.data.keyframes import KeyframeConfig, sentence_keyframes
from training.data.types import Fixation, GazeRecording, TimedSentence

W, H = 2544, 3056
PPD = (50.0, 50.0)
SENTENCES = 8


def make_recording(rng: np.random.Generator, raw: bool) -> GazeRecording:
    sentences, fixations, samples = [], [], []
    t = 2.0
    for i in range(SENTENCES):
        duration = rng.uniform(3.0, 6.0)
        sentences.append(TimedSentence(f"sentence {i}.", t, t + duration))
        spots = rng.uniform([300, 300], [W - 300, H - 300], size=(rng.integers(3, 6), 2))
        seg_t = np.linspace(t - 2.0, t + duration, len(spots) + 1)
        for spot, a, b in zip(spots, seg_t[:-1], seg_t[1:]):
            if raw:
                ts = np.arange(a, b, 0.001)
                samples.append(np.column_stack([ts, spot + rng.normal(0, 25, size=(len(ts), 2))]))
            else:
                starts = np.arange(a, b - 0.2, 0.28)
                for s in starts:
                    x, y = spot + rng.normal(0, 25, size=2)
                    fixations.append(Fixation(float(x), float(y), float(s), float(s + 0.25)))
        t += duration + 0.5
    return GazeRecording(
        "bench",
        fixations=fixations,
        sentences=sentences,
        samples=np.vstack(samples) if raw else None,
        pixels_per_degree=PPD,
        sample_rate_hz=1000.0 if raw else None,
    )


def time_per_sentence(recordings: list[GazeRecording], config: KeyframeConfig, repeats: int) -> list[float]:
    per_sentence_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = 0
        for rec in recordings:
            n += len(sentence_keyframes(rec, W, H, config))
        per_sentence_ms.append((time.perf_counter() - start) * 1000.0 / n)
    return per_sentence_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--recordings", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, 2-core CPU (shared), python {platform.python_version()}")
    print(f"{args.recordings} recordings x {SENTENCES} sentences, image {W}x{H}, repeats {args.repeats}\n")
    print(f"{'input':<22}{'c/sig':>6}{'median ms/sent':>16}{'p10-p90':>16}{'min-max':>16}{'clues/sent':>12}")
    for raw in (False, True):
        recordings = [make_recording(rng, raw) for _ in range(args.recordings)]
        for cells in (2.0, 3.0, 4.0):  # grid resolution: cells per Gaussian sigma (default 3)
            config = KeyframeConfig(grid_long_side=512, cells_per_sigma=cells)
            sentence_keyframes(recordings[0], W, H, config)  # warm-up
            ms = time_per_sentence(recordings, config, args.repeats)
            clues = np.mean([len(k.clues) for r in recordings for k in sentence_keyframes(r, W, H, config)])
            q = np.percentile(ms, [10, 90])
            label = "raw samples 1000 Hz" if raw else "fixations"
            print(
                f"{label:<22}{cells:>6.1f}{statistics.median(ms):>16.2f}{f'{q[0]:.2f}-{q[1]:.2f}':>16}"
                f"{f'{min(ms):.2f}-{max(ms):.2f}':>16}{clues:>12.2f}"
            )


if __name__ == "__main__":
    main()
