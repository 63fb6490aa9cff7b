"""Benchmark the GazeX model on CPU: load time, analyze latency (p50/p95), ask/ground latency, peak RSS,
training throughput. Prints a markdown table (median and spread, machine noted).

    python benchmarks/bench_model.py [--model DIR] [--data DIR] [--runs 30] [--threads N] [--train-steps 5]

Images: the first studies of DATA's test split (DICOM files) when --data is given, else a few studies
written by the synthetic generator into a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def row(name: str, xs: list[float], unit: str) -> str:
    return (f"| {name} | {len(xs)} | {pct(xs, 50):.1f} | {pct(xs, 95):.1f} | {min(xs):.1f} | {max(xs):.1f} | "
            f"{statistics.pstdev(xs):.1f} | {unit} |")


def images(data: str | None, n: int) -> list[Path]:
    if data:
        import csv

        with open(Path(data) / "metadata.csv") as fh:
            rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
        return [Path(data) / r["image_path"] for r in rows[:n]]
    tmp = Path(tempfile.mkdtemp(prefix="gazex-bench-"))
    subprocess.run([sys.executable, "-m", "training.cli", "synth", "--n", str(n), "--out", str(tmp), "--seed", "7",
                    "--size", "1024", "--workers", "1"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return sorted(tmp.glob("files/**/*.dcm"))[:n]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--train-steps", type=int, default=5)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from gazex_core.inference import GazeX

    load_ms = []
    for _ in range(args.loads):
        t = time.perf_counter()
        gx = GazeX(args.model)
        load_ms.append((time.perf_counter() - t) * 1e3)
    paths = images(args.data, 10)
    for p in paths[:2]:
        gx.analyze(p)  # warm-up
    analyze_ms, decode_ms, n_sent = [], [], []
    for i in range(args.runs):
        p = paths[i % len(paths)]
        t = time.perf_counter()
        b = gx.analyze(p)
        analyze_ms.append((time.perf_counter() - t) * 1e3)
        decode_ms.append(b.timing_ms["decode"])
        n_sent.append(len(b.sentences))
    ask_ms, ground_ms = [], []
    for i in range(max(5, args.runs // 3)):
        p = paths[i % len(paths)]
        t = time.perf_counter()
        gx.ask(p, "Is there a left pleural effusion?")
        ask_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        gx.ground(p, "Small left pleural effusion.")
        ground_ms.append((time.perf_counter() - t) * 1e3)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # inference only (before training)
    cold_ms = []
    code = ("import time; t = time.perf_counter(); from gazex_core.inference import GazeX; GazeX(); "
            "print((time.perf_counter() - t) * 1e3)")
    for _ in range(3):  # a fresh process: import torch + transformers + gazex_core, then load the checkpoint
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
        cold_ms.append(float(out.stdout.strip().splitlines()[-1]))

    train_rows = []
    if args.train_steps and args.data and (Path(args.data) / "cache").exists():
        from training.cache import load_cache
        from training.train import DEFAULT_WEIGHTS, Batcher, compute_loss
        from gazex_core.model import init_model

        imgs, recs = load_cache(Path(args.data) / "cache", gx.config.image_size)
        ix = [i for i, r in enumerate(recs) if r["split"] == "train"]
        model = init_model(gx.config)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        bt = Batcher(imgs, recs, ix, gx.tok, DEFAULT_WEIGHTS, gx.config.use_gaze, gx.config.max_positions, 3, 0)
        step_s = []
        for _ in range(args.train_steps + 1):
            batch = bt.batch(16)
            t = time.perf_counter()
            loss, _ = compute_loss(model, batch, "cpu")
            opt.zero_grad()
            loss.backward()
            opt.step()
            step_s.append((time.perf_counter() - t) * 1e3)
        train_rows.append(row("train step (batch 16 images + 48 short seqs)", step_s[1:], "ms"))

    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
          f"{torch.get_num_threads()}, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared machine), "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print(f"model: {gx.path} ({sum(p.numel() for p in gx.model.parameters()) / 1e6:.2f}M params), images: "
          f"{len(paths)} DICOMs, {statistics.mean(n_sent):.1f} sentences per draft on average")
    print()
    print("| measurement | n | p50 | p95 | min | max | stdev | unit |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("model load, fresh process (imports + GazeX())", cold_ms, "ms"))
    print(row("model load (GazeX(), after imports)", load_ms, "ms"))
    print(row("analyze (read DICOM + encode + decode)", analyze_ms, "ms"))
    print(row("  of which decode", decode_ms, "ms"))
    print(row("ask (closed question)", ask_ms, "ms"))
    print(row("ground (one sentence)", ground_ms, "ms"))
    for r in train_rows:
        print(r)
    print(f"| peak RSS, inference (load + all analyze/ask/ground calls) | 1 | {rss_mb:.0f} | | | | | MB |")
    if train_rows:
        total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| peak RSS, after the training steps too | 1 | {total:.0f} | | | | | MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
