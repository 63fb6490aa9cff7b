"""Report sentences agree with the ground truth, in ABCDEF order, worded from real IU X-Ray sentences."""

from __future__ import annotations

import csv
import re

import pytest

from gazex_core.vocab import CHEXPERT_LABELS, REGIONS
from training.synth.phrases import iu_sentences
from training.synth.report import build_report, report_text
from training.synth.study import STREAM_REPORT, sample_study_findings, study_rng

from synth_support import dataset

# independent of the generator's own keyword tables: how a sentence would rule a label out
RULE_OUT = {
    "Pleural Effusion": r"\b(no|without)\b[^.]*effusion|costophrenic angles are (sharp|clear)",
    "Pneumothorax": r"\b(no|without)\b[^.]*pneumothorax",
    "Consolidation": r"\b(no|without)\b[^.]*(consolidation|airspace)|lungs (are )?clear|clear lungs",
    "Edema": r"\b(no|without)\b[^.]*edema|lungs (are )?clear|clear lungs",
    "Atelectasis": r"\b(no|without)\b[^.]*atelectasis|lungs (are )?clear|clear lungs",
    "Lung Lesion": r"\b(no|without)\b[^.]*(nodule|mass)|lungs (are )?clear|clear lungs",
    "Cardiomegaly": r"heart size (is )?normal|normal heart size|heart (is )?(normal|not enlarged)|cardiac silhouette (is )?(normal|within normal)|cardiomediastinal silhouette (is )?(normal|within normal|unremarkable)|no cardiomegaly",
    "Enlarged Cardiomediastinum": r"mediastin\w* (contours? |silhouette )?(is |are )?(normal|within normal|unremarkable)|normal mediastin",
}
SEVERITY_WORDS = {"Pleural Effusion": ("small", "moderate", "large"), "Pneumothorax": ("small", "moderate", "large")}


def reports(n: int = 400, seed: int = 5):
    for i in range(n):
        _, findings = sample_study_findings(seed, i, 128)
        yield findings, build_report(findings, study_rng(seed, i, STREAM_REPORT))


@pytest.fixture(scope="module")
def sample():
    return list(reports())


def test_every_positive_finding_is_stated_with_its_side(sample):
    checked = 0
    for findings, report in sample:
        stated = report.section("findings")
        for i, f in enumerate(findings):
            mine = [s for s in stated if s.finding_index == i]
            assert len(mine) == 1 and mine[0].label == f.label
            text = mine[0].text.lower()
            if f.laterality in ("left", "right") and f.kind != "support_device":
                other = "left" if f.laterality == "right" else "right"
                assert f.laterality in text and not re.search(rf"\b{other}\b", text), text
                checked += 1
            if f.label in SEVERITY_WORDS:
                assert f.severity in text, text
    assert checked > 100


def test_no_sentence_states_an_absent_finding(sample):
    for findings, report in sample:
        positives = {f.label for f in findings}
        for s in report.sentences:
            assert s.label is None or s.label in positives
            assert s.label is None or not s.is_negative


def test_negatives_never_rule_out_a_present_finding(sample):
    for findings, report in sample:
        positives = {f.label for f in findings}
        for s in report.sentences:
            if not s.is_negative:
                continue
            assert not (s.negated & positives), (s.text, positives)
            for label in positives & RULE_OUT.keys():
                assert not re.search(RULE_OUT[label], s.text.lower()), (s.text, label)


def test_absent_effusion_pneumothorax_consolidation_are_ruled_out(sample):
    covered = total = 0
    for findings, report in sample:
        positives = {f.label for f in findings}
        ruled_out = set().union(*(s.negated for s in report.sentences))
        for label in ("Pleural Effusion", "Pneumothorax", "Consolidation"):
            if label not in positives:
                total += 1
                covered += label in ruled_out
    assert covered / total > 0.95


def test_findings_sentences_follow_abcdef_order_then_impression(sample):
    for findings, report in sample:
        order = [REGIONS.index(s.region) for s in report.section("findings")]
        assert order == sorted(order)
        sections = [s.section for s in report.sentences]
        assert sections == sorted(sections, key=lambda x: x != "findings")
        assert report.section("impression")


def test_impression_summarises_positives_or_says_normal(sample):
    for findings, report in sample:
        impression = report.section("impression")
        if findings:
            assert sorted(s.finding_index for s in impression) == list(range(len(findings)))
        else:
            assert len(impression) == 1 and re.search(r"no acute|no active|normal", impression[0].text.lower())


def test_negative_and_normal_sentences_are_real_iu_sentences(sample):
    real = set(iu_sentences())
    for _, report in sample:
        for s in report.sentences:
            if s.is_negative:
                assert s.text in real


def test_report_file_is_mimic_style():
    _, findings = sample_study_findings(5, 3, 128)
    report = build_report(findings, study_rng(5, 3, STREAM_REPORT))
    text = report_text(report)
    heads = [line.strip() for line in text.splitlines() if re.match(r"^ ?[A-Z ()]+:", line)]
    assert text.lstrip().startswith("FINAL REPORT")
    assert [h.split(":")[0] for h in heads] == ["EXAMINATION", "INDICATION", "TECHNIQUE", "COMPARISON", "FINDINGS", "IMPRESSION"]
    assert "CHEST (PA)" in text and all(len(line) <= 79 for line in text.splitlines())
    flat = " ".join(text.split())
    assert all(s.text in flat for s in report.sentences)


def test_report_sentences_csv_matches_labels_and_annotations():
    root = dataset()
    labels = {r["study_id"]: r for r in csv.DictReader(open(root / "metadata.csv"))}
    annotations = list(csv.DictReader(open(root / "annotations.csv")))
    sentences = list(csv.DictReader(open(root / "report_sentences.csv")))
    for study_id, row in labels.items():
        positives = {label for label in CHEXPERT_LABELS if row[label] == "1" and label != "No Finding"}
        stated = {s["label"] for s in sentences if s["study_id"] == study_id and s["label"]}
        assert stated == positives
        boxed = {a["label"] for a in annotations if a["study_id"] == study_id}
        assert boxed == positives
        assert row["is_normal"] == str(int(not positives))
