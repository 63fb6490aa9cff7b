"""Statistics of a reader study, computed from the long table (one row per reader x case x arm x period).

- time per case: a linear mixed model on log active time with crossed reader and case random effects
  (statsmodels MixedLM, one all-covering group with two variance components) and arm, period and sequence
  fixed effects; arm effects are reported as time ratios exp(beta) with 95 % Wald CIs;
- edits per report, sentence acceptance and deletion rates per arm;
- injected-error detection per arm with Wilson 95 % CIs, and an Obuchowski-Rockette test on it;
- per-reader arm effects (for the forest plot) and Fleiss' kappa between readers on the final labels.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from .obuchowski_rockette import or_analysis

MIN_READS_PER_ARM = 5
REFERENCE_ARMS = ("unaided", "no_ai")
LONG_COLUMNS = ["reader", "case", "study_uid", "arm", "period", "position", "sequence", "status", "time_s",
                "signoff_decision", "draft_sentences", "sentences_accepted", "sentences_accepted_at_signoff",
                "sentences_edited", "sentences_deleted",
                "sentences_added", "edits", "significant_errors", "boxes_moved", "boxes_resized", "boxes_rejected",
                "boxes_added", "injected_kind", "injected_detected", "final_report"]


class TooFewObservations(ValueError):
    """The table cannot support the analysis (one line says what is missing)."""


def long_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The record's experiment rows -> the long table (signed and unsigned reads; time in seconds)."""
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    table = table.rename(columns={"study_id": "case"})
    table["time_s"] = pd.to_numeric(table.get("active_ms"), errors="coerce") / 1000.0
    for column in LONG_COLUMNS:
        if column not in table:
            table[column] = None
    counts = ["sentences_edited", "sentences_deleted", "sentences_added"]
    table["edits"] = table[counts].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=1)
    table["sequence"] = _sequences(table)
    return table[LONG_COLUMNS].sort_values(["reader", "period", "position"]).reset_index(drop=True)


def _sequences(table: pd.DataFrame) -> pd.Series:
    """The order of arms in which a reader met a case, e.g. 'draft>unaided' (the arm itself in one period)."""
    ordered = table.sort_values("period")
    sequence = ordered.groupby(["reader", "case"])["arm"].agg(">".join)
    return pd.Series([sequence[(r, c)] for r, c in zip(table["reader"], table["case"])], index=table.index)


def reference_arm(arms: list[str]) -> str:
    return next((a for a in arms if a in REFERENCE_ARMS), arms[0])


def signed_reads(table: pd.DataFrame) -> pd.DataFrame:
    done = table[(table["status"] == "signed") & (pd.to_numeric(table["time_s"], errors="coerce") > 0)].copy()
    done["log_time"] = np.log(done["time_s"].astype(float))
    return done


def check_enough(done: pd.DataFrame, arms: list[str]) -> None:
    counts = done["arm"].value_counts()
    short = [f"{arm} {int(counts.get(arm, 0))}" for arm in arms if counts.get(arm, 0) < MIN_READS_PER_ARM]
    if short:
        raise TooFewObservations(f"too few signed reads to analyse: {', '.join(short)} "
                                 f"(every arm needs at least {MIN_READS_PER_ARM})")
    if done["reader"].nunique() < 2 or done["case"].nunique() < 2:
        raise TooFewObservations("too few signed reads to analyse: the time model needs at least 2 readers "
                                 "and 2 cases")


def time_model(done: pd.DataFrame, arms: list[str]) -> dict[str, Any]:
    """Mixed model on log time: arm (+ period, sequence when they vary) fixed; reader and case crossed random."""
    import statsmodels.formula.api as smf

    reference = reference_arm(arms)
    data = done.assign(one=1, arm=pd.Categorical(done["arm"], categories=[reference] + [a for a in arms if a != reference]))
    terms = ["C(arm)"] + [f"C({c})" for c in ("period", "sequence") if data[c].nunique() > 1]
    formula = "log_time ~ " + " + ".join(terms)
    model = smf.mixedlm(formula, data, groups="one", re_formula="0",
                        vc_formula={"reader": "0 + C(reader)", "case": "0 + C(case)"})
    fit = _fit(model)
    effects = {}
    for arm in arms:
        if arm == reference:
            continue
        name = f"C(arm)[T.{arm}]"
        beta, se = float(fit.fe_params[name]), float(fit.bse_fe[name])
        effects[arm] = {"log_ratio": beta, "se": se, "ratio": math.exp(beta),
                        "ci95": [math.exp(beta - 1.96 * se), math.exp(beta + 1.96 * se)],
                        "p": float(2 * stats.norm.sf(abs(beta / se)))}
    variances = dict(zip(model.exog_vc.names, (float(v) for v in fit.vcomp)))
    return {"formula": formula + " + (1|reader) + (1|case)", "reference": reference, "effects": effects,
            "variance": {"reader": variances.get("reader"), "case": variances.get("case"),
                         "residual": float(fit.scale)},
            "n": int(len(data)), "converged": bool(fit.converged)}


def _fit(model):
    """REML fit; Powell first (same optimum as L-BFGS here, several times faster), then gradient methods."""
    error: Exception | None = None
    for method in ("powell", "lbfgs", "bfgs"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = model.fit(reml=True, method=method)
        except (np.linalg.LinAlgError, ValueError) as exc:
            error = exc
            continue
        if np.all(np.isfinite(fit.bse_fe)):
            return fit
    raise TooFewObservations(f"the time model could not be fitted ({error or 'no finite standard errors'})")


def arm_summary(done: pd.DataFrame, arms: list[str]) -> list[dict[str, Any]]:
    rows = []
    for arm in arms:
        reads = done[done["arm"] == arm]
        decided = reads[["sentences_accepted", "sentences_accepted_at_signoff", "sentences_edited",
                         "sentences_deleted"]].apply(pd.to_numeric, errors="coerce").fillna(0)
        total = float(decided.to_numpy().sum())  # draft sentences the readers decided on (as shown to them)
        accepted = decided["sentences_accepted"] + decided["sentences_accepted_at_signoff"]
        rows.append({"arm": arm, "reads": int(len(reads)),
                     "median_time_s": float(reads["time_s"].median()) if len(reads) else None,
                     "geomean_time_s": float(np.exp(reads["log_time"].mean())) if len(reads) else None,
                     "edits_per_report": float(pd.to_numeric(reads["edits"], errors="coerce").mean()) if len(reads) else None,
                     "acceptance_rate": _ratio(accepted, total),
                     "deletion_rate": _ratio(reads["sentences_deleted"], total),
                     "significant_errors_per_report": float(pd.to_numeric(reads["significant_errors"],
                                                                          errors="coerce").fillna(0).mean())
                     if len(reads) else None})
    return rows


def _ratio(counts: pd.Series, total: float) -> float | None:
    return float(pd.to_numeric(counts, errors="coerce").fillna(0).sum() / total) if total > 0 else None


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def detection(done: pd.DataFrame, arms: list[str]) -> dict[str, Any]:
    """Injected-error detection per AI arm (Wilson CI), by kind, and the OR test across the AI arms."""
    injected = done[done["injected_kind"].notna() & done["injected_detected"].notna()]
    per_arm = []
    for arm in arms:
        reads = injected[injected["arm"] == arm]
        if reads.empty:
            continue
        k, n = int(reads["injected_detected"].astype(bool).sum()), int(len(reads))
        per_arm.append({"arm": arm, "detected": k, "injected_reads": n, "rate": k / n, "ci95": list(wilson(k, n)),
                        "by_kind": {kind: float(g["injected_detected"].astype(bool).mean())
                                    for kind, g in reads.groupby("injected_kind")}})
    result: dict[str, Any] = {"per_arm": per_arm, "obuchowski_rockette": None}
    ai_arms = [row["arm"] for row in per_arm]
    if len(ai_arms) >= 2 and injected["reader"].nunique() >= 2:
        result["obuchowski_rockette"] = or_analysis(detection_matrix(injected, ai_arms), ai_arms)
    return result


def detection_matrix(injected: pd.DataFrame, arms: list[str]) -> np.ndarray:
    """arms x readers x cases of 0/1 detections, over the cases every reader read in every arm."""
    readers = sorted(injected["reader"].unique())
    complete = injected.groupby("case").apply(lambda g: len(set(zip(g["reader"], g["arm"]))), include_groups=False)
    cases = sorted(complete[complete == len(readers) * len(arms)].index)
    if len(cases) < 2:
        raise TooFewObservations("too few injected-error cases read by every reader in every AI arm for the "
                                 "Obuchowski-Rockette test (need at least 2)")
    pivot = injected[injected["case"].isin(cases)].pivot_table(index=["arm", "reader"], columns="case",
                                                              values="injected_detected", aggfunc="first")
    return np.array([[pivot.loc[(arm, reader), cases].astype(float).to_numpy() for reader in readers] for arm in arms])


def reader_effects(done: pd.DataFrame, arms: list[str]) -> list[dict[str, Any]]:
    """Per reader and AI arm: the time ratio against the reference arm (OLS on log time, case and period adjusted)."""
    import statsmodels.formula.api as smf

    reference = reference_arm(arms)
    rows = []
    for reader, reads in done.groupby("reader"):
        reads = reads.assign(arm=pd.Categorical(reads["arm"], categories=[reference] + [a for a in arms if a != reference]))
        terms = ["C(arm)"] + (["C(period)"] if reads["period"].nunique() > 1 else [])
        if reads.groupby("case").size().max() > 1:
            terms.append("C(case)")
        try:
            fit = smf.ols("log_time ~ " + " + ".join(terms), reads).fit()
        except ValueError:
            continue
        for arm in arms:
            name = f"C(arm)[T.{arm}]"
            if arm == reference or name not in fit.params or not np.isfinite(fit.bse[name]):
                continue
            beta, se = float(fit.params[name]), float(fit.bse[name])
            half = stats.t.ppf(0.975, max(fit.df_resid, 1)) * se
            rows.append({"reader": reader, "arm": arm, "ratio": math.exp(beta),
                         "ci95": [math.exp(beta - half), math.exp(beta + half)], "n": int(len(reads))})
    return rows


def label_agreement(done: pd.DataFrame, arms: list[str], labels_of: Callable[[str], set[str]],
                    label_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Fleiss' kappa per arm and label on the final reports of cases read by every reader in that arm."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    rows = []
    for arm in arms:
        reads = done[(done["arm"] == arm) & done["final_report"].notna()]
        n_readers = reads["reader"].nunique()
        if n_readers < 2:
            continue
        full = reads.groupby("case").filter(lambda g: g["reader"].nunique() == n_readers)
        if full["case"].nunique() < 2:
            continue
        labels = {(r, c): labels_of(text) for r, c, text in zip(full["reader"], full["case"], full["final_report"])}
        cases = sorted(full["case"].unique())
        for label in label_names:
            positive = np.array([[sum(label in labels[(r, c)] for r in full["reader"].unique())] for c in cases])
            table = np.hstack([n_readers - positive, positive])
            prevalence = positive.sum() / (n_readers * len(cases))
            kappa = float(fleiss_kappa(table)) if 0 < prevalence < 1 else None
            rows.append({"arm": arm, "label": label, "kappa": kappa, "prevalence": float(prevalence),
                         "cases": len(cases), "readers": int(n_readers)})
    return rows


def plain_summary(result: dict[str, Any]) -> str:
    """A few sentences a study lead can paste into an e-mail."""
    model = result["time"]
    lines = [f"{result['reads']['signed']} of {result['reads']['assigned']} assigned reads are signed "
             f"({result['reads']['readers']} readers, {result['reads']['cases']} cases)."]
    for arm, effect in model["effects"].items():
        change = (effect["ratio"] - 1) * 100
        low, high = ((x - 1) * 100 for x in effect["ci95"])
        direction = "shorter" if change < 0 else "longer"
        significant = "a difference unlikely to be chance" if effect["p"] < 0.05 else "not a clear difference"
        lines.append(f"With the {arm.replace('_', ' + ')} arm, reading time per case was {abs(change):.0f} % "
                     f"{direction} than {model['reference']} (95 % CI {low:+.0f} % to {high:+.0f} %, "
                     f"{p_text(effect['p'])}): {significant}.")
    for row in result["detection"]["per_arm"]:
        lines.append(f"In the {row['arm'].replace('_', ' + ')} arm readers caught {row['detected']} of "
                     f"{row['injected_reads']} deliberately injected draft errors ({row['rate']:.0%}, "
                     f"95 % CI {row['ci95'][0]:.0%}-{row['ci95'][1]:.0%}).")
    test = result["detection"].get("obuchowski_rockette")
    if test:
        lines.append(f"Across readers and cases, the difference in detection between arms has {p_text(test['p'])} "
                     f"(Obuchowski-Rockette, Hillis degrees of freedom).")
    return " ".join(lines)


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def analyze_table(table: pd.DataFrame, arms: list[str], *, labels_of: Callable[[str], set[str]] | None = None,
                  label_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-able data."""
    done = signed_reads(table)
    check_enough(done, arms)
    result: dict[str, Any] = {
        "reads": {"assigned": int(len(table)), "signed": int(len(done)), "readers": int(done["reader"].nunique()),
                  "cases": int(done["case"].nunique())},
        "time": time_model(done, arms), "arms": arm_summary(done, arms), "detection": detection(done, arms),
        "reader_effects": reader_effects(done, arms),
        "agreement": label_agreement(done, arms, labels_of, label_names) if labels_of else []}
    result["summary"] = plain_summary(result)
    return result
