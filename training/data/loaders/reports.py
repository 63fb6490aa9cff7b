"""Report text: MIMIC-CXR section parsing (after the maintainers' txt/section_parser.py), sentences, labels.

``parse_mimic_report(text)`` -> Report with FINDINGS / IMPRESSION sentences. Section headers are a
newline + space + ``[A-Z ()/,-]+:`` (the maintainers' regex, also accepting a header at column 0);
aliases are folded ("conclusion" -> impression, "chest, two views" -> findings, ...). If neither
section exists the last paragraph is used as findings (the maintainers' fallback).

Sentence labels come from the project's one text-to-label labeler, ``gazex_core.labeler.sentence_label``
(the CheXpert label a sentence states as present or possible, and whether it is a negative statement).
"""

from __future__ import annotations

import re

from gazex_core.labeler import sentence_label, split_sentences
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

def split_report_sentences(text: str) -> list[str]:
    """Paragraph text -> sentences (the labeler's splitter: line wraps joined, '1.5 cm' and '___' intact)."""
    return split_sentences(text)


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
