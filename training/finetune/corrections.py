"""Signed-off reviews -> fine-tuning examples.

For each signed review (``ReviewService.signed_reviews_since``) of a draft:

* **final** (the target, "chosen"): the draft's sentences in draft order with the radiologist's decisions
  applied - accepted sentences unchanged, edited sentences with the final text (label re-read from the text
  when the edit changes the finding), deleted sentences dropped, human-added sentences inserted after
  the findings of the same or an earlier ABCDEF region; boxes accepted, moved/resized to the final
  coordinates, rejected (-> ``<nobox>``), or drawn and linked to a sentence. Kept sentences keep the
  model's trajectory (their clues); added ones have none.
* **draft** (the "rejected" side of the preference pair): the draft exactly as the model wrote it; used
  only when the review changed something.
* the list of deleted sentences and changed boxes (for the held-out correction metrics).

The free-text ``final_report`` is not parsed: the structured decisions are the ground truth of what changed.
A drawn box without a linked sentence has no sentence to attach to and is counted but not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotations_db.provenance import ACCEPTED_DECISIONS
from gazex_core import labeler
from gazex_core.evidence import Box
from gazex_core.sequence import SentenceBlock
from gazex_core.vocab import LABEL_REGION, region_index

from .modelio import sentence_to_block

SENTENCE_CORRECTIONS = ("edited", "deleted", "added")
BOX_CORRECTIONS = ("moved", "resized", "rejected", "added")

def infer_label(text: str) -> str | None:
    """The finding a sentence states as present or possible (None for normal/negative statements)."""
    return labeler.sentence_label(text)[0]


def edited_label(original_label: str | None, final_text: str) -> str | None:
    """An edit keeps the draft's label while the text still states it; otherwise the label is re-read."""
    if original_label and original_label != "No Finding" and labeler.label_sentence(final_text).get(
            original_label) in (labeler.POSITIVE, labeler.UNCERTAIN):
        return original_label
    inferred = infer_label(final_text)
    if original_label == "No Finding" and inferred is None:
        return original_label
    return inferred


@dataclass
class BoxChange:
    sentence_text: str
    label: str | None
    draft_box: Box | None
    final_box: Box | None
    decision: str


@dataclass
class CorrectionExample:
    study_uid: str
    image_path: str
    session_id: int
    model_version_id: int
    final: list[SentenceBlock]
    draft: list[SentenceBlock]
    deleted: list[SentenceBlock] = field(default_factory=list)
    edited: list[tuple[SentenceBlock, SentenceBlock]] = field(default_factory=list)
    added: list[SentenceBlock] = field(default_factory=list)
    box_changes: list[BoxChange] = field(default_factory=list)
    unlinked_boxes: int = 0

    @property
    def n_corrections(self) -> int:
        return (len(self.deleted) + len(self.edited) + len(self.added) + len(self.box_changes)
                + self.unlinked_boxes)

    @property
    def corrected(self) -> bool:
        return self.n_corrections > 0

    def final_labels(self) -> set[str]:
        return {b.label for b in self.final if b.label and b.label != "No Finding"}


def _box(d: dict[str, Any]) -> Box | None:
    if d.get("x_min") is None:
        return None
    return Box(float(d["x_min"]), float(d["y_min"]), float(d["x_max"]), float(d["y_max"]))


def _copy(block: SentenceBlock, **changes: Any) -> SentenceBlock:
    values = dict(section=block.section, region=block.region, clues=list(block.clues), box=block.box,
                  label=block.label, text=block.text)
    values.update(changes)
    return SentenceBlock(**values)


def example_from_review(review: dict[str, Any]) -> CorrectionExample:
    draft_sentences = list((review.get("draft") or {}).get("sentences") or [])
    sentence_decisions = {d["sentence_id"]: d for d in review.get("sentences") or []}
    box_decisions = {d["box_id"]: d for d in review.get("boxes") or []}
    ex = CorrectionExample(study_uid=str(review["study_uid"]), image_path=str(review.get("image_path") or ""),
                           session_id=int(review.get("session_id") or 0),
                           model_version_id=int(review.get("model_version_id") or 0),
                           final=[], draft=[sentence_to_block(s) for s in draft_sentences])
    kept: dict[str, SentenceBlock] = {}
    for sentence, block in zip(draft_sentences, ex.draft):
        final = _apply_sentence_decision(ex, block, sentence_decisions.get(str(sentence["id"])))
        if final is not None:
            final = _apply_box_decision(ex, final, block, box_decisions.get(str(sentence["id"])))
            kept[str(sentence["id"])] = final
            ex.final.append(final)
    _add_human_sentences(ex, sentence_decisions, kept)
    _add_drawn_boxes(ex, box_decisions, kept)
    return ex


def _apply_sentence_decision(ex: CorrectionExample, block: SentenceBlock,
                             decision: dict[str, Any] | None) -> SentenceBlock | None:
    kind = decision["decision"] if decision else "accepted"
    if kind == "deleted":
        ex.deleted.append(block)
        return None
    if kind == "edited" and decision.get("final_text"):
        text = str(decision["final_text"]).strip()
        final = _copy(block, text=text, label=edited_label(block.label, text))
        ex.edited.append((block, final))
        return final
    return _copy(block)


def _apply_box_decision(ex: CorrectionExample, final: SentenceBlock, draft: SentenceBlock,
                        decision: dict[str, Any] | None) -> SentenceBlock:
    if not decision or decision["decision"] in ACCEPTED_DECISIONS:
        return final
    new_box = None if decision["decision"] == "rejected" else _box(decision)
    ex.box_changes.append(BoxChange(final.text, final.label, draft.box, new_box, decision["decision"]))
    final.box = new_box
    return final


def _add_human_sentences(ex: CorrectionExample, decisions: dict[str, dict], kept: dict[str, SentenceBlock]) -> None:
    for sentence_id, d in decisions.items():
        if d["decision"] != "added" or not d.get("final_text"):
            continue
        text = str(d["final_text"]).strip()
        label = infer_label(text)
        block = SentenceBlock(section="findings", region=LABEL_REGION.get(label or ""), label=label, text=text)
        ex.added.append(block)
        kept[sentence_id] = block
        ex.final.insert(_insert_position(ex.final, block), block)


def _add_drawn_boxes(ex: CorrectionExample, decisions: dict[str, dict], kept: dict[str, SentenceBlock]) -> None:
    for box_id, d in decisions.items():
        if d["decision"] != "added":
            continue
        target = kept.get(d.get("linked_sentence_id") or "")
        if target is None:
            ex.unlinked_boxes += 1
            continue
        ex.box_changes.append(BoxChange(target.text, target.label, target.box, _box(d), "added"))
        target.box = _box(d)


def _insert_position(blocks: list[SentenceBlock], new: SentenceBlock) -> int:
    """After the last findings sentence whose region comes no later in ABCDEF order (before the impression)."""
    new_rank = region_index(new.region)
    position = 0
    for i, b in enumerate(blocks):
        if b.section != "findings":
            break
        if region_index(b.region) <= new_rank or b.region is None:
            position = i + 1
    return position


def examples_from_reviews(reviews: list[dict[str, Any]]) -> list[CorrectionExample]:
    """One example per study: the latest signed review of a study wins (reviews come in sign-off order)."""
    latest: dict[str, CorrectionExample] = {}
    for review in reviews:
        if review.get("draft"):
            ex = example_from_review(review)
            latest[ex.study_uid] = ex
    return list(latest.values())
