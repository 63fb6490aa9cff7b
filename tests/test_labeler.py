"""The one text-to-label labeler: negation, uncertainty, the No Finding convention, the callers that use it,
and agreement with the manual MeSH terms of the real IU X-Ray reports."""

from __future__ import annotations

import pytest

from gazex_core.labeler import NEGATIVE, POSITIVE, UNCERTAIN, label_report, mentioned, report_labels, sentence_label


@pytest.mark.parametrize("text, expected", [
    ("Small right pleural effusion.", {"Pleural Effusion": POSITIVE}),
    ("No pleural effusion or pneumothorax.", {"Pleural Effusion": NEGATIVE, "Pneumothorax": NEGATIVE}),
    ("There is no focal consolidation, pleural effusion, or pneumothorax.",
     {"Consolidation": NEGATIVE, "Pleural Effusion": NEGATIVE, "Pneumothorax": NEGATIVE}),
    ("Pneumothorax is not seen.", {"Pneumothorax": NEGATIVE}),
    ("Possible left lower lobe pneumonia.", {"Pneumonia": UNCERTAIN}),
    ("Pneumonia cannot be excluded.", {"Pneumonia": UNCERTAIN}),
    ("No effusion but there is a small left pneumothorax.", {"Pleural Effusion": NEGATIVE, "Pneumothorax": POSITIVE}),
    ("Borderline heart size.", {"Cardiomegaly": POSITIVE}),
])
def test_sentence_values(text, expected):
    values = label_report(text)
    assert {k: v for k, v in values.items() if k != "No Finding"} == expected


def test_no_finding_convention_and_report_labels():
    assert label_report("Lungs are clear. Heart size normal.")["No Finding"] == POSITIVE
    assert label_report("Right chest tube. Lungs are clear.")["No Finding"] == POSITIVE  # devices do not count
    assert label_report("Possible small effusion.")["No Finding"] == NEGATIVE
    assert report_labels("Possible small effusion. Mild cardiomegaly.") == {"Cardiomegaly"}
    assert report_labels("Possible small effusion.", uncertain_as_positive=True) == {"Pleural Effusion"}


def test_sentence_label_and_question_subjects():
    assert sentence_label("Trachea is midline.") == (None, True)
    assert sentence_label("No pneumothorax.") == (None, True)
    assert sentence_label("Enlarged heart and a right effusion.") == ("Pleural Effusion", False)
    assert mentioned("Is there a left pleural effusion") == ["Pleural Effusion"]
    assert mentioned("enlarged cardiomediastinum") == ["Enlarged Cardiomediastinum"]


def test_the_three_former_copies_now_use_the_labeler():
    from gazex_core.inference import _label_of_phrase
    from training.data.loaders.reports import sentence_label as loader_label
    from training.finetune.corrections import edited_label, infer_label

    assert loader_label is sentence_label
    assert infer_label("Small left pleural effusion.") == "Pleural Effusion" and infer_label("No effusion.") is None
    assert edited_label("Pleural Effusion", "Moderate left pleural effusion.") == "Pleural Effusion"
    assert edited_label("Pleural Effusion", "No effusion.") is None
    assert _label_of_phrase("a right pneumothorax?") == "Pneumothorax"


def test_agreement_with_mesh_on_the_real_iu_xray_reports():
    from training.labeler_validation import agreement, default_reports, load_pairs

    path = default_reports()
    assert path is not None, "torchxrayvision's NLMCXR_reports.tgz is missing"
    result = agreement(load_pairs(path))
    assert result["reports"] > 3800
    by_label = {row["label"]: row for row in result["classes"]}
    assert by_label["No Finding"]["f1"] > 0.95 and by_label["Cardiomegaly"]["f1"] > 0.9
    # measured 0.772 over all 14 mapped classes (docs/labeler.md); the target of 0.85 is not reached
    assert result["macro_f1"] >= 0.76
