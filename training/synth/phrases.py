"""Phrase bank of real IU X-Ray report sentences, keyed by what they state.

Sentences are picked by keyword rules: a positive sentence names its finding and nothing
else we know of, carries no negation, comparison or hedging, and has its side / zone /
severity words rewritten to the ground truth. Negative and normal statements record the
labels they rule out, so a report never rules out a finding it also states.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .resources import iu_sentences

POSITIVE_PATTERNS = {
    "cardiomegaly": r"\bcardiomegaly\b|heart (size )?is (\w+ )?enlarged|enlarged (heart|cardiac silhouette)",
    "enlarged_cardiomediastinum": r"(widen\w*|enlarged|prominent) (superior |upper )?mediastin\w*|mediastin\w* (silhouette |contour )?(is |appears )?(\w+ )?(widened|enlarged)",
    "pleural_effusion": r"pleural effusion",
    "pneumothorax": r"pneumothorax",
    "consolidation": r"\bconsolidation\b|airspace (disease|opacity)",
    "atelectasis": r"\batelectasis\b",
    "nodule": r"\bnodule\b",
    "mass": r"\bmass\b",
    "edema": r"\bedema\b",
    "pacemaker": r"pacemaker|pacer\b",
    "central_line": r"central venous catheter|central line|\bpicc\b|venous catheter",
    "endotracheal_tube": r"endotracheal tube|\bett\b",
}
# words that would state something the ground truth does not say
OTHER_TERMS = (
    r"granuloma|scar|fracture|emphysema|hernia|calcifi|degenerat|spondyl|scoliosis|kyphosis|surgical|sternotomy|clip|"
    r"copd|hyperinfla|hyperexpan|tortuous|ectatic|aneurysm|effusions|opacities|infiltrate|pneumonia|fibrosis|"
    r"thickening|adenopathy|lymph|cabg|stent|valve|prosthe|hardware|tube|catheter|wire|pacemaker|lead|"
    r"elevat|eventration|nipple|artifact|chronic|old|healed|pectus|osteopenia|bronchiectasis|cyst|cavit|"
    r"interstitial|reticul|vascular|congestion|hilar|hila|pulmonary arter|aort|lobectomy|resection|diaphragm"
)
COMPARISON_OR_HEDGE = (
    r"\b(stable|unchanged|again|previous|prior|interval|compared|comparison|since|improv\w*|worsen\w*|increas\w*|"
    r"decreas\w*|new|resolv\w*|recommend\w*|consider|may|possibl\w*|suggest\w*|cannot|likely|probabl\w*|question|"
    r"suspect\w*|concern\w*|versus|vs|or|persistent|residual|redemonstrat\w*|follow|remain\w*|status|post|history|"
    r"could|given|clinical\w*|if)\b|\?|:|\(|;"
)
NEGATION = r"\b(no|not|without|negative|free|clear|normal|unremarkable|removed|absent|none)\b"
SIDE_WORDS = r"\b(right|left)\b"
BILATERAL_WORDS = r"\b(bilateral\w*|both|bibasilar|bases|apices|lungs|hemithoraces|bilaterally)\b"
SEVERITY_WORDS = r"\b(small|moderate|large|trace|tiny|minimal|mild|massive|sizable|moderate-sized|medium|severe|marked|borderline|mildly|moderately|markedly|severely|minimally)\b"
ZONE_WORDS = r"\b(upper|middle|mid|lower)\b"
OTHER_LOCATION_WORDS = r"\b(base|basilar|basal|apex|apical|lingula\w*|midlung|perihilar|retrocardiac|lateral|medial|hemithorax|costophrenic|subpulmonic|lobes)\b"

BAD_POSITIVE = (
    r"hydro|hemo|uncertain|worrisome|detail|above|below|developing|amount|fissure|failure|hypertension|the present|"
    r"significantly|seen\.$|noted\.$|^cardiomegaly \d|loculat|recurr|malposition|atherosclero|low lung volume|globular|"
    r"picc|biventricular|coronary vein|mild, non|resolution|similar|persistent|slight"
)
SIZE = r"\d+(\.\d+)? ?(cm|mm)( x \d+(\.\d+)? ?(cm|mm))*"
DEVICE_SIDE = r"\b(right|left)\b(?=[- ](internal|ij|subclavian|chest|anterior|sided|venous|arm))"
LATERAL_KINDS = ("pleural_effusion", "pneumothorax", "consolidation", "atelectasis", "nodule", "mass")
ZONED_KINDS = ("consolidation", "nodule", "mass")


@functools.lru_cache(maxsize=1)
def positive_bank() -> dict[str, tuple[str, ...]]:
    """Real sentence templates per finding kind (or device), with {side}/{zone}/{severity} slots where needed."""
    bank: dict[str, list[str]] = {k: [] for k in POSITIVE_PATTERNS}
    for sentence in iu_sentences():
        low = sentence.lower()
        if re.search(NEGATION, low) or re.search(COMPARISON_OR_HEDGE, low) or re.search(BAD_POSITIVE, low):
            continue
        hits = [k for k, pat in POSITIVE_PATTERNS.items() if re.search(pat, low)]
        if len(hits) != 1:
            continue
        kind = hits[0]
        stripped = re.sub(POSITIVE_PATTERNS[kind], " ", low)
        if kind in ("pacemaker", "central_line", "endotracheal_tube"):
            stripped = re.sub(r"tube|catheter|lead\w*|wire\w*|pacemaker", " ", stripped)
        if re.search(OTHER_TERMS, stripped):
            continue
        template = _template(kind, sentence)
        if template:
            bank[kind].append(template)
    for kind, extra in FALLBACK_TEMPLATES.items():
        if len(bank[kind]) < 3:
            bank[kind].extend(extra)
    return {k: tuple(dict.fromkeys(v)) for k, v in bank.items()}


# Used only where the IU reports hold fewer than 3 usable sentences for a finding (written in their style).
FALLBACK_TEMPLATES = {
    "edema": (
        "{severity} pulmonary edema.",
        "There is {severity} bilateral perihilar pulmonary edema.",
        "Bilateral perihilar haziness consistent with {severity} pulmonary edema.",
    ),
    "endotracheal_tube": (
        "Endotracheal tube in place with tip approximately {tip_cm} cm above the carina.",
        "The endotracheal tube terminates {tip_cm} cm above the carina.",
    ),
    "mass": (
        "{side} {zone} mass.",
        "There is a {size_cm} cm mass in the {side} {zone}.",
    ),
    "enlarged_cardiomediastinum": ("The mediastinum is widened.",),
    "pneumothorax": ("There is a {severity} {side} pneumothorax.", "{severity} {side} pneumothorax."),
}


def _template(kind: str, sentence: str) -> str | None:
    if kind in ("nodule", "mass"):
        sentence = re.sub(SIZE, "{size_cm} cm", sentence)
    elif kind == "endotracheal_tube":
        sentence = re.sub(SIZE, "{tip_cm} cm", sentence)
    if re.search(r"\d", re.sub(r"\{\w+\}", "", sentence)):
        return None
    low = sentence.lower()
    if kind in LATERAL_KINDS:
        if re.search(BILATERAL_WORDS, low) or len(re.findall(SIDE_WORDS, low)) != 1:
            return None
        sentence = re.sub(SIDE_WORDS, "{side}", sentence, flags=re.I)
        if kind == "atelectasis":
            if not re.search(r"\b(base|basilar|basal|lower)\b", low) or re.search(r"\b(upper|middle|apical|apex)\b", low):
                return None
        elif kind in ZONED_KINDS:
            if re.search(OTHER_LOCATION_WORDS, low) or len(re.findall(ZONE_WORDS, low)) != 1:
                return None
            sentence = re.sub(r"\b(upper|middle|mid|lower) (lobe|lung zone|lung)\b", "{zone}", sentence, flags=re.I)
            if "{zone}" not in sentence:
                return None
        elif re.search(r"\b(upper|middle|lower|lobe)\b", low):
            return None
    elif re.search(SIDE_WORDS, low) and kind not in ("pacemaker", "central_line"):
        return None
    if kind in ("pleural_effusion", "pneumothorax", "cardiomegaly", "edema"):
        if len(re.findall(SEVERITY_WORDS, low)) > 1:
            return None
        if re.search(SEVERITY_WORDS, low):
            sentence = re.sub(SEVERITY_WORDS, lambda m: "{severity_adv}" if m.group(0).lower().endswith("ly") else "{severity}", sentence, flags=re.I)
            sentence = sentence.replace("{severity} enlarged", "{severity_adv} enlarged")
        elif kind in ("pleural_effusion", "pneumothorax"):
            sentence = sentence.replace("{side}", "{severity} {side}", 1)
            if "{severity}" not in sentence:
                return None
    if kind in ("pacemaker", "central_line"):
        # only the side of the access route / chest wall follows the ground truth; "right atrium" is anatomy
        sentence = re.sub(DEVICE_SIDE, "{side}", sentence, flags=re.I)
    if re.search(r"\b(upper|lower|middle|base|basilar|apex|apical|lingula)\b", low) and kind in ("pacemaker", "central_line", "endotracheal_tube", "edema", "pneumothorax", "pleural_effusion"):
        return None
    return sentence


# ---------------------------------------------------------------- negatives / normal statements

NEGATABLE = {
    "Pleural Effusion": r"effusion",
    "Pneumothorax": r"pneumothorax",
    "Consolidation": r"consolidation|airspace|infiltrate|pneumonia|focal (lung )?opacit",
    "Pneumonia": r"pneumonia|infiltrate",
    "Lung Opacity": r"opacit|airspace|infiltrate",
    "Edema": r"edema|vascular congestion",
    "Atelectasis": r"atelectasis",
    "Lung Lesion": r"nodule|mass",
    "Cardiomegaly": r"cardiomegaly|heart|cardiac|cardio",
    "Enlarged Cardiomediastinum": r"mediastin|cardiomediastinal|cardio mediastinal",
    "Fracture": r"fracture|osseous|bony|bones|skeletal",
}
CLEAR_LUNGS = r"\blungs? (are |is )?(\w+ )?(and )?clear|clear lungs"
PARENCHYMAL = ("Consolidation", "Pneumonia", "Lung Opacity", "Edema", "Atelectasis", "Lung Lesion")
REGION_NEGATIVE_PATTERNS = {
    "airway": r"^(the )?trachea (is )?(in the )?midline\.$|^midline trachea\.$",
    "breathing": r"^(there is |there are )?no\b.*\b(effusion|pneumothorax|consolidation|airspace|edema|nodule|infiltrate)|" + CLEAR_LUNGS,
    "cardiac": r"heart size|cardiomediastinal|cardio mediastinal|cardiac silhouette|mediastin|heart and",
    "diaphragm": r"costophrenic|diaphragm|subdiaphragmatic|free air",
    "everything_else": r"osseous|bony|bones|skeletal|soft tissue",
}
NORMAL_IMPRESSION = r"^no acute (cardiopulmonary|cardiopulmonary) (process|abnormality|disease|findings?)\.$|^no active disease\.$|^normal chest\.$|^no acute disease\.$"
NEGATIVE_EXCLUDE = (
    r"\b(stable|unchanged|again|previous|prior|interval|compared|since|improv\w*|new|recommend\w*|may|possibl\w*|"
    r"likely|but|however|although|except|with|mild|borderline|enlarge\w*|concern|upper limit\w*|pelvis|hips?|injur\w*|residual|very|"
    r"minimal|small|tortuous|calcifi\w*|degenerat\w*|granuloma|"
    r"scar\w*|hyperinfla\w*|emphysema|elevat\w*|low|large|status|post|without evidence of interval|otherwise|remain\w*|"
    r"limits of|technique|portable|lateral|view|film|exam\w*|evaluat\w*|visualized|seen on|given)\b|\?|:|\(|;"
)


@dataclass(frozen=True)
class NegativeStatement:
    text: str
    region: str
    negated: frozenset[str]


def negated_labels(text: str, region: str) -> frozenset[str]:
    low = text.lower()
    labels = {label for label, pat in NEGATABLE.items() if re.search(pat, low)}
    if re.search(CLEAR_LUNGS, low):
        labels |= set(PARENCHYMAL)
    if region == "diaphragm" and re.search(r"costophrenic", low):
        labels.add("Pleural Effusion")
    if region == "cardiac":
        labels &= {"Cardiomegaly", "Enlarged Cardiomediastinum"}
    return frozenset(labels)


@functools.lru_cache(maxsize=1)
def negative_bank() -> dict[str, tuple[NegativeStatement, ...]]:
    bank: dict[str, list[NegativeStatement]] = {r: [] for r in REGION_NEGATIVE_PATTERNS}
    for sentence in iu_sentences():
        low = sentence.lower()
        if re.search(NEGATIVE_EXCLUDE, low) or len(sentence) > 110:
            continue
        for region, pattern in REGION_NEGATIVE_PATTERNS.items():
            if not re.search(pattern, low):
                continue
            if region != "airway" and not re.search(NEGATION + r"|within normal|midline|sharp|intact", low):
                continue
            if region == "breathing" and re.search(r"heart|cardi|mediastin|osseous|bony|diaphragm", low):
                continue
            if region in ("cardiac", "diaphragm", "everything_else") and re.search(r"effusion|pneumothorax|consolidation|lungs|edema|airspace", low):
                continue
            if region == "cardiac" and re.search(r"bony|osseous|bone|skelet|diaphragm|trachea", low):
                continue
            if region == "diaphragm" and re.search(r"heart|mediastin|osseous", low):
                continue
            if region == "everything_else" and re.search(r"heart|mediastin|diaphragm", low):
                continue
            bank[region].append(NegativeStatement(sentence, region, negated_labels(sentence, region)))
            break
    return {k: tuple(v) for k, v in bank.items()}


@functools.lru_cache(maxsize=1)
def normal_impressions() -> tuple[str, ...]:
    found = tuple(s for s in iu_sentences() if re.search(NORMAL_IMPRESSION, s.lower()))
    return found or ("No acute cardiopulmonary process.",)
