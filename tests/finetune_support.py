"""Helpers for the fine-tuning tests: a small synthetic world with a deliberately flawed base model (it
over-calls an old rib fracture on every study), review databases filled by a simulated reader through
ReviewService, and fine-tuning parameters small enough for a shared 2-core CPU.

The world is built once per test session by the ``flawed_world`` fixture in tests/conftest.py (a test module
that imported a session fixture would get its own copy: pytest caches a fixture per module that defines it).
Everything in it is deterministic for its seeds, so every fine-tuning test file sees the world it would have
built itself; the base model's drafts of a given list of studies are likewise computed once per session."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from annotations_db.service import ReviewService
from gazex_core.checkpoint import load_model, model_identity
from training.finetune.metrics import ensure_benchmark
from training.finetune.params import FinetuneParams, LoraParams
from finetune_simulation import SimulatedReader, SynthStudy, draft_reports, make_flawed_model, read_studies, register_drafts

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


def build_flawed_world(root: Path) -> World:
    """The session's fine-tuning world in root (tests/conftest.py's ``flawed_world`` fixture calls this once)."""
    from training.synth import generate

    torch.set_num_threads(1)  # many threads on this shared 2-core box are 10x slower, not faster
    generate(WORLD_STUDIES, root / "synth", seed=7, size=128, workers=1, progress=False)
    studies = read_studies(root / "synth")
    base = make_flawed_model(studies, root / "base", steps=FLAW_STEPS)
    bench = ensure_benchmark(root / "bench", BENCH_N, BENCH_SEED, BENCH_SIZE)
    return World(root, studies, base, bench)


def open_world_db(world: World, data_dir: Path) -> tuple[ReviewService, int]:
    """A fresh database in data_dir with the flawed base as the active version and the shared benchmark set."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _link_into(data_dir, world.bench)
    service = ReviewService.open(None, data_dir=str(data_dir))
    version = service.register_model_version("gazex", "flawed-base", model_identity(world.base), path=str(world.base),
                                              status="active")
    service.create_reader(ADMIN, "password123", role="admin")
    service.create_reader(READER, "password123", acting=ADMIN)
    return service, version.id


def link_benchmark(world: World, data_dir: Path, n: int, seed: int, size: int) -> Path:
    """The benchmark set (n, seed, size) in data_dir/benchmarks, generated once per session under the world's
    root by the product's own ensure_benchmark (deterministic for its parameters): a fine-tune job run on
    data_dir finds it there instead of generating the same set again."""
    bench = ensure_benchmark(world.root / "bench", n, seed, size)
    _link_into(data_dir, bench)
    return bench


def _link_into(data_dir: Path, bench: Path) -> None:
    (data_dir / "benchmarks").mkdir(parents=True, exist_ok=True)
    link = data_dir / "benchmarks" / bench.name
    if not link.exists():
        link.symlink_to(bench, target_is_directory=True)


def review(service: ReviewService, world: World, studies: list[SynthStudy], version_id: int,
           label: str = "Fracture") -> SimulatedReader:
    """Drafts the studies with the active base model and has the simulated reader review all of them."""
    ids = register_drafts(service, studies, base_drafts(world, studies), version_id)
    reader = SimulatedReader(service, READER, label=label)
    for study in studies:
        reader.review(ids[study.study_uid], study)
    return reader


_BASE_DRAFTS: dict[tuple[str, tuple[str, ...]], list] = {}


def base_drafts(world: World, studies: list[SynthStudy]) -> list:
    """The base model's drafts of exactly these studies (same list, same batches), computed once per session:
    greedy decoding of the same images with the same weights is deterministic, so a repeat would redo the same
    work (tests/test_finetune_bad_input.py reviews the first 40 studies in three fresh databases)."""
    key = (str(world.base), tuple(s.study_uid for s in studies))
    if key not in _BASE_DRAFTS:
        torch.set_num_threads(1)  # as the world build left it: other test files in between may have changed it
        model, tok = load_model(world.base)
        _BASE_DRAFTS[key] = draft_reports(studies, model, tok)
    return copy.deepcopy(_BASE_DRAFTS[key])


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
