"""gazex gaze-ablation: both arms are really trained and evaluated per seed, summarised as mean ± sd, and resumable."""

from __future__ import annotations

import json
import statistics

from model_support import dataset
from training.gaze_ablation import gaze_ablation, run_dir

TINY = ["--image-size", "64", "--d-model", "32", "--n-heads", "2", "--encoder-layers", "1", "--decoder-layers", "1",
        "--stem-channels", "8,16,16", "--vocab-size", "400", "--batch-size", "4", "--warmup", "2", "--val-size", "4"]


def test_both_arms_per_seed_are_trained_evaluated_summarised_and_not_retrained(tmp_path):
    data = str(dataset(n=30, seed=5, size=256))
    out = tmp_path / "ablation"
    summary = gaze_ablation(data, out, seeds=[0, 1], steps=3, threads=1, eval_limit=2, extra=TINY)

    for arm, gaze in (("gaze", True), ("no-gaze", False)):
        for seed in (0, 1):
            where = run_dir(out, arm, seed)
            config = json.loads((where / "model" / "config.json").read_text())
            assert config["use_gaze"] is gaze and config["training"]["seed"] == seed and config["training"]["steps"] == 3
            metrics = json.loads((where / "eval" / "metrics.json").read_text())
            assert metrics["use_gaze"] is gaze and metrics["n_studies"] == 2

    f1 = summary["metrics"]["finding_macro_f1"]
    assert len(f1["gaze"]["values"]) == len(f1["no-gaze"]["values"]) == 2
    assert f1["gaze"]["mean"] == statistics.fmean(f1["gaze"]["values"])
    assert f1["gaze"]["sd"] == statistics.stdev(f1["gaze"]["values"])
    paired = [g - n for g, n in zip(f1["gaze"]["values"], f1["no-gaze"]["values"])]
    assert f1["gaze_minus_no_gaze"]["values"] == paired
    assert f1["floor"] is not None
    assert summary["meta"]["seeds"] == [0, 1] and summary["meta"]["steps"] == 3
    assert "± " in (out / "summary.md").read_text()

    weights = run_dir(out, "gaze", 0) / "model" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = gaze_ablation(data, out, seeds=[0, 1], steps=3, threads=1, eval_limit=2, extra=TINY)
    assert weights.stat().st_mtime_ns == stamp  # a finished run is reused, not retrained
    assert again["metrics"] == summary["metrics"]
    one_arm = gaze_ablation(data, out, seeds=[0, 1], steps=3, threads=1, eval_limit=2, extra=TINY, arms=("no-gaze",))
    assert one_arm is None  # one arm alone is run (here: reused) but not summarised
