"""``gazex experiment analyze``: the analysis as a self-contained HTML report (plotly bundled inline, no
network), the long table as CSV (the format iMRMC and RJafroc read) and every number as JSON."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .analysis import analyze_table, long_table, reference_arm


def analyze_experiment(service, experiment_id: int, out: Path) -> list[Path]:
    """Reads the record, analyses, writes report.html, long_table.csv and analysis.json under ``out``."""
    from gazex_core.labeler import CHEXPERT_OBSERVATIONS, report_labels

    info = service.get_experiment(experiment_id)
    table = long_table(service.experiment_table(experiment_id))
    result = analyze_table(table, info["arms"], labels_of=report_labels, label_names=CHEXPERT_OBSERVATIONS)
    result["experiment"] = {k: info[k] for k in ("id", "name", "design", "arms", "washout_days", "seed", "status")}
    result["questionnaires"] = _questionnaire_scores(service.questionnaire_responses(experiment_id))
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.html", out / "long_table.csv", out / "analysis.json"]
    paths[0].write_text(render_html(result, table), encoding="utf-8")
    table.drop(columns=["final_report"]).to_csv(paths[1], index=False)
    paths[2].write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return paths


def _questionnaire_scores(responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    frame = pd.DataFrame(responses)
    if frame.empty or frame["score"].isna().all():
        return []
    scored = frame[frame["score"].notna()]
    return [{"instrument": instrument, "n": int(len(group)), "mean": float(group["score"].mean()),
             "sd": float(group["score"].std(ddof=1)) if len(group) > 1 else None}
            for instrument, group in scored.groupby("instrument")]


def render_html(result: dict[str, Any], table: pd.DataFrame) -> str:
    experiment = result.get("experiment", {"name": "experiment", "arms": sorted(table["arm"].unique())})
    figures = [time_figure(table, experiment["arms"]), forest_figure(result), detection_figure(result)]
    body = "\n".join(f.to_html(full_html=False, include_plotlyjs=False) for f in figures if f is not None)
    title = html.escape(f"Experiment {experiment.get('id', '')} — {experiment['name']}")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}.summary{{background:#f6f8fa;padding:1em}}</style>
<script>{get_plotlyjs()}</script></head><body>
<h1>{title}</h1>
<p class="summary" id="summary">{html.escape(result['summary'])}</p>
<h2>Time per case</h2><p>Mixed model: <code>{html.escape(result['time']['formula'])}</code> on log active time
({result['time']['n']} signed reads).</p>
{_table(_effect_rows(result), ["arm vs " + result['time']['reference'], "time ratio", "95 % CI", "p"])}
<h2>Per arm</h2>
{_table(_arm_rows(result), ["arm", "reads", "median s", "edits / report", "acceptance", "deletion", "significant errors / report"])}
<h2>Injected errors</h2>
{_table(_detection_rows(result), ["arm", "detected", "rate", "95 % CI"])}
{_or_text(result)}
<h2>Agreement between readers (Fleiss' κ on final labels)</h2>
{_table(_kappa_rows(result), ["arm", "label", "κ", "prevalence", "cases"], "(no label was both present and absent "
        "among the final reports of cases every reader read in one arm)")}
{_questionnaire_html(result)}
{body}
<p>Files: <code>long_table.csv</code> (reader, case, arm, period, outcomes; for iMRMC / RJafroc),
<code>analysis.json</code> (every number above).</p>
</body></html>"""


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(rows: list[list[Any]], header: list[str], empty: str = "(no data)") -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _effect_rows(result):
    return [[arm, e["ratio"], f"{e['ci95'][0]:.2f}–{e['ci95'][1]:.2f}", f"{e['p']:.3g}"]
            for arm, e in result["time"]["effects"].items()]


def _arm_rows(result):
    return [[r["arm"], r["reads"], r["median_time_s"], r["edits_per_report"], r["acceptance_rate"], r["deletion_rate"],
             r["significant_errors_per_report"]] for r in result["arms"]]


def _detection_rows(result):
    return [[r["arm"], f"{r['detected']}/{r['injected_reads']}", r["rate"], f"{r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}"]
            for r in result["detection"]["per_arm"]]


def _kappa_rows(result):
    return [[r["arm"], r["label"], r["kappa"], r["prevalence"], r["cases"]] for r in result["agreement"]
            if r["kappa"] is not None]


def _or_text(result) -> str:
    test = result["detection"].get("obuchowski_rockette")
    if not test:
        return "<p>Obuchowski–Rockette test: needs injected errors read by ≥ 2 readers in ≥ 2 AI arms.</p>"
    diffs = "; ".join(f"{d['arms'][0]} − {d['arms'][1]}: {d['difference']:+.2f} "
                      f"(95 % CI {d['ci95'][0]:+.2f} to {d['ci95'][1]:+.2f})" for d in test["differences"])
    return (f"<p>Obuchowski–Rockette (reader-averaged detection, random readers and cases, Hillis df): "
            f"F = {test['f']:.2f}, df = {test['df'][0]}, {test['df'][1]:.1f}, p = {test['p']:.3g}. {html.escape(diffs)}</p>")


def _questionnaire_html(result) -> str:
    rows = [[q["instrument"], q["n"], q["mean"], q["sd"]] for q in result.get("questionnaires", [])]
    return "<h2>Questionnaires</h2>" + _table(rows, ["instrument", "n", "mean score", "sd"]) if rows else ""


def time_figure(table: pd.DataFrame, arms: list[str]) -> go.Figure:
    done = table[table["status"] == "signed"]
    fig = go.Figure()
    for arm in arms:
        fig.add_trace(go.Box(y=done.loc[done["arm"] == arm, "time_s"], name=arm, boxpoints="all", jitter=0.4))
    fig.update_layout(title="Active time per case by arm", yaxis_title="seconds (log scale)", yaxis_type="log",
                      template="plotly_white", height=380, showlegend=False)
    return fig


def forest_figure(result: dict[str, Any]) -> go.Figure | None:
    rows = result["reader_effects"]
    if not rows:
        return None
    fig = go.Figure()
    for arm in sorted({r["arm"] for r in rows}):
        mine = [r for r in rows if r["arm"] == arm]
        pooled = result["time"]["effects"].get(arm)
        labels = [r["reader"] for r in mine] + (["all readers (model)"] if pooled else [])
        ratios = [r["ratio"] for r in mine] + ([pooled["ratio"]] if pooled else [])
        lows = [r["ci95"][0] for r in mine] + ([pooled["ci95"][0]] if pooled else [])
        highs = [r["ci95"][1] for r in mine] + ([pooled["ci95"][1]] if pooled else [])
        fig.add_trace(go.Scatter(x=ratios, y=[f"{label} · {arm}" for label in labels], mode="markers", name=arm,
                                 error_x=dict(type="data", symmetric=False, array=np.subtract(highs, ratios),
                                              arrayminus=np.subtract(ratios, lows))))
    fig.add_vline(x=1.0, line_dash="dash", line_color="grey")
    fig.update_layout(title=f"Time ratio against {result['time']['reference']} per reader (95 % CI)",
                      xaxis_title="time ratio", template="plotly_white", height=120 + 28 * len(rows))
    return fig


def detection_figure(result: dict[str, Any]) -> go.Figure | None:
    rows = result["detection"]["per_arm"]
    if not rows:
        return None
    fig = go.Figure(go.Bar(x=[r["arm"] for r in rows], y=[r["rate"] for r in rows],
                           error_y=dict(type="data", symmetric=False,
                                        array=[r["ci95"][1] - r["rate"] for r in rows],
                                        arrayminus=[r["rate"] - r["ci95"][0] for r in rows])))
    fig.update_layout(title="Injected draft errors detected (Wilson 95 % CI)", yaxis_range=[0, 1],
                      yaxis_title="share detected", template="plotly_white", height=340)
    return fig
