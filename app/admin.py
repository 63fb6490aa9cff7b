"""The Admin tab: readers, model versions, draft progress and re-fine-tuning (app/admin_models.py).

Every admin action is checked on the server (handlers.require_admin): hiding the tab from readers
is only a convenience.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from annotations_db.service import ReviewError

from . import admin_experiments, admin_import, admin_models, handlers
from .auth import request_token
from .context import AppContext, progress_text, request_username

READER_COLUMNS = ["id", "username", "role", "display name", "account", "last sign-in"]
MODEL_COLUMNS = ["id", "name", "version", "status", "parent", "weights", "metrics"]


@dataclass
class AdminParts:
    readers: gr.Dataframe
    new_username: gr.Textbox
    new_password: gr.Textbox
    new_role: gr.Radio
    add_button: gr.Button
    add_result: gr.Markdown
    models: gr.Dataframe
    refresh_button: gr.Button
    drafts: gr.Markdown
    finetune: Any = None  # admin_models.ModelSectionParts
    accounts: Any = None  # ReaderAccountParts
    imports: Any = None  # admin_import.ImportSectionParts
    experiments: Any = None  # admin_experiments.ExperimentSectionParts


@dataclass
class ReaderAccountParts:
    username: gr.Textbox
    disable_button: gr.Button
    enable_button: gr.Button
    password: gr.Textbox
    password_button: gr.Button
    result: gr.Markdown


def build_admin_tab(context: AppContext) -> AdminParts:
    with gr.Accordion("Readers", open=True):
        readers = gr.Dataframe(headers=READER_COLUMNS, interactive=False, elem_id="gx-admin-readers")
        with gr.Row():
            new_username = gr.Textbox(label="Username", elem_id="gx-admin-new-username")
            new_password = gr.Textbox(label="Initial password (8+ characters)", type="password",
                                      elem_id="gx-admin-new-password")
            new_role = gr.Radio(["reader", "admin"], value="reader", label="Role")
        add_button = gr.Button("Add reader", variant="primary", elem_id="gx-admin-add-reader")
        add_result = gr.Markdown(elem_id="gx-admin-add-result")
        accounts = build_reader_account_controls()
    with gr.Accordion("Model", open=True, elem_id="gx-admin-model"):
        refresh_button = gr.Button("Refresh", size="sm")
        models = gr.Dataframe(headers=MODEL_COLUMNS, interactive=False, elem_id="gx-admin-models")
        drafts = gr.Markdown(elem_id="gx-admin-drafts")
        finetune = admin_models.build_model_section(context)  # re-fine-tuning (app/admin_models.py)
    with gr.Accordion("Import and export", open=False, elem_id="gx-admin-import"):
        imports = admin_import.build_import_section(context)  # app/admin_import.py
    experiments = admin_experiments.build_experiment_section(context)  # reader studies (app/admin_experiments.py)
    return AdminParts(readers, new_username, new_password, new_role, add_button, add_result, models,
                      refresh_button, drafts, finetune, accounts, imports, experiments)


def build_reader_account_controls() -> ReaderAccountParts:
    """Disable / enable a reader and set a password (each ends the reader's sessions where it says so)."""
    gr.Markdown("**Account of an existing reader**")
    with gr.Row():
        username = gr.Textbox(label="Username", elem_id="gx-admin-account-username")
        disable_button = gr.Button("Disable", size="sm", variant="stop", elem_id="gx-admin-disable")
        enable_button = gr.Button("Enable", size="sm", elem_id="gx-admin-enable")
    with gr.Row():
        password = gr.Textbox(label="New password (8+ characters)", type="password",
                              elem_id="gx-admin-set-password")
        password_button = gr.Button("Set password", size="sm", elem_id="gx-admin-set-password-button")
    result = gr.Markdown(elem_id="gx-admin-account-result")
    return ReaderAccountParts(username, disable_button, enable_button, password, password_button, result)


def wire_admin_tab(context: AppContext, parts: AdminParts, demo: gr.Blocks) -> None:
    service = context.service

    def load_tables(request: gr.Request) -> tuple[Any, Any, str]:
        acting = request_username(request)
        if handlers.reader_role(service, acting) != "admin":
            return gr.skip(), gr.skip(), ""
        return (handlers.readers_rows(service, acting), handlers.model_version_rows(service, acting),
                progress_text(context))

    def add(username: str, password: str, role: str, request: gr.Request) -> tuple[Any, str, str]:
        acting = request_username(request)
        try:
            text = handlers.add_reader(service, acting, username, password, role)
        except ReviewError as exc:
            return gr.skip(), f"**Not added:** {exc}", gr.skip()
        return handlers.readers_rows(service, acting), text, ""

    demo.load(load_tables, None, [parts.readers, parts.models, parts.drafts])
    wire_reader_account_controls(service, parts.accounts, parts.readers)
    admin_models.wire_model_section(context, parts.finetune, demo)
    admin_import.wire_import_section(context, parts.imports)
    admin_experiments.wire_experiment_section(context, parts.experiments, demo)
    parts.refresh_button.click(load_tables, None, [parts.readers, parts.models, parts.drafts])
    parts.add_button.click(add, [parts.new_username, parts.new_password, parts.new_role],
                           [parts.readers, parts.add_result, parts.new_password])


def wire_reader_account_controls(service: Any, parts: ReaderAccountParts, readers: gr.Dataframe) -> None:
    def toggle(disabled: bool):
        def run(username: str, request: gr.Request) -> tuple[Any, str]:
            acting = request_username(request)
            try:
                text = handlers.set_reader_disabled(service, acting, username, disabled)
            except ReviewError as exc:
                return gr.skip(), f"**Not changed:** {exc}"
            return handlers.readers_rows(service, acting), text
        return run

    def set_password(username: str, password: str, request: gr.Request) -> tuple[Any, str, str]:
        acting = request_username(request)
        try:
            text = handlers.set_reader_password(service, acting, username, password, request_token(request))
        except ReviewError as exc:
            return gr.skip(), f"**Not changed:** {exc}", ""
        return handlers.readers_rows(service, acting), text, ""

    parts.disable_button.click(toggle(True), [parts.username], [readers, parts.result])
    parts.enable_button.click(toggle(False), [parts.username], [readers, parts.result])
    parts.password_button.click(set_password, [parts.username, parts.password],
                                [readers, parts.result, parts.password])
