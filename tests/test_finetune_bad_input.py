"""Bad input and crashes: no/too few corrections train nothing; a killed job leaves the active model
untouched and its run is marked failed (SIGTERM by the job itself, SIGKILL by heartbeat staleness)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetune_support import link_benchmark, open_world_db, review, small_params
from training.finetune.job import FinetuneInputError, mark_stale_runs, run_finetune
from training.finetune.params import FinetuneParams

REPO = Path(__file__).resolve().parents[1]
CLI_BENCH_N, CLI_BENCH_SIZE = 100, 128


def test_no_reviews_at_all_is_refused_with_a_clear_message(flawed_world, tmp_path, capsys):
    service, _ = open_world_db(flawed_world, tmp_path)
    with pytest.raises(FinetuneInputError, match="no signed-off reviews"):
        run_finetune(service, tmp_path, small_params())
    assert service.finetune_runs() == []
    from training.cli import main

    assert main(["finetune", "--data-dir", str(tmp_path)]) == 2
    assert "nothing to fine-tune" in capsys.readouterr().err
    assert not (tmp_path / "adapters").exists() and len(service.list_model_versions()) == 1
    service.close()


def test_reviews_without_corrections_and_too_few_corrections_train_nothing(flawed_world, tmp_path):
    service, base_id = open_world_db(flawed_world, tmp_path)
    # the reader looks for an error the model never makes: every draft is signed as is
    reader = review(service, flawed_world, flawed_world.studies[:12], base_id, label="Pleural Other")
    assert reader.corrections == 0
    with pytest.raises(FinetuneInputError, match="none corrects the draft"):
        run_finetune(service, tmp_path, small_params())
    review(service, flawed_world, flawed_world.studies[12:20], base_id)  # 8 corrected reviews
    with pytest.raises(FinetuneInputError, match=r"only 8 corrected reviews \(need at least 10"):
        run_finetune(service, tmp_path, small_params())
    assert service.finetune_runs() == [] and len(service.list_model_versions()) == 1
    assert service.active_model_version().id == base_id
    service.close()


def _start_cli(data_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "training.cli", "finetune", "--data-dir", str(data_dir), "--epochs", "500",
           "--min-corrections", "10", "--val-fraction", "0.3", "--benchmark-n", str(CLI_BENCH_N),
           "--benchmark-size", str(CLI_BENCH_SIZE), "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_training(service, proc: subprocess.Popen, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = service.finetune_runs()
        if runs and runs[-1]["status"] == "running" and (runs[-1]["message"] or "").startswith("training step"):
            return runs[-1]
        if proc.poll() is not None:
            pytest.fail(f"the job ended early: {proc.communicate()}")
        time.sleep(0.5)
    proc.kill()
    pytest.fail("the job never reached training")


def _identities(service) -> list[tuple]:
    return [(v.id, v.status, v.path, v.weights_hash, v.parent_id) for v in service.list_model_versions()]


@pytest.fixture()
def reviewed_db(flawed_world, tmp_path):
    service, base_id = open_world_db(flawed_world, tmp_path)
    review(service, flawed_world, flawed_world.studies[:40], base_id)
    link_benchmark(flawed_world, tmp_path, CLI_BENCH_N, FinetuneParams().benchmark_seed, CLI_BENCH_SIZE)
    yield service, base_id, tmp_path
    service.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_job_leaves_the_active_model_untouched_and_its_run_failed(reviewed_db, sig):
    service, base_id, data_dir = reviewed_db
    versions_before = _identities(service)
    proc = _start_cli(data_dir)
    run = _wait_for_training(service, proc)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    if sig == signal.SIGKILL:
        assert service.get_finetune_run(run["id"])["status"] == "running"  # nobody could write "failed"
        time.sleep(1.5)
        assert mark_stale_runs(service, stale_after_s=1.0) == [run["id"]]
    row = service.get_finetune_run(run["id"])
    assert row["status"] == "failed"
    assert ("SIGTERM" if sig == signal.SIGTERM else "no heartbeat") in row["message"]
    assert service.active_model_version().id == base_id
    assert _identities(service) == versions_before  # no new version, nothing promoted or retired
    # the slot is free again: a new run may start
    new_id = service.start_finetune_run(base_model_version_id=base_id, params={})
    service.update_finetune_run(new_id, status="failed", message="test cleanup")


def test_a_stale_run_does_not_block_the_next_fine_tune(reviewed_db):
    service, base_id, _ = reviewed_db
    stuck = service.start_finetune_run(base_model_version_id=base_id, params={})
    service.update_finetune_run(stuck, status="running")
    time.sleep(1.2)
    assert mark_stale_runs(service, stale_after_s=600) == []  # a live heartbeat is left alone
    assert mark_stale_runs(service, stale_after_s=1.0) == [stuck]
    assert service.get_finetune_run(stuck)["status"] == "failed"
