"""Obuchowski-Rockette (OR) analysis of a reader-averaged figure of merit, with Hillis' denominator degrees
of freedom (Hillis 2007, Stat Med 26:596; Hillis, Obuchowski & Berbaum 2008), for random readers and cases.

Input: scores[arm, reader, case]. The figure of merit (FOM) of one arm and reader is computed over the cases
(default: the mean, e.g. sensitivity for injected errors from 0/1 detections; ``fom=auc_fom`` for AUC from
confidence ratings). The error covariances Cov1 (same reader, other arm), Cov2 (same arm, other reader) and
Cov3 (both differ) are estimated by jackknifing cases. Test of equal arm FOMs:
    F = MS(T) / (MS(T*R) + r * max(Cov2 - Cov3, 0)),
    ddf = (MS(T*R) + r * max(Cov2 - Cov3, 0))^2 / (MS(T*R)^2 / ((t-1)(r-1))).
No Python package implements this; it is validated here by simulation (type I error under the null).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import stats


def mean_fom(scores: np.ndarray) -> np.ndarray:
    return scores.mean(axis=-1)


def jackknife_mean(scores: np.ndarray) -> np.ndarray:
    """FOMs with each case left out, for the mean FOM (closed form): [..., case]."""
    c = scores.shape[-1]
    return (scores.sum(axis=-1, keepdims=True) - scores) / (c - 1)


def auc_fom(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Wilcoxon AUC over the cases (truth: 1 = abnormal), ties count one half."""
    pos, neg = scores[..., truth == 1], scores[..., truth == 0]
    diff = pos[..., :, None] - neg[..., None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-1, -2))


def jackknife(scores: np.ndarray, fom: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    c = scores.shape[-1]
    return np.stack([fom(np.delete(scores, k, axis=-1)) for k in range(c)], axis=-1)


def or_analysis(scores: np.ndarray, arms: list[str] | None = None,
                fom: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """scores[arm, reader, case] -> FOMs, covariances, F, ddf, p and the pairwise arm differences with 95 % CI."""
    scores = np.asarray(scores, dtype=float)
    t, r, c = scores.shape
    if t < 2 or r < 2 or c < 2:
        raise ValueError(f"an Obuchowski-Rockette test needs >= 2 arms, readers and cases (got {t}, {r}, {c})")
    theta = fom(scores) if fom else mean_fom(scores)
    pseudo = jackknife(scores, fom) if fom else jackknife_mean(scores)
    cov1, cov2, cov3, var = _covariances(pseudo)
    ms_t = r * ((theta.mean(axis=1) - theta.mean()) ** 2).sum() / (t - 1)
    resid = theta - theta.mean(axis=1, keepdims=True) - theta.mean(axis=0, keepdims=True) + theta.mean()
    ms_tr = (resid ** 2).sum() / ((t - 1) * (r - 1))
    denominator = ms_tr + r * max(cov2 - cov3, 0.0)
    f_value, ddf, p = _f_test(ms_t, ms_tr, denominator, t, r)
    arms = list(arms) if arms else [str(i) for i in range(t)]
    half_width = stats.t.ppf(0.975, ddf) * np.sqrt(2.0 / r * denominator) if np.isfinite(ddf) else float("nan")
    reader_mean = theta.mean(axis=1)
    pairs = [{"arms": [arms[i], arms[j]], "difference": float(reader_mean[i] - reader_mean[j]),
              "ci95": [float(reader_mean[i] - reader_mean[j] - half_width),
                       float(reader_mean[i] - reader_mean[j] + half_width)]}
             for i in range(t) for j in range(i + 1, t)]
    return {"fom": {arm: float(v) for arm, v in zip(arms, reader_mean)},
            "fom_per_reader": {arm: [float(v) for v in row] for arm, row in zip(arms, theta)},
            "cov1": cov1, "cov2": cov2, "cov3": cov3, "var": var, "ms_t": float(ms_t), "ms_tr": float(ms_tr),
            "f": f_value, "df": [t - 1, ddf], "p": p, "differences": pairs, "readers": r, "cases": c}


def _covariances(pseudo: np.ndarray) -> tuple[float, float, float, float]:
    """Jackknife covariance matrix of the (arm, reader) FOMs, averaged within the OR covariance classes."""
    t, r, c = pseudo.shape
    flat = pseudo.reshape(t * r, c)
    centred = flat - flat.mean(axis=1, keepdims=True)
    cov = (c - 1) / c * centred @ centred.T
    arm = np.repeat(np.arange(t), r)
    reader = np.tile(np.arange(r), t)
    same_arm, same_reader = arm[:, None] == arm[None, :], reader[:, None] == reader[None, :]

    def mean_of(mask: np.ndarray) -> float:
        return float(cov[mask].mean()) if mask.any() else 0.0
    return (mean_of(~same_arm & same_reader), mean_of(same_arm & ~same_reader), mean_of(~same_arm & ~same_reader),
            mean_of(same_arm & same_reader))


def _f_test(ms_t: float, ms_tr: float, denominator: float, t: int, r: int) -> tuple[float, float, float]:
    if ms_t == 0:
        return 0.0, float("nan"), 1.0  # identical reader-averaged arms
    if denominator <= 0:
        return float("inf"), float("inf"), 0.0
    f_value = ms_t / denominator
    ddf = denominator ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1))) if ms_tr > 0 else float("inf")
    p = float(stats.f.sf(f_value, t - 1, ddf)) if np.isfinite(ddf) else float(stats.chi2.sf(f_value * (t - 1), t - 1))
    return float(f_value), float(ddf), p
