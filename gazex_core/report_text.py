"""Consistent report text: the one home where decoded sentences become the draft's sentences.

Two parts, both used by :meth:`gazex_core.inference.GazeX.analyze`:

* :class:`TextGuard`, a decoding constraint on the sentence text: a token that would write a garbled number
  (``4.4.4 cm``, ``2.15``, three or more digits), a run of three equal letters (``defibrillllator``), the same
  word twice in a row or the same token three times in a row is masked and the next most probable token taken.
* :func:`assemble`, run on the parsed sentence blocks (labels read with :mod:`gazex_core.labeler`, the one
  text-to-label mapping):

  1. a finding sentence whose text does not state its label (``<lab_Lung_Lesion>`` "There is a cardiac
     pacemaker.") or states another one gets a plain sentence for that label instead; an unlabelled findings
     sentence that states a finding is dropped (the head decides what is present, and every stated finding
     carries its label and box); an impression sentence may state present findings without a label;
  2. a sentence that negates a present finding loses that item from its "No a, b or c." list, or is dropped;
  3. measurements are never sampled digits: a Lung Lesion size is the mean of its observation box's width and
     height times the pixel spacing; an endotracheal tube tip-to-carina distance is the box's lower edge to the
     carina, estimated as the lower edge of the airway sentence's longest-dwell clue box (the readers' airway
     clue spans the trachea down to just below the carina); any other number with a unit, or one without a
     box or pixel spacing to compute it from, is removed;
  4. a sentence whose text repeats an earlier one, or a second findings sentence for the same finding at the
     same place (box IoU >= 0.3), is dropped;
  5. severity: given the model's severity of a finding (``grades``, from the attribute head), every sentence
     about it words that grade (an existing severity word is replaced, a plain phrase built for it carries it),
     so no two sentences give one finding two severities; without a grade, an impression sentence takes the
     severity word of its finding's findings sentence;
  6. the impression states every present finding (every label of the draft, not only the significant ones):
     impression sentences that state no present finding ("No acute cardiopulmonary abnormality." beside
     findings) or a finding that is not present are dropped, and each present finding it does not state gets
     a short impression sentence carrying that finding's box and trajectory. A draft with no finding keeps
     (or gets) a normal impression.

The draft's set of labels (what finding macro-F1 scores) is never changed by :func:`assemble`.
:func:`consistency_issues` counts what the rules forbid (used by ``gazex evaluate`` and the tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import labeler
from .sequence import LABEL_TOKENS, SentenceBlock
from .vocab import LABEL_REGION

if TYPE_CHECKING:  # torch is used only through the logits it is given: importing this module loads no torch
    import torch

# a run of 3 equal letters, a number with two points or two decimals or 3+ digits, "..", the same word twice
GARBLED = re.compile(r"([A-Za-z])\1\1|\d\.\d*\.|\d\.\d\d|\d{3,}|\.\.|\b(\w+)\s+\2\b", re.IGNORECASE)
# a number with a unit as the decoder writes it (garbled forms included), with its "measuring" / "in diameter"
MEASURE = re.compile(r"(?P<measuring>\s*\bmeasuring)?\s*\b\d[\d.]*\s*(?:cm|mm)\b(?:\s+in\s+(?:diameter|size))?",
                     re.IGNORECASE)
STRAY_NUMBER = re.compile(r"(?<![\x00\d.])\d[\d.]*")
# a sentence ending on words that announced a number it no longer has ("... with tip approximately.")
DANGLING = re.compile(r"\s+(?:with (?:the |its )?tip\s+)?(?:approximately|measuring|about)\.?$", re.IGNORECASE)
_MARK = "\x00"  # marks a computed number so that the stray-number removal keeps it
SEVERITY_WORDS = "small|moderate|large|mild|minimal|trace|tiny|massive|severe|marked|slight"
SEVERITY = re.compile(rf"\b({SEVERITY_WORDS})\b", re.IGNORECASE)
_GRADE_WORD = rf"(?:{SEVERITY_WORDS})(?:ly)?"
GRADE_PHRASE = re.compile(rf"\b{_GRADE_WORD}(?:\s*(?:to|-)\s*{_GRADE_WORD})?\b", re.IGNORECASE)  # "small to moderate"
# a severity grade (gazex_core.model.SEVERITIES) in a report's words: (adjective, adverb)
GRADE_WORDS = {"small": ("small", "slightly"), "moderate": ("moderate", "moderately"), "large": ("large", "markedly")}
LABEL_GRADE_WORDS = {
    "Cardiomegaly": {"small": ("mild", "mildly"), "moderate": ("moderate", "moderately"), "large": ("marked", "markedly")},
    "Edema": {"small": ("mild", "mildly"), "moderate": ("moderate", "moderately"), "large": ("severe", "severely")},
}
ETT = re.compile(r"\b(endotracheal|et tube|ett)\b", re.IGNORECASE)
NEGATED_LIST = re.compile(r"^(no|there is no|there are no|without)\s+(.+?)\.?$", re.IGNORECASE)
LIST_SPLIT = re.compile(r",\s*(?:or|and)\s+|,\s*|\s+or\s+|\s+and\s+", re.IGNORECASE)
NORMAL_IMPRESSION = "No acute cardiopulmonary abnormality."
MAX_TRIES = 40  # candidates the guard looks at before it lets the top one through

# A plain sentence per finding ({side} is "left ", "right ", "bilateral " or ""); each states only its label.
FINDING_PHRASE = {
    "Enlarged Cardiomediastinum": "The mediastinum is widened.",
    "Cardiomegaly": "The heart is {severity_adv}enlarged.",
    "Lung Opacity": "There is a {side}lung opacity.",
    "Lung Lesion": "There is a {side}lung {lesion}.",
    "Edema": "There is {severity}pulmonary edema.",
    "Consolidation": "There is {side}consolidation.",
    "Pneumonia": "There is {side}pneumonia.",
    "Atelectasis": "There is {side}atelectasis.",
    "Pneumothorax": "There is a {severity}{side}pneumothorax.",
    "Pleural Effusion": "There is a {severity}{side}pleural effusion.",
    "Pleural Other": "There is {side}pleural thickening.",
    "Fracture": "There is a {side}rib fracture.",
    "Support Devices": "A support device is in place.",
}
IMPRESSION_PHRASE = {
    "Enlarged Cardiomediastinum": "Widened mediastinum.",
    "Cardiomegaly": "{severity}cardiomegaly.",
    "Lung Opacity": "{Side}lung opacity.",
    "Lung Lesion": "{Side}lung {lesion}.",
    "Edema": "{severity}pulmonary edema.",
    "Consolidation": "{Side}consolidation.",
    "Pneumonia": "{Side}pneumonia.",
    "Atelectasis": "{Side}atelectasis.",
    "Pneumothorax": "{severity}{side}pneumothorax.",
    "Pleural Effusion": "{severity}{side}pleural effusion.",
    "Pleural Other": "{Side}pleural thickening.",
    "Fracture": "{Side}rib fracture.",
    "Support Devices": "Support device in place.",
}


@dataclass(frozen=True)
class Geometry:
    """What measurements are computed from: the image size in pixels and its pixel spacing (row, col) in mm."""

    width: int
    height: int
    spacing_mm: tuple[float, float] | None


# ------------------------------------------------------------------ decoding constraint


class TextGuard:
    """Masks the tokens that would garble the sentence being written (see the module docstring)."""

    def __init__(self, tok):
        self.strings = [None if i in tok.id_to_special else tok.tok.decode([i]) for i in range(tok.vocab_size)]
        self.label_ids = {tok.id(t) for t in LABEL_TOKENS}

    def _string(self, i: int) -> str | None:
        return self.strings[i] if i < len(self.strings) else None

    def _text_tail(self, generated: list[int]) -> tuple[str, list[int]] | None:
        """The text written since the sentence's label token (None while not in a sentence's text)."""
        run: list[int] = []
        for tok in reversed(generated):
            if self._string(tok) is None:
                return ("".join(self.strings[t] for t in reversed(run)), run) if tok in self.label_ids else None
            run.append(tok)
        return None

    def __call__(self, generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        tail = self._text_tail(generated)
        if tail is None:
            return logits
        text, run = tail
        order = logits.topk(min(MAX_TRIES, logits.shape[0])).indices.tolist()
        for rank, cand in enumerate(order):
            if self._string(cand) is None or not self._garbles(text, run, cand):
                if rank == 0:
                    return logits
                out = logits.new_full(logits.shape, float("-inf"))
                out[cand] = logits[cand]
                return out
        return logits

    def _garbles(self, text: str, run: list[int], cand: int) -> bool:
        if len(run) >= 2 and run[0] == run[1] == cand:  # run is newest first
            return True
        new = text + self.strings[cand]
        return any(m.end() > len(text) for m in GARBLED.finditer(new))


def garbled(text: str) -> list[str]:
    """The garbled pieces of a sentence (empty when clean)."""
    return [m.group(0) for m in GARBLED.finditer(text)]


# ------------------------------------------------------------------ assembly


def _observations(text: str) -> tuple[set[str], set[str]]:
    """(stated, negated) observations of one sentence, labelled once."""
    stated, negated = labeler.stated_and_negated(text)
    return set(stated), set(negated)


def _stated(text: str) -> set[str]:
    return _observations(text)[0]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9. ]", " ", text.lower()).split()).rstrip(". ")


def _side(block: SentenceBlock) -> str:
    m = labeler.SIDE_WORD.search(block.text or "")
    if m:
        return m.group(1).lower()
    if block.box is None or block.label in ("Edema", "Cardiomegaly", "Enlarged Cardiomediastinum", "Support Devices"):
        return ""
    cx = block.box.center[0]  # a frontal film shows the patient's right on the image's left
    return "right" if cx < 0.45 else "left" if cx > 0.55 else ""


def lesion_size_cm(box, geometry: Geometry) -> float | None:
    """Diameter of a lesion from its observation box: mean of the box's width and height, in cm."""
    if box is None or geometry.spacing_mm is None:
        return None
    row_mm, col_mm = geometry.spacing_mm
    return (box.width * geometry.width * col_mm + box.height * geometry.height * row_mm) / 2 / 10


def tube_tip_to_carina_cm(box, carina_y: float | None, geometry: Geometry) -> float | None:
    """Distance of a tube's tip (its box's lower edge) above the carina (normalised y), in cm."""
    if box is None or carina_y is None or geometry.spacing_mm is None:
        return None
    return (carina_y - box.y_max) * geometry.height * geometry.spacing_mm[0] / 10


def grade_words(label: str | None, grade: str) -> tuple[str, str]:
    """(adjective, adverb) for a severity grade of a finding, in the reports' words ("marked" cardiomegaly)."""
    return LABEL_GRADE_WORDS.get(label, GRADE_WORDS)[grade]


def with_grade(text: str, label: str | None, grade: str | None) -> str:
    """The text with every severity word (or "small to moderate" range) replaced by ``grade``'s word."""
    if grade is None:
        return text
    adjective, adverb = grade_words(label, grade)
    return _tidy(GRADE_PHRASE.sub(lambda m: adverb if m.group(0).lower().endswith("ly") else adjective, text))


def _phrase(template: str, block: SentenceBlock, geometry: Geometry, grade: str | None = None) -> str:
    side = _side(block)
    adjective, adverb = grade_words(block.label, grade) if grade else ("", "")
    size = lesion_size_cm(block.box, geometry) if block.label == "Lung Lesion" else None
    lesion = "mass" if (size or 0) >= 3.0 or re.search(r"\bmass", block.text or "", re.I) else "nodule"
    if size is not None:
        lesion = f"{lesion} measuring {size:.1f} cm"
    text = template.format(side=f"{side} " if side else "", Side=f"{side.capitalize()} " if side else "",
                           lesion=lesion, severity=f"{adjective} " if adjective else "",
                           severity_adv=f"{adverb} " if adverb else "")
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    return text[0].upper() + text[1:]


def _carina_y(blocks: list[SentenceBlock]) -> float | None:
    for b in blocks:
        if b.region == "airway" and b.section == "findings" and b.clues:
            clue = max(b.clues, key=lambda c: c.dwell_ms)
            return min(1.0, clue.cy + clue.h / 2)
    return None


def _measured(block: SentenceBlock, geometry: Geometry, carina_y: float | None) -> str:
    """The text with its measurement computed (or removed when it cannot be); never a sampled number."""
    text = block.text
    value = None
    if block.label == "Lung Lesion":
        value = lesion_size_cm(block.box, geometry)
    elif block.label == "Support Devices" and ETT.search(text):
        value = tube_tip_to_carina_cm(block.box, carina_y, geometry)
        if value is not None and value < 0:
            text, value = re.sub(r"\babove\b", "below", text), -value
    first = True

    def one(m: re.Match) -> str:
        nonlocal first
        keep, first = first and value is not None, False
        return f"{' measuring' if m.group('measuring') else ''} {_MARK}{value:.1f} cm" if keep else " "

    text = STRAY_NUMBER.sub("", MEASURE.sub(one, text)).replace(_MARK, "")
    if block.label == "Lung Lesion" and value is not None:
        text = re.sub(r"\bnodule\b" if value >= 3.0 else r"\bmass\b", "mass" if value >= 3.0 else "nodule", text)
    return _tidy(text)


def _same_severity(text: str, finding: SentenceBlock | None) -> str:
    """A second sentence about a finding states its severity and side in the words of its findings sentence."""
    if finding is None or finding.text == text:
        return text
    for words in (SEVERITY, labeler.SIDE_WORD):
        said = words.search(finding.text)
        if said:
            text = words.sub(said.group(0).lower(), text, count=1)
    return _tidy(text)


def _tidy(text: str) -> str:
    text = re.sub(r"([A-Za-z])\1{2,}", r"\1\1", text)  # repairs left by an unguarded decode
    text = re.sub(r"\b(\w+)(\s+\1\b)+", r"\1", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+([.,;])", r"\1", " ".join(text.split()))
    text = DANGLING.sub(".", text)
    text = re.sub(r"\ban ([bcdfghjklmnpqrstvwxyz])", r"a \1", text)
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    return text[:1].upper() + text[1:] if text else text


def _without_negated(text: str, present: set[str]) -> str | None:
    """A "No a, b or c." sentence without the items naming a present finding (None: nothing left, or not a list)."""
    m = NEGATED_LIST.match(text.strip())
    if not m:
        return None
    items = [i.strip() for i in LIST_SPLIT.split(m.group(2)) if i.strip()]
    keep = [i for i in items if not set(labeler.mentioned(i)) & present]
    if not keep or len(keep) == len(items):
        return None
    listed = keep[0] if len(keep) == 1 else ", ".join(keep[:-1]) + " or " + keep[-1]
    out = f"{m.group(1)} {listed}."
    stated, negated = _observations(out)
    return out if not negated & present and not stated else None


@dataclass
class _Draft:
    blocks: list[SentenceBlock]
    confs: list[float]

    def add(self, block: SentenceBlock, conf: float) -> None:
        self.blocks.append(block)
        self.confs.append(conf)

    def labels(self) -> set[str]:
        return {b.label for b in self.blocks if b.label and b.label != "No Finding"}


def assemble(blocks: list[SentenceBlock], confs: list[float], geometry: Geometry,
             grades: dict[str, str] | None = None) -> tuple[list[SentenceBlock], list[float]]:
    """Parsed sentence blocks (+ their confidences) -> the draft's consistent sentences (see the module docstring).
    ``grades``: label -> the model's severity grade of that finding (small / moderate / large), when it has one."""
    grades = grades or {}
    present = {b.label for b in blocks if b.label and b.label != "No Finding"}
    carina_y = _carina_y(blocks)
    found = {b.label: b for b in reversed(blocks) if b.section == "findings" and b.label}
    out = _Draft([], [])
    for block, conf in zip(blocks, confs):
        block = replace(block, clues=list(block.clues))
        if block.section == "impression" and block.label in found and block.box is None:
            block.box = found[block.label].box
        block = _consistent(block, present, geometry, grades)
        if block is not None:
            measured_on = found[block.label] if block.label in found else block  # one finding, one measurement
            block.text = _measured(replace(block, box=measured_on.box), geometry, carina_y)
            if block.section == "impression":
                block.text = _same_severity(block.text, found.get(block.label))
            block.text = with_grade(block.text, block.label, grades.get(block.label))
            out.add(block, conf)
    out = _deduplicated(out)
    return _with_impression(out, present, geometry, grades)


def _consistent(block: SentenceBlock, present: set[str], geometry: Geometry, grades: dict[str, str]) -> SentenceBlock | None:
    """Rules 1-2 for one sentence: the block (text fixed) or None to drop it."""
    text = _tidy(block.text or "")
    stated, negated = _observations(text)
    negated &= present
    if block.label and block.label != "No Finding":
        if block.label not in stated or negated or stated - present:
            template = FINDING_PHRASE if block.section == "findings" else IMPRESSION_PHRASE
            text = _phrase(template[block.label], replace(block, text=text), geometry, grades.get(block.label))
        block.text = text
        return block
    if stated - present or (block.section == "findings" and stated) or (block.section == "impression" and present
                                                                          and not stated):
        return None
    if negated:
        text = _without_negated(text, present)
        if text is None:
            return None
    block.text = text
    return block if text else None


def _deduplicated(draft: _Draft) -> _Draft:
    """Rule 4, keeping the draft's labels: a repeat is dropped only when its label is held by a kept sentence."""
    out = _Draft([], [])
    seen: set[str] = set()
    for block, conf in zip(draft.blocks, draft.confs):
        same_place = block.label and any(
            k.label == block.label and k.section == block.section
            and (block.section == "impression" or k.box is None or block.box is None or k.box.iou(block.box) >= 0.3)
            for k in out.blocks)
        repeat = _norm(block.text) in seen or same_place
        if repeat and (not block.label or block.label in out.labels()):
            continue
        seen.add(_norm(block.text))
        out.add(block, conf)
    return out


def _with_impression(draft: _Draft, present: set[str], geometry: Geometry,
                     grades: dict[str, str]) -> tuple[list[SentenceBlock], list[float]]:
    """Rule 5: every present finding is stated by an impression sentence; a normal draft has a normal impression."""
    covered: set[str] = set()
    for b in draft.blocks:
        if b.section == "impression":
            covered |= _stated(b.text) | ({b.label} if b.label else set())
    texts = {_norm(b.text) for b in draft.blocks}
    findings = [(b, c) for b, c in zip(draft.blocks, draft.confs) if b.section == "findings" and b.label in present]
    for b, conf in findings:
        if b.label in covered:
            continue
        covered.add(b.label)
        text = _phrase(IMPRESSION_PHRASE[b.label], b, geometry, grades.get(b.label))
        if _norm(text) in texts:
            text = text[:-1] + ", as above."
        texts.add(_norm(text))
        draft.add(SentenceBlock(section="impression", region=b.region or LABEL_REGION.get(b.label), clues=list(b.clues),
                                box=b.box, label=b.label, text=text), conf)
    if not present and not any(b.section == "impression" for b in draft.blocks):
        draft.add(SentenceBlock(section="impression", text=NORMAL_IMPRESSION), min(draft.confs, default=0.5))
    return draft.blocks, draft.confs


# ------------------------------------------------------------------ the metric


def consistency_issues(sentences) -> dict[str, int]:
    """What the rules forbid, counted in one draft (sentences with .section, .label, .text).

    ``self_contradictions``: (sentence, finding) pairs negating a finding the draft states (by a label or its
    text); ``repeated_sentences``: sentences whose text repeats an earlier one; ``garbled_tokens``: garbled
    pieces (:func:`garbled`); ``impression_missing_findings``: present findings no impression sentence states.
    """
    observed = [_observations(s.text) for s in sentences]
    present = {s.label for s in sentences if s.label and s.label != "No Finding"}
    for stated, _ in observed:
        present |= stated
    seen: set[str] = set()
    repeats = garbles = contradictions = 0
    covered: set[str] = set()
    for s, (stated, negated) in zip(sentences, observed):
        key = _norm(s.text)
        repeats += key in seen
        seen.add(key)
        garbles += len(garbled(s.text))
        contradictions += len(negated & present)
        if s.section == "impression":
            covered |= stated | ({s.label} if s.label and s.label != "No Finding" else set())
    return {"self_contradictions": contradictions, "repeated_sentences": repeats, "garbled_tokens": garbles,
            "impression_missing_findings": len(present - covered)}
