"""Model directories: the one place that resolves, identifies and loads a GazeX model version.

A gazex-tiny model directory is either a **full checkpoint** (``config.json`` + ``model.safetensors`` +
``tokenizer.json``) or a **LoRA adapter** written by ``gazex finetune``::

    adapter_dir/
      adapter_config.json          peft LoRA configuration (rank, alpha, target modules)
      adapter_model.safetensors    the LoRA weights (a few MB)
      gazex_adapter.json           {"format": "gazex.adapter/1", "base": <parent model directory>,
                                    "version": <registry version label>, ...}

``base`` is a full checkpoint or another adapter directory (adapters stack: a version fine-tuned from a
fine-tuned version). A relative ``base`` is resolved against the adapter directory.

A full-scale **Qwen2-VL** directory (docs/full_scale.md) is a base model as ``save_pretrained`` writes it, or
a peft LoRA adapter with ``gazex_backbone.json`` naming its base: :func:`is_qwen2vl_dir`, :func:`resolve_base`.

* :func:`model_identity` - the identity of a model version (SHA-256), the same for the app, the CLI,
  evaluation and fine-tuning: a checkpoint's config, weights and tokenizer; an adapter's base identity plus
  its LoRA configuration and weights; in both, the input-check statistics (``input_check.safetensors``)
  and the confidence calibrator (``calibration.json``) when the directory has them, since they decide which
  studies get a draft and what its confidences say. Derived files (``merged/``,
  ``metrics.json``) never count, and moving a directory does not change it.
* :func:`load_input_stats` - the input-check statistics that apply to a model directory
  (:mod:`gazex_core.input_check`): its own file, else the nearest one up its adapter chain, else None.
* :func:`load_calibration` - the sentence-confidence calibrator (:mod:`gazex_core.calibration`) that applies
  to a model directory: its own file only (an adapter changes the decoder, so its base's calibrator does not
  describe it), else None.
* :func:`load_model` - any model directory -> (``GazeXModel`` in eval mode with every adapter of its chain
  merged, tokenizer).
* :func:`resolve_checkpoint` - a full-checkpoint directory for any model directory (an adapter chain is
  merged once into ``adapter_dir/merged``), for loaders that only read full checkpoints.
* :func:`version_label` - the human-readable version a directory carries.
* :func:`gazex_core.serving.open_model` (one level up, since it imports both backbones) - any model
  directory -> the model that serves it, gazex-tiny or Qwen2-VL.

Imports neither annotations_db nor training.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).parent / "weights" / "gazex-tiny"  # the shipped, CPU-trained model

ADAPTER_META = "gazex_adapter.json"
ADAPTER_FORMAT = "gazex.adapter/1"
MERGED_DIR = "merged"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
QWEN2VL_BACKBONE = "qwen2-vl"
QWEN2VL_META = "gazex_backbone.json"  # a Qwen2-VL LoRA adapter's pointer to its base model
INPUT_STATS_FILE = "input_check.safetensors"  # gazex_core.input_check.STATS_FILE; optional, counts in the identity
CALIBRATION_FILE = "calibration.json"  # gazex_core.calibration.CALIBRATION_FILE; optional, counts in the identity
MODEL_SIDE_FILES = (INPUT_STATS_FILE, CALIBRATION_FILE)  # fitted on the model's outputs, part of its version


class AdapterError(ValueError):
    """A model directory that is neither a checkpoint nor a readable adapter."""


class ModelNotFound(FileNotFoundError):
    """No usable Qwen2-VL weights at a path. One-line message."""


class ModelMismatch(ValueError):
    """Weights, processor and adapter that do not belong together. One-line message."""


def is_qwen2vl_dir(path: str | Path) -> bool:
    path = Path(path)
    if (path / QWEN2VL_META).is_file():
        return True
    try:
        return json.loads((path / "config.json").read_text()).get("model_type") == "qwen2_vl"
    except (OSError, json.JSONDecodeError):
        return False


def _read_meta(meta_path: Path, error: type[Exception], kind_key: str, kind: str, base_key: str) -> dict:
    """An adapter's metadata file, checked to name its kind and its base model."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"{meta_path}: cannot read adapter metadata ({exc})") from exc
    if meta.get(kind_key) != kind or not meta.get(base_key):
        raise error(f"{meta_path}: not a {kind} adapter (needs {kind_key}={kind!r} and {base_key!r})")
    return meta


def _beside(adapter_dir: str | Path, base: str) -> Path:
    """A base path as written in an adapter's metadata: absolute, or relative to the adapter directory."""
    base_path = Path(base)
    return base_path if base_path.is_absolute() else (Path(adapter_dir) / base_path).resolve()


def backbone_meta(path: str | Path) -> dict:
    return _read_meta(Path(path) / QWEN2VL_META, ModelMismatch, "backbone", QWEN2VL_BACKBONE, "base_model")


def resolve_base(path: str | Path) -> tuple[Path, Path | None]:
    """(base model dir, adapter dir or None) for a base or adapter directory; checks both exist."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFound(f"{path}: no such model directory (weights are never downloaded implicitly)")
    adapter = path if (path / "adapter_config.json").is_file() else None
    if adapter is None:
        _check_base(path)
        return path, None
    base = _beside(path, backbone_meta(path)["base_model"])
    _check_base(base)
    return base, adapter


def _check_base(path: Path) -> None:
    if not path.is_dir():
        raise ModelNotFound(f"{path}: base model directory not found (download Qwen2-VL yourself and pass its path)")
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"{path}: no config.json - not a model directory")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelNotFound(f"{path}: config.json but no weights (*.safetensors)")
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type != "qwen2_vl":
        raise ModelMismatch(f"{path}: model_type {model_type!r} is not 'qwen2_vl'")
    has_processor = (path / "processor_config.json").is_file() or (path / "preprocessor_config.json").is_file()
    if not has_processor or not (path / "tokenizer.json").is_file():
        raise ModelNotFound(f"{path}: processor files missing (processor_config.json or preprocessor_config.json, "
                            "tokenizer.json)")


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_META).is_file()


def adapter_meta(path: str | Path) -> dict:
    return _read_meta(Path(path) / ADAPTER_META, AdapterError, "format", ADAPTER_FORMAT, "base")


def adapter_base(path: str | Path) -> Path:
    return _beside(path, adapter_meta(path)["base"])


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


def _files_identity(directory: Path, names: tuple[str, ...], prefix: str, optional: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256(prefix.encode())
    for name in names:
        file = directory / name
        if not file.is_file():
            raise AdapterError(f"{file}: missing (a model directory needs {', '.join(names)})")
        digest.update(f"\n{name}\n{_file_digest(file)}".encode())
    for name in optional:  # absent: the identity is what it was before the file existed
        if (directory / name).is_file():
            digest.update(f"\n{name}\n{_file_digest(directory / name)}".encode())
    return digest.hexdigest()


def model_identity(path: str | Path) -> str:
    """SHA-256 identity of the model version in ``path`` (checkpoint or adapter chain)."""
    if is_qwen2vl_dir(path):
        return _qwen2vl_identity(Path(path))
    chain = adapter_chain(path)
    identity = _files_identity(chain[0], CHECKPOINT_FILES, "gazex.checkpoint", MODEL_SIDE_FILES)
    for adapter_dir in chain[1:]:
        identity = _files_identity(adapter_dir, ADAPTER_FILES, f"{ADAPTER_FORMAT}\n{identity}", MODEL_SIDE_FILES)
    return identity


def _qwen2vl_identity(path: Path) -> str:
    """A Qwen2-VL base: config, tokenizer and every weight shard; an adapter: the base's identity + LoRA files."""
    base, adapter = resolve_base(path)
    shards = tuple(sorted(p.name for p in base.glob("*.safetensors")))
    identity = _files_identity(base, ("config.json", "tokenizer.json") + shards, "gazex.qwen2-vl")
    if adapter is not None:
        identity = _files_identity(adapter, ADAPTER_FILES + (QWEN2VL_META,), f"gazex.qwen2-vl.lora\n{identity}")
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
    from .model import GazeXModel
    from .tokenizer import GazeXTokenizer

    return GazeXModel.from_pretrained(path).float(), GazeXTokenizer.from_file(path)


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


def load_input_stats(path: str | Path):
    """The input-check statistics (gazex_core.input_check.FeatureStats) for a model directory: its own
    ``input_check.safetensors``, else the nearest up its adapter chain (an adapter that leaves the encoder
    as it was - the default "decoder" scope - keeps its base's features), else None."""
    from .input_check import FeatureStats

    for directory in reversed(adapter_chain(path)):
        if (directory / INPUT_STATS_FILE).is_file():
            return FeatureStats.load(directory / INPUT_STATS_FILE)
    return None


def load_calibration(path: str | Path):
    """The sentence-confidence calibrator (gazex_core.calibration.Calibrator) of a model directory, or None.
    Only the directory's own file: a fine-tuned adapter drafts other sentences than its base, so the base's
    calibrator does not describe it (refit with ``gazex calibrate fit --model DIR``)."""
    from .calibration import Calibrator

    file = Path(path) / CALIBRATION_FILE
    return Calibrator.load(file) if file.is_file() else None


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
