"""The one place that turns report text into CheXpert observation labels (rule-based, offline).

Per sentence, every observation keyword is found (longest first, on word boundaries) and scoped to its clause;
a negation cue before it in the clause ("no", "without", "free of", ...) or after it ("... is not seen")
makes it negative (0); an uncertainty cue in the clause ("possible", "may represent", "cannot be excluded",
...) makes it uncertain (-1); otherwise it is positive (1). A report's value per observation is the strongest
of its sentences' (positive > uncertain > negative); "No Finding" is positive when no observation other
than Support Devices is positive or uncertain (the CheXpert convention).
"""

from __future__ import annotations

import functools
import re

from .vocab import CHEXPERT_LABELS

CHEXPERT_OBSERVATIONS: tuple[str, ...] = CHEXPERT_LABELS
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

LABEL_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pleural Effusion", ("pleural effusion", "pleural effusions", "effusion", "effusions", "pleural fluid",
                          "blunting of the costophrenic", "costophrenic angle blunting", "blunted costophrenic",
                          "costophrenic blunting")),
    ("Pneumothorax", ("pneumothorax", "pneumothoraces")),
    ("Cardiomegaly", ("cardiomegaly", "enlarged cardiac silhouette", "heart is enlarged", "heart size is enlarged",
                      "enlarged heart", "cardiac enlargement", "heart is mildly enlarged",
                      "heart size is mildly enlarged", "cardiac silhouette is enlarged", "enlarged heart size",
                      "heart is borderline enlarged", "heart size is borderline enlarged", "borderline heart size",
                      "heart size is borderline", "borderline cardiomegaly", "borderline enlarged heart")),
    ("Enlarged Cardiomediastinum", ("widened mediastinum", "mediastinal widening", "enlarged cardiomediastinal",
                                    "enlarged cardiomediastinum",
                                    "wide mediastinum", "mediastinum is widened", "mediastinal enlargement",
                                    "enlarged mediastinum", "cardiomediastinal silhouette is enlarged")),
    ("Edema", ("edema", "oedema", "pulmonary vascular congestion", "vascular congestion", "interstitial edema",
               "kerley", "congestion", "congestive", "heart failure", "chf", "vascular prominence",
               "prominent central vasculature", "prominence of the central vasculature", "cephalization",
               "venous hypertension", "vascular redistribution", "increased lung vascularity",
               "increased pulmonary vascularity", "vascular engorgement")),
    ("Consolidation", ("consolidation", "consolidations", "consolidative")),
    ("Pneumonia", ("pneumonia", "pneumonias")),
    ("Atelectasis", ("atelectasis", "atelectases", "atelectatic", "collapse")),
    ("Lung Lesion", ("nodule", "nodules", "nodular", "fibronodular", "mass", "masses", "lesion", "lesions", "neoplasm", "tumor",
                     "cyst", "cysts")),
    ("Fracture", ("fracture", "fractures", "fractured")),
    ("Support Devices", ("pacemaker", "catheter", "endotracheal tube", "et tube", "ng tube", "nasogastric tube",
                         "enteric tube", "picc", "central line", "central venous", "sternotomy wires", "icd",
                         "chest tube", "tracheostomy", "port-a-cath", "line", "lines", "tube", "tubes", "device",
                         "devices", "leads", "pacer", "stent", "stents", "clips", "wires", "defibrillator", "port",
                         "tip", "svc", "stimulator", "shunt", "aicd", "coils", "prosthetic valve",
                         "valve replacement", "prosthetic aortic valve", "vertebroplasty", "hardware")),
    ("Pleural Other", ("pleural thickening", "pleural plaque", "pleural plaques", "fibrothorax",
                       "pleural scarring", "pleural calcification", "fissural thickening", "apical capping",
                       "pleural-parenchymal scarring", "pleuroparenchymal scarring", "pleural fibrosis")),
    ("Lung Opacity", ("opacity", "opacities", "opacification", "infiltrate", "infiltrates", "haziness",
                      "airspace opacity", "airspace disease", "air space disease", "scarring", "density",
                      "densities")),
)
PRE_NEGATION = re.compile(
    r"\b(no|not|without|negative for|free of|clear of|resolved|resolution of|ruled out|rule out|absence of|"
    r"no evidence of|no signs? of|neither|nor|removed|clearing of)\b", re.IGNORECASE)
POST_NEGATION = re.compile(r"^\W*(is|are|has|have|was|were)?\s*(been\s+)?(not seen|not identified|not present|resolved"
                           r"|absent|removed|not visualized|no longer (seen|present|visualized)"
                           r"|(appears?|is|are) (to be )?within (the )?(limits of )?normal)\b", re.IGNORECASE)
UNCERTAINTY = re.compile(
    r"\b(may|might|possible|possibly|likely|probable|probably|suspicious for|suspected|suggest\w*|"
    r"cannot be excluded|can not be excluded|cannot exclude|not excluded|could (be|represent)|questionable|"
    r"concerning for|versus|vs|equivocal|consider|differential|indeterminate|question|difficult to exclude|"
    r"not (entirely |completely )?excluded|could obscure|to identify|detecting|rule-out|concern|possibility|"
    r"evaluate for|evaluation of|exclude|correlat\w*|appropriate clinical setting|consideration)\b", re.IGNORECASE)
# Phrases that hold a keyword but name no chest finding (B-lines are not lines, an ankle's edema is not the lung's).
NOT_A_FINDING = re.compile(r"\b(b-lines|b lines|septal lines|lung lines|soft tissue edema|soft tissue swelling)\b",
                           re.IGNORECASE)
# A negation cue reaches over comma lists ("no effusion, pneumothorax, or consolidation") up to these.
CLAUSE_BOUNDARY = re.compile(r"[;:]|\bbut\b|\bhowever\b|\balthough\b|\bwhich\b|\bexcept\b|\bwith\b"
                             r"|\bthere (is|are)\b|\bwhich\b", re.IGNORECASE)
SIDE_WORD = re.compile(r"\b(left|right|bilateral)\b", re.IGNORECASE)
NORMAL_STATEMENT = re.compile(r"\b(normal|clear|midline|unremarkable|intact|stable|unchanged|within normal limits)\b",
                              re.IGNORECASE)
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9_(\"'])")
# One alternation, longest keywords first; the group name is the label's index.
# Wordings too varied for a keyword list ("heart size is mildly to moderately enlarged", "enlargement of the
# cardiac silhouette"), as patterns; a gap word never negates or normalises ("heart size normal without large ...").
_GAP = r"(?:(?!(?:not|no|normal|without|with)\b)[\w-]+\s+){0,5}?"
LABEL_PATTERNS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        rf"(?:mediastinum|mediastinal (?:contours?|silhouettes?))\s+{_GAP}(?:widened|wide|prominent|enlarged)",
        r"(?:prominence|widening|enlargement) of the (?:superior )?mediastin\w*",
        r"(?:mediastinal|mediastinum) (?:prominence|widening|enlargement)", r"wide mediastinal"),
    "Cardiomegaly": (rf"(?:heart|cardiac silhouette|cardiac contour|cardiac shadow)\s+{_GAP}(?:enlarged|large)",
                     r"enlargement of the (?:heart|cardiac silhouette|cardiac shadow)"),
}
_KEYWORD_RE = re.compile(
    "|".join(f"(?P<l{n}>\\b(?:" + "|".join(list(LABEL_PATTERNS.get(label, ())) + [
        re.escape(k) for k in sorted(kws, key=len, reverse=True)]) + r")\b)"
             for n, (label, kws) in enumerate(LABEL_KEYWORDS)),
    re.IGNORECASE)
# What follows "X may represent / suggests / is compatible with" is about another finding: X itself is stated.
ATTRIBUTION = re.compile(r"\b((may|might|could|likely|probably|most likely)\s+)?(represent|reflect|suggest|indicat"
                         r"|compatible|consistent|due to|secondary to|related to)\w*", re.IGNORECASE)
# "No change in the nodule" and "no interval change" do not negate.
NOT_A_NEGATION = re.compile(r"\bno (significant |interval |appreciable )?change\b", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Paragraph text -> sentences (line wraps joined; '1.5 cm' and '___' stay intact)."""
    flat = " ".join((text or "").split())
    return [s.strip() for s in SENTENCE_BOUNDARY.split(flat) if s.strip() and s.strip() not in {".", "___"}]


def label_sentence(text: str) -> dict[str, int]:
    """Observation -> 1 / 0 / -1 for every observation the sentence mentions."""
    return dict(_sentence_values(text))


@functools.lru_cache(maxsize=65536)  # report sentences repeat a lot ("No pneumothorax.")
def _sentence_values(text: str) -> tuple[tuple[str, int], ...]:
    values: dict[str, int] = {}
    text = NOT_A_FINDING.sub(lambda m: " " * len(m.group()), text)
    for match in _KEYWORD_RE.finditer(text):
        label = LABEL_KEYWORDS[int(match.lastgroup[1:])][0]
        value = _mention_value(text, match.start(), match.end())
        values[label] = max(values.get(label, value), value, key=_strength)
    return tuple(values.items())


def label_report(text: str) -> dict[str, int]:
    """Observation -> 1 / 0 / -1 over the whole report, with "No Finding" by the CheXpert convention."""
    values: dict[str, int] = {}
    for sentence in split_sentences(text):
        for label, value in label_sentence(sentence).items():
            values[label] = max(values.get(label, value), value, key=_strength)
    pathology = [v for label, v in values.items() if label != "Support Devices"]
    values["No Finding"] = NEGATIVE if any(v in (POSITIVE, UNCERTAIN) for v in pathology) else POSITIVE
    return values


def report_labels(text: str, *, uncertain_as_positive: bool = False) -> set[str]:
    """The observations a report states as present (uncertain ones too when asked)."""
    accepted = (POSITIVE, UNCERTAIN) if uncertain_as_positive else (POSITIVE,)
    return {label for label, value in label_report(text).items() if value in accepted}


def mentioned(text: str) -> list[str]:
    """Observations the text names, negated or not, in order of appearance (e.g. the subject of a question)."""
    found: list[str] = []
    for match in _KEYWORD_RE.finditer(text):
        label = LABEL_KEYWORDS[int(match.lastgroup[1:])][0]
        if label not in found:
            found.append(label)
    return found


def stated_and_negated(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(observations the sentence states present or uncertain, observations it negates), in mention order."""
    values = label_sentence(text)
    return (tuple(lab for lab, v in values.items() if v in (POSITIVE, UNCERTAIN)),
            tuple(lab for lab, v in values.items() if v == NEGATIVE))


def sentence_label(text: str) -> tuple[str | None, bool]:
    """(the first observation, in LABEL_KEYWORDS order, stated present or uncertain; is_negative statement)."""
    values = label_sentence(text)
    order = [label for label, _ in LABEL_KEYWORDS]
    stated = [label for label in order if values.get(label) in (POSITIVE, UNCERTAIN)]
    if stated:
        return stated[0], False
    return None, bool(values) or bool(NORMAL_STATEMENT.search(text))


def _strength(value: int) -> int:
    return {NEGATIVE: 0, UNCERTAIN: 1, POSITIVE: 2}[value]


def _mention_value(text: str, start: int, end: int) -> int:
    before = text[:start]
    boundaries = [m.end() for m in CLAUSE_BOUNDARY.finditer(before)]
    clause_start = boundaries[-1] if boundaries else 0
    after = text[end:]
    next_boundary = CLAUSE_BOUNDARY.search(after)
    clause_after = after[:next_boundary.start()] if next_boundary else after
    attribution = ATTRIBUTION.search(clause_after)
    own_after = clause_after[:attribution.start()] if attribution else clause_after
    clause_before = NOT_A_NEGATION.sub(" ", before[clause_start:])
    if PRE_NEGATION.search(clause_before) or POST_NEGATION.search(after):
        return NEGATIVE
    if UNCERTAINTY.search(clause_before) or UNCERTAINTY.search(own_after):
        return UNCERTAIN
    return POSITIVE
