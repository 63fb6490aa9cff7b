"""Consistent report text (gazex_core/report_text.py): the shipped model's drafts never state and negate a
finding, never repeat a sentence, never emit garbled tokens, every sentence carries a trajectory, their impression
states every finding, and a stated nodule size follows the observation box and the pixel spacing."""

from __future__ import annotations

import re

import pydicom
import pytest
import torch

from gazex_core import labeler
from gazex_core.evidence import Box
from gazex_core.report_text import Geometry, TextGuard, assemble, consistency_issues, garbled, lesion_size_cm
from gazex_core.sequence import Clue, SentenceBlock, label_token
from model_support import dataset, dicom_of, rows, shipped_model

CM = re.compile(r"(\d+\.\d) cm")


@pytest.fixture(scope="module")
def data():
    return dataset(n=40, seed=11)


@pytest.fixture(scope="module")
def drafts(data):
    """The drafts of every study with a nodule or mass, 6 more with a finding and 2 normal ones."""
    meta = rows(data, "metadata.csv")
    lesions = list(dict.fromkeys(a["study_id"] for a in rows(data, "annotations.csv") if a["label"] == "Lung Lesion"))
    abnormal = [r["study_id"] for r in meta if r["is_normal"] == "0" and r["study_id"] not in lesions][:6]
    normal = [r["study_id"] for r in meta if r["is_normal"] == "1"][:2]
    gx = shipped_model()
    return {sid: gx.analyze(dicom_of(data, sid)) for sid in [*lesions, *abnormal, *normal]}


def _issues(bundle) -> dict[str, int]:
    return consistency_issues(bundle.sentences)


def test_drafts_have_no_contradiction_repeat_or_garbled_token(drafts):
    for sid, bundle in drafts.items():
        assert _issues(bundle) == {"self_contradictions": 0, "repeated_sentences": 0, "garbled_tokens": 0,
                                   "impression_missing_findings": 0}, (sid, [s.text for s in bundle.sentences])
        texts = [s.text for s in bundle.sentences]
        assert len(set(texts)) == len(texts)


def test_every_sentence_carries_a_trajectory(drafts):
    sentences = [s for bundle in drafts.values() for s in bundle.sentences]
    assert len(sentences) >= 40
    assert [s.text for s in sentences if not s.trajectory] == []


def test_impression_covers_every_finding(drafts):
    with_findings = 0
    for sid, bundle in drafts.items():
        impression = [s for s in bundle.sentences if s.section == "impression"]
        assert impression, sid
        stated = set()
        for s in impression:
            stated |= {lab for lab, v in labeler.label_sentence(s.text).items() if v == labeler.POSITIVE}
        assert bundle.positive_labels() <= stated, (sid, [s.text for s in impression])
        with_findings += bool(bundle.positive_labels())
    assert with_findings >= 5


def _lesion_sizes(bundle) -> list[tuple[float, Box]]:
    return [(float(m.group(1)), s.observation_box) for s in bundle.sentences
            if s.label == "Lung Lesion" and s.observation_box is not None for m in CM.finditer(s.text)]


def _with_spacing(src, out, factor: float | None):
    ds = pydicom.dcmread(src)
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if key in ds:
            if factor is None:
                delattr(ds, key)
            else:
                ds[key].value = [float(v) * factor for v in ds[key].value]
    ds.save_as(out)
    return out


def _lesion_study(data, drafts):
    for sid, bundle in drafts.items():
        if _lesion_sizes(bundle):
            return sid, bundle
    pytest.fail("no drafted nodule or mass with a size among the test studies")


def test_nodule_size_follows_box_and_pixel_spacing(data, drafts, tmp_path):
    sid, bundle = _lesion_study(data, drafts)
    img = pydicom.dcmread(dicom_of(data, sid))
    geometry = Geometry(int(img.Columns), int(img.Rows), tuple(float(v) for v in img.PixelSpacing))
    for size, box in _lesion_sizes(bundle):
        assert size == pytest.approx(lesion_size_cm(box, geometry), abs=0.051)
    gx = shipped_model()
    doubled = gx.analyze(_with_spacing(dicom_of(data, sid), tmp_path / "doubled.dcm", 2.0))
    before, after = _lesion_sizes(bundle), _lesion_sizes(doubled)
    assert len(after) == len(before)
    for (s1, b1), (s2, b2) in zip(before, after):
        assert b1 == b2
        assert s2 == pytest.approx(2 * s1, abs=0.11)
    unknown = gx.analyze(_with_spacing(dicom_of(data, sid), tmp_path / "nospacing.dcm", None))
    assert "Lung Lesion" in unknown.positive_labels()
    assert not any(re.search(r"\d", s.text) for s in unknown.sentences if s.label == "Lung Lesion")


# ---------------------------------------------------------------- assembly rules on hand-made drafts


GEOMETRY = Geometry(width=400, height=500, spacing_mm=(0.8, 0.8))


def _block(section, text, label=None, region=None, box=None, clues=()):
    return SentenceBlock(section=section, region=region, clues=list(clues), box=box, label=label, text=text)


def test_assembly_removes_contradictions_repeats_and_sampled_numbers():
    nodule_box = Box(0.60, 0.30, 0.65, 0.34)  # 20 x 20 px at 0.8 mm: 16 mm
    blocks = [
        _block("findings", "Trachea midline.", region="airway"),
        _block("findings", "There is a discrete 4.4.4.3 cm nodule in the left upper lobe.", "Lung Lesion",
               "breathing", nodule_box, [Clue(0.62, 0.32, 0.1, 0.1, 900.0)]),
        _block("findings", "No focal consolidation, pneumothorax, or pleural effusion.", region="breathing"),
        _block("findings", "There is a small left pleural effusion.", "Pleural Effusion", "breathing",
               Box(0.6, 0.6, 0.8, 0.7)),
        _block("findings", "Trachea midline.", region="airway"),
        _block("findings", "Left anterior chest wall pacemaker/defibrillllllator.", "Support Devices",
               "foreign_bodies", Box(0.6, 0.1, 0.8, 0.3)),
        _block("findings", "There is a 2.3 cm mass in the right lung.", region="breathing"),
        _block("impression", "No acute cardiopulmonary abnormality.", region="breathing"),
    ]
    out, confs = assemble(blocks, [0.9] * len(blocks), GEOMETRY)
    texts = [b.text for b in out]
    assert len(confs) == len(out)
    assert texts.count("Trachea midline.") == 1
    assert "No focal consolidation or pneumothorax." in texts  # the effusion the draft states is not negated
    assert "There is a discrete 1.6 cm nodule in the left upper lobe." in texts
    assert "Left anterior chest wall pacemaker/defibrillator." in texts
    assert not any("mass" in t for t in texts)  # an unlabelled finding the head did not call
    assert "No acute cardiopulmonary abnormality." not in texts
    impression = [b for b in out if b.section == "impression"]
    assert {b.label for b in impression} == {"Lung Lesion", "Pleural Effusion", "Support Devices"}
    assert all(b.clues or b.label != "Lung Lesion" for b in impression)  # the finding's trajectory comes along
    labels = {b.label for b in blocks if b.label}
    assert {b.label for b in out if b.label} == labels  # finding macro-F1 scores the same labels
    assert consistency_issues(out) == dict.fromkeys(consistency_issues([]), 0)


def test_labelled_sentence_that_states_another_finding_is_rewritten_for_its_label():
    blocks = [_block("findings", "There is a cardiac pacemaker.", "Lung Lesion", "breathing", Box(0.2, 0.3, 0.3, 0.4)),
              _block("impression", "Mildly enlarged heart.", "Lung Lesion", "breathing")]
    out, _ = assemble(blocks, [0.5, 0.5], GEOMETRY)
    for b in out:
        assert labeler.label_sentence(b.text) == {"Lung Lesion": labeler.POSITIVE}, b.text
    sizes = [float(m) for b in out for m in CM.findall(b.text)]
    assert sizes and all(s == pytest.approx(lesion_size_cm(Box(0.2, 0.3, 0.3, 0.4), GEOMETRY), abs=0.051)
                         for s in sizes)


def test_endotracheal_tube_distance_from_box_and_carina_estimate():
    airway_clue = Clue(0.5, 0.30, 0.05, 0.10, 1500.0)  # lower edge 0.35: the carina estimate
    blocks = [_block("findings", "Trachea is midline.", region="airway", clues=[airway_clue]),
              _block("findings", "Endotracheal tube tip 9.9.9 cm above the carina.", "Support Devices",
                     "foreign_bodies", Box(0.48, 0.0, 0.52, 0.25))]
    out, _ = assemble(blocks, [0.5, 0.5], GEOMETRY)
    # (0.35 - 0.25) x 500 px x 0.8 mm = 40 mm
    assert out[1].text == "Endotracheal tube tip 4.0 cm above the carina."
    no_spacing, _ = assemble(blocks, [0.5, 0.5], Geometry(400, 500, None))
    assert no_spacing[1].text == "Endotracheal tube tip above the carina."


def test_no_sentence_ends_on_words_that_announced_a_removed_number():
    blocks = [_block("findings", "There is a left lung nodule measuring 2.4 cm.", "Lung Lesion", "breathing"),
              _block("impression", "Endotracheal tube in place with tip approximately", "Support Devices", "foreign_bodies")]
    out, _ = assemble(blocks, [0.9, 0.9], Geometry(400, 400, None))  # no spacing: no size can be computed
    assert [b.text for b in out][:2] == ["There is a left lung nodule.", "Endotracheal tube in place."]


def test_normal_draft_gets_a_normal_impression():
    out, _ = assemble([_block("findings", "No pleural effusion.", region="breathing")], [0.7], GEOMETRY)
    assert [b.section for b in out] == ["findings", "impression"]
    assert consistency_issues(out)["impression_missing_findings"] == 0


def test_metric_counts_each_kind_of_issue():
    bad = [_block("findings", "Small left pleural effusion.", "Pleural Effusion"),
           _block("findings", "No pleural effusion.", None),
           _block("findings", "No pleural effusion.", None),
           _block("findings", "Pacemaker/defibrillllator, tip 4.3.3 cm.", "Support Devices"),
           _block("impression", "Normal chest.", None)]
    assert consistency_issues(bad) == {"self_contradictions": 2, "repeated_sentences": 1, "garbled_tokens": 2,
                                       "impression_missing_findings": 2}


# ---------------------------------------------------------------- the decoding constraint


def test_text_guard_masks_garbling_tokens():
    gx = shipped_model()
    tok, guard = gx.tok, TextGuard(gx.tok)
    label = tok.id(label_token("Support Devices"))
    for prefix, bad_text in (("Left chest wall pacemaker/defibrill", "l"), ("Tube tip 4.4", ".")):
        generated = [label] + tok.encode_text(prefix)
        text = tok.decode_text(generated[1:])
        bad = next(i for i in range(tok.vocab_size) if guard.strings[i] == bad_text)
        logits = torch.zeros(gx.config.vocab_size)
        logits[bad] = 10.0
        chosen = int(guard(generated, logits).argmax())
        assert chosen != bad
        assert not garbled(text + (guard.strings[chosen] or ""))
    logits = torch.randn(gx.config.vocab_size, generator=torch.Generator().manual_seed(0))
    assert torch.equal(guard([], logits), logits)  # outside a sentence's text the guard leaves logits alone
