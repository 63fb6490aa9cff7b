"""The second look (gazex_core/model.py ``SecondLook``) and ``gazex train-second-look`` (training/second_look.py):
a model without one reads images as before; with one, each label takes its finding logit, severity and side from
the source ``config.second_look`` names; the per-label choice keeps the base where the base is better; training
leaves every base tensor and side file as it was, and ``GazeX`` drafts and answers from the combined reading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gazex_core import checkpoint
from gazex_core.evidence import Box
from gazex_core.imaging import load_image
from gazex_core.inference import GazeX
from gazex_core.model import BOX_SLOTS, SEVERITIES, GazeXConfig, GazeXModel
from gazex_core.sequence import SentenceBlock
from gazex_core.vocab import CHEXPERT_LABELS
from training.cache import load_cache
from training.second_look import attribute_accuracy, choose_fusion, train_second_look
from model_support import dataset

LESION, CONSOLIDATION, PNEUMOTHORAX = (CHEXPERT_LABELS.index(x) for x in ("Lung Lesion", "Consolidation", "Pneumothorax"))


def _small_config(**second_look) -> GazeXConfig:
    return GazeXConfig(vocab_size=64, image_size=32, stem_channels=(4, 8, 8), d_model=16, n_heads=2, n_encoder_layers=1,
                       n_decoder_layers=1, max_positions=16, attribute_head={"severity_labels": [], "side_labels": []},
                       second_look={"image_size": 64, "channels": [8, 16], **second_look})


def test_without_a_second_look_the_reading_is_the_encoder_and_heads_alone():
    torch.manual_seed(0)
    model = GazeXModel(GazeXConfig(vocab_size=64, image_size=32, stem_channels=(4, 8, 8), d_model=16, n_heads=2,
                                   n_encoder_layers=1, n_decoder_layers=1, max_positions=16)).eval()
    pix = torch.rand(2, 1, 32, 32)
    reading = model.read_image(pix, torch.rand(2, 1, 64, 64))  # a larger input is ignored without a second look
    memory, logits = model.encode(pix)
    assert model.second_look is None and reading.severity is None and reading.side is None
    assert torch.equal(reading.finding_logits, logits) and torch.equal(reading.memory, memory)


def test_each_label_takes_what_the_config_names_from_the_second_look():
    torch.manual_seed(0)
    model = GazeXModel(_small_config(finding_labels={"Lung Lesion": "second", "Consolidation": "mean"},
                                     severity_labels=["Pneumothorax"], side_labels=["Lung Lesion"])).eval()
    pix, pix2 = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        reading = model.read_image(pix, pix2)
        memory, base = model.encode(pix)
        head_sev, head_side = model.attributes(memory)
        f2, sev2, side2, _ = model.second_look(pix2)
    assert torch.allclose(reading.finding_logits[:, LESION], f2[:, LESION])
    assert torch.allclose(reading.finding_logits[:, CONSOLIDATION], (base[:, CONSOLIDATION] + f2[:, CONSOLIDATION]) / 2)
    others = [j for j in range(len(CHEXPERT_LABELS)) if j not in (LESION, CONSOLIDATION)]
    assert torch.equal(reading.finding_logits[:, others], base[:, others])
    assert torch.allclose(reading.severity[:, PNEUMOTHORAX], sev2[:, PNEUMOTHORAX].softmax(-1))
    assert torch.equal(reading.severity[:, LESION], head_sev[:, LESION])
    assert torch.allclose(reading.side[:, LESION], torch.sigmoid(side2[:, LESION]))
    assert torch.equal(reading.side[:, PNEUMOTHORAX], head_side[:, PNEUMOTHORAX])


def test_the_finding_heads_own_thresholds_survive_a_second_look():
    n = len(CHEXPERT_LABELS)
    plain = GazeXConfig(vocab_size=64, finding_thresholds=[0.3] * n)
    looked = GazeXConfig(vocab_size=64, finding_thresholds=[0.6] * n,
                         second_look={"image_size": 64, "channels": [8], "base_finding_thresholds": [0.3] * n})
    assert plain.head_thresholds == looked.head_thresholds == [0.3] * n
    assert looked.finding_thresholds == [0.6] * n  # the combined reading's


def test_the_choice_keeps_the_base_where_it_is_better_and_its_threshold():
    rng = np.random.default_rng(0)
    truth = (rng.random((300, len(CHEXPERT_LABELS))) < 0.3).astype(np.float32)
    signal, noise = (truth * 2 - 1) * 4, rng.normal(0, 4, truth.shape)
    base, second = noise.copy(), noise.copy()
    base[:, PNEUMOTHORAX], second[:, LESION] = signal[:, PNEUMOTHORAX], signal[:, LESION]
    base_thresholds = [0.37] * len(CHEXPERT_LABELS)
    chosen, thresholds, report = choose_fusion(base, second, truth, base_thresholds)
    assert chosen[LESION] in ("second", "mean") and report["Lung Lesion"]["second"] == 1.0
    assert chosen[PNEUMOTHORAX] == "base" and thresholds[PNEUMOTHORAX] == 0.37
    assert report["Pneumothorax"]["base"] == 1.0 > report["Pneumothorax"]["second"]


def test_side_is_scored_as_ask_answers_it():
    n = len(CHEXPERT_LABELS)
    t = {"severity": torch.full((3, n), -1), "side": torch.zeros(3, n, 2), "side_known": torch.ones(3, n)}
    t["side"][0, LESION] = torch.tensor([1.0, 0.0])  # left
    t["side"][1, LESION] = torch.tensor([0.0, 1.0])  # right
    t["side"][2, LESION] = torch.tensor([1.0, 1.0])  # bilateral
    finding = (t["side"].sum(-1) > 0).float()
    side = torch.zeros(3, n, 2)
    side[:, LESION] = torch.logit(torch.tensor([
        [0.4, 0.1],  # which side right (left), "is there a left ...?" wrong: 0.75
        [0.9, 0.6],  # says bilateral: which side wrong, left wrong, right right: 0.25
        [0.7, 0.8],  # bilateral, both yes right: 1.0
    ]))
    _, score = attribute_accuracy(torch.zeros(3, n, 3), side, t, finding)
    assert score[LESION] == pytest.approx((0.75 + 0.25 + 1.0) / 3)


@pytest.fixture(scope="module")
def looked(tmp_path_factory):
    torch.set_num_threads(1)
    data = dataset(n=300, seed=7)
    out = tmp_path_factory.mktemp("second-look") / "gazex-tiny-second-look"
    spec = train_second_look(checkpoint.DEFAULT_MODEL_DIR, data, out, image_size=128, channels=(8, 16, 32),
                             epochs=2, seed=0, threads=1)
    return data, out, spec


def test_training_keeps_every_base_tensor_and_side_file(looked):
    _, out, spec = looked
    base = load_file(str(checkpoint.DEFAULT_MODEL_DIR / "model.safetensors"))
    saved = load_file(str(out / "model.safetensors"))
    kept = {k: v for k, v in base.items() if not k.startswith("second_look.")}  # the shipped second look is replaced
    assert len(kept) > 50 and all(torch.equal(saved[k], v) for k, v in kept.items())
    assert any(k.startswith("second_look.") for k in saved)
    shipped = GazeX().config
    assert spec["base_finding_thresholds"] == shipped.second_look["base_finding_thresholds"]
    for name in ("tokenizer.json", "input_check.safetensors", "calibration.json"):
        assert (out / name).read_bytes() == (checkpoint.DEFAULT_MODEL_DIR / name).read_bytes()
    assert spec["training"]["epoch"] >= 1 and spec["training"]["n_train"] > spec["training"]["n_val"] > 0
    assert set(spec["validation"]["finding_f1"]) <= set(CHEXPERT_LABELS)
    assert checkpoint.model_identity(out) != checkpoint.model_identity(checkpoint.DEFAULT_MODEL_DIR)


def test_gazex_drafts_and_answers_from_the_combined_reading(looked):
    data, out, spec = looked
    gx = GazeX(out)
    _, records = load_cache(data / "cache", 128)
    image = next(r["image_path"] for r in records if r["split"] == "test")
    img = load_image(image)
    with torch.inference_mode():
        f2, sev2, _, _ = (t[0] for t in gx.model.second_look(gx._model_input(img, spec["image_size"])))
        _, base = gx.model.encode(gx._model_input(img))
    probs = dict(gx.findings(image))
    for j, lab in enumerate(CHEXPERT_LABELS):
        how = spec["finding_labels"].get(lab, "base")
        logit = {"base": base[0, j], "second": f2[j], "mean": (base[0, j] + f2[j]) / 2}[how]
        assert probs[lab] == pytest.approx(float(torch.sigmoid(logit)), abs=1e-5), (lab, how)
    bundle = gx.analyze(image, draft_out_of_scope=True)
    assert bundle.sentences and all(0.0 <= s.confidence <= 1.0 for s in bundle.sentences)
    for lab in spec["severity_labels"]:
        answer = gx.ask(image, f"How severe is the {lab.lower()}?")
        assert answer.guided and answer.text == SEVERITIES[int(sev2[CHEXPERT_LABELS.index(lab)].argmax())]


def test_a_sentence_takes_the_second_looks_box_for_its_side(looked):
    data, out, _ = looked
    gx = GazeX(out)
    gx.config.second_look["box_labels"] = {"Lung Lesion": ["left", "right"], "Cardiomegaly": ["other"]}
    _, records = load_cache(data / "cache", 128)
    img = load_image(next(r["image_path"] for r in records if r["split"] == "test"))
    with torch.inference_mode():
        _, _, attributes, boxes, _ = gx._read(img)
    decoder_box = Box(0.0, 0.0, 0.1, 0.1)
    blocks = [SentenceBlock(section="findings", label="Lung Lesion", text="There is a left lung nodule.", box=decoder_box),
              SentenceBlock(section="findings", label="Lung Lesion", text="Right lung mass.", box=decoder_box),
              SentenceBlock(section="findings", label="Cardiomegaly", text="The heart is enlarged.", box=decoder_box),
              SentenceBlock(section="findings", label="Pleural Effusion", text="Left effusion.", box=decoder_box)]
    gx._second_look_boxes(blocks, boxes, attributes)
    expected = [boxes[LESION, BOX_SLOTS.index("left")], boxes[LESION, BOX_SLOTS.index("right")],
                boxes[CHEXPERT_LABELS.index("Cardiomegaly"), BOX_SLOTS.index("other")]]
    for block, box in zip(blocks, expected):
        assert (block.box.x_min, block.box.y_min, block.box.x_max, block.box.y_max) == pytest.approx(tuple(box.tolist()))
    assert blocks[3].box is decoder_box  # a label the second look does not box keeps the decoder's box


def test_continued_training_starts_from_the_given_second_look(looked, tmp_path):
    data, first, _ = looked
    out = tmp_path / "continued"
    spec = train_second_look(checkpoint.DEFAULT_MODEL_DIR, data, out, image_size=128, channels=(8, 16, 32), epochs=1,
                             lr=1e-9, seed=1, threads=1, start=first)
    before, after = load_file(str(first / "model.safetensors")), load_file(str(out / "model.safetensors"))
    weights = [k for k in after if k.startswith("second_look.") and "running_" not in k and "num_batches" not in k]
    assert weights and all(torch.allclose(after[k].float(), before[k].float(), atol=1e-3) for k in weights)
    fresh = GazeXModel(GazeXModel.from_pretrained(out).config)  # the same architecture, freshly initialised
    assert not torch.allclose(fresh.second_look.queries, after["second_look.queries"].float(), atol=1e-3)
    assert spec["training"]["started_from"] == str(first) and spec["training"]["earlier_training"]["epochs"] == 2
