"""Model directories: the one place that resolves, identifies and loads a GazeX model version.

A model directory is either a **full checkpoint** (``config.json`` + ``model.safetensors`` +
``tokenizer.json``) or a **LoRA adapter** written by ``gazex finetune``::

    adapter_dir/
      adapter_config.json          peft LoRA configuration (rank, alpha, target modules)
      adapter_model.safetensors    the LoRA weights (a few MB)
      gazex_adapter.json           {"format": "gazex.adapter/1", "base": <parent model directory>,
                                    "version": <registry version label>, ...}

``base`` is a full checkpoint or another adapter directory (adapters stack: a version fine-tuned from a
fine-tuned version). A relative ``base`` is resolved against the adapter directory.

* :func:`model_identity` - the identity of a model version (SHA-256), the same for the app, the CLI,
  evaluation and fine-tuning: a checkpoint's config, weights and tokenizer; an adapter's base identity plus
  its LoRA configuration and weights. Derived files (``merged/``, ``metrics.json``) never count, and moving
  a directory does not change it.
* :func:`load_model` - any model directory -> (``GazeXModel`` in eval mode with every adapter of its chain
  merged, tokenizer).
* :func:`resolve_checkpoint` - a full-checkpoint directory for any model directory (an adapter chain is
  merged once into ``adapter_dir/merged``), for loaders that only read full checkpoints.
* :func:`version_label` - the human-readable version a directory carries.
* :func:`open_model` - any model directory -> a ready model with GazeX's ``analyze`` / ``ask`` / ``ground``:
  :class:`~gazex_core.inference.GazeX` for gazex-tiny checkpoints and adapters,
  :class:`~gazex_core.qwen2vl.Qwen2VLGazeX` for the full-scale Qwen2-VL backbone (base or LoRA adapter).

Imports neither annotations_db nor training.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

ADAPTER_META = "gazex_adapter.json"
ADAPTER_FORMAT = "gazex.adapter/1"
MERGED_DIR = "merged"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class AdapterError(ValueError):
    """A model directory that is neither a checkpoint nor a readable adapter."""


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_META).is_file()


def adapter_meta(path: str | Path) -> dict:
    meta_path = Path(path) / ADAPTER_META
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{meta_path}: cannot read adapter metadata ({exc})") from exc
    if meta.get("format") != ADAPTER_FORMAT or not meta.get("base"):
        raise AdapterError(f"{meta_path}: not a {ADAPTER_FORMAT} adapter (needs 'format' and 'base')")
    return meta


def adapter_base(path: str | Path) -> Path:
    base = Path(adapter_meta(path)["base"])
    return base if base.is_absolute() else (Path(path) / base).resolve()


def adapter_chain(path: str | Path, max_depth: int = 32) -> list[Path]:
    """[full checkpoint, adapter 1, ..., this adapter] for an adapter dir; [path] for a checkpoint."""
    chain = [Path(path)]
    while is_adapter_dir(chain[0]):
        if len(chain) > max_depth:
            raise AdapterError(f"{path}: adapter chain deeper than {max_depth} (a cycle?)")
        chain.insert(0, adapter_base(chain[0]))
    if not (chain[0] / "config.json").is_file():
        raise AdapterError(f"{chain[0]}: not a GazeX model directory (no config.json, no {ADAPTER_META})")
    return chain


# ------------------------------------------------------------------ identity


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_identity(directory: Path, names: tuple[str, ...], prefix: str) -> str:
    digest = hashlib.sha256(prefix.encode())
    for name in names:
        file = directory / name
        if not file.is_file():
            raise AdapterError(f"{file}: missing (a model directory needs {', '.join(names)})")
        digest.update(f"\n{name}\n{_file_digest(file)}".encode())
    return digest.hexdigest()


def model_identity(path: str | Path) -> str:
    """SHA-256 identity of the model version in ``path`` (checkpoint or adapter chain)."""
    from .qwen2vl import is_qwen2vl_dir

    if is_qwen2vl_dir(path):
        return _qwen2vl_identity(Path(path))
    chain = adapter_chain(path)
    identity = _files_identity(chain[0], CHECKPOINT_FILES, "gazex.checkpoint")
    for adapter_dir in chain[1:]:
        identity = _files_identity(adapter_dir, ADAPTER_FILES, f"{ADAPTER_FORMAT}\n{identity}")
    return identity


def _qwen2vl_identity(path: Path) -> str:
    """A Qwen2-VL base: config, tokenizer and every weight shard; an adapter: the base's identity + LoRA files."""
    from .qwen2vl import BACKBONE_META, resolve_base

    base, adapter = resolve_base(path)
    shards = tuple(sorted(p.name for p in base.glob("*.safetensors")))
    identity = _files_identity(base, ("config.json", "tokenizer.json") + shards, "gazex.qwen2-vl")
    if adapter is not None:
        identity = _files_identity(adapter, ADAPTER_FILES + (BACKBONE_META,), f"gazex.qwen2-vl.lora\n{identity}")
    return identity


def version_label(path: str | Path) -> str:
    """The version a directory carries: an adapter's recorded label, a checkpoint's ``model_version``, else its name."""
    path = Path(path)
    if is_adapter_dir(path):
        return str(adapter_meta(path).get("version") or path.name)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        config = {}
    return str(config.get("model_version") or path.name)


# ------------------------------------------------------------------ loading


def _load_checkpoint(path: Path):
    from transformers.utils import logging as hf_logging

    from .model import GazeXModel
    from .tokenizer import GazeXTokenizer

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on stderr (CLI errors stay one line)
    try:
        import torch

        model = GazeXModel.from_pretrained(path, dtype=torch.float32)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return model.float(), GazeXTokenizer.from_file(path)


def merge_adapter(model, adapter_dir: str | Path):
    """Applies one LoRA adapter directory to ``model`` and merges it into the weights (returns the plain model)."""
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    return peft_model.merge_and_unload()


def load_model(path: str | Path):
    """Any model directory -> (GazeXModel in eval mode with every adapter of its chain merged, tokenizer)."""
    chain = adapter_chain(path)
    model, tok = _load_checkpoint(chain[0])
    for adapter_dir in chain[1:]:
        model = merge_adapter(model, adapter_dir)
    return model.eval(), tok


def resolve_checkpoint(path: str | Path) -> Path:
    """A full-checkpoint directory for ``path`` (merging an adapter chain once into ``path/merged``)."""
    path = Path(path)
    if not is_adapter_dir(path):
        return path
    merged = path / MERGED_DIR
    if (merged / "config.json").is_file() and (merged / "tokenizer.json").is_file():
        return merged
    model, tok = load_model(path)
    tmp = path / f".{MERGED_DIR}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save(tmp)
    try:
        os.replace(tmp, merged)  # atomic: a reader never sees a half-written merged checkpoint
    except OSError:  # merged concurrently by another process: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return merged


def open_model(path: str | Path, *, threads: int | None = None, device: str = "cpu"):
    """The served model for any model directory (see the module doc), loaded once by the caller."""
    from .qwen2vl import Qwen2VLGazeX, is_qwen2vl_dir

    if is_qwen2vl_dir(path):
        return Qwen2VLGazeX(path, device=device, threads=threads)
    from .inference import GazeX

    return GazeX(Path(path), device=device, threads=threads)
