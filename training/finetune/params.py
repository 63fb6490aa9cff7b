"""Fine-tuning parameters (a light module: the command line imports it without torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ATTENTION = r"(q_proj|k_proj|v_proj|o_proj)"
TARGET_SCOPES = {
    "decoder": rf"layers\.\d+\.(self_attn|cross_attn)\.{ATTENTION}",  # decoder self- and cross-attention
    # decoder self-attention only: how the image is read (cross-attention) stays the base's - for errors
    # that do not depend on the image, such as a sentence over-called on every study
    "decoder_self": rf"layers\.\d+\.self_attn\.{ATTENTION}",
    "all": rf".*\.{ATTENTION}",  # + image encoder and finding-head attention
}


@dataclass
class LoraParams:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    scope: str = "decoder"
    epochs: int = 4
    lr: float = 3e-3
    batch_size: int = 8
    dpo_weight: float = 1.0
    dpo_beta: float = 0.5
    ground_weight: float = 0.5
    seed: int = 0


@dataclass
class FinetuneParams:
    lora: LoraParams = field(default_factory=LoraParams)
    since_version: int | None = None  # reviews of drafts by this version or later (default: the active one)
    min_corrections: int = 20
    val_fraction: float = 0.2
    split_seed: int = 0
    tolerance: float = 0.02  # allowed benchmark macro-F1 drop
    min_improvement: float = 0.0  # the correction score must improve by more than this
    promote: bool = False  # promote automatically when the gate passes
    benchmark_n: int = 100
    benchmark_seed: int = 12345
    benchmark_size: int = 256
    heartbeat_s: float = 5.0
    stale_after_s: float = 120.0
    max_train_studies: int | None = None
    threads: int = 1  # torch threads inside the run: a fixed count makes the same inputs give the same adapter

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
