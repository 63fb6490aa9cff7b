"""One ``gazex finetune`` run, from signed reviews to a registered (and maybe promoted) candidate version.

Safety rules:
* nothing is trained unless there are enough corrections (clear message, no run row, exit code 2);
* one job at a time (``start_finetune_run`` refuses); a run whose heartbeat is older than ``stale_after_s``
  (its process was killed) is marked failed first, so a SIGKILL never blocks fine-tuning forever;
* the run row is the status: progress + heartbeat (a background thread beats every few seconds);
  SIGTERM/SIGINT/SIGHUP and any exception mark it failed with the reason (try/finally);
* the active model version changes only at the very end, after the run row says succeeded, and only when
  the promotion gate passed and auto-promotion was asked for. A killed job therefore never touches it.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Iterator

from gazex_core.checkpoint import model_identity

from .corrections import CorrectionExample, examples_from_reviews
from .params import FinetuneParams

ADAPTERS_DIR = "adapters"
BENCHMARKS_DIR = "benchmarks"


class FinetuneInputError(RuntimeError):
    """Not enough (or no) corrections to fine-tune on: nothing was trained."""


class JobTerminated(RuntimeError):
    pass


# ------------------------------------------------------------------ inputs


def gather_examples(service, since_version: int | None) -> list[CorrectionExample]:
    return examples_from_reviews(service.signed_reviews_since(since_version))


def check_enough(examples: list[CorrectionExample], split: dict[str, str], min_corrections: int) -> None:
    corrected = [e for e in examples if e.corrected]
    if not examples:
        raise FinetuneInputError("no signed-off reviews of drafts since this model version: nothing to fine-tune on")
    if not corrected:
        raise FinetuneInputError(f"{len(examples)} signed-off reviews but none corrects the draft: "
                                 "nothing to fine-tune on")
    if len(corrected) < min_corrections:
        raise FinetuneInputError(f"only {len(corrected)} corrected reviews (need at least {min_corrections}; "
                                 "--min-corrections): nothing trained")
    train = [e for e in corrected if split[e.study_uid] == "train"]
    val = [e for e in corrected if split[e.study_uid] == "val"]
    if not train or not val:
        raise FinetuneInputError(f"the frozen split leaves {len(train)} corrected training and {len(val)} held-out "
                                 "reviews; both must be non-empty: nothing trained")


def mark_stale_runs(service, stale_after_s: float) -> list[int]:
    """Marks pending/running runs without a heartbeat for stale_after_s as failed (their process died)."""
    now = datetime.now(timezone.utc)
    failed = []
    for run in service.finetune_runs():
        if run["status"] not in ("pending", "running"):
            continue
        beat = run["heartbeat_at"] or run["created_at"]
        beat = beat if beat.tzinfo else beat.replace(tzinfo=timezone.utc)
        if (now - beat).total_seconds() > stale_after_s:
            service.update_finetune_run(run["id"], status="failed",
                                        message=f"no heartbeat for {stale_after_s:.0f} s: the job was killed")
            failed.append(run["id"])
    return failed


def pending_corrections(service) -> dict[str, int]:
    """For the admin view: signed reviews / corrected reviews since the active version."""
    active = service.active_model_version()
    examples = gather_examples(service, active.id if active else None)
    return {"reviews": len(examples), "corrected": sum(e.corrected for e in examples)}


# ------------------------------------------------------------------ the run guard


class RunGuard:
    """Heartbeat thread + signal handlers + failure bookkeeping around one run row."""

    def __init__(self, service, run_id: int, heartbeat_s: float):
        self.service, self.run_id, self.heartbeat_s = service, run_id, heartbeat_s
        self.progress = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name="finetune-heartbeat", daemon=True)
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> "RunGuard":
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        self.update(status="running", progress=0.0, message="started")
        self._thread.start()
        return self

    def _on_signal(self, signum: int, _frame: Any) -> None:
        raise JobTerminated(f"terminated by signal {signal.Signals(signum).name}")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.update()
            except Exception:  # noqa: BLE001 - a missed beat is not fatal; the next one retries
                pass

    def update(self, **fields: Any) -> None:
        with self._lock:
            if "progress" in fields:
                self.progress = fields["progress"]
            self.service.update_finetune_run(self.run_id, **fields)

    def stage(self, progress: float, message: str) -> None:
        self.update(progress=min(max(progress, 0.0), 1.0), message=message)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            if exc is not None:
                self.update(status="failed", message=f"{type(exc).__name__}: {exc}"[:2000])
        finally:
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)
        return False


# ------------------------------------------------------------------ the run


@contextmanager
def reproducible_torch(threads: int) -> Iterator[None]:
    """A fixed thread count and deterministic kernels for the run (restored afterwards): float sums do not
    depend on how many threads happen to be configured, so the same inputs give the same adapter."""
    import torch

    old_threads, old_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic)


def run_finetune(service, data_dir: Path, params: FinetuneParams, log=print) -> dict[str, Any]:
    """Runs one fine-tune; returns the run row. Raises FinetuneInputError (nothing trained) on bad input."""
    data_dir = Path(data_dir)
    stale = mark_stale_runs(service, params.stale_after_s)
    if stale:
        log(f"marked stale run(s) {stale} failed (no heartbeat)")
    base = service.active_model_version()
    if base is None or not base.path:
        raise FinetuneInputError("there is no active model version with weights to fine-tune")
    since = params.since_version if params.since_version is not None else base.id
    examples = gather_examples(service, since)
    split = service.frozen_split([e.study_uid for e in examples], params.val_fraction, params.split_seed)
    check_enough(examples, split, params.min_corrections)
    train = [e for e in examples if split[e.study_uid] == "train"][: params.max_train_studies]
    val = [e for e in examples if split[e.study_uid] == "val"]
    inputs = {"since_version": since, "reviews": len(examples), "corrected": sum(e.corrected for e in examples),
              "train_studies": len(train), "val_studies": len(val)}
    run_id = service.start_finetune_run(base_model_version_id=base.id, params=params.as_dict(), inputs=inputs,
                                        split={"train": [e.study_uid for e in train], "val": [e.study_uid for e in val]})
    log(f"fine-tune run {run_id}: LoRA r={params.lora.rank} on version {base.id} ({base.version}), "
        f"{len(train)} training / {len(val)} held-out reviews")
    with RunGuard(service, run_id, params.heartbeat_s) as guard, reproducible_torch(params.threads):
        result = _train_evaluate_register(service, data_dir, params, base, train, val, run_id, guard, log)
        guard.update(status="succeeded", progress=1.0, metrics=result["metrics"],
                     candidate_model_version_id=result["candidate"].id, message=result["message"])
    if result["metrics"]["gate"]["passed"] and params.promote:
        service.promote_model_version(result["candidate"].id)
        log(f"promoted version {result['candidate'].id}")
    return service.get_finetune_run(run_id)


def _train_evaluate_register(service, data_dir, params, base, train, val, run_id, guard, log) -> dict[str, Any]:
    import torch

    from gazex_core.checkpoint import load_model

    from . import lora, metrics
    from .modelio import image_array, pixel_batch

    t0 = time.perf_counter()
    guard.stage(0.02, "loading the model and images")
    model, tok = load_model(base.path)
    size, max_len = model.config.image_size, model.config.max_positions
    train_arrays = [image_array(e.image_path, size) for e in train]
    val_arrays = [image_array(e.image_path, size) for e in val]
    bench_dir = metrics.ensure_benchmark(data_dir / BENCHMARKS_DIR, params.benchmark_n, params.benchmark_seed,
                                         params.benchmark_size)
    bench_arrays, bench_truth = metrics.load_benchmark(bench_dir, size)

    guard.stage(0.08, "evaluating the base model")
    before = {"corrections": metrics.evaluate_corrections(model, tok, val, val_arrays),
              "benchmark": _base_benchmark(service, base, model, tok, bench_arrays, bench_truth, params)}

    guard.stage(0.15, "training LoRA")
    torch.manual_seed(params.lora.seed)
    peft_model = lora.wrap_lora(model, params.lora)
    encoded = lora.encode_examples(train, tok, max_len, use_gaze=getattr(model.config, "use_gaze", True))
    trainer = lora.LoraTrainer(peft_model, tok, pixel_batch(train_arrays), encoded, params.lora)
    t_train = time.perf_counter()
    epochs: list[dict] = []
    evaluate = partial(_evaluate_epoch, peft_model, tok, before, params, val, val_arrays, bench_arrays, bench_truth)
    history = trainer.train(on_step=lambda s, n, parts: _on_step(guard, s, n, parts),
                            on_epoch=lambda epoch: epochs.append(evaluate(epoch)))
    chosen = _choose_epoch(peft_model, epochs)
    train_s = time.perf_counter() - t_train

    guard.stage(0.75, "saving the adapter")
    version = f"{base.version}+ft{run_id}"
    adapter_dir = _save_adapter(peft_model, data_dir, run_id, base, version)

    guard.stage(0.8, "evaluating the adapted model")
    merged, _ = load_model(adapter_dir)
    after = {"corrections": metrics.evaluate_corrections(merged, tok, val, val_arrays),
             "benchmark": metrics.benchmark_metrics(merged, tok, bench_arrays, bench_truth)}
    verdict = metrics.gate(before, after, params.tolerance, params.min_improvement)
    size_bytes = (adapter_dir / "adapter_model.safetensors").stat().st_size
    summary = {"before": before, "after": after, "gate": verdict, "train_seconds": train_s,
               "total_seconds": time.perf_counter() - t0, "adapter_bytes": size_bytes, "run_id": run_id,
               "train_studies": len(train), "val_studies": len(val), "steps": len(history),
               "epoch": chosen, "epochs": [{k: v for k, v in e.items() if k != "state"} for e in epochs],
               "final_loss": history[-1] if history else None}
    (adapter_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    candidate = service.register_model_version(
        base.name, version, model_identity(adapter_dir), parent_id=base.id,
        metrics=registry_metrics(summary), status="candidate", path=str(adapter_dir))
    message = ("gate passed: promotable" if verdict["passed"] else "gate failed: " + "; ".join(verdict["reasons"]))
    log(f"candidate version {candidate.id} at {adapter_dir} ({size_bytes / 1e6:.2f} MB), {message}")
    return {"candidate": candidate, "metrics": summary, "message": message}


def _evaluate_epoch(peft_model, tok, before, params, val, val_arrays, bench_arrays, bench_truth, epoch: int) -> dict:
    """The adapter after one epoch on the held-out reviews and the benchmark, with its LoRA weights."""
    from peft import get_peft_model_state_dict

    from . import metrics

    model = peft_model.get_base_model()  # LoRA layers active
    after = {"corrections": metrics.evaluate_corrections(model, tok, val, val_arrays),
             "benchmark": metrics.benchmark_metrics(model, tok, bench_arrays, bench_truth)}
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    return {"epoch": epoch, "after": after, "gate": metrics.gate(before, after, params.tolerance,
                                                                 params.min_improvement), "state": state}


def _choose_epoch(peft_model, epochs: list[dict]) -> int | None:
    """Keeps the epoch whose adapter passes the gate with the best correction score (the earliest on ties);
    the last epoch when none passes. Later epochs keep fixing the corrected error but also drift away from
    the base on everything else, so the epoch is chosen, not fixed."""
    from peft import set_peft_model_state_dict

    if not epochs:
        return None
    passing = [e for e in epochs if e["gate"]["passed"]]
    best = max(passing, key=lambda e: (e["after"]["corrections"]["correction_score"], -e["epoch"])) if passing \
        else epochs[-1]
    set_peft_model_state_dict(peft_model, best["state"])
    return best["epoch"]


def registry_metrics(summary: dict) -> dict:
    """Flat scalars for the model registry row (the full before/after lives in the run row and metrics.json)."""
    after, gate = summary["after"], summary["gate"]
    return {"run_id": summary["run_id"], "gate_passed": gate["passed"], "gate_reasons": gate["reasons"],
            "correction_score": after["corrections"]["correction_score"],
            "deleted_recurrence": after["corrections"]["deleted_recurrence"],
            "box_iou": after["corrections"]["box_iou"],
            "report_label_macro_f1": after["benchmark"]["report_label_macro_f1"],
            "finding_head_macro_f1": after["benchmark"]["finding_head_macro_f1"],
            "adapter_bytes": summary["adapter_bytes"]}


def _on_step(guard: RunGuard, step: int, total: int, parts: dict) -> None:
    if step == total or step % 5 == 0:
        guard.update(progress=0.15 + 0.6 * step / total, message=f"training step {step}/{total}, loss {parts['loss']:.3f}")


def _base_benchmark(service, base, model, tok, arrays, truth, params) -> dict:
    """The base version's benchmark metrics, cached in its registry row (the benchmark set never changes)."""
    key = f"benchmark_n{params.benchmark_n}_seed{params.benchmark_seed}_s{params.benchmark_size}"
    cached = (base.metrics or {}).get(key)
    if cached:
        return cached
    from . import metrics

    result = metrics.benchmark_metrics(model, tok, arrays, truth)
    service.update_model_version_metrics(base.id, {key: result})
    return result


def _save_adapter(peft_model, data_dir: Path, run_id: int, base, version: str) -> Path:
    from gazex_core.checkpoint import ADAPTER_FORMAT, ADAPTER_META

    from .lora import save_adapter

    final = data_dir / ADAPTERS_DIR / f"run{run_id}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(peft_model, tmp)
    (tmp / ADAPTER_META).write_text(json.dumps({
        "format": ADAPTER_FORMAT, "base": str(Path(base.path).resolve()), "base_model_version_id": base.id,
        "base_weights_hash": base.weights_hash, "version": version, "run_id": run_id}, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final
