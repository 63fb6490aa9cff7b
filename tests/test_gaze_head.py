"""The gaze head (gazex_core/model.py ``GazeHead``) and ``gazex train-gaze-head`` (training/gaze_head.py): per ABCDEF
region the points where readers look on this study's anatomy. Its targets are the readers' key frames of normal
statements only; trained on the frozen encoder it leaves every base tensor as it was and lands nearer the readers'
clues on held-out studies than one fixed set of points per region (the image-blind floor); a draft's normal-region
sentences take its points, which move with the study, while finding sentences keep their own evidence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gazex_core import checkpoint
from gazex_core.imaging import load_image
from gazex_core.inference import GazeX
from gazex_core.model import GazeXConfig, GazeXModel
from gazex_core.vocab import REGIONS
from training.cache import build_cache, load_cache
from training.gaze_head import chamfer_loss, clue_distance, gaze_targets, normal_clues, train_gaze_head
from model_support import dataset


def _config(**extra) -> GazeXConfig:
    return GazeXConfig(vocab_size=64, image_size=32, stem_channels=(4, 8, 8), d_model=16, n_heads=2, n_encoder_layers=1,
                       n_decoder_layers=1, max_positions=16, **extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    data = dataset(n=400, seed=5)
    out = tmp_path_factory.mktemp("gaze") / "gazex-tiny-gaze"
    spec = train_gaze_head(checkpoint.DEFAULT_MODEL_DIR, data, out, epochs=15, seed=0, threads=1)
    return data, out, spec


def test_points_per_region_come_only_from_a_model_with_the_head():
    torch.manual_seed(0)
    pix = torch.rand(2, 1, 32, 32)
    assert GazeXModel(_config()).eval().read_image(pix).gaze is None
    with torch.no_grad():
        gaze = GazeXModel(_config(gaze_head={"points": 3, "regions": list(REGIONS)})).eval().read_image(pix).gaze
    assert gaze.shape == (2, len(REGIONS), 3, 2) and bool(((gaze >= 0) & (gaze <= 1)).all())


def test_targets_are_the_readers_clues_of_normal_statements_only():
    build_cache(dataset(), dataset() / "cache", 128)
    _, records = load_cache(dataset() / "cache", 128)
    rec = next(r for r in records if any(s["label"] for s in r["sentences"]) and r["readings"])
    by_region = normal_clues(rec)
    finding_clues = {tuple(c[:2]) for j, s in enumerate(rec["sentences"]) if s["label"]
                     for rd in rec["readings"] for c in ((rd["sentences"][j] or {}).get("clues") or [])}
    normal = {tuple(c[:2]) for j, s in enumerate(rec["sentences"]) if s["label"] is None and s["section"] == "findings"
              for rd in rec["readings"] for c in ((rd["sentences"][j] or {}).get("clues") or [])}
    got = {c for clues in by_region.values() for c in clues}
    assert got == normal and normal and not (finding_clues - normal) & got
    points, mask = gaze_targets([rec])
    assert int(mask.sum()) == sum(min(len(v), points.shape[2]) for v in by_region.values())


def test_the_loss_and_the_distance_ignore_regions_without_clues():
    clues = torch.tensor([[[[0.2, 0.2], [0.0, 0.0]], [[0.9, 0.9], [0.0, 0.0]]]])  # one study, 2 regions, 2 slots
    mask = torch.tensor([[[True, False], [False, False]]])  # the second region has no clue
    points = torch.tensor([[[[0.2, 0.5]], [[0.0, 0.0]]]])  # one point per region
    assert clue_distance(points, clues, mask) == pytest.approx(0.3)
    assert float(chamfer_loss(points, clues, mask, cover_weight=1.0)) == pytest.approx(0.6)


def test_training_keeps_the_base_and_beats_fixed_points_on_held_out_studies(trained):
    _, out, spec = trained
    base = load_file(str(checkpoint.DEFAULT_MODEL_DIR / "model.safetensors"))
    saved = load_file(str(out / "model.safetensors"))
    kept = {k: v for k, v in base.items() if not k.startswith("gaze_head.")}
    assert len(kept) > 50 and all(torch.equal(saved[k], v) for k, v in kept.items())
    for name in ("tokenizer.json", "input_check.safetensors", "calibration.json"):
        assert (out / name).read_bytes() == (checkpoint.DEFAULT_MODEL_DIR / name).read_bytes()
    assert json.loads((out / "config.json").read_text())["gaze_head"]["regions"] == list(REGIONS)
    v = spec["validation"]
    assert v["clue_distance"] < v["clue_distance_image_blind"]


def test_normal_sentences_take_the_head_points_and_follow_the_study(trained):
    data, out, _ = trained
    _, records = load_cache(data / "cache", 128)
    gx = GazeX(out)
    paths, airway_drafts = {}, 0
    for rec in [r for r in records if r["split"] == "test"][:6]:
        img = load_image(rec["image_path"])
        with torch.no_grad():
            points = gx.model.read_image(gx._model_input(img)).gaze[0].numpy()
        bundle = gx.analyze(rec["image_path"])
        airway_drafts += any(s.region == "airway" and s.label is None for s in bundle.sentences)
        for s in bundle.sentences:
            got = np.array([[p.x, p.y] for p in s.trajectory])
            if s.section == "findings" and s.label is None and s.region in REGIONS:
                assert np.allclose(got, points[REGIONS.index(s.region)], atol=1e-6)
                paths.setdefault(s.region, set()).add(tuple(np.round(got, 3).ravel()))
            elif s.label and s.label != "No Finding" and s.region in REGIONS:  # a finding keeps its own evidence
                own = points[REGIONS.index(s.region)]
                assert len(got) >= 1 and (got.shape != own.shape or not np.allclose(got, own, atol=1e-6))
    assert airway_drafts >= 3 and len(paths["airway"]) == airway_drafts


def test_grounding_a_normal_statement_gives_its_regions_points_on_this_study(trained):
    data, out, _ = trained
    _, records = load_cache(data / "cache", 128)
    gx = GazeX(out)
    rec = next(r for r in records if r["split"] == "test")
    img = load_image(rec["image_path"])
    with torch.no_grad():
        points = gx.model.read_image(gx._model_input(img)).gaze[0].numpy()
    g = gx.ground(rec["image_path"], "The trachea is midline.")
    assert g.region in REGIONS and g.label is None
    assert np.allclose([[p.x, p.y] for p in g.trajectory], points[REGIONS.index(g.region)], atol=1e-6)
