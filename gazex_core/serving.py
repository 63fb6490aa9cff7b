"""The one entry point that turns any model directory into a served model.

:class:`~gazex_core.inference.GazeX` for gazex-tiny checkpoints and their LoRA adapters,
:class:`~gazex_core.qwen2vl.Qwen2VLGazeX` for the full-scale Qwen2-VL backbone (a base or a LoRA adapter).
Both answer ``analyze`` / ``ask`` / ``ground`` with the same EvidenceBundle, Answer and Grounding.
"""

from __future__ import annotations

from pathlib import Path


def open_model(path: str | Path, *, threads: int | None = None, device: str = "cpu"):
    """The served model for any model directory, loaded once by the caller."""
    from .qwen2vl import Qwen2VLGazeX, is_qwen2vl_dir

    if is_qwen2vl_dir(path):
        return Qwen2VLGazeX(path, device=device, threads=threads)
    from .inference import GazeX

    return GazeX(Path(path), device=device, threads=threads)
