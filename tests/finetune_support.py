"""Fixtures for the fine-tuning tests: a small synthetic world with a deliberately flawed base model (it
over-calls an old rib fracture on every study), review databases filled by a simulated reader through
ReviewService, and fine-tuning parameters small enough for a shared 2-core CPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from annotations_db.service import ReviewService
from gazex_core.checkpoint import load_model, model_identity
from training.finetune.metrics import ensure_benchmark
from training.finetune.params import FinetuneParams, LoraParams
from finetune_simulation import SimulatedReader, SynthStudy, make_flawed_model, read_studies, register_and_draft

WORLD_STUDIES = 100
FLAW_STEPS = 60
BENCH_N, BENCH_SEED, BENCH_SIZE = 400, 12345, 128  # 100 studies: run-to-run spread 0.024-0.037 > tolerance
READER = "reader1"
ADMIN = "admin1"


@dataclass
class World:
    root: Path
    studies: list[SynthStudy]
    base: Path
    bench: Path


@pytest.fixture(scope="session")
def flawed_world(tmp_path_factory) -> World:
    from training.synth import generate

    torch.set_num_threads(1)  # many threads on this shared 2-core box are 10x slower, not faster
    root = tmp_path_factory.mktemp("finetune_world")
    generate(WORLD_STUDIES, root / "synth", seed=7, size=128, workers=1, progress=False)
    studies = read_studies(root / "synth")
    base = make_flawed_model(studies, root / "base", steps=FLAW_STEPS)
    bench = ensure_benchmark(root / "bench", BENCH_N, BENCH_SEED, BENCH_SIZE)
    return World(root, studies, base, bench)


def open_world_db(world: World, data_dir: Path) -> tuple[ReviewService, int]:
    """A fresh database in data_dir with the flawed base as the active version and the shared benchmark set."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "benchmarks").mkdir(exist_ok=True)
    link = data_dir / "benchmarks" / world.bench.name
    if not link.exists():
        link.symlink_to(world.bench, target_is_directory=True)
    service = ReviewService.open(None, data_dir=str(data_dir))
    version = service.register_model_version("gazex", "flawed-base", model_identity(world.base), path=str(world.base),
                                              status="active")
    service.create_reader(ADMIN, "password123", role="admin")
    service.create_reader(READER, "password123", acting=ADMIN)
    return service, version.id


def review(service: ReviewService, world: World, studies: list[SynthStudy], version_id: int,
           label: str = "Fracture") -> SimulatedReader:
    """Drafts the studies with the active base model and has the simulated reader review all of them."""
    model, tok = load_model(world.base)
    ids = register_and_draft(service, studies, model, tok, version_id)
    reader = SimulatedReader(service, READER, label=label)
    for study in studies:
        reader.review(ids[study.study_uid], study)
    return reader


def small_params(**changes) -> FinetuneParams:
    # the flaw (a sentence over-called on every study) does not depend on the image: adapting only the decoder's
    # self-attention leaves how the image is read - and so every real finding - the base's
    lora = LoraParams(rank=8, alpha=16, epochs=changes.pop("epochs", 4), batch_size=8, lr=3e-3, dpo_beta=0.5,
                      scope="decoder_self")
    params = FinetuneParams(lora=lora, min_corrections=10, val_fraction=0.3, benchmark_n=BENCH_N,
                            benchmark_seed=BENCH_SEED, benchmark_size=BENCH_SIZE, heartbeat_s=0.5)
    for key, value in changes.items():
        setattr(params, key, value)
    return params
