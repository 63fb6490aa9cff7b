"""Image-blind floors of `gazex evaluate` (training/floors.py): each floor by hand on small cases, and every
metric of a real evaluation run (shipped model, small synthetic set) reported beside its floor."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gazex_core.evidence import Box, EvidenceBundle, EvidenceSentence, TrajectoryPoint
from gazex_core.vocab import CHEXPERT_LABELS
from model_support import dataset, shipped_model
from training.evaluate import DraftScorer, FloorScorer, evaluate, markdown, paired_by_study
from training.floors import below_floor, blank_image, fit_priors, floor_entry, floor_table, metric_paths

LABELS = [k for k in CHEXPERT_LABELS if k != "No Finding"]


def record(findings=(), split="train", sentences=(), readings=()) -> dict:
    labels = [0.0] * len(CHEXPERT_LABELS)
    for f in findings:
        labels[CHEXPERT_LABELS.index(f["label"])] = 1.0
    return {"id": "s", "split": split, "width": 100, "height": 100, "labels": labels, "findings": list(findings),
            "sentences": list(sentences), "readings": list(readings)}


def finding(label, side, box=None, severity=None) -> dict:
    return {"label": label, "box": box, "kind": None, "laterality": side, "location": None, "severity": severity}


def test_label_prevalence_and_majority_from_training_records():
    train = [record([finding("Pleural Effusion", "right")]), record([finding("Pleural Effusion", "left")]),
             record([finding("Cardiomegaly", None)]), record()]
    priors = fit_priors(train)
    assert priors.prevalence["Pleural Effusion"] == 0.5 and priors.prevalence["Cardiomegaly"] == 0.25
    assert priors.prevalence["Edema"] == 0.0
    assert priors.majority_labels() == set()  # 0.5 is not a majority
    assert priors.prevalent_labels() == {"Pleural Effusion", "Cardiomegaly"}


def test_label_floors_by_hand():
    priors = fit_priors([record([finding("Pleural Effusion", "right")]), record([finding("Pleural Effusion", "left")]),
                         record([finding("Pleural Effusion", "left"), finding("Cardiomegaly", None)])])
    # majority: {Effusion} (3/3); prevalence: {Effusion, Cardiomegaly}
    scorer = FloorScorer(priors, LABELS)
    truths = [{"Pleural Effusion"}, {"Cardiomegaly"}, set()]
    for gt in truths:
        scorer.add_labels(gt)
    support = {"Pleural Effusion": 1, "Cardiomegaly": 1}
    out = scorer.baselines(Counter(support), Counter())
    # Effusion called in all 3: tp 1, fp 2 -> F1 2/4; Cardiomegaly never called (majority) -> 0, always (prevalence) -> 2/4
    assert out["label_majority"]["per_label"]["Pleural Effusion"]["f1"] == pytest.approx(0.5)
    assert out["label_majority"]["per_label"]["Cardiomegaly"]["f1"] == 0.0
    assert out["label_majority"]["finding_macro_f1"] == pytest.approx(0.25)
    assert out["label_prevalence"]["finding_macro_f1"] == pytest.approx(0.5)
    assert out["label_prevalence"]["per_label"]["Cardiomegaly"]["precision"] == pytest.approx(1 / 3)
    assert set(out["label_prevalence"]["per_label"]) == {"Pleural Effusion", "Cardiomegaly"}  # labels with support


def corners(box: Box) -> tuple[float, ...]:
    return box.x_min, box.y_min, box.x_max, box.y_max


def test_location_prior_is_the_mean_training_box_of_label_and_side():
    train = [record([finding("Pneumothorax", "left", [0.5, 0.1, 0.9, 0.5])]),
             record([finding("Pneumothorax", "left", [0.7, 0.1, 0.9, 0.3])]),
             record([finding("Pneumothorax", "right", [0.1, 0.1, 0.3, 0.3])])]
    priors = fit_priors(train)
    assert corners(priors.box("Pneumothorax", "left")) == pytest.approx((0.6, 0.1, 0.9, 0.4))
    assert corners(priors.box("Pneumothorax", "bilateral")) == pytest.approx((1.3 / 3, 0.1, 0.7, 1.1 / 3))  # any side
    assert priors.box("Edema", "bilateral") is None
    scorer = FloorScorer(priors, LABELS)
    scorer.add_box(finding("Pneumothorax", "left", [0.6, 0.1, 0.9, 0.2]))  # inside the prior: IoU 0.03 / 0.09
    scorer.add_box(finding("Edema", "bilateral", [0.2, 0.2, 0.8, 0.8]))  # no prior: IoU 0
    sentence = {"label": "Pneumothorax", "gt_box": [0.6, 0.1, 0.9, 0.4], "text": "Left pneumothorax."}
    scorer.add_ground(sentence, "left")
    out = scorer.baselines(Counter(), Counter())["location_prior"]
    assert out["box_iou_mean"] == pytest.approx((1 / 3 + 0.0) / 2)
    assert out["box_acc_at_0.5"] == 0.0
    assert out["ground_iou_mean"] == pytest.approx(1.0) and out["ground_acc_at_0.5"] == 1.0


def test_vqa_floors_always_no_majority_question_prior_and_blank_answer():
    # every training study has one small right effusion: presence / sided questions vary, side is always
    # "right", severity always "small"
    train = [record([finding("Pleural Effusion", "right", severity="small")]) for _ in range(30)]
    priors = fit_priors(train)
    assert priors.kind_majority["side"] == "right" and priors.kind_majority["severity"] == "small"
    assert priors.question_majority["Is there a right pleural effusion?"] == "yes"
    scorer = FloorScorer(priors, LABELS)
    scorer.add_question("sided", "Is there a right pleural effusion?", "no", blank_answer="no")
    scorer.add_question("sided", "Is there a left pneumothorax?", "no", blank_answer="yes")
    scorer.add_question("severity", "How severe is the pleural effusion?", "large", blank_answer="small")
    scorer.add_question("side", "Which side is the pleural effusion on?", "right", blank_answer="left")
    out = scorer.baselines(Counter(), Counter({"sided": 2, "severity": 1, "side": 1}))
    assert out["always_no"]["vqa_by_kind"]["sided"]["accuracy"] == 1.0
    assert out["always_no"]["vqa_by_kind"]["side"]["accuracy"] == 0.0
    assert out["always_no"]["vqa_closed_accuracy"] == pytest.approx(2 / 4)
    assert out["question_majority"]["vqa_by_kind"]["sided"]["accuracy"] == pytest.approx(1 / 2)  # said "yes" to the first
    assert out["kind_majority"]["vqa_by_kind"]["side"]["accuracy"] == 1.0
    assert out["kind_majority"]["vqa_by_kind"]["severity"]["accuracy"] == 0.0
    assert out["blank_image"]["vqa_closed_accuracy"] == pytest.approx(1 / 4)


def test_identity_order_floor():
    scorer = FloorScorer(fit_priors([record()]), LABELS)
    scorer.add_order([0, 1, 2])
    scorer.add_order([2, 1, 0])
    out = scorer.baselines(Counter(), Counter())["identity_order"]
    assert out == {"ordering_task_exact": 0.5, "ordering_task_kendall_tau": 0.0}


def _sentence(i, region, label=None, trajectory=(), box=None, section="findings"):
    return EvidenceSentence(id=f"s{i}", section=section, text=f"sentence {i} {region}.", region=region, label=label,
                            observation_box=box, trajectory=[TrajectoryPoint(x, y, 100.0) for x, y in trajectory])


def test_reused_draft_trajectory_coverage_and_clue_distance_by_hand():
    # one fixed draft: trajectories for airway (at 0.5, 0.1) and cardiac, none for breathing
    draft = EvidenceBundle("m", "v", 100, 100, sentences=[
        _sentence(0, "airway", trajectory=[(0.5, 0.1)]), _sentence(1, "breathing"),
        _sentence(2, "cardiac", trajectory=[(0.5, 0.5)])])
    gt_sentences = [{"section": "findings", "region": r, "label": None, "text": "x", "gt_box": None}
                    for r in ("airway", "breathing", "cardiac")]
    clue = lambda x, y: {"clues": [[x, y, 0.1, 0.1, 200.0]], "obs": None}  # noqa: E731
    study_a = record(sentences=gt_sentences, readings=[{"reader": "R1", "frames": [],
                                                        "sentences": [clue(0.5, 0.2), clue(0.3, 0.3), None]}])
    study_b = record(sentences=gt_sentences, readings=[{"reader": "R2", "frames": [],
                                                        "sentences": [None, None, clue(0.8, 0.9)]}])
    scorer = DraftScorer(LABELS)
    scorer.add(study_a, draft)
    scorer.add(study_b, draft)
    assert scorer.coverage == [0.5, 1.0]  # A inspected airway + breathing (draft: airway only); B cardiac
    assert scorer.clue_dist == pytest.approx([0.1, 0.5])  # airway 0.1 from A's clue; cardiac 0.5 from B's
    assert scorer.by_study == {"trajectory_region_coverage": [0.5, 1.0],
                               "trajectory_clue_distance_mean": pytest.approx([0.1, 0.5])}
    assert scorer.hyps[0] == scorer.hyps[1] == "sentence 0 airway. sentence 1 breathing. sentence 2 cardiac."


def test_a_metric_paired_by_study_against_its_floor():
    model = [0.05, 0.06, None, 0.10, 0.02, 0.07, 0.08, 0.09]
    floor = [0.10, 0.09, 0.30, 0.10, 0.08, 0.05, 0.12, 0.15]  # study 3 has no model value; study 4 ties
    distance = paired_by_study(model, floor, lower_is_better=True)
    assert distance["n_studies"] == 7 and distance["model_better"] == 5 and distance["floor_better"] == 1
    assert distance["median_difference"] == pytest.approx(-0.04)
    assert 0.02 < distance["wilcoxon_p"] < 0.2  # 6 non-zero pairs, one against: suggestive, not conclusive
    coverage = paired_by_study(model, floor)  # the same numbers read as higher-is-better
    assert coverage["model_better"] == 1 and coverage["floor_better"] == 5
    assert coverage["wilcoxon_p"] == distance["wilcoxon_p"]
    clear = paired_by_study([0.05] * 30, [0.08 + 0.001 * i for i in range(30)], lower_is_better=True)
    assert clear["model_better"] == 30 and clear["wilcoxon_p"] < 1e-6
    assert paired_by_study([None], [0.1]) == {"n_studies": 0}


def test_floor_entry_margin_and_direction():
    up = floor_entry("box_iou_mean", 0.6, {"location_prior": 0.4, "blank_draft": 0.1})
    assert up["floor"] == 0.4 and up["floor_baseline"] == "location_prior"
    assert up["margin"] == pytest.approx(0.2) and up["beats_floor"] is True
    down = floor_entry("trajectory_clue_distance_mean", 0.074, {"blank_draft": 0.088})
    assert down["margin"] == pytest.approx(-0.014) and down["beats_floor"] is True and not down["higher_is_better"]
    tie = floor_entry("vqa_by_kind.sided.accuracy", 0.856, {"always_no": 0.856, "kind_majority": 0.856})
    assert tie["beats_floor"] is False


def test_floor_table_refuses_a_metric_without_a_floor():
    metrics = {"n_studies": 3, "a": 0.5, "per_label": {"X": {"support": 2, "f1": 0.7}, "Y": {"support": 0, "f1": 0.0}},
               "box_acc_at_0.5": 0.9}
    assert sorted(metric_paths(metrics)) == ["a", "box_acc_at_0.5", "per_label.X.f1"]
    table = floor_table(metrics, {"b1": {"a": 0.6, "per_label": {"X": {"f1": 0.2}}, "box_acc_at_0.5": 0.1}})
    assert below_floor(table) == ["a"]
    with pytest.raises(KeyError, match="box_acc_at_0.5"):
        floor_table(metrics, {"b1": {"a": 0.6, "per_label": {"X": {"f1": 0.2}}}})


def test_blank_image_draft_comes_from_the_model():
    bundle = shipped_model().analyze(blank_image(), draft_out_of_scope=True)  # the input check flags a black image
    assert not bundle.input_check.passed
    assert bundle.sentences and all(s.text for s in bundle.sentences)


def test_every_metric_of_an_evaluation_has_its_floor(tmp_path):
    data = dataset()  # 8 training studies (the priors), 4 validation studies
    m = evaluate(None, str(data), str(tmp_path / "eval"), cache=str(tmp_path / "cache"), split="val", limit=2,
                 threads=1)
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    paths = list(metric_paths(saved))
    assert {"finding_macro_f1", "box_iou_mean", "vqa_closed_accuracy", "trajectory_region_coverage",
            "trajectory_clue_distance_mean", "bleu4", "cider", "clinical_efficacy.micro.f1"} <= set(paths)
    assert set(saved["floors"]) == set(paths)
    for path in paths:
        entry = saved["floors"][path]
        assert entry["floor"] is not None or entry["model"] is None, path
    assert saved["floor_priors"]["n_train_studies"] > 0
    assert set(saved["paired_with_blank_draft"]) == {"trajectory_region_coverage", "trajectory_clue_distance_mean"}
    assert all(v["n_studies"] <= 2 for v in saved["paired_with_blank_draft"].values())
    report = markdown(m)
    for name in ("floor", "margin", "always no", "kind majority"):
        assert name in report
