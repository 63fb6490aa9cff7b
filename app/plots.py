"""Static Plotly figures for things people would rather look at than read (shown with gr.Plot).

gr.Plot drops plotly animation frames in Gradio 6.31, so nothing here is animated; the trajectory
animation lives in the workstation's canvas.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from annotations_db.service import ReviewService

POSITIVE = "#d9534f"
NEGATIVE = "#5b8def"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=14)), height=height,
                      margin=dict(l=10, r=10, t=36, b=10), template="plotly_white", showlegend=False)
    return fig


def findings_figure(findings: list[dict[str, Any]], threshold: float = 0.5) -> go.Figure:
    """Horizontal bars: the model's probability for each CheXpert finding, highest on top."""
    rows = sorted(findings or [], key=lambda f: f["probability"])
    labels = [f["label"] for f in rows]
    probs = [float(f["probability"]) for f in rows]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h",
                           marker_color=[POSITIVE if p >= threshold else NEGATIVE for p in probs],
                           text=[f"{p:.2f}" for p in probs], textposition="outside",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.add_vline(x=threshold, line_dash="dot", line_color="#888")
    fig.update_xaxes(range=[0, 1.12], title_text="probability")
    if not rows:
        fig.add_annotation(text="No draft for this study (yet)", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return _layout(fig, "Model finding probabilities (finding head; the number beside each finding sentence)",
                   max(260, 22 * len(rows) + 70))


def reader_timing_rows(service: ReviewService, reader: str) -> list[dict[str, Any]]:
    """Per signed case: active, idle and hidden seconds from the reader's own sign-offs (two queries in all:
    the worklist and the sign-offs, however many cases)."""
    signoffs = service.signoff_times(reader)
    rows = []
    for item in sorted(service.worklist(reader, status="signed"), key=lambda i: i.position):
        signoff = signoffs.get(item.session_id) if item.session_id is not None else None
        if signoff is None:
            continue
        rows.append({"study": item.study.study_uid, "arm": item.arm or "",
                     "active_s": float(signoff["active_ms"] or 0) / 1000,
                     "idle_s": float(signoff["idle_ms"] or 0) / 1000,
                     "hidden_s": float(signoff["hidden_ms"] or 0) / 1000,
                     "decision": signoff["decision"]})
    return rows


def timing_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """Stacked bars per case: active time, with idle and hidden-tab time shown apart."""
    studies = [r["study"] for r in rows]
    fig = go.Figure()
    for key, name, colour in (("active_s", "active", "#2e7d32"), ("idle_s", "idle", "#f0ad4e"),
                              ("hidden_s", "tab hidden", "#9e9e9e")):
        fig.add_bar(x=studies, y=[r[key] for r in rows], name=name, marker_color=colour,
                    hovertemplate="%{x}: %{y:.1f} s " + name + "<extra></extra>")
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="seconds")
    if not rows:
        fig.add_annotation(text="No signed cases yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    _layout(fig, "Your reading time per case", 320)
    fig.update_layout(showlegend=True, legend=dict(orientation="h", y=-0.25))
    return fig
