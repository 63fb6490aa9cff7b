"""Reader-study statistics: the mixed model's CI covers a known arm effect, the Obuchowski-Rockette test holds
its size under the null and finds a real difference, hand-computed CIs, too-few-observations refusal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiment_support import ARMS, Truth, simulated_table
from training.experiments.analysis import (TooFewObservations, analyze_table, signed_reads, time_model, wilson)
from training.experiments.obuchowski_rockette import auc_fom, jackknife, jackknife_mean, mean_fom, or_analysis


def test_time_model_ci_covers_the_true_draft_effect_in_at_least_90_percent_of_50_studies():
    truth = Truth()
    covered, estimates = 0, []
    for seed in range(50):
        effect = time_model(signed_reads(simulated_table(truth, seed)), ARMS)["effects"]["draft"]
        low, high = effect["ci95"]
        covered += low <= truth.ratio["draft"] <= high
        estimates.append(effect["log_ratio"])
    assert covered >= 45
    assert abs(np.mean(estimates) - math.log(truth.ratio["draft"])) < 0.02  # unbiased on the log scale


def _null_detections(rng, arms=2, readers=4, cases=40, effect=0.0):
    """Binary detections with case difficulty, reader skill and reader x arm / case x arm variation."""
    case = rng.normal(0, 1.0, cases)
    reader = rng.normal(0, 0.5, readers)
    eta = (0.3 + effect * np.arange(arms)[:, None, None] + reader[None, :, None] + case[None, None, :]
           + rng.normal(0, 0.3, (arms, readers))[:, :, None] + rng.normal(0, 0.5, (arms, cases))[:, None, :])
    return (rng.random((arms, readers, cases)) < 1 / (1 + np.exp(-eta))).astype(float)


def test_obuchowski_rockette_type_one_error_is_near_five_percent_under_the_null():
    rng = np.random.default_rng(2026)
    p = np.array([or_analysis(_null_detections(rng))["p"] for _ in range(2000)])
    assert 0.03 <= np.mean(p < 0.05) <= 0.07


def test_obuchowski_rockette_finds_a_real_difference_and_its_ci_covers_it():
    rng = np.random.default_rng(7)
    results = [or_analysis(_null_detections(rng, readers=5, cases=60, effect=1.2), ["a", "b"]) for _ in range(200)]
    assert np.mean([r["p"] < 0.05 for r in results]) > 0.8
    assert all(r["differences"][0]["difference"] < 0 for r in results[:20])  # b detects more: a - b < 0


def test_obuchowski_rockette_by_hand_on_a_tiny_table():
    scores = np.array([[[1, 0, 1, 1], [1, 1, 0, 1]], [[1, 1, 1, 1], [1, 1, 1, 0]]], dtype=float)
    np.testing.assert_allclose(jackknife_mean(scores), jackknife(scores, mean_fom))
    result = or_analysis(scores, ["a", "b"])
    theta = scores.mean(axis=2)  # [[0.75, 0.75], [1.0, 0.75]]
    assert result["fom"] == {"a": 0.75, "b": 0.875}
    ms_t = 2 * ((theta.mean(axis=1) - theta.mean()) ** 2).sum()
    resid = theta - theta.mean(axis=1, keepdims=True) - theta.mean(axis=0, keepdims=True) + theta.mean()
    assert result["ms_t"] == pytest.approx(ms_t) and result["ms_tr"] == pytest.approx((resid ** 2).sum())
    identical = or_analysis(np.stack([scores[0], scores[0]]))
    assert identical["f"] == 0.0 and identical["p"] == pytest.approx(1.0)


def test_auc_figure_of_merit_matches_the_wilcoxon_statistic():
    truth = np.array([1, 1, 0, 0, 0])
    ratings = np.array([[[5, 3, 3, 1, 2]]], dtype=float)
    assert auc_fom(ratings, truth)[0, 0] == pytest.approx((3 + 2.5) / 6)


def test_wilson_interval_by_hand():
    low, high = wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


def test_full_analysis_of_a_simulated_study_has_every_part():
    result = analyze_table(simulated_table(Truth(), 3), ARMS)
    assert set(result["time"]["effects"]) == {"draft", "draft_trajectory"}
    detection = {row["arm"]: row for row in result["detection"]["per_arm"]}
    assert set(detection) == {"draft", "draft_trajectory"} and detection["draft"]["injected_reads"] == 40
    assert result["detection"]["obuchowski_rockette"]["readers"] == 4
    assert len(result["reader_effects"]) == 8 and "shorter than unaided" in result["summary"]
    rates = {row["arm"]: row["acceptance_rate"] for row in result["arms"]}
    assert rates["draft"] == pytest.approx(0.75)  # 3 of 4 decided draft sentences accepted


def test_too_few_observations_is_one_line():
    table = simulated_table(Truth(), 0)
    table.loc[table["arm"] == "draft", "status"] = "open"
    with pytest.raises(TooFewObservations, match="too few signed reads to analyse: draft 0") as error:
        analyze_table(table, ARMS)
    assert "\n" not in str(error.value)
