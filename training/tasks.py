"""Training examples for GazeX's tasks, built from Study objects.

Two steps, so that epochs are cheap:

1. :func:`study_record` turns one :class:`~training.data.types.Study` (image excluded) into a small
   JSON-able record: the report's sentences in ABCDEF order, each with its ground-truth box (if it states
   a finding that has one) and, per simulated reader, its gaze key frames (ordered clues + holistic
   observation box) from :func:`training.data.keyframes.sentence_keyframes`; the findings; the 14 labels.
   This is the slow part (DBSCAN per dictated sentence) and is cached by :mod:`training.cache`.
2. :func:`make_example` draws one (prompt items, target items) pair for a task from a record
   (a random reader each time, so the model sees every reader's trajectory).

Observation-box target (documented choice): a sentence that states a finding with a ground-truth box
gets that box (annotations.csv, matched by label and side); every other sentence (normal statements,
negatives, findings without a box) gets ``<nobox>``. We do not use the reader's gaze holistic box there:
it is where the reader looked, not where a finding is, it would add ~25 tokens to every report (CPU
budget), and it keeps the box target identical between the main model and the gaze ablation. The
holistic box is kept in the records (``obs``) and ``blocks(..., gaze_obs_boxes=True)`` can put it back.
Trajectory targets are the reader's DBSCAN clues, the ``MAX_CLUES`` longest dwells in time order.
"""

from __future__ import annotations

import random
import re
from typing import Any

from gazex_core.evidence import Box
from gazex_core.sequence import (
    Clue,
    SentenceBlock,
    evidence_items,
    ground_prompt,
    order_prompt,
    prompt,
    select_clues,
    serialise_answer,
    serialise_order,
    serialise_plain,
    serialise_report,
    vqa_prompt,
)
from gazex_core.vocab import CHEXPERT_LABELS, REGIONS, SECTIONS, region_index

# Labels the questions ask about, with the noun phrase used in questions/answers.
QUESTION_PHRASES: dict[str, str] = {
    "Cardiomegaly": "cardiomegaly",
    "Enlarged Cardiomediastinum": "an enlarged cardiomediastinum",
    "Pleural Effusion": "a pleural effusion",
    "Pneumothorax": "a pneumothorax",
    "Consolidation": "consolidation",
    "Atelectasis": "atelectasis",
    "Lung Lesion": "a lung lesion",
    "Edema": "pulmonary edema",
    "Support Devices": "a support device",
}
ANSWER_NAMES: dict[str, str] = {
    "Cardiomegaly": "cardiomegaly",
    "Enlarged Cardiomediastinum": "enlarged cardiomediastinum",
    "Pleural Effusion": "pleural effusion",
    "Pneumothorax": "pneumothorax",
    "Consolidation": "consolidation",
    "Atelectasis": "atelectasis",
    "Lung Lesion": "lung lesion",
    "Edema": "pulmonary edema",
    "Support Devices": "support device",
}
SIDED = ("Pleural Effusion", "Pneumothorax", "Consolidation", "Atelectasis", "Lung Lesion")
SEVERITY_ASKED = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Edema")

DEFAULT_TASK_WEIGHTS: dict[str, float] = {"report": 0.4, "ground": 0.2, "vqa": 0.25, "order": 0.1, "plain": 0.05}
GAZE_TASKS = ("order",)  # tasks that exist only with gaze


def _norm_text(t: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", t.lower()).strip()


def _words(t: str) -> set[str]:
    return set(_norm_text(t).split())


def _side_in_text(text: str) -> str | None:
    t = text.lower()
    if "bilateral" in t or "both" in t:
        return "bilateral"
    if re.search(r"\bleft\b", t) and not re.search(r"\bright\b", t):
        return "left"
    if re.search(r"\bright\b", t) and not re.search(r"\bleft\b", t):
        return "right"
    return None


def _box_dict(b: Box | None) -> list[float] | None:
    return None if b is None else [b.x_min, b.y_min, b.x_max, b.y_max]


def _box(v: list[float] | None) -> Box | None:
    return None if v is None else Box(*v)


def study_record(study, keyframe_fn=None) -> dict[str, Any]:
    """One study -> the cached record (normalised coordinates). ``keyframe_fn(recording, w, h)`` defaults to
    :func:`training.data.keyframes.sentence_keyframes`."""
    if keyframe_fn is None:
        from training.data.keyframes import sentence_keyframes as keyframe_fn
    w, h = float(study.width), float(study.height)
    findings = []
    for f in study.findings:
        findings.append({
            "label": f.label,
            "box": _box_dict(f.box_px.normalised(w, h)) if f.box_px is not None else None,
            "kind": f.kind, "laterality": f.laterality, "location": f.location, "severity": f.severity,
        })
    sents = list(study.report.sentences) if study.report else []
    order = sorted(range(len(sents)), key=lambda i: (SECTIONS.index(sents[i].section) if sents[i].section in SECTIONS else 9,
                                                      region_index(sents[i].region) if sents[i].section == "findings" else 0, i))
    sentences = []
    used_findings: set[int] = set()
    for i in order:
        s = sents[i]
        label = None if s.is_negative else s.label
        gt_box = None
        if label and label != "No Finding":
            side = _side_in_text(s.text)
            cands = [j for j, f in enumerate(findings) if f["label"] == label and f["box"] is not None]
            cands.sort(key=lambda j: (j in used_findings, side is not None and findings[j]["laterality"] != side))
            if cands:
                gt_box = findings[cands[0]]["box"]
                if s.section == "findings":
                    used_findings.add(cands[0])
        sentences.append({"section": s.section if s.section in SECTIONS else "findings", "region": s.region,
                          "label": label, "text": s.text.strip(), "gt_box": gt_box, "gaze": []})
    readings = []
    for rec in study.gaze:
        try:
            kfs = keyframe_fn(rec, int(w), int(h))
        except Exception:  # a broken recording: no trajectory from this reader
            continue
        per_sentence: list[dict | None] = [None] * len(sentences)
        all_frames = []
        for kf in kfs:
            clues = [[c.cx / w, c.cy / h, c.box_px.width / w, c.box_px.height / h, float(c.dwell_ms), float(c.t_mean_s)]
                     for c in kf.clues]
            all_frames += clues
            j = _match_sentence(kf.sentence.text, sentences)
            if j is not None and per_sentence[j] is None:
                obs = kf.observation_box_px.normalised(w, h) if kf.observation_box_px is not None else None
                per_sentence[j] = {"clues": [c[:5] for c in clues], "obs": _box_dict(obs)}
        all_frames.sort(key=lambda c: c[5])
        readings.append({"reader": rec.reader_id, "sentences": per_sentence, "frames": [c[:5] for c in all_frames]})
    labels = [0.0] * len(CHEXPERT_LABELS)
    pos = {k for k, v in study.labels.items() if v == 1} | {f["label"] for f in findings}
    for k in pos:
        if k in CHEXPERT_LABELS:
            labels[CHEXPERT_LABELS.index(k)] = 1.0
    if not any(labels[i] for i, k in enumerate(CHEXPERT_LABELS) if k != "No Finding"):
        labels[CHEXPERT_LABELS.index("No Finding")] = 1.0
    else:
        labels[CHEXPERT_LABELS.index("No Finding")] = 0.0
    return {"id": study.study_id, "split": study.split, "width": int(w), "height": int(h), "labels": labels,
            "findings": findings, "sentences": sentences, "readings": readings}


def _match_sentence(text: str, sentences: list[dict]) -> int | None:
    nt = _norm_text(text)
    for j, s in enumerate(sentences):
        if _norm_text(s["text"]) == nt:
            return j
    wt = _words(text)
    best, best_j = 0.0, None
    for j, s in enumerate(sentences):
        ws = _words(s["text"])
        if wt and ws:
            jac = len(wt & ws) / len(wt | ws)
            if jac > best:
                best, best_j = jac, j
    return best_j if best >= 0.5 else None


# ------------------------------------------------------------------ blocks for one reader


def blocks(record: dict, reader: int | None, use_gaze: bool, gaze_obs_boxes: bool = False) -> list[SentenceBlock]:
    """The report's sentence blocks with one reader's trajectories (or none)."""
    out = []
    reading = record["readings"][reader] if (use_gaze and reader is not None and record["readings"]) else None
    for j, s in enumerate(record["sentences"]):
        g = reading["sentences"][j] if reading is not None else None
        clues = select_clues([Clue(*c) for c in g["clues"]]) if g else []
        box = _box(s["gt_box"])
        if box is None and gaze_obs_boxes and g is not None and g.get("obs") is not None:
            box = _box(g["obs"])
        out.append(SentenceBlock(section=s["section"], region=s["region"], clues=clues, box=box,
                                 label=s["label"], text=s["text"]))
    return out


def shuffled_findings(bl: list[SentenceBlock], rng: random.Random) -> list[SentenceBlock]:
    """The findings sentences in random order (the impression stays last): a report the decoder can only write by
    following each sentence's region and key frames, not its place in the ABCDEF order (the gaze-conditioned
    report, task e)."""
    findings = [b for b in bl if b.section == "findings"]
    rng.shuffle(findings)
    return findings + [b for b in bl if b.section != "findings"]


def pick_reader(record: dict, rng: random.Random) -> int | None:
    return rng.randrange(len(record["readings"])) if record["readings"] else None


# ------------------------------------------------------------------ questions


def _present(record: dict, label: str, side: str | None = None) -> bool:
    return any(f["label"] == label and (side is None or f["laterality"] == side or f["laterality"] == "bilateral")
               for f in record["findings"])


def closed_questions(record: dict, rng: random.Random, n: int = 4) -> list[tuple[str, str, str]]:
    """(kind, question, answer) closed questions: presence yes/no (balanced), sided yes/no, which side, severity."""
    qs: list[tuple[str, str, str]] = []
    present = sorted({f["label"] for f in record["findings"] if f["label"] in QUESTION_PHRASES})
    absent = [k for k in QUESTION_PHRASES if k not in present]
    for _ in range(n):
        kind = rng.choice(("presence", "presence", "sided", "side", "severity"))
        if kind == "presence":
            lab = rng.choice(present) if present and (rng.random() < 0.5 or not absent) else rng.choice(absent)
            qs.append(("presence", f"Is there {QUESTION_PHRASES[lab]}?", "yes" if lab in present else "no"))
        elif kind == "sided":
            sided_present = [f for f in record["findings"] if f["label"] in SIDED and f["laterality"] in ("left", "right")]
            if sided_present and rng.random() < 0.5:
                f = rng.choice(sided_present)
                lab, side = f["label"], f["laterality"]
                if rng.random() < 0.5:
                    side = "left" if side == "right" else "right"
            else:
                lab, side = rng.choice(SIDED), rng.choice(("left", "right"))
            name = ANSWER_NAMES[lab]
            art = "" if lab in ("Consolidation", "Atelectasis") else "a "
            qs.append(("sided", f"Is there {art}{side} {name}?", "yes" if _present(record, lab, side) else "no"))
        elif kind == "side":
            cands = [f for f in record["findings"] if f["label"] in SIDED and f["laterality"]]
            if not cands:
                continue
            f = rng.choice(cands)
            if sum(g["label"] == f["label"] for g in record["findings"]) > 1:
                sides = {g["laterality"] for g in record["findings"] if g["label"] == f["label"]}
                answer = "bilateral" if sides >= {"left", "right"} or "bilateral" in sides else f["laterality"]
            else:
                answer = f["laterality"]
            qs.append(("side", f"Which side is the {ANSWER_NAMES[f['label']]} on?", answer))
        else:
            cands = [f for f in record["findings"] if f["label"] in SEVERITY_ASKED and f["severity"]]
            if not cands:
                continue
            f = rng.choice(cands)
            if len({g["severity"] for g in record["findings"] if g["label"] == f["label"]}) > 1:
                continue
            qs.append(("severity", f"How severe is the {ANSWER_NAMES[f['label']]}?", f["severity"]))
    return qs


def open_question(record: dict, rng: random.Random) -> tuple[str, str, Box | None]:
    boxed = [f for f in record["findings"] if f["box"] is not None and f["label"] in ANSWER_NAMES]
    if boxed and rng.random() < 0.6:
        f = rng.choice(boxed)
        same = [g for g in record["findings"] if g["label"] == f["label"]]
        if len(same) == 1:
            where = " ".join(x for x in (f["laterality"] if f["laterality"] != "midline" else None, f["location"]) if x)
            return f"Where is the {ANSWER_NAMES[f['label']]}?", where or "see box", _box(f["box"])
    return "What is abnormal?", abnormal_answer(record), None


def abnormal_answer(record: dict) -> str:
    parts = []
    for lab in QUESTION_PHRASES:
        fs = [f for f in record["findings"] if f["label"] == lab]
        if not fs:
            continue
        sides = sorted({f["laterality"] for f in fs if f["laterality"] in ("left", "right", "bilateral")})
        side = "bilateral" if len(sides) > 1 else (sides[0] if sides else "")
        parts.append(f"{side} {ANSWER_NAMES[lab]}".strip() if lab in SIDED else ANSWER_NAMES[lab])
    return ", ".join(parts) if parts else "nothing, the study is normal"


# ------------------------------------------------------------------ examples


def make_example(record: dict, task: str, rng: random.Random, use_gaze: bool = True) -> tuple[list[str], list[str]] | None:
    """(prompt items, target items) for ``task``, or None when the record cannot make one."""
    reader = pick_reader(record, rng) if use_gaze else None
    if task == "report":
        return prompt("report"), serialise_report(blocks(record, reader, use_gaze), with_clues=use_gaze)
    if task == "report_shuffled":
        return prompt("report"), serialise_report(shuffled_findings(blocks(record, reader, use_gaze), rng),
                                                  with_clues=use_gaze)
    if task == "plain":
        return prompt("plain"), serialise_plain(blocks(record, None, False))
    if task == "ground":
        bl = blocks(record, reader, use_gaze)
        if not bl:
            return None
        finding_ix = [i for i, b in enumerate(bl) if b.label]
        i = rng.choice(finding_ix) if finding_ix and rng.random() < 0.6 else rng.randrange(len(bl))
        return ground_prompt(bl[i].text), evidence_items(bl[i], with_clues=use_gaze) + ["<eos>"]
    if task == "order":
        if not use_gaze or reader is None:
            return None
        frames = [Clue(*c) for c in record["readings"][reader]["frames"]]
        if len(frames) < 2:
            return None
        if len(frames) > 8:
            keep = sorted(rng.sample(range(len(frames)), 8))
            frames = [frames[i] for i in keep]
        perm = list(range(len(frames)))
        rng.shuffle(perm)
        shuffled = [frames[p] for p in perm]
        # target: the shuffled indices listed in true temporal order
        target = sorted(range(len(perm)), key=lambda i: perm[i])
        return order_prompt(shuffled), serialise_order(target)
    if task == "vqa":
        if rng.random() < 0.7:
            qs = closed_questions(record, rng, n=1)
            if qs:
                _, q, a = qs[0]
                return vqa_prompt(q), serialise_answer(a)
        q, a, box = open_question(record, rng)
        return vqa_prompt(q), serialise_answer(a, box)
    raise ValueError(f"unknown task {task!r}")


def tokenizer_texts(records: list[dict]) -> list[str]:
    """Text the tokenizer is trained on from the records (report sentences, questions, answers)."""
    texts = [s["text"] for r in records for s in r["sentences"]]
    rng = random.Random(0)
    for r in records[:2000]:
        for _, q, a in closed_questions(r, rng, n=4):
            texts += [q, a]
        q, a, _ = open_question(r, rng)
        texts += [q, a]
    texts += [f"Is there {p}?" for p in QUESTION_PHRASES.values()] + list(ANSWER_NAMES.values())
    texts += ["yes", "no", "left", "right", "bilateral", "small", "moderate", "large", "What is abnormal?"]
    return texts


__all__ = ["study_record", "make_example", "blocks", "closed_questions", "open_question", "abnormal_answer",
           "tokenizer_texts", "DEFAULT_TASK_WEIGHTS", "REGIONS"]
