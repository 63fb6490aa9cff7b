"""Loading "base + LoRA adapter" model versions.

A fine-tuned GazeX version is stored as a small LoRA adapter directory (written by ``gazex finetune``)::

    adapter_dir/
      adapter_config.json          peft LoRA configuration (rank, alpha, target modules)
      adapter_model.safetensors    the LoRA weights (a few MB)
      gazex_adapter.json           {"format": "gazex.adapter/1", "base": <parent model directory>, ...}

``base`` is either a full checkpoint directory (``config.json`` + ``model.safetensors`` + ``tokenizer.json``)
or another adapter directory (adapters stack: a version fine-tuned from a fine-tuned version). A relative
``base`` is resolved against the adapter directory.

* :func:`load_model` returns the plain :class:`GazeXModel` (LoRA merged into the weights, eval mode) and
  its tokenizer, for any model directory.
* :func:`resolve_checkpoint` returns a full-checkpoint directory for any model directory: the directory
  itself, or for an adapter a merged checkpoint written once under ``adapter_dir/merged`` - so any loader
  of full checkpoints (``GazeX.load``) can run an adapter version unchanged.

Imports neither annotations_db nor training.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ADAPTER_META = "gazex_adapter.json"
ADAPTER_FORMAT = "gazex.adapter/1"
MERGED_DIR = "merged"


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
        raise AdapterError(f"{chain[0]}: not a GazeX checkpoint directory (no config.json)")
    return chain


def _load_checkpoint(path: Path):
    from .model import GazeXModel
    from .tokenizer import GazeXTokenizer

    model = GazeXModel.from_pretrained(path).float()
    return model, GazeXTokenizer.from_file(path)


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
