"""The report: ABCDEF-ordered sentences consistent with the ground truth, and its MIMIC-style text."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from gazex_core.vocab import LABEL_REGION, REGIONS

from .findings import SynthFinding
from .phrases import negative_bank, normal_impressions, positive_bank

SEVERITY_WORD = {
    "cardiomegaly": {"small": ("mild", "mildly"), "moderate": ("moderate", "moderately"), "large": ("marked", "markedly")},
    "edema": {"small": ("mild", "mildly"), "moderate": ("moderate", "moderately"), "large": ("severe", "severely")},
}
DEFAULT_SEVERITY_WORD = {"small": ("small", "slightly"), "moderate": ("moderate", "moderately"), "large": ("large", "markedly")}
ZONE_PHRASES = {"upper": ("upper lobe", "upper lung zone"), "mid": ("mid lung zone", "midlung"), "lower": ("lower lobe", "lower lung zone")}
INDICATIONS = (
    "___-year-old with shortness of breath.",
    "Cough and fever.",
    "Chest pain, evaluate for acute process.",
    "___-year-old with dyspnea.",
    "Preoperative evaluation.",
    "Hypoxia.",
    "Evaluate for pneumonia.",
    "Follow-up of known lung disease.",
)
DEVICE_INDICATION = "Line and tube placement."
# A breathing negative is added for each of these that is absent (CheXpert labels), as far as real sentences allow.
BREATHING_NEGATIVE_TARGETS = ("Pleural Effusion", "Pneumothorax", "Consolidation")


@dataclass
class SynthSentence:
    text: str
    section: str  # findings / impression
    region: str
    label: str | None = None  # positive CheXpert label stated, None for negative/normal statements
    is_negative: bool = False
    negated: frozenset[str] = frozenset()
    finding_index: int | None = None  # which finding (position in the study's list) it states


@dataclass
class SynthReport:
    indication: str
    sentences: list[SynthSentence] = field(default_factory=list)

    def section(self, name: str) -> list[SynthSentence]:
        return [s for s in self.sentences if s.section == name]


def build_report(findings: list[SynthFinding], rng: np.random.Generator) -> SynthReport:
    positives = {f.label for f in findings}
    indication = DEVICE_INDICATION if any(f.kind == "support_device" for f in findings) and rng.random() < 0.5 else INDICATIONS[int(rng.integers(len(INDICATIONS)))]
    sentences: list[SynthSentence] = []
    for region in REGIONS:
        region_findings = [(i, f) for i, f in enumerate(findings) if LABEL_REGION[f.label] == region]
        for i, f in region_findings:
            sentences.append(SynthSentence(positive_sentence(f, rng), "findings", region, f.label, finding_index=i))
        sentences.extend(negative_sentences(region, positives, bool(region_findings), rng))
    sentences.extend(impression(findings, rng))
    return SynthReport(indication, sentences)


def fill(template: str, f: SynthFinding, rng: np.random.Generator) -> str:
    words = SEVERITY_WORD.get(f.kind, DEFAULT_SEVERITY_WORD).get(f.severity or "moderate", ("", ""))
    zone = f.params.get("zone", "lower")
    values = {
        "side": f.laterality or "",
        "severity": words[0],
        "severity_adv": words[1],
        "zone": ZONE_PHRASES[zone][int(rng.integers(2))],
        "size_cm": f"{f.params.get('diameter_mm', 20) / 10:.1f}",
        "tip_cm": f"{f.params.get('tip_mm', 40) / 10:.1f}",
    }
    text = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\ban ([bcdfghjklmnpqrstvwxyz])", r"a \1", text)
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    return text[0].upper() + text[1:]


def positive_templates(f: SynthFinding) -> tuple[str, ...]:
    key = f.device if f.kind == "support_device" else f.kind
    templates = positive_bank()[key]
    if f.device == "central_line":
        wrong_route = "subclavian" if f.location == "right internal jugular" else r"internal jugular|\bij\b"
        templates = tuple(t for t in templates if not re.search(wrong_route, t.lower())) or templates
    if f.kind in ("cardiomegaly", "edema", "pleural_effusion", "pneumothorax"):
        # prefer templates that carry the severity, so the text states it
        with_severity = tuple(t for t in templates if "{severity" in t)
        templates = with_severity or templates
    return templates


def positive_sentence(f: SynthFinding, rng: np.random.Generator) -> str:
    templates = positive_templates(f)
    return fill(templates[int(rng.integers(len(templates)))], f, rng)


def negative_sentences(region: str, positives: set[str], region_positive: bool, rng) -> list[SynthSentence]:
    """Normal statements for a region, never ruling out a present finding."""
    if region == "foreign_bodies":
        return []
    bank = [s for s in negative_bank()[region] if not (s.negated & positives)]
    if not bank:
        return []
    if region == "breathing":
        return _covering_negatives(bank, positives, rng)
    if region == "cardiac" and region_positive:
        bank = [s for s in bank if s.negated] or bank
    choice = bank[int(rng.integers(len(bank)))]
    return [SynthSentence(choice.text, "findings", region, None, True, choice.negated)]


def _covering_negatives(bank, positives: set[str], rng) -> list[SynthSentence]:
    """Up to two breathing negatives that together rule out the absent effusion / pneumothorax / consolidation."""
    wanted = {label for label in BREATHING_NEGATIVE_TARGETS if label not in positives}
    chosen = []
    for _ in range(2):
        if not wanted:
            break
        useful = [s for s in bank if s.negated & wanted]
        if not useful:
            break
        best = max(len(s.negated & wanted) for s in useful)
        useful = [s for s in useful if len(s.negated & wanted) == best]
        pick = useful[int(rng.integers(len(useful)))]
        chosen.append(SynthSentence(pick.text, "findings", "breathing", None, True, pick.negated))
        wanted -= pick.negated
    return chosen


def impression(findings: list[SynthFinding], rng) -> list[SynthSentence]:
    if not findings:
        options = normal_impressions()
        return [SynthSentence(options[int(rng.integers(len(options)))], "impression", "breathing", None, True, frozenset())]
    order = sorted(range(len(findings)), key=lambda i: REGIONS.index(LABEL_REGION[findings[i].label]))
    out = []
    for i in order:
        f = findings[i]
        templates = sorted(positive_templates(f), key=len)[:4]  # impressions are terse
        text = fill(templates[int(rng.integers(len(templates)))], f, rng)
        out.append(SynthSentence(text, "impression", LABEL_REGION[f.label], f.label, finding_index=i))
    return out


def report_text(report: SynthReport) -> str:
    """MIMIC-CXR style report: headed sections, lines wrapped at 79 characters, leading space."""

    def block(text: str) -> list[str]:
        return [" " + line for line in textwrap.wrap(text, 78)]

    lines = ["                                 FINAL REPORT", " EXAMINATION:  CHEST (PA)", ""]
    lines += block(f"INDICATION:  {report.indication}") + [""]
    lines += [" TECHNIQUE:  Single frontal view of the chest.", "", " COMPARISON:  None.", ""]
    lines += [" FINDINGS:", " "] + block(" ".join(s.text for s in report.section("findings"))) + [""]
    lines += [" IMPRESSION:", " "] + block(" ".join(s.text for s in report.section("impression")))
    return "\n".join(lines) + "\n"
