"""The Gradio 6 application: login, worklist, the review workstation, the reader's timing, and admin.

``build_app(context)`` returns the Blocks; ``launch_app(demo, context, ...)`` launches it with the
database-backed login and the deliberate queue settings described in docs/app.md.
(No ``from __future__ import annotations`` here: Gradio injects gr.Request by the real type hint.)
"""

import logging
import threading
import time
from typing import Any, Callable

import gradio as gr

from annotations_db.experiments import is_unaided
from annotations_db.service import ReviewError

from . import admin, handlers, plots
from .context import AppContext, drafts_pending, progress_text, request_username
from .image_payload import ROUTE_PREFIX

log = logging.getLogger(__name__)

# Queue design (docs/app.md "Concurrency"): ordinary events (worklist, plots) share a pool of 8 workers;
# opening a study skips the queue (one HTTP request instead of the queue's join + event stream: a reader is
# waiting) and is capped at 4 at once by OPEN_SLOTS (the image build is CPU-bound); the model never runs on
# these threads (InferenceWorker). Workstation server functions (decisions, events, ask) bypass the queue
# and run on Gradio's thread pool (max_threads=40), so an acknowledgement never waits behind another
# reader's study load.
DEFAULT_CONCURRENCY = 8
OPEN_STUDY_CONCURRENCY = 4
QUEUE_MAX_SIZE = 256
MAX_THREADS = 40
OPEN_SLOTS = threading.BoundedSemaphore(OPEN_STUDY_CONCURRENCY)


# --- workstation server functions --------------------------------------------------------


def make_server_functions(context: AppContext) -> list[Callable]:
    """The six functions the workstation's JS calls (names fixed by docs/workstation_contract.md)."""
    service = context.service

    def _run(handler: Callable, data: Any, request: Any) -> dict[str, Any]:
        reader = request_username(request)
        if not reader:
            return handlers.refusal(handlers.AccessDenied("not signed in"))
        return handlers.call_with_args(handler, (service, reader), data)

    def record_event(data, request: gr.Request):
        return _run(handlers.record_event, data, request)

    def decide_sentence(data, request: gr.Request):
        return _run(handlers.decide_sentence, data, request)

    def add_sentence(data, request: gr.Request):
        return _run(handlers.add_sentence, data, request)

    def decide_box(data, request: gr.Request):
        return _run(handlers.decide_box, data, request)

    def sign_off(data, request: gr.Request):
        return _run(handlers.sign_off, data, request)

    def ask(data, request: gr.Request):
        reader = request_username(request)
        if not reader:
            return handlers.refusal(handlers.AccessDenied("not signed in"))
        try:
            return handlers.call_with_args(handlers.ask, (service, context.worker, reader), data)
        except TimeoutError:
            return {"ok": False, "error": "the model is busy; try again in a moment", "retry": True}

    return [record_event, decide_sentence, add_sentence, decide_box, ask, sign_off]


def make_workstation(server_functions: list[Callable]) -> gr.HTML:
    from .workstation import Workstation

    return Workstation(server_functions=server_functions, elem_id="gx-workstation")


def workstation_assets() -> tuple[str, str]:
    """(css, head) the workstation needs at launch (Gradio 6 takes css/head in launch())."""
    from .workstation import CSS, HEAD

    return CSS, HEAD


# --- event handlers (Gradio glue around app.handlers) -----------------------------------


def _message(text: str, kind: str = "info") -> str:
    return f'<div class="gx-msg gx-{kind}" data-testid="app-message">{text}</div>'


def build_app(context: AppContext) -> gr.Blocks:
    service = context.service
    with gr.Blocks(title=context.title, fill_width=True) as demo:
        current_study = gr.State(None)
        current_findings = gr.State([])
        with gr.Row(elem_classes="gx-header"):
            header = gr.Markdown(f"### {context.title}", elem_id="gx-header")
            gr.Button("Log out", link="/logout", size="sm", scale=0, elem_id="gx-logout")
        message = gr.HTML(_message(""), elem_id="gx-message")
        with gr.Tabs(selected="worklist") as tabs:
            with gr.Tab("Worklist", id="worklist"):
                with gr.Row():
                    status_filter = gr.Radio([("all", "all"), ("unread", "unread"), ("in progress", "in_progress"),
                                              ("signed", "signed")], value="all",
                                             label="Show", scale=3, elem_id="gx-status-filter")
                    refresh_btn = gr.Button("Refresh", size="sm", scale=0, elem_id="gx-refresh")
                    next_btn = gr.Button("Open next case", variant="primary", scale=0, elem_id="gx-open-next")
                summary = gr.Markdown(elem_id="gx-worklist-summary")
                worklist = gr.Dataframe(headers=handlers.WORKLIST_COLUMNS, interactive=False, wrap=True,
                                        elem_id="gx-worklist", column_widths=["6%", "30%", "18%", "14%", "16%", "16%"])
                progress = gr.Markdown(elem_id="gx-draft-progress")
                progress_timer = gr.Timer(2.0, active=True)
            with gr.Tab("Review", id="review"):
                with gr.Row():
                    study_title = gr.Markdown("Open a study from the worklist.", elem_id="gx-study-title")
                    next_case_btn = gr.Button("Next case ▶", size="sm", scale=0, elem_id="gx-next-case")
                workstation = make_workstation(make_server_functions(context))
                with gr.Row():
                    findings_plot = gr.Plot(label="Finding probabilities", elem_id="gx-findings-plot")
            with gr.Tab("My timing", id="timing"):
                timing_btn = gr.Button("Refresh", size="sm", elem_id="gx-timing-refresh")
                timing_plot = gr.Plot(label="Reading time per case", elem_id="gx-timing-plot")
            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                admin_parts = admin.build_admin_tab(context)

        def on_load(status: str, request: gr.Request):
            reader = request_username(request)
            role = handlers.reader_role(service, reader)
            rows = handlers.worklist_rows(service, reader, status)
            head = f"### {context.title} &nbsp;·&nbsp; signed in as **{reader}** ({role})"
            return (head, gr.Tab(visible=role == "admin"), rows, handlers.worklist_heading(service, reader, rows),
                    progress_text(context))

        demo.load(on_load, [status_filter], [header, admin_tab, worklist, summary, progress])

        def refresh(status: str, request: gr.Request):
            reader = request_username(request)
            rows = handlers.worklist_rows(service, reader, status)
            return rows, handlers.worklist_heading(service, reader, rows)

        for trigger in (status_filter.change, refresh_btn.click):
            trigger(refresh, [status_filter], [worklist, summary])

        def tick(status: str, request: gr.Request):
            busy = drafts_pending(context)
            reader = request_username(request)
            rows = handlers.worklist_rows(service, reader, status)
            return progress_text(context), gr.Timer(active=busy), rows, handlers.worklist_heading(service, reader, rows)

        progress_timer.tick(tick, [status_filter], [progress, progress_timer, worklist, summary],
                            show_progress="hidden")

        # The workstation value goes first; the Plotly chart (slow to build) follows in a chained event.
        open_outputs = [workstation, current_findings, study_title, current_study, tabs, message]

        def findings_chart(findings):
            return plots.findings_figure(findings)

        def open_selected(evt: gr.SelectData, request: gr.Request):
            row = evt.row_value or []
            if not row:
                return _no_change(len(open_outputs) - 1) + [_message("Select a study row.", "warn")]
            return _open(context, request_username(request), row[-1])

        worklist.select(open_selected, None, open_outputs, queue=False).then(
            None, js=AFTER_PAINT_JS).then(findings_chart, [current_findings], [findings_plot])

        def open_next(study_id, request: gr.Request):
            reader = request_username(request)
            next_id = handlers.next_study_id(service, reader, study_id)
            if next_id is None:
                washout = handlers.washout_notice(service, reader)
                if washout:
                    return _no_change(len(open_outputs) - 1) + [_message(f"No case is open now. {washout}", "warn")]
                return _no_change(len(open_outputs) - 1) + [_message("All cases are signed. Thank you!", "ok")]
            return _open(context, reader, next_id)

        for button in (next_btn, next_case_btn):
            button.click(open_next, [current_study], open_outputs, queue=False).then(
                None, js=AFTER_PAINT_JS).then(findings_chart, [current_findings], [findings_plot])
        # After the sign-off ack the workstation fires signed_off: open the next case, then refresh the list.
        workstation.signed_off(open_next, [current_study], open_outputs, queue=False).then(
            findings_chart, [current_findings], [findings_plot]).then(refresh, [status_filter], [worklist, summary])

        def timing(request: gr.Request):
            return plots.timing_figure(plots.reader_timing_rows(service, request_username(request)))

        timing_btn.click(timing, None, [timing_plot])

        def on_tab(evt: gr.SelectData, request: gr.Request):
            return timing(request) if evt.value == "My timing" else gr.skip()

        tabs.select(on_tab, None, [timing_plot])
        admin.wire_admin_tab(context, admin_parts, demo)
    return demo


def _no_change(n: int) -> list[Any]:
    return [gr.skip() for _ in range(n)]


def _open(context: AppContext, reader: str, study_id: Any) -> list[Any]:
    with OPEN_SLOTS:
        return _open_now(context, reader, study_id)


def _open_now(context: AppContext, reader: str, study_id: Any) -> list[Any]:
    started = time.perf_counter()
    try:
        value, state = handlers.open_study(context.service, reader, int(study_id), context.image_payload)
    except ReviewError as exc:
        return _no_change(5) + [_message(f"Cannot open this study: {exc}", "error")]
    except (OSError, ValueError) as exc:
        log.exception("opening study %s failed", study_id)
        return _no_change(5) + [_message(f"The image of this study could not be read: {exc}", "error")]
    if context.worker is not None and state.draft is None and not is_unaided(state.arm):
        study = state.study
        context.worker.enqueue_drafts([(study.id, study.study_uid, study.image_path)])
    title = _study_title(state)
    log.info("opened study %s for %s in %.0f ms", state.study.study_uid, reader, 1000 * (time.perf_counter() - started))
    threading.Thread(target=_warm_next_image, args=(context, reader, state.study.id), daemon=True).start()
    return [value, value["findings"], title, state.study.id, gr.Tabs(selected="review"),
            _message("")]


def _warm_next_image(context: AppContext, reader: str, study_id: int) -> None:
    """The next case's image is built in the background, so "Open next case" finds it ready (app/image_payload.py)."""
    warm = getattr(context.image_payload, "warm", None)
    if warm is None:
        return
    try:
        next_id = handlers.next_study_id(context.service, reader, study_id)
        if next_id is not None and next_id != study_id:
            warm(context.service.get_study(next_id).image_path)
    except Exception as exc:  # best effort, off the request: the next open reads the image itself and says why
        log.info("no next image to warm after study %s: %s", study_id, exc)


def _study_title(state) -> str:
    parts = [f"**{state.study.study_uid}**", state.status]
    if state.arm:
        parts.append(f"arm: {state.arm}")
    if state.draft is None and not is_unaided(state.arm):
        parts.append("draft still computing — reopen in a moment")
    return " · ".join(parts)


# Plotly rendering competes with the workstation's image decode on the browser's main thread: the chart
# event waits (at most 3 s) until the workstation has painted the new study.
AFTER_PAINT_JS = """async () => {
  const t0 = performance.now();
  await new Promise((r) => requestAnimationFrame(r));
  while (performance.now() - t0 < 3000 && !(window.gazexWorkstation && window.gazexWorkstation.painted))
    await new Promise((r) => setTimeout(r, 30));
  return [];
}"""

# Gradio mounts a new Plotly plot for every new figure with Plotly's `responsive` on and never purges the old one:
# its window resize listener kept every replaced chart alive (~250 DOM nodes and ~65 listeners per study open,
# growing for the whole session). A plot element the page removes loses that listener, so it can be collected.
PLOT_PURGE_HEAD = """<script>
(() => {
  const release = (gd) => {   // what Plotly.purge does about it, without purge's teardown (a pending redraw needs it)
    if (gd._responsiveChartHandler) window.removeEventListener("resize", gd._responsiveChartHandler);
    delete gd._responsiveChartHandler;
  };
  const observer = new MutationObserver((records) => {
    for (const record of records) for (const node of record.removedNodes) {
      if (node.nodeType !== 1) continue;
      if (node.classList.contains("js-plotly-plot")) release(node);
      else if (node.firstElementChild) node.querySelectorAll(".js-plotly-plot").forEach(release);
    }
  });
  const start = () => observer.observe(document.body, { childList: true, subtree: true });
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);  // Gradio may add this late
})();
</script>"""

# A press on a worklist row starts fetching that study's pixels at once (GET gazex/image/<study key>, the study's
# current image with its hash), in parallel with the open event's round trip; the workstation takes them only if
# the value then names the same study and image hash (viewer.js `prefetched`). The page keeps at most two.
WORKLIST_PREFETCH_HEAD = """<script>
(() => {
  const pending = new Map();
  const start = (studyKey) => {
    const key = String(studyKey == null ? "" : studyKey).trim();
    if (!key || pending.has(key)) return;
    pending.set(key, fetch("%(route)s/" + encodeURIComponent(key), { credentials: "same-origin" })
      .then(async (r) => (r.ok ? { named: r.headers.get("X-Gazex-Study-Key"), sha256: r.headers.get("X-Gazex-Image-Sha256"),
                                  buffer: await r.arrayBuffer() } : null))
      .catch(() => null));
    while (pending.size > 2) pending.delete(pending.keys().next().value);
  };
  const take = (studyKey) => { const p = pending.get(studyKey) || null; pending.delete(studyKey); return p; };
  window.gazexPrefetch = Object.freeze({ start, take });
  document.addEventListener("pointerdown", (e) => {
    const row = e.target instanceof Element && e.target.closest("#gx-worklist [role=row]");
    const cell = row && row.querySelector('[role=gridcell][data-col="%(column)d"]');
    if (cell) start(cell.innerText);
  }, { capture: true, passive: true });
})();
</script>""" % {"route": ROUTE_PREFIX.lstrip("/"), "column": handlers.WORKLIST_COLUMNS.index("Study")}

APP_CSS = """
.gx-msg:empty { display: none; }
.gx-msg { padding: 6px 10px; border-radius: 6px; margin: 2px 0; }
.gx-error { background: #fdecea; color: #8a1c1c; }
.gx-warn { background: #fff4e5; color: #7a4b00; }
.gx-ok { background: #e8f5e9; color: #1b5e20; }
"""


def launch_app(demo: gr.Blocks, context: AppContext, *, host: str = "127.0.0.1", port: int | None = None,
               prevent_thread_lock: bool = False, quiet: bool = False) -> Any:
    """Launches with the database login (every page needs it; sign-in, sessions and expiry in app/auth.py),
    the study image route (app/image_route.py), Gradio's traffic monitoring off, and the deliberate queue settings.

    Gradio's run history is off: it would keep every call's inputs and outputs (reports, study IDs) in the
    browser's localStorage, and re-serialise up to 100 of them on each event, so every study open got slower
    with the number of opens before it."""
    from starlette.middleware import Middleware

    from annotations_db import passwords

    from .auth import SESSION_ENDED_HEAD, AccountsGate
    from .image_route import image_routes

    workstation_css, workstation_head = workstation_assets()
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    gate = Middleware(AccountsGate, service=context.service, title=context.title)
    passwords.dummy_hash()  # unknown usernames are checked against it: compute it before the first sign-in
    return demo.launch(
        server_name=host, server_port=port, prevent_thread_lock=prevent_thread_lock, quiet=quiet,
        auth=lambda username, password: handlers.check_login(context.service, username, password),
        auth_message="GazeX Review — sign in with your reader account.",
        app_kwargs={"middleware": [gate], "routes": image_routes(context)},
        enable_monitoring=False, max_threads=MAX_THREADS, css=APP_CSS + workstation_css,
        head=workstation_head + SESSION_ENDED_HEAD + PLOT_PURGE_HEAD + WORKLIST_PREFETCH_HEAD,
        footer_links=[], run_history=False, show_error=True, ssr_mode=False,
    )
