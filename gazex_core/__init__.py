"""GazeX core: the model and its inference API (analyze, ask, ground -> EvidenceBundle).

Imports neither annotations_db nor training.
"""

from .evidence import SCHEMA, Box, EvidenceBundle, EvidenceError, EvidenceSentence, TrajectoryPoint
from .vocab import CHEXPERT_LABELS, LABEL_REGION, REGIONS

_LAZY = {
    "GazeX": "inference", "Answer": "inference", "Grounding": "inference", "analyze": "inference", "ask": "inference",
    "ground": "inference", "default_model": "inference", "DEFAULT_MODEL_DIR": "inference",
    "ImageInputError": "imaging", "OutOfScopeError": "imaging", "load_image": "imaging", "LoadedImage": "imaging",
    "drafting_scope": "imaging",
    "GazeXModel": "model", "GazeXConfig": "model",
}


def __getattr__(name: str):  # torch is imported only when the model is first used
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "SCHEMA",
    "Box",
    "EvidenceBundle",
    "EvidenceError",
    "EvidenceSentence",
    "TrajectoryPoint",
    "CHEXPERT_LABELS",
    "LABEL_REGION",
    "REGIONS",
]
