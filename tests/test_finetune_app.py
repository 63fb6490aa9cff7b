"""App side of re-fine-tuning: switching the served version without a restart (drafts record the version
that made them) and the Admin "Model" section's server functions (real SQLite, real models)."""

from __future__ import annotations

import json

import pytest
import torch

from app import admin_models
from app.inference_worker import InferenceWorker
from app.model_switch import ModelSwitcher, load_version
from app.runtime import read_image
from annotations_db.service import InvalidTransition
from finetune_support import ADMIN, open_world_db
from gazex_core.checkpoint import ADAPTER_FORMAT, ADAPTER_META, model_identity
from training.finetune.lora import save_adapter, wrap_lora
from training.finetune.params import LoraParams


@pytest.fixture()
def world_db(flawed_world, tmp_path):
    service, base_id = open_world_db(flawed_world, tmp_path)
    yield service, base_id, tmp_path, flawed_world
    service.close()


def _adapter_version(service, base_id, world, tmp_path, gate_passed: bool):
    from gazex_core.checkpoint import load_model

    model, _ = load_model(world.base)
    peft_model = wrap_lora(model, LoraParams(rank=4))
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    out = tmp_path / "adapters" / f"a{int(gate_passed)}"
    save_adapter(peft_model, out)
    (out / ADAPTER_META).write_text(json.dumps({"format": ADAPTER_FORMAT, "base": str(world.base)}))
    return service.register_model_version("gazex", f"flawed-base+test{int(gate_passed)}", model_identity(out),
                                          parent_id=base_id, status="candidate", path=str(out),
                                          metrics={"gate_passed": gate_passed, "gate_reasons": [] if gate_passed
                                                   else ["correction score gain -0.1 is not above +0.0"]})


def test_the_worker_follows_the_active_version_and_drafts_record_it(world_db):
    service, base_id, tmp_path, world = world_db
    candidate = _adapter_version(service, base_id, world, tmp_path, gate_passed=True)
    worker = InferenceWorker(service, lambda: load_version(service.get_model_version(base_id)), read_image,
                             base_id).start()
    switcher = ModelSwitcher(service, worker)
    try:
        first, second = world.studies[0], world.studies[1]
        s1 = service.register_study(first.study_uid, first.image_path, width=first.width, height=first.height)
        worker.enqueue_drafts([(s1.id, first.study_uid, first.image_path)])
        assert worker.wait_idle(600) and worker.progress.done == 1
        assert switcher.check() is False  # nothing changed
        service.promote_model_version(candidate.id)
        assert switcher.check() is True and worker.model_version_id == candidate.id
        s2 = service.register_study(second.study_uid, second.image_path, width=second.width, height=second.height)
        worker.enqueue_drafts([(s2.id, second.study_uid, second.image_path)])
        assert worker.wait_idle(600) and worker.progress.failed == 0
        assert service.get_draft(s1.id, base_id) is not None and service.get_draft(s1.id, candidate.id) is None
        draft_id, bundle = service.get_draft(s2.id, candidate.id)
        assert bundle["sentences"] and service.get_draft(s2.id, base_id) is None
        service.rollback_model_version()
        assert switcher.check() is True and worker.model_version_id == base_id
    finally:
        worker.stop()


def test_a_version_that_fails_to_load_keeps_the_old_one_serving(world_db):
    service, base_id, tmp_path, world = world_db
    broken = service.register_model_version("gazex", "broken", "0" * 64, parent_id=base_id,
                                            path=str(tmp_path / "missing"), status="candidate")
    worker = InferenceWorker(service, lambda: None, read_image, base_id).start()
    try:
        service.promote_model_version(broken.id)
        switcher = ModelSwitcher(service, worker)
        assert switcher.check() is False and worker.model_version_id == base_id
        assert "version" in switcher.last_error
    finally:
        worker.stop()


def test_admin_model_section_functions(world_db):
    service, base_id, tmp_path, world = world_db
    failed = _adapter_version(service, base_id, world, tmp_path, gate_passed=False)
    passed = _adapter_version(service, base_id, world, tmp_path, gate_passed=True)
    with pytest.raises(Exception, match="admin"):
        admin_models.promote(service, "reader1", passed.id)
    admin = ADMIN
    with pytest.raises(InvalidTransition, match="gate"):
        admin_models.promote(service, admin, failed.id)
    assert "now active" in admin_models.promote(service, admin, passed.id)
    assert service.active_model_version().id == passed.id
    assert "active again" in admin_models.rollback(service, admin)
    assert service.active_model_version().id == base_id
    assert admin_models.pending_corrections(service) == {"reviews": 0, "corrected": 0}
    run = {"id": 3, "status": "succeeded", "progress": 1.0, "message": "gate passed", "candidate_model_version_id": 2,
           "heartbeat_at": None, "created_at": None,
           "metrics": {"before": {"corrections": {"deleted_recurrence": 1.0}, "benchmark": {"report_label_macro_f1": 0.2}},
                       "after": {"corrections": {"deleted_recurrence": 0.1}, "benchmark": {"report_label_macro_f1": 0.2}},
                       "gate": {"passed": True}}}
    rows = admin_models.metric_rows(run)
    assert rows[0][1:] == ["1.000", "0.100", "-0.900"] and len(rows) == 2
    assert len(admin_models.metrics_figure(run).data) == 2
    assert "Run 3" in admin_models.progress_text(run)
    cmd = admin_models.finetune_command(service)
    assert cmd[1:4] == ["-m", "training.cli", "finetune"] and str(tmp_path) in cmd
