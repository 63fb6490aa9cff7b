"""The Qwen2-VL backbone on CPU, with a tiny randomly initialised Qwen2-VL (tests/qwen_support.py): training,
LoRA save/reload, parsing generated text into an EvidenceBundle, and one-line errors for missing or
mismatched weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gazex_core.evidence import EvidenceBundle
from gazex_core.qwen2vl import GenerationSettings, ModelMismatch, ModelNotFound, Qwen2VLGazeX
from gazex_core.upstream_format import prompt
from qwen_support import memorised_model, tiny_base
from training.cli import main as gazex
from training.qwen_train import QwenTrainParams, encode_batch, lora_model, train_qwen2vl
from training.sft_export import SftRecord

REPORT = "FINDINGS: Small left pleural effusion. The heart is normal in size."
GROUND = "visual clues : [(10,12)(30,40)(20,26)] observation : [(10,12)(30,40)(20,26)]"


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    import cv2

    path = tmp_path_factory.mktemp("img") / "chest.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), (rng.random((160, 160)) * 255).astype(np.uint8))
    return path


@pytest.fixture(scope="module")
def records(image_path):
    return [SftRecord("report", prompt("report"), REPORT, [str(image_path)]),
            SftRecord("ground", prompt("ground", sentence="Small left pleural effusion."), GROUND, [str(image_path)])]


@pytest.fixture(scope="module")
def memorised(records, tmp_path_factory):
    """The tiny model trained until it writes the records' report and grounding (a stand-in for a trained adapter)."""
    return memorised_model(tiny_base(), records, tmp_path_factory.mktemp("memorised") / "model")


def _params(tmp_path: Path, **kw) -> QwenTrainParams:
    base = dict(base_model=str(tiny_base()), data="", out=str(tmp_path / "adapter"), lora_r=8, lora_alpha=16,
                lr=5e-3, steps=2, save_every=0, gradient_checkpointing=True, seed=0)
    base.update(kw)
    return QwenTrainParams(**base)


def test_one_training_step_lowers_the_loss(records, tmp_path):
    torch.manual_seed(0)
    params = _params(tmp_path)
    model, processor, _ = lora_model(params, "cpu")
    batch = encode_batch(processor, records, params)
    assert (batch["labels"] != -100).sum() < batch["input_ids"].numel() / 2  # the prompt is masked
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.lr)
    before = model(**batch).loss
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = model(**batch).loss
    assert float(after) < float(before.detach())


def test_adapter_saves_and_reloads_to_identical_outputs(records, tmp_path, image_path):
    params = _params(tmp_path, steps=3)
    out = train_qwen2vl(params, records=records, log=lambda *_: None)
    assert (out / "adapter_model.safetensors").is_file() and (out / "gazex_backbone.json").is_file()
    settings = GenerationSettings(max_new_tokens=24)
    first, second = Qwen2VLGazeX(out, settings=settings), Qwen2VLGazeX(out, settings=settings)
    base = Qwen2VLGazeX(tiny_base(), settings=settings)
    batch = encode_batch(first.processor, records, params)
    with torch.no_grad():
        a, b = first.model(**batch).logits, second.model(**batch).logits
        plain = base.model(**batch).logits
    assert torch.equal(a, b)
    assert not torch.allclose(a, plain)  # the adapter changed something
    assert first.generate([prompt("report")], [np.zeros((64, 64, 3), np.uint8)]) == \
        second.generate([prompt("report")], [np.zeros((64, 64, 3), np.uint8)])


def test_resume_continues_from_the_saved_state(records, tmp_path):
    params = _params(tmp_path, steps=2, save_every=1)
    train_qwen2vl(params, records=records, log=lambda *_: None)
    state = json.loads((Path(params.out) / "checkpoints" / "last" / "step.json").read_text())
    assert state["step"] == 2
    params.steps, params.resume = 3, True
    train_qwen2vl(params, records=records, log=lambda *_: None)
    meta = json.loads((Path(params.out) / "gazex_backbone.json").read_text())
    assert [h["step"] for h in meta["history"]] == [3]  # only the missing step ran


def test_generated_text_becomes_a_valid_bundle(memorised, image_path):
    gx = Qwen2VLGazeX(memorised, settings=GenerationSettings(max_new_tokens=48))
    bundle = gx.analyze(str(image_path))
    EvidenceBundle.from_json(bundle.to_json())  # schema-valid
    assert bundle.sentences, bundle.warnings
    texts = [s.text for s in bundle.sentences]
    assert "Small left pleural effusion." in texts, texts
    effusion = bundle.sentences[texts.index("Small left pleural effusion.")]
    assert effusion.observation_box is not None and effusion.trajectory
    # (10,12)-(30,40) in quarter-scale pixels of a 160 px image = 0.25-0.75 x 0.30-1.0 normalised
    assert effusion.observation_box.x_min == pytest.approx(0.25) and effusion.observation_box.y_max == pytest.approx(1.0)
    assert effusion.label == "Pleural Effusion"


def test_its_text_is_made_consistent_as_gazex_tiny_drafts_are(memorised, image_path):
    """The same assembly as the default model's: no finding stated and negated, no repeat, an impression that
    covers the finding (and carries its box), whatever text the backbone writes."""
    from gazex_core.report_text import consistency_issues

    gx = Qwen2VLGazeX(memorised, settings=GenerationSettings(max_new_tokens=48))
    written = ("FINDINGS: Small left pleural effusion. No pleural effusion. Small left pleural effusion. "
               "IMPRESSION: Normal chest.")
    bundle = gx.draft_from_report(str(image_path), written)
    EvidenceBundle.from_json(bundle.to_json())
    assert consistency_issues(bundle.sentences) == dict.fromkeys(consistency_issues(bundle.sentences), 0)
    texts = [s.text for s in bundle.sentences]
    assert texts.count("Small left pleural effusion.") == 1 and "No pleural effusion." not in texts, texts
    assert "Normal chest." not in texts, texts
    finding = next(s for s in bundle.sentences if s.section == "findings")
    impression = [s for s in bundle.sentences if s.section == "impression"]
    assert [s.label for s in impression] == ["Pleural Effusion"], texts
    assert impression[0].observation_box == finding.observation_box and finding.trajectory


def test_a_ct_slice_is_refused_before_drafting():
    import pydicom

    from gazex_core.imaging import OutOfScopeError

    ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    with pytest.raises(OutOfScopeError, match="Modality CT is out of scope"):
        Qwen2VLGazeX(tiny_base()).analyze(str(ct))


def test_a_non_chest_radiograph_is_refused_and_drafted_only_on_request(memorised, capsys):
    """The same input check as gazex-tiny's header part (this backbone has no feature statistics yet)."""
    import data_store  # pydicom-data, listed directly (no network look-up)

    from gazex_core.input_check import InputRefused

    tibia = sorted((Path(data_store.__file__).parent / "data").rglob("RG3_UNCR.dcm"))[0]  # a real CR of a tibia
    gx = Qwen2VLGazeX(memorised, settings=GenerationSettings(max_new_tokens=48))
    with pytest.raises(InputRefused, match="not drafted: .*BodyPartExamined") as refused:
        gx.analyze(str(tibia))
    assert "\n" not in str(refused.value) and not refused.value.input_check.passed
    bundle = EvidenceBundle.from_json(gx.analyze(str(tibia), draft_out_of_scope=True).to_json())
    assert bundle.input_check is not None and not bundle.input_check.passed
    assert all(s.out_of_scope for s in bundle.sentences)
    assert any("out of scope" in w for w in bundle.warnings)
    assert gazex(["analyze", str(tibia), "--model", str(memorised), "--json"]) == 1
    assert "not drafted" in capsys.readouterr().err
    assert gazex(["analyze", str(tibia), "--model", str(memorised), "--json", "--draft-out-of-scope"]) == 0
    assert json.loads(capsys.readouterr().out)["input_check"]["passed"] is False


def test_missing_base_model_is_one_line(tmp_path, capsys):
    with pytest.raises(ModelNotFound) as err:
        Qwen2VLGazeX(tmp_path / "Qwen2-VL-2B-Instruct")
    assert "\n" not in str(err.value) and "never downloaded" in str(err.value)
    code = gazex(["train", "--backbone", "qwen2-vl", "--base-model", str(tmp_path / "nope"), "--data", str(tmp_path),
                  "--out", str(tmp_path / "o")])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err_lines) == 1 and err_lines[0].startswith("gazex train: ")


def test_mismatched_weights_and_processor_are_one_line(tmp_path):
    broken = tmp_path / "base"
    shutil.copytree(tiny_base(), broken)
    config = json.loads((broken / "config.json").read_text())
    config["image_token_id"] = 7
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelMismatch, match="processor image_token_id") as err:
        Qwen2VLGazeX(broken)
    assert "\n" not in str(err.value)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelNotFound, match="no weights"):
        Qwen2VLGazeX(broken)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelMismatch, match="gazex_backbone.json"):
        Qwen2VLGazeX(adapter)


def test_a_torchvision_built_for_another_torch_is_one_line(tmp_path, image_path):
    """torch 2.13.0+cpu beside PyPI's torchvision 0.28.0 (what pip gives before scripts/install_workstation.sh
    removes torchvision): its compiled operators do not load and importing it raises RuntimeError. Here a
    torchvision package that fails the same way is put first on the path of a fresh `gazex analyze`.
    (tests/test_workstation_install.py covers the real install, where torchvision is absent.)"""
    import os
    import subprocess
    import sys

    broken = tmp_path / "site" / "torchvision"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken.parent), str(Path(__file__).resolve().parents[1])])}
    out = subprocess.run([sys.executable, "-m", "training.cli", "analyze", str(image_path), "--model", str(tiny_base()),
                          "--json"], capture_output=True, text=True, env=env, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr[-800:]
    assert lines[0].startswith("gazex analyze: ") and "needs torchvision built for torch" in lines[0]
    assert "operator torchvision::nms does not exist" in lines[0] and "workstation install" in lines[0]


def test_finetune_runs_one_round_on_reviewers_corrections(tmp_path, image_path):
    from annotations_db.service import ReviewService
    from gazex_core.evidence import Box, EvidenceBundle, EvidenceSentence
    from training.finetune.qwen import finetune_qwen2vl

    service = ReviewService.open(None, data_dir=str(tmp_path / "db"))
    base_version = service.register_model_version("gazex-qwen2-vl", "tiny", "0" * 64, path=str(tiny_base()),
                                                  status="active")
    service.create_reader("admin1", "password123", role="admin")
    service.create_reader("reader1", "password123", acting="admin1")
    study = service.register_study("1.2.3", str(image_path), width=160, height=160)
    bundle = EvidenceBundle("gazex-qwen2-vl", "tiny", 160, 160, sentences=[
        EvidenceSentence("s1", "findings", "Small left pleural effusion.", "breathing", "Pleural Effusion",
                         observation_box=Box(0.5, 0.6, 0.9, 0.95)),
        EvidenceSentence("s2", "findings", "Old rib fracture.", "everything_else", "Fracture",
                         observation_box=Box(0.1, 0.1, 0.2, 0.2))])
    service.save_draft(study.id, base_version.id, bundle.to_dict())
    session = service.open_session("reader1", study.id)
    service.decide_sentence("reader1", session.session_id, "s1", "accepted", duration_ms=900)
    service.decide_sentence("reader1", session.session_id, "s2", "deleted", error_category="finding",
                            clinically_significant=True, duration_ms=700)
    service.decide_box("reader1", session.session_id, "s1", "moved", box=(0.55, 0.6, 0.95, 0.95), duration_ms=800)
    service.decide_box("reader1", session.session_id, "s2", "rejected", duration_ms=500)
    service.sign_off("reader1", session.session_id, "modify", "FINDINGS: Small left pleural effusion.",
                     active_ms=5000)

    params = _params(tmp_path, steps=1, out=str(tmp_path / "r1"))
    result = finetune_qwen2vl(service, tiny_base(), tmp_path / "r1", params, parent_version_id=base_version.id,
                              log=lambda *_: None)
    assert result["records"] == 2  # the signed report + the moved box as a grounding target
    candidate = service.get_model_version(result["model_version_id"])
    assert candidate.status == "candidate" and Path(candidate.path, "adapter_model.safetensors").is_file()
    assert Qwen2VLGazeX(candidate.path).adapter_dir == Path(candidate.path)
    service.close()


def test_the_app_drafts_and_serves_with_it(memorised, tmp_path, image_path):
    from annotations_db.service import ReviewService
    from app.handlers import open_study
    from app.runtime import build_context
    from gazex_core.checkpoint import model_identity

    service = ReviewService.open(None, data_dir=str(tmp_path / "db"))
    service.create_reader("reader1", "password123", role="admin")
    context = build_context(service, memorised, threads=1)
    try:
        version = service.active_model_version()
        assert version.weights_hash == model_identity(memorised) and Path(version.path) == memorised
        study = service.register_study("1.2.840.99", str(image_path), width=160, height=160)
        assert context.worker.enqueue_drafts([(study.id, study.study_uid, str(image_path))]) == 1
        assert context.worker.wait_idle(600), context.worker.progress.as_text()
        value, _ = open_study(service, "reader1", study.id, context.image_payload)
        texts = [s["text"] for s in value["sentences"]]
        assert "Small left pleural effusion." in texts, texts
        assert any(b["x_min"] == pytest.approx(0.25) for b in value["boxes"])  # the parsed observation box
    finally:
        context.worker.stop()
        service.close()
