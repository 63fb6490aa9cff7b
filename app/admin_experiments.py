"""Admin tab, "Experiments" section: design a reader study, follow every reader's progress, and the analysis
report (``gazex experiment analyze`` run as its own process — the app never imports ``training`` — shown
inline with its CSV and JSON for download). Every action re-checks the admin role on the server."""

from __future__ import annotations

import html
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from annotations_db.experiments import ARM_VIEWS, progress_line
from annotations_db.service import InvalidInput, ReviewError, ReviewService

from . import handlers
from .admin_models import REPO_ROOT, data_dir_for
from .context import AppContext, request_username


EXPERIMENT_COLUMNS = ["id", "name", "design", "arms", "status", "readers", "cases", "injected errors"]
ARM_CHOICES = ["unaided", "draft", "draft_trajectory"]
ANALYZE_TIMEOUT_S = 600


# --- plain functions (tested without a browser) ------------------------------------------------------------


def experiment_rows(service: ReviewService, acting: str | None) -> list[list[Any]]:
    handlers.require_admin(service, acting)
    return [[e["id"], e["name"], e["design"], ", ".join(e["arms"]), e["status"], len(e["readers"]), len(e["cases"]),
             len(e["injected_errors"])] for e in service.list_experiments()]


def create_from_form(service: ReviewService, acting: str | None, name: str, design: str, arms: list[str],
                     readers: str, cases: str, study_set: str | None, washout_days: Any, seed: Any) -> str:
    handlers.require_admin(service, acting)
    if bool((cases or "").strip()) == bool(study_set):
        raise InvalidInput("give the cases either as study ids or as a study set, not both or neither")
    study_ids = ([s.id for s in service.study_set_studies(study_set)] if study_set
                 else [_whole(part, "case ids") for part in cases.replace(",", " ").split()])
    experiment_id = service.create_experiment(
        (name or "").strip(), design=design, arms=list(arms or []),
        readers=[r.strip() for r in (readers or "").split(",") if r.strip()], study_ids=study_ids,
        washout_days=_whole(washout_days, "washout days"), seed=_whole(seed, "seed"), acting=acting)
    info = service.get_experiment(experiment_id)
    return (f"Created experiment **{experiment_id}** ({info['design']}, {len(info['readers'])} readers x "
            f"{len(info['cases'])} cases = {info['assignments']} reads).")


def _whole(value: Any, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what}: {value!r} is not a whole number") from None
    if not number.is_integer():
        raise InvalidInput(f"{what}: {value!r} is not a whole number")
    return int(number)


def progress_markdown(service: ReviewService, acting: str | None, experiment_id: Any) -> str:
    handlers.require_admin(service, acting)
    experiment_id = _whole(experiment_id, "experiment id")
    info = service.get_experiment(experiment_id)
    lines = [f"**{info['name']}** ({info['status']}): {info['design']}, arms {', '.join(info['arms'])}, "
             f"washout {info['washout_days']} days"]
    lines += [f"- {progress_line(item)}" for item in service.experiment_progress(experiment_id)]
    return "\n".join(lines)


def analysis_command(service: ReviewService, experiment_id: int, out: Path) -> list[str]:
    url = service.engine.url.render_as_string(hide_password=False)
    return [sys.executable, "-m", "training.cli", "experiment", "analyze", str(experiment_id), "--url", url,
            "--out", str(out)]


def run_analysis(service: ReviewService, acting: str | None, experiment_id: Any) -> tuple[str, list[str]]:
    """(report HTML inside an iframe, [html, csv, json] paths); a refusal raises ReviewError with its one line."""
    handlers.require_admin(service, acting)
    experiment_id = _whole(experiment_id, "experiment id")
    service.get_experiment(experiment_id)  # NotFound before starting a process
    out = data_dir_for(service) / "analysis" / f"experiment_{experiment_id}"
    done = subprocess.run(analysis_command(service, experiment_id, out), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=ANALYZE_TIMEOUT_S)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ReviewError(lines[-1].removeprefix("gazex experiment: error: ") if lines else "the analysis failed")
    report = (out / "report.html").read_text(encoding="utf-8")
    frame = (f'<iframe id="gx-analysis-frame" title="analysis report" srcdoc="{html.escape(report, quote=True)}" '
             'style="width:100%;height:1400px;border:1px solid #ddd"></iframe>')
    return frame, [str(out / name) for name in ("report.html", "long_table.csv", "analysis.json")]


# --- Gradio ---------------------------------------------------------------------------------------------------


@dataclass
class ExperimentSectionParts:
    table: gr.Dataframe
    refresh: gr.Button
    name: gr.Textbox
    design: gr.Radio
    arms: gr.CheckboxGroup
    readers: gr.Textbox
    cases: gr.Textbox
    study_set: gr.Dropdown
    washout: gr.Number
    seed: gr.Number
    create: gr.Button
    message: gr.Markdown
    experiment_id: gr.Number
    progress_button: gr.Button
    progress: gr.Markdown
    analyze_button: gr.Button
    report: gr.HTML
    files: gr.File


def build_experiment_section(context: AppContext) -> ExperimentSectionParts:
    with gr.Accordion("Experiments", open=False, elem_id="gx-admin-experiments"):
        refresh = gr.Button("Refresh", size="sm")
        table = gr.Dataframe(headers=EXPERIMENT_COLUMNS, interactive=False, elem_id="gx-experiments")
        with gr.Row():
            name = gr.Textbox(label="Name", elem_id="gx-exp-name")
            design = gr.Radio(["crossover", "parallel"], value="crossover", label="Design")
            arms = gr.CheckboxGroup([a for a in ARM_CHOICES if a in ARM_VIEWS], value=ARM_CHOICES, label="Arms")
        with gr.Row():
            readers = gr.Textbox(label="Readers (comma-separated usernames)", elem_id="gx-exp-readers")
            cases = gr.Textbox(label="Case study ids (or choose a study set)", elem_id="gx-exp-cases")
            study_set = gr.Dropdown([], value=None, label="Study set", allow_custom_value=False)
        with gr.Row():
            washout = gr.Number(28, label="Washout days", precision=0)
            seed = gr.Number(0, label="Seed", precision=0)
            create = gr.Button("Create experiment", variant="primary", elem_id="gx-exp-create")
        message = gr.Markdown(elem_id="gx-exp-message")
        with gr.Row():
            experiment_id = gr.Number(label="Experiment id", precision=0, elem_id="gx-exp-id")
            progress_button = gr.Button("Progress", elem_id="gx-exp-progress-button")
            analyze_button = gr.Button("Analyze", elem_id="gx-exp-analyze")
        progress = gr.Markdown(elem_id="gx-exp-progress")
        report = gr.HTML(elem_id="gx-exp-report")
        files = gr.File(label="Report, long table (CSV), numbers (JSON)", file_count="multiple", interactive=False)
    return ExperimentSectionParts(table, refresh, name, design, arms, readers, cases, study_set, washout, seed, create,
                                  message, experiment_id, progress_button, progress, analyze_button, report, files)


def wire_experiment_section(context: AppContext, parts: ExperimentSectionParts, demo: gr.Blocks) -> None:
    service = context.service

    def load(request: gr.Request):
        acting = request_username(request)
        if handlers.reader_role(service, acting) != "admin":
            return gr.skip(), gr.skip()
        sets = [s.name for s in service.study_sets()]
        return experiment_rows(service, acting), gr.Dropdown(choices=[""] + sets, value="")

    def create(name, design, arms, readers, cases, study_set, washout, seed, request: gr.Request):
        acting = request_username(request)
        try:
            text = create_from_form(service, acting, name, design, arms, readers, cases, study_set or None, washout,
                                    seed)
        except ReviewError as exc:
            return gr.skip(), f"**Not created:** {exc}"
        return experiment_rows(service, acting), text

    def progress(experiment_id, request: gr.Request):
        try:
            return progress_markdown(service, request_username(request), experiment_id)
        except ReviewError as exc:
            return f"**No progress:** {exc}"

    def analyze(experiment_id, request: gr.Request):
        try:
            frame, paths = run_analysis(service, request_username(request), experiment_id)
        except (ReviewError, subprocess.TimeoutExpired) as exc:
            return f"<p id='gx-analysis-error'><b>No analysis:</b> {html.escape(str(exc))}</p>", None
        return frame, paths

    demo.load(load, None, [parts.table, parts.study_set])
    parts.refresh.click(load, None, [parts.table, parts.study_set])
    parts.create.click(create, [parts.name, parts.design, parts.arms, parts.readers, parts.cases, parts.study_set,
                                parts.washout, parts.seed], [parts.table, parts.message])
    parts.progress_button.click(progress, [parts.experiment_id], [parts.progress])
    parts.analyze_button.click(analyze, [parts.experiment_id], [parts.report, parts.files])
