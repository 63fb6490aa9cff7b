"""Report text: MIMIC-CXR section parsing (after the maintainers' txt/section_parser.py), sentences, labels.

``parse_mimic_report(text)`` -> Report with FINDINGS / IMPRESSION sentences. Section headers are a
newline + space + ``[A-Z ()/,-]+:`` (the maintainers' regex, also accepting a header at column 0);
aliases are folded ("conclusion" -> impression, "chest, two views" -> findings, ...). If neither
section exists the last paragraph is used as findings (the maintainers' fallback).

``sentence_label(text)`` is a small, conservative keyword labeller: the CheXpert label a sentence
states as present and whether it is a negative statement. It only tags the obvious cases.
"""

from __future__ import annotations

import re

from gazex_core.vocab import LABEL_REGION
from training.data.types import Report, ReportSentence

SECTION_HEADER = re.compile(r"(?:^|\n)[ \t]?([A-Z][A-Z ()/,-]+):[ \t]*", re.MULTILINE)

SECTION_ALIASES: dict[str, str] = {
    "findings": "findings",
    "finding": "findings",
    "findings and impression": "impression",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "chest, two views": "findings",
    "chest, pa and lateral": "findings",
    "pa and lateral views of the chest": "findings",
    "pa and lat views of the chest": "findings",
    "chest": "findings",
    "report": "findings",
    "indication": "indication",
    "history": "indication",
    "clinical history": "indication",
    "reason for exam": "indication",
    "comparison": "comparison",
    "technique": "technique",
    "examination": "examination",
    "exam": "examination",
}

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9_(\"'])")
# Negation cues before a finding word (within its clause) and a few after it.
PRE_NEGATION = re.compile(
    r"\b(no|not|without|negative for|free of|clear of|resolved|resolution of|ruled out|rule out|absence of|"
    r"no evidence of|no signs? of|neither|nor)\b", re.IGNORECASE)
POST_NEGATION = re.compile(r"^\W*(is|are|has|have)?\s*(not seen|not identified|not present|resolved|absent)\b", re.IGNORECASE)
CLAUSE_BOUNDARY = re.compile(r"[;,:]|\bbut\b|\bhowever\b|\bwith\b|\balthough\b", re.IGNORECASE)
NORMAL_STATEMENT = re.compile(r"\b(normal|clear|midline|unremarkable|intact|stable|unchanged|within normal limits)\b",
                              re.IGNORECASE)

# CheXpert label -> keywords (lower-case, matched on word boundaries). Order: more specific first.
LABEL_KEYWORDS: list[tuple[str, tuple[str, ...]]] = [
    ("Pleural Effusion", ("pleural effusion", "pleural effusions", "effusion", "effusions")),
    ("Pneumothorax", ("pneumothorax", "pneumothoraces")),
    ("Cardiomegaly", ("cardiomegaly", "enlarged cardiac silhouette", "heart is enlarged", "heart size is enlarged",
                      "enlarged heart", "cardiac enlargement")),
    ("Enlarged Cardiomediastinum", ("widened mediastinum", "mediastinal widening", "enlarged cardiomediastinal",
                                    "wide mediastinum", "mediastinum is widened")),
    ("Edema", ("edema", "pulmonary vascular congestion", "vascular congestion")),
    ("Consolidation", ("consolidation", "consolidations", "consolidative")),
    ("Pneumonia", ("pneumonia",)),
    ("Atelectasis", ("atelectasis", "atelectases", "atelectatic")),
    ("Lung Lesion", ("nodule", "nodules", "mass", "masses", "lesion", "lesions", "granuloma", "granulomas")),
    ("Fracture", ("fracture", "fractures", "fractured")),
    ("Support Devices", ("pacemaker", "catheter", "endotracheal tube", "et tube", "ng tube", "nasogastric tube",
                         "enteric tube", "picc", "central line", "central venous", "sternotomy wires", "icd",
                         "chest tube", "tracheostomy", "port-a-cath", "line", "lines", "tube", "tubes", "device",
                         "devices", "leads")),
    ("Pleural Other", ("pleural thickening", "pleural plaque", "pleural plaques", "fibrothorax")),
    ("Lung Opacity", ("opacity", "opacities", "opacification", "infiltrate", "infiltrates", "haziness")),
]
# One alternation, longest keywords first, group name = label index: a single scan per sentence.
_KEYWORD_RE = re.compile(
    "|".join(
        f"(?P<l{n}>\\b(?:" + "|".join(re.escape(k) for k in sorted(kws, key=len, reverse=True)) + r")\b)"
        for n, (_, kws) in enumerate(LABEL_KEYWORDS)
    ),
    re.IGNORECASE,
)


def split_report_sentences(text: str) -> list[str]:
    """Paragraph text -> sentences (line wraps joined; '1.5 cm' and '___' stay intact)."""
    flat = " ".join(text.split())
    return [s.strip() for s in SENTENCE_BOUNDARY.split(flat) if s.strip() and s.strip() not in {".", "___"}]


def sentence_label(text: str) -> tuple[str | None, bool]:
    """(CheXpert label stated as present or None, is_negative).

    A finding word is negated when a negation cue precedes it in its clause ("no", "without", ...)
    or a cue follows it ("... is not seen"). The first non-negated finding (in LABEL_KEYWORDS
    order) is the label. A sentence with no stated finding is negative when it negates one or
    reads as a normal statement ("Trachea is midline.").
    """
    negated_any = False
    best: int | None = None
    for match in _KEYWORD_RE.finditer(text):
        index = int(match.lastgroup[1:])
        if _is_negated(text, match.start(), match.end()):
            negated_any = True
        elif best is None or index < best:
            best = index
    if best is not None:
        return LABEL_KEYWORDS[best][0], False
    return None, negated_any or bool(NORMAL_STATEMENT.search(text))


def _is_negated(text: str, start: int, end: int) -> bool:
    before = text[:start]
    boundaries = [m.end() for m in CLAUSE_BOUNDARY.finditer(before)]
    clause = before[boundaries[-1]:] if boundaries else before
    # "no X or Y": the cue carries over "or"/"and" lists, which stay inside one clause.
    return bool(PRE_NEGATION.search(clause)) or bool(POST_NEGATION.search(text[end:]))


def make_sentences(texts: list[str], section: str) -> list[ReportSentence]:
    sentences = []
    for text in texts:
        label, negative = sentence_label(text)
        sentences.append(
            ReportSentence(text=text, section=section, region=LABEL_REGION.get(label) if label else None,
                           label=label, is_negative=negative)
        )
    return sentences


def mimic_sections(text: str) -> dict[str, str]:
    """Section name (normalised, aliases folded) -> text. The text before the first header is 'preamble'."""
    sections: dict[str, str] = {}
    matches = list(SECTION_HEADER.finditer(text))
    preamble_end = matches[0].start() if matches else len(text)
    sections["preamble"] = text[:preamble_end].strip()
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        name = " ".join(match.group(1).lower().split())
        name = SECTION_ALIASES.get(name, name)
        body = text[match.end():end].strip()
        if body:
            sections[name] = (sections[name] + "\n" + body) if name in sections else body
    return sections


def parse_mimic_report(text: str) -> Report:
    """A MIMIC-CXR free-text report -> Report (findings + impression sentences, indication, raw text)."""
    sections = mimic_sections(text)
    findings, impression = sections.get("findings", ""), sections.get("impression", "")
    if not findings and not impression:
        paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
        last = paragraphs[-1] if paragraphs else ""
        findings = SECTION_HEADER.sub(" ", last) if last else ""
    sentences = make_sentences(split_report_sentences(findings), "findings")
    sentences += make_sentences(split_report_sentences(impression), "impression")
    indication = sections.get("indication")
    return Report(sentences=sentences, raw_text=text, indication=" ".join(indication.split()) if indication else None)


def report_from_sections(findings: str, impression: str, indication: str | None = None, raw: str | None = None) -> Report:
    sentences = make_sentences(split_report_sentences(findings or ""), "findings")
    sentences += make_sentences(split_report_sentences(impression or ""), "impression")
    return Report(sentences=sentences, raw_text=raw, indication=indication or None)
