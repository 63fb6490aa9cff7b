"""Admin tab, "Import and export" section: upload studies (a folder, files or a .zip) into a study set, and
download a signed review as DICOM SR + GSPS + report + JSON.

Uploads go through interop's importer (checks, PS3.15 de-identification, the installation's own paths) and
the imported studies are queued for drafting. Gradio keeps uploaded files in its temporary folder: they are
deleted as soon as the import has read them, so no original header stays on the server. Every action
re-checks the admin role on the server.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from annotations_db.service import ReviewError

from . import handlers
from .context import AppContext, request_username

DEFAULT_STUDY_SET = "imported"
MAX_LINES_SHOWN = 50


@dataclass
class ImportSectionParts:
    folder: gr.File
    files: gr.File
    study_set: gr.Textbox
    import_button: gr.Button
    result: gr.Markdown
    session_id: gr.Number
    export_button: gr.Button
    download: gr.File
    export_result: gr.Markdown


# --- plain functions (tested without a browser) ------------------------------------------------------------


def data_dir_of(context: AppContext) -> Path:
    from annotations_db.engine import default_data_dir

    return Path(getattr(context, "data_dir", None) or default_data_dir())


def upload_and_import(context: AppContext, acting: str | None, paths: list[str], study_set: str,
                      progress: Callable[[int, int], None] | bool = False) -> str:
    """Imports uploaded files (then deletes the uploads) and queues drafts; returns the Markdown summary."""
    from interop.importer import import_paths

    try:
        handlers.require_admin(context.service, acting)
        if not paths:
            return "**Nothing to import:** choose a folder, files or a .zip first."
        report = import_paths(context.service, [Path(p) for p in paths], study_set=study_set or DEFAULT_STUDY_SET,
                              data_dir=data_dir_of(context), progress=progress)
    except ReviewError as exc:
        return f"**Not imported:** {exc}"
    finally:
        _delete_uploads(paths)
    queued = 0
    if context.worker is not None and report.imported:
        queued = context.worker.enqueue_drafts([(s.study_id, s.study_uid, s.image_path) for s in report.imported])
    lines = [f"- `{Path(name).name}`: {reason}" for name, reason in report.skipped[:MAX_LINES_SHOWN]]
    if len(report.skipped) > MAX_LINES_SHOWN:
        lines.append(f"- … and {len(report.skipped) - MAX_LINES_SHOWN} more")
    head = f"**Import into study set {study_set or DEFAULT_STUDY_SET!r}:** {report.summary()}; {queued} drafts queued."
    return "\n".join([head, *lines])


def _delete_uploads(paths: list[str]) -> None:
    for path in paths or []:
        Path(path).unlink(missing_ok=True)


def export_review_zip(context: AppContext, acting: str | None, session_id: Any) -> tuple[str | None, str]:
    """(path of a zip with sr.dcm, gsps.dcm, report.txt, review.json | None, Markdown message)."""
    from interop.sr import ExportError, export_review

    try:
        handlers.require_admin(context.service, acting)
        number = int(session_id)
        out = Path(tempfile.mkdtemp(prefix="gazex-export-"))
        export_review(context.service, acting, number, out / f"review-{number}")
    except (ReviewError, ExportError) as exc:
        return None, f"**Not exported:** {exc}"
    except (TypeError, ValueError):
        return None, "**Not exported:** give the number of a signed review session"
    archive = shutil.make_archive(str(out / f"review-{number}"), "zip", out / f"review-{number}")
    return archive, f"Review session {number} exported: TID 1500 SR, GSPS, report.txt, review.json."


# --- Gradio ---------------------------------------------------------------------------------------------------


def build_import_section(context: AppContext) -> ImportSectionParts:
    gr.Markdown("**Import studies** — DICOM, PNG or JPEG; de-identified on the way in (PS3.15 Basic Profile).")
    with gr.Row():
        folder = gr.File(label="A folder", file_count="directory", elem_id="gx-admin-import-folder")
        files = gr.File(label="Files or a .zip", file_count="multiple", elem_id="gx-admin-import-files")
    with gr.Row():
        study_set = gr.Textbox(value=DEFAULT_STUDY_SET, label="Study set", elem_id="gx-admin-import-set")
        import_button = gr.Button("Import", variant="primary", elem_id="gx-admin-import-button")
    result = gr.Markdown(elem_id="gx-admin-import-result")
    gr.Markdown("**Export a signed review** — DICOM SR (TID 1500) + GSPS + signed report + decisions as JSON.")
    with gr.Row():
        session_id = gr.Number(label="Review session", precision=0, elem_id="gx-admin-export-session")
        export_button = gr.Button("Export", elem_id="gx-admin-export-button")
    download = gr.File(label="Download", interactive=False, elem_id="gx-admin-export-download")
    export_result = gr.Markdown(elem_id="gx-admin-export-result")
    return ImportSectionParts(folder, files, study_set, import_button, result, session_id, export_button, download,
                              export_result)


def wire_import_section(context: AppContext, parts: ImportSectionParts) -> None:
    def run_import(folder: Any, files: Any, study_set: str, request: gr.Request,
                   progress=gr.Progress()) -> tuple[str, Any, Any]:
        paths = [str(p) for p in (folder or []) + (files or [])]
        bar = (lambda done, total: progress((done, total), desc="importing", unit="files"))
        return upload_and_import(context, request_username(request), paths, study_set, bar), None, None

    def run_export(session_id: Any, request: gr.Request) -> tuple[Any, str]:
        return export_review_zip(context, request_username(request), session_id)

    parts.import_button.click(run_import, [parts.folder, parts.files, parts.study_set],
                              [parts.result, parts.folder, parts.files])
    parts.export_button.click(run_export, [parts.session_id], [parts.download, parts.export_result])
