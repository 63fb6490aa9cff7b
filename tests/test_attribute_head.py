"""The attribute head (severity + side, gazex_core/model.py) and ``gazex train-heads`` (training/attribute_head.py):
trained on the frozen encoder of the shipped model over a small generated set, it answers which side a finding is on
better than the majority answer on held-out studies, it leaves every base tensor as it was, ``ask`` answers from it,
and every sentence about a graded finding words the head's severity."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gazex_core import checkpoint
from gazex_core.evidence import Box
from gazex_core.imaging import load_image
from gazex_core.inference import GazeX
from gazex_core.model import SEVERITIES, GazeXConfig, GazeXModel
from gazex_core.report_text import Geometry, assemble, grade_words
from gazex_core.sequence import SentenceBlock
from training.attribute_head import attribute_targets, train_heads
from training.cache import load_cache
from training.tasks import closed_questions
from model_support import dataset

GRADE_WORD = re.compile(r"\b(small|moderate|large|mild|marked|severe)(ly)?\b|\bslightly\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    data = dataset(n=400, seed=5)
    out = tmp_path_factory.mktemp("heads") / "gazex-tiny-heads"
    summary = train_heads(checkpoint.DEFAULT_MODEL_DIR, data, out, epochs=30, seed=0, threads=1, min_examples=5)
    return data, out, summary


def _held_out_questions(data: Path, kind: str) -> tuple[list[tuple[Path, str, str]], Counter]:
    """(image, question, answer) of one kind on the test split, and the training split's answer counts."""
    _, records = load_cache(data / "cache", 128)
    held, train = [], Counter()
    for k, rec in enumerate(records):
        for q_kind, q, a in closed_questions(rec, random.Random(k), n=8):
            if q_kind != kind:
                continue
            if rec["split"] == "test":
                held.append((Path(rec["image_path"]), q, a))
            elif rec["split"] == "train":
                train[a] += 1
    return held, train


def test_targets_come_from_the_synthetic_ground_truth():
    rec = {"labels": [0.0] * 14, "findings": [
        {"label": "Pleural Effusion", "laterality": "left", "severity": "large", "box": None},
        {"label": "Pleural Effusion", "laterality": "right", "severity": "large", "box": None},
        {"label": "Edema", "laterality": "bilateral", "severity": "small", "box": None},
        {"label": "Pneumothorax", "laterality": "right", "severity": "small", "box": None},
        {"label": "Pneumothorax", "laterality": "right", "severity": "large", "box": None},
        {"label": "Cardiomegaly", "laterality": None, "severity": "moderate", "box": None}]}
    severity, side, known = attribute_targets(rec)
    ix = {lab: i for i, lab in enumerate(GazeXConfig().label_names)}
    assert [severity[ix[lab]] for lab in ("Pleural Effusion", "Edema", "Pneumothorax", "Cardiomegaly", "Atelectasis")] \
        == [2, 0, -1, 1, -1]  # two grades of one finding: not a target
    assert side[ix["Pleural Effusion"]].tolist() == [1.0, 1.0] and side[ix["Edema"]].tolist() == [1.0, 1.0]
    assert side[ix["Pneumothorax"]].tolist() == [0.0, 1.0]
    assert known[ix["Cardiomegaly"]] == 0.0  # present without a side: no side target
    assert known[ix["Atelectasis"]] == 1.0 and side[ix["Atelectasis"]].tolist() == [0.0, 0.0]  # absent: neither side


def test_older_config_has_no_attribute_head():
    model = GazeXModel(GazeXConfig())
    assert model.attribute_head is None and model.attributes(torch.zeros(1, 64, 128)) is None
    assert not any(k.startswith("attribute_head.") for k in model.state_dict())


def test_train_heads_keeps_base_tensors_and_side_files(trained):
    _, out, summary = trained
    base = load_file(str(checkpoint.DEFAULT_MODEL_DIR / "model.safetensors"))
    saved = load_file(str(out / "model.safetensors"))
    kept = {k: v for k, v in base.items() if not k.startswith("attribute_head.")}  # the shipped head is replaced
    assert len(kept) > 50 and all(torch.equal(saved[k], v) for k, v in kept.items())
    assert any(k.startswith("attribute_head.") for k in saved)
    for name in ("tokenizer.json", "input_check.safetensors", "calibration.json"):
        assert (out / name).read_bytes() == (checkpoint.DEFAULT_MODEL_DIR / name).read_bytes()
    gx = GazeX(out)
    assert gx.identity != checkpoint.model_identity(checkpoint.DEFAULT_MODEL_DIR)
    assert {"Pleural Effusion", "Pneumothorax"} <= set(gx.config.attribute_head["side_labels"])
    assert summary["epoch"] >= 1 and summary["n_train"] > summary["n_val"] > 0


def test_which_side_answers_beat_the_majority_answer_on_held_out_studies(trained):
    data, out, _ = trained
    held, train = _held_out_questions(data, "side")
    assert len(held) >= 15
    gx = GazeX(out)
    answers = [gx.ask(img, q) for img, q, _ in held]
    assert all(a.guided for a in answers)
    accuracy = np.mean([a.text == truth for a, (_, _, truth) in zip(answers, held)])
    majority = np.mean([train.most_common(1)[0][0] == truth for _, _, truth in held])
    assert accuracy >= majority + 0.2, (accuracy, majority)


def test_severity_answers_come_from_the_head_and_match_every_sentence(trained):
    data, out, _ = trained
    gx = GazeX(out)
    graded = set(gx.config.attribute_head["severity_labels"])
    assert graded, "no label had all three grades in training"
    held, _ = _held_out_questions(data, "severity")
    assert held
    for img, q, _ in held:
        ans = gx.ask(img, q)
        assert ans.guided and ans.text in SEVERITIES, (q, ans.text)
    stated = 0
    for img, _, _ in held:
        bundle = gx.analyze(img, draft_out_of_scope=True)
        with torch.inference_mode():
            severity, _ = gx._read(load_image(img))[2]
        for s in bundle.sentences:
            if s.label in graded:
                grade = SEVERITIES[int(severity[gx.config.label_names.index(s.label)].argmax())]
                for m in GRADE_WORD.finditer(s.text):
                    stated += 1
                    assert m.group(0).lower() in grade_words(s.label, grade), (s.text, grade)
    assert stated >= 1


def test_assembly_words_the_given_grade_in_every_sentence_about_the_finding():
    box = Box(0.55, 0.6, 0.85, 0.85)
    blocks = [SentenceBlock("findings", "pleura", box=box, label="Pleural Effusion",
                            text="There is a moderate left pleural effusion."),
              SentenceBlock("findings", "heart", label="Cardiomegaly", text="The heart is enlarged."),
              SentenceBlock("impression", None, label="Pleural Effusion", text="Large left pleural effusion.")]
    out, _ = assemble(blocks, [0.9, 0.9, 0.9], Geometry(400, 500, (0.8, 0.8)),
                      grades={"Pleural Effusion": "small", "Cardiomegaly": "large"})
    texts = [b.text for b in out]
    assert "There is a small left pleural effusion." in texts and "Small left pleural effusion." in texts
    assert "Marked cardiomegaly." in texts  # the impression sentence built for it carries the grade
    assert not any(re.search(r"\b(moderate|large)\b", t, re.I) for t in texts), texts
    ungraded, _ = assemble(blocks, [0.9, 0.9, 0.9], Geometry(400, 500, (0.8, 0.8)))
    assert "There is a moderate left pleural effusion." in [b.text for b in ungraded]
