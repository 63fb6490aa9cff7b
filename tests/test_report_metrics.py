"""Report metrics (pycocoevalcap + the labeler's clinical efficacy) against hand-computed values."""

from __future__ import annotations

import math

import pytest

from training.report_metrics import clinical_efficacy, nlg_metrics, tokens


def test_tokens_keep_decimals_and_split_punctuation():
    assert tokens("A 1.5 cm nodule, right-sided.") == "a 1.5 cm nodule , right-sided ."


def test_bleu_rouge_meteor_cider_by_hand():
    metrics = nlg_metrics(["a b c d"], ["a b x"])
    brevity = math.exp(1 - 4 / 3)
    assert metrics["bleu1"] == pytest.approx(2 / 3 * brevity, rel=1e-6)
    assert metrics["bleu2"] == pytest.approx(math.sqrt(2 / 3 * 1 / 2) * brevity, rel=1e-6)
    precision, recall, beta = 2 / 3, 2 / 4, 1.2  # ROUGE-L: LCS "a b"
    assert metrics["rouge_l"] == pytest.approx((1 + beta ** 2) * precision * recall / (recall + beta ** 2 * precision))
    same = nlg_metrics(["no pleural effusion ."], ["no pleural effusion ."])
    assert same["bleu4"] == pytest.approx(1.0) and same["rouge_l"] == pytest.approx(1.0)
    assert same["meteor"] > 0.9 > metrics["meteor"] > 0
    assert metrics["cider"] >= 0


def test_clinical_efficacy_micro_and_macro_by_hand():
    references = ["Small right pleural effusion. Mild cardiomegaly.", "No acute findings. Lungs are clear."]
    hypotheses = ["Small right pleural effusion.", "Right pneumothorax."]
    result = clinical_efficacy(references, hypotheses)
    # truth {Effusion, Cardiomegaly}, {No Finding}; guess {Effusion}, {Pneumothorax}
    # tp: Effusion; fp: Pneumothorax; fn: Cardiomegaly, No Finding (report 2)
    assert result["micro"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 3, "f1": 2 / 5})
    per = result["per_label"]
    assert per["Pleural Effusion"]["f1"] == 1.0 and per["Cardiomegaly"]["recall"] == 0.0
    assert result["macro"]["f1"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)  # over the labels present in truth


def test_unpaired_reports_are_refused():
    with pytest.raises(ValueError, match="need paired, non-empty reports"):
        nlg_metrics(["a"], [])
