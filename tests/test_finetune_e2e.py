"""End to end: a simulated reader deletes the flawed base model's over-called rib fracture on every study
(through ReviewService, as the UI does); `gazex finetune` trains LoRA on those corrections. The held-out
over-call rate must drop while the synthetic regression benchmark holds; the split is frozen across runs;
the candidate is registered with its adapter and can be promoted and rolled back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune_support import open_world_db, review, small_params
from gazex_core.checkpoint import is_adapter_dir, load_model, model_identity, resolve_checkpoint
from training.finetune.job import run_finetune

FIRST_WAVE = 80


@pytest.fixture(scope="module")
def first_run(flawed_world, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ft_e2e")
    service, base_id = open_world_db(flawed_world, data_dir)
    reader = review(service, flawed_world, flawed_world.studies[:FIRST_WAVE], base_id)
    run = run_finetune(service, data_dir, small_params())
    yield {"service": service, "data_dir": data_dir, "base_id": base_id, "run": run, "reader": reader}
    service.close()


def test_the_corrected_error_drops_on_held_out_studies_and_the_benchmark_holds(first_run):
    run = first_run["run"]
    assert first_run["reader"].corrections >= 70  # the flaw is on (almost) every draft
    assert run["status"] == "succeeded" and run["progress"] == 1.0
    before, after = run["metrics"]["before"], run["metrics"]["after"]
    assert before["corrections"]["n_deleted"] >= 8
    print("\nheld-out fracture over-call (deleted_recurrence): base", before["corrections"]["deleted_recurrence"],
          "adapted", after["corrections"]["deleted_recurrence"])
    print("benchmark report-label macro-F1: base", before["benchmark"]["report_label_macro_f1"],
          "adapted", after["benchmark"]["report_label_macro_f1"])
    assert before["corrections"]["deleted_recurrence"] >= 0.8
    assert after["corrections"]["deleted_recurrence"] <= before["corrections"]["deleted_recurrence"] - 0.5
    tolerance = run["params"]["tolerance"]
    assert after["benchmark"]["report_label_macro_f1"] >= before["benchmark"]["report_label_macro_f1"] - tolerance
    assert after["benchmark"]["finding_head_macro_f1"] == pytest.approx(before["benchmark"]["finding_head_macro_f1"])
    assert run["metrics"]["gate"]["passed"]
    assert run["metrics"]["adapter_bytes"] <= 10 * 1024 * 1024


def test_the_candidate_is_a_versioned_adapter_and_the_active_model_is_untouched(first_run):
    service, run = first_run["service"], first_run["run"]
    candidate = service.get_model_version(run["candidate_model_version_id"])
    assert candidate.status == "candidate" and candidate.parent_id == first_run["base_id"]
    assert service.active_model_version().id == first_run["base_id"]
    assert candidate.path.startswith(str(first_run["data_dir"] / "adapters")) and is_adapter_dir(candidate.path)
    assert candidate.weights_hash == model_identity(Path(candidate.path))
    # gazex_core loads base + adapter, and a merged checkpoint for any full-checkpoint loader
    merged_dir = resolve_checkpoint(candidate.path)
    assert (merged_dir / "config.json").is_file()
    adapted, tok = load_model(candidate.path)
    base, _ = load_model(flawed_base_path(service, first_run["base_id"]))
    changed = [n for n, p in adapted.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert changed and all(n.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj") for n in changed)
    assert all(n.startswith("layers.") and ".self_attn." in n for n in changed)  # scope "decoder_self"


def flawed_base_path(service, version_id):
    return service.get_model_version(version_id).path


def test_the_frozen_split_never_moves_a_study_from_validation_to_training(first_run, flawed_world):
    service, data_dir, first = first_run["service"], first_run["data_dir"], first_run["run"]
    new_studies = flawed_world.studies[FIRST_WAVE:]
    review(service, flawed_world, new_studies, first_run["base_id"])
    # a different fraction and seed now: earlier assignments must still win
    second = run_finetune(service, data_dir, small_params(epochs=1, val_fraction=0.6, split_seed=99))
    assert second["status"] == "succeeded"
    first_val, first_train = set(first["split"]["val"]), set(first["split"]["train"])
    second_val, second_train = set(second["split"]["val"]), set(second["split"]["train"])
    assert first_val <= second_val and first_train <= second_train
    assert not (first_val & second_train)
    new_uids = {s.study_uid for s in new_studies}
    assert (second_val | second_train) >= new_uids  # the new studies got their own (frozen) assignment
    assert service.frozen_split(sorted(first_val), 0.0, 0) == {uid: "val" for uid in sorted(first_val)}


def test_models_cli_promotes_and_rolls_back(first_run, capsys):
    from training.cli import main

    service, data_dir = first_run["service"], first_run["data_dir"]
    candidate_id = first_run["run"]["candidate_model_version_id"]
    args = ["--data-dir", str(data_dir)]
    assert main(["models", "list", *args]) == 0
    listing = capsys.readouterr().out
    assert "flawed-base" in listing and f"+ft{first_run['run']['id']}" in listing and "passed" in listing
    assert main(["models", "promote", str(candidate_id), *args]) == 0
    assert service.active_model_version().id == candidate_id
    assert main(["models", "rollback", *args]) == 0
    assert service.active_model_version().id == first_run["base_id"]


def test_one_identity_per_model_version_across_finetuning_app_and_cli(first_run, flawed_world, tmp_path,
                                                                       capsys):
    """Fine-tuning registers the adapter under gazex_core.checkpoint.model_identity; the app (launch.py --model
    <adapter dir>) finds that same version instead of registering another; the app's loader, `gazex analyze`
    and `gazex evaluate` all load the base + adapter directory and report the same identity and version."""
    import json
    import shutil

    from app.model_switch import load_gazex
    from app.runtime import ensure_model_version
    from training.cli import main

    service = first_run["service"]
    candidate = service.get_model_version(first_run["run"]["candidate_model_version_id"])
    adapter_dir = Path(candidate.path)
    assert is_adapter_dir(adapter_dir) and candidate.weights_hash == model_identity(adapter_dir)
    count = len(service.list_model_versions())
    assert ensure_model_version(service, adapter_dir, make_active=False).id == candidate.id
    assert ensure_model_version(service, Path(flawed_base_path(service, first_run["base_id"])),
                                make_active=False).id == first_run["base_id"]
    assert len(service.list_model_versions()) == count  # nothing registered twice

    gx = load_gazex(adapter_dir, threads=1)
    assert (gx.identity, gx.version) == (candidate.weights_hash, candidate.version)
    resolve_checkpoint(adapter_dir)  # derived files (merged/, metrics.json) are not part of the identity
    moved = tmp_path / "moved_adapter"
    shutil.copytree(adapter_dir, moved)  # neither is where the directory lives
    assert model_identity(moved) == candidate.weights_hash

    study = flawed_world.studies[0]
    assert main(["analyze", study.image_path, "--model", str(adapter_dir), "--threads", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["version"] == candidate.version
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(adapter_dir), "--data", str(flawed_world.root / "synth"),
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--limit", "2", "--questions-per-study", "1",
                 "--threads", "1"]) == 0
    evaluation = json.loads((out / "metrics.json").read_text())
    assert (evaluation["model_identity"], evaluation["model_version"]) == (candidate.weights_hash, candidate.version)
