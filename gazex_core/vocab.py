"""Controlled vocabulary shared by every part of GazeX Review.

The 14 CheXpert observation names are the label set; the ABCDEF reading order
(airway, breathing, cardiac, diaphragm, everything else, foreign bodies) is the
order in which sentences are drafted and trajectories are drawn.
"""

from __future__ import annotations

CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# ABCDEF: the systematic order a radiologist reads a chest X-ray in.
REGIONS: tuple[str, ...] = (
    "airway",
    "breathing",
    "cardiac",
    "diaphragm",
    "everything_else",
    "foreign_bodies",
)

REGION_DESCRIPTIONS: dict[str, str] = {
    "airway": "trachea and carina",
    "breathing": "lungs and pleura",
    "cardiac": "heart and mediastinum",
    "diaphragm": "hemidiaphragms and costophrenic angles",
    "everything_else": "bones and soft tissue",
    "foreign_bodies": "lines, tubes and devices",
}

# Where each finding is read in the ABCDEF order.
LABEL_REGION: dict[str, str] = {
    "Enlarged Cardiomediastinum": "cardiac",
    "Cardiomegaly": "cardiac",
    "Lung Opacity": "breathing",
    "Lung Lesion": "breathing",
    "Edema": "breathing",
    "Consolidation": "breathing",
    "Pneumonia": "breathing",
    "Atelectasis": "breathing",
    "Pneumothorax": "breathing",
    "Pleural Effusion": "breathing",
    "Pleural Other": "breathing",
    "Fracture": "everything_else",
    "Support Devices": "foreign_bodies",
}

SECTIONS: tuple[str, ...] = ("findings", "impression")
LATERALITIES: tuple[str, ...] = ("left", "right", "bilateral", "midline")
SEVERITIES: tuple[str, ...] = ("small", "moderate", "large")

# Findings the synthetic generator draws (each maps to a CheXpert label).
SYNTH_FINDING_LABEL: dict[str, str] = {
    "cardiomegaly": "Cardiomegaly",
    "enlarged_cardiomediastinum": "Enlarged Cardiomediastinum",
    "pleural_effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "consolidation": "Consolidation",
    "atelectasis": "Atelectasis",
    "nodule": "Lung Lesion",
    "mass": "Lung Lesion",
    "edema": "Edema",
    "support_device": "Support Devices",
}


def region_index(region: str | None) -> int:
    """Position of a region in the ABCDEF order; unknown regions sort last."""
    return REGIONS.index(region) if region in REGIONS else len(REGIONS)


def check_label(label: str | None) -> str | None:
    if label is not None and label not in CHEXPERT_LABELS:
        raise ValueError(f"label {label!r} is not one of the 14 CheXpert observations")
    return label
