"""Admin tab, "Model" section: re-fine-tuning on radiologists' corrections.

Pending corrections since the active version, **Start fine-tune** (runs ``gazex finetune`` as a separate
process; the app keeps serving), live progress from the run row in the database, the before/after metrics
of the latest run as a table and a Plotly chart, and **Promote** / **Rollback**. The served model follows
the database's active version through app/model_switch.py. Every action re-checks the admin role on the
server. This module never imports ``training``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go
from sqlalchemy.engine import make_url

from annotations_db.provenance import ACCEPTED_DECISIONS
from annotations_db.service import InvalidTransition, ReviewError, ReviewService

from . import handlers
from .context import AppContext, request_username

REPO_ROOT = Path(__file__).resolve().parents[1]
STALE_AFTER_S = 120.0
METRIC_COLUMNS = ["metric", "base", "adapted", "change"]
COMPARED = (("corrections", "deleted_recurrence", "deleted sentences the model still writes (lower is better)"),
            ("corrections", "overcall_rate", "studies with an over-called finding (lower is better)"),
            ("corrections", "box_iou", "IoU to corrected boxes"),
            ("corrections", "sentence_agreement", "sentence agreement with the final report"),
            ("corrections", "label_f1", "finding-label F1 vs the final report"),
            ("corrections", "correction_score", "correction score"),
            ("benchmark", "report_label_macro_f1", "benchmark: report label macro-F1"),
            ("benchmark", "finding_head_macro_f1", "benchmark: finding-head macro-F1"))


# --- plain functions (tested without a browser) ------------------------------------------------------------


def _is_correction(review: dict[str, Any]) -> bool:
    return (any(s["decision"] not in ACCEPTED_DECISIONS for s in review.get("sentences") or [])
            or any(b["decision"] not in ACCEPTED_DECISIONS for b in review.get("boxes") or []))


def pending_corrections(service: ReviewService) -> dict[str, int]:
    active = service.active_model_version()
    reviews = service.signed_reviews_since(active.id) if active else []
    return {"reviews": len(reviews), "corrected": sum(_is_correction(r) for r in reviews)}


def pending_text(service: ReviewService) -> str:
    counts = pending_corrections(service)
    active = service.active_model_version()
    name = f"version {active.id} ({active.version})" if active else "no active version"
    return (f"**Active model:** {name}. **Signed reviews since:** {counts['reviews']}, "
            f"of which **{counts['corrected']} corrected** the draft.")


def data_dir_for(service: ReviewService) -> Path:
    url = make_url(service.engine.url)
    if url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database).resolve().parent
    from annotations_db.engine import default_data_dir

    return default_data_dir()


def finetune_command(service: ReviewService, extra: list[str] | None = None) -> list[str]:
    """The command line of the fine-tune process: no database URL on it (see finetune_environment)."""
    return [sys.executable, "-m", "training.cli", "finetune", "--data-dir", str(data_dir_for(service)),
            *(extra or [])]


def finetune_environment(service: ReviewService) -> dict[str, str]:
    """The fine-tune process's environment: the database URL, password included, travels as
    GAZEX_DATABASE_URL - a process's environment is readable only by its owner, its command line by every
    local user."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path,
            "GAZEX_DATABASE_URL": service.engine.url.render_as_string(hide_password=False)}


def start_finetune(service: ReviewService, acting: str | None, extra: list[str] | None = None,
                   log_dir: Path | None = None) -> subprocess.Popen:
    """Starts `gazex finetune` as its own process (own session: it outlives a browser tab, not the refusal
    rules - one job at a time is enforced by the database)."""
    handlers.require_admin(service, acting)
    latest = latest_run(service)
    if latest and latest["status"] in ("pending", "running") and not is_stale(latest):
        raise InvalidTransition(f"fine-tune run {latest['id']} is still running")
    log_dir = log_dir or data_dir_for(service) / "finetune_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"finetune_{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.log", "w")
    return subprocess.Popen(finetune_command(service, extra), cwd=REPO_ROOT, env=finetune_environment(service),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def latest_run(service: ReviewService) -> dict[str, Any] | None:
    runs = service.finetune_runs()
    return runs[-1] if runs else None


def is_stale(run: dict[str, Any]) -> bool:
    beat = run.get("heartbeat_at") or run.get("created_at")
    if beat is None:
        return False
    beat = beat if beat.tzinfo else beat.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - beat).total_seconds() > STALE_AFTER_S


def progress_text(run: dict[str, Any] | None) -> str:
    if run is None:
        return "No fine-tune run yet."
    state = run["status"]
    if state in ("pending", "running") and is_stale(run):
        state = "running, but no heartbeat for 2 minutes (the job probably died; the next start marks it failed)"
    text = f"**Run {run['id']}:** {state}, {100 * (run['progress'] or 0):.0f}%"
    if run.get("message"):
        text += f" — {run['message']}"
    if run.get("candidate_model_version_id"):
        text += f" — candidate version **{run['candidate_model_version_id']}**"
    return text


def metric_rows(run: dict[str, Any] | None) -> list[list[Any]]:
    metrics = (run or {}).get("metrics") or {}
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    rows = []
    for group, key, name in COMPARED:
        a, b = (before.get(group) or {}).get(key), (after.get(group) or {}).get(key)
        if a is None and b is None:
            continue
        change = f"{b - a:+.3f}" if a is not None and b is not None else ""
        rows.append([name, _fmt(a), _fmt(b), change])
    return rows


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.3f}"


def metrics_figure(run: dict[str, Any] | None) -> go.Figure:
    metrics = (run or {}).get("metrics") or {}
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    names, base, adapted = [], [], []
    for group, key, name in COMPARED:
        a, b = (before.get(group) or {}).get(key), (after.get(group) or {}).get(key)
        if a is not None and b is not None:
            names.append(name.split(" (")[0])
            base.append(a)
            adapted.append(b)
    fig = go.Figure([go.Bar(name="base", x=names, y=base, marker_color="#9aa5b1"),
                     go.Bar(name="adapted", x=names, y=adapted, marker_color="#2f7ed8")])
    gate = metrics.get("gate") or {}
    verdict = "" if not gate else (" — gate passed" if gate.get("passed") else " — gate failed")
    fig.update_layout(barmode="group", height=320, template="plotly_white", margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=f"Before / after fine-tuning{verdict}", x=0.01, font=dict(size=14)),
                      yaxis=dict(range=[0, 1]), legend=dict(orientation="h", y=-0.35))
    return fig


def promote(service: ReviewService, acting: str | None, version_id: Any, force: bool = False) -> str:
    handlers.require_admin(service, acting)
    try:
        version = service.get_model_version(int(version_id))
    except (TypeError, ValueError):
        raise InvalidTransition("choose a model version to promote") from None
    metrics = version.metrics or {}
    if "gate_passed" in metrics and not metrics["gate_passed"] and not force:
        reasons = "; ".join(metrics.get("gate_reasons") or [])
        raise InvalidTransition(f"version {version.id} failed its promotion gate ({reasons})")
    version = service.promote_model_version(version.id)
    return f"Version **{version.id}** ({version.version}) is now active; the server switches to it shortly."


def rollback(service: ReviewService, acting: str | None) -> str:
    handlers.require_admin(service, acting)
    version = service.rollback_model_version()
    return f"Rolled back: version **{version.id}** ({version.version}) is active again."


def version_choices(service: ReviewService) -> list[tuple[str, int]]:
    out = []
    for v in service.list_model_versions():
        gate = (v.metrics or {}).get("gate_passed")
        tag = "" if gate is None else (" ✓ gate passed" if gate else " ✗ gate failed")
        out.append((f"{v.id}: {v.version} [{v.status}]{tag}", v.id))
    return out


# --- Gradio --------------------------------------------------------------------------------------------------


@dataclass
class ModelSectionParts:
    pending: gr.Markdown
    start_button: gr.Button
    progress: gr.Markdown
    metrics: gr.Dataframe
    plot: gr.Plot
    version: gr.Dropdown
    force: gr.Checkbox
    promote_button: gr.Button
    rollback_button: gr.Button
    result: gr.Markdown
    timer: gr.Timer


def build_model_section(context: AppContext) -> ModelSectionParts:
    gr.Markdown("#### Re-fine-tuning on corrections (LoRA)")
    pending = gr.Markdown(elem_id="gx-ft-pending")
    start_button = gr.Button("Start fine-tune", variant="primary", elem_id="gx-ft-start")
    progress = gr.Markdown(elem_id="gx-ft-progress")
    metrics = gr.Dataframe(headers=METRIC_COLUMNS, interactive=False, elem_id="gx-ft-metrics")
    plot = gr.Plot(elem_id="gx-ft-plot")
    with gr.Row():
        version = gr.Dropdown(label="Model version", choices=[], elem_id="gx-ft-version")
        force = gr.Checkbox(label="Promote even if the gate failed", value=False)
    with gr.Row():
        promote_button = gr.Button("Promote", elem_id="gx-ft-promote")
        rollback_button = gr.Button("Rollback", variant="stop", elem_id="gx-ft-rollback")
    result = gr.Markdown(elem_id="gx-ft-result")
    timer = gr.Timer(3.0)
    return ModelSectionParts(pending, start_button, progress, metrics, plot, version, force, promote_button,
                             rollback_button, result, timer)


def wire_model_section(context: AppContext, parts: ModelSectionParts, demo: gr.Blocks) -> None:
    service = context.service

    def is_admin(request: gr.Request) -> bool:
        return handlers.reader_role(service, request_username(request)) == "admin"

    def refresh(request: gr.Request):
        if not is_admin(request):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        run = latest_run(service)
        return (pending_text(service), progress_text(run), metric_rows(run), metrics_figure(run),
                gr.Dropdown(choices=version_choices(service)))

    def live(request: gr.Request):
        if not is_admin(request):
            return gr.skip(), gr.skip(), gr.skip()
        run = latest_run(service)
        return progress_text(run), metric_rows(run), metrics_figure(run)

    def start(request: gr.Request) -> str:
        try:
            proc = start_finetune(service, request_username(request))
        except ReviewError as exc:
            return f"**Not started:** {exc}"
        return f"Fine-tune started (process {proc.pid}); progress appears below."

    def do_promote(version_id: Any, force: bool, request: gr.Request) -> str:
        try:
            return promote(service, request_username(request), version_id, force)
        except ReviewError as exc:
            return f"**Not promoted:** {exc}"

    def do_rollback(request: gr.Request) -> str:
        try:
            return rollback(service, request_username(request))
        except ReviewError as exc:
            return f"**Not rolled back:** {exc}"

    outputs = [parts.pending, parts.progress, parts.metrics, parts.plot, parts.version]
    demo.load(refresh, None, outputs)
    parts.timer.tick(live, None, [parts.progress, parts.metrics, parts.plot])
    parts.start_button.click(start, None, parts.result).then(refresh, None, outputs)
    parts.promote_button.click(do_promote, [parts.version, parts.force], parts.result).then(refresh, None, outputs)
    parts.rollback_button.click(do_rollback, None, parts.result).then(refresh, None, outputs)
