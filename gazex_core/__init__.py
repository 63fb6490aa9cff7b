"""GazeX core: the model and its inference API (analyze, ask, ground -> EvidenceBundle).

Imports neither annotations_db nor training.
"""

from .evidence import SCHEMA, Box, EvidenceBundle, EvidenceError, EvidenceSentence, TrajectoryPoint
from .vocab import CHEXPERT_LABELS, LABEL_REGION, REGIONS

__all__ = [
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
