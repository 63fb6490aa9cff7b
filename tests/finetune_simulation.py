"""Test scaffolding: a simulated reader and a deliberately flawed base model, for the fine-tuning tests and
benchmarks/bench_finetune.py.

* :func:`read_studies` reads a synthetic dataset's ground truth (labels, finding boxes, positive sentences).
* :func:`make_flawed_model` teaches a skilled checkpoint (the shipped gazex-tiny) one systematic error:
  every report also states ``FLAW_TEXT`` (an old rib fracture - the synthetic generator never draws one),
  i.e. a finding over-called on every study.
* :func:`register_and_draft` registers studies in the review database and saves the model's drafts.
* :class:`SimulatedReader` reviews drafts through the same ReviewService calls the UI makes: it deletes
  every sentence stating a finding that is absent from the ground truth for the chosen label (over-call), or
  moves that label's boxes onto the ground-truth box, accepts the rest, and signs off.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gazex_core.evidence import Box
from gazex_core.sequence import SentenceBlock, prompt, serialise_report
from gazex_core.vocab import CHEXPERT_LABELS

from training.finetune.corrections import infer_label
from training.finetune.modelio import blocks_to_bundle, generate_reports, image_array, pixel_batch

FLAW_LABEL = "Fracture"
FLAW_TEXT = "There is an old healed left rib fracture."
FLAW_BOX = Box(0.62, 0.28, 0.82, 0.46)


@dataclass
class SynthStudy:
    study_uid: str
    image_path: str
    width: int
    height: int
    labels: set[str]
    positives: list[SentenceBlock] = field(default_factory=list)  # stated findings with their GT boxes


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_studies(directory: str | Path) -> list[SynthStudy]:
    root = Path(directory)
    boxes: dict[tuple[str, str], Box] = {}
    for a in _rows(root / "annotations.csv"):
        boxes[(a["study_id"], a["finding_id"])] = Box(*(float(a[k]) for k in ("x_min", "y_min", "x_max", "y_max")))
    studies = {}
    for m in _rows(root / "metadata.csv"):
        labels = {k for k in CHEXPERT_LABELS if m.get(k) == "1"}
        studies[m["study_id"]] = SynthStudy(m["study_id"], str((root / m["image_path"]).resolve()), int(m["width"]),
                                            int(m["height"]), labels)
    for s in _rows(root / "report_sentences.csv"):
        study = studies.get(s["study_id"])
        if study is None or s["is_negative"] == "1" or not s["label"] or s["section"] != "findings":
            continue
        px = boxes.get((s["study_id"], s.get("finding_id") or ""))
        box = px.normalised(study.width, study.height) if px is not None else None
        study.positives.append(SentenceBlock(section="findings", region=s["region"] or None, box=box,
                                             label=s["label"], text=s["text"].strip()))
    return list(studies.values())


def with_flaw(blocks: list[SentenceBlock]) -> list[SentenceBlock]:
    """A report plus the over-called fracture (the flawed model's systematic error)."""
    return list(blocks) + [SentenceBlock(section="findings", region="everything_else", box=FLAW_BOX,
                                         label=FLAW_LABEL, text=FLAW_TEXT)]


def make_flawed_model(studies: list[SynthStudy], out: Path, *, base: str | Path | None = None, steps: int = 60,
                      batch_size: int = 16, lr: float = 1e-3, seed: int = 0) -> Path:
    """A skilled base checkpoint (default: the shipped gazex-tiny) taught one systematic error: every report
    also states ``FLAW_TEXT``. Only the decoder layers train, on the base's own reports plus the flaw
    (self-distillation), so the image encoder, the finding head and what the reports say about real findings
    stay the base's: the regression benchmark then measures retained skill, not a chance-level model's noise."""
    from gazex_core.checkpoint import load_model
    from gazex_core.inference import DEFAULT_MODEL_DIR
    from training.finetune.lora import sequence_logprobs
    from training.train import save_model

    torch.manual_seed(seed)
    model, tok = load_model(base or DEFAULT_MODEL_DIR)
    size, max_len = model.config.image_size, model.config.max_positions
    arrays = [image_array(s.image_path, size) for s in studies]
    own = generate_reports(model, tok, arrays)
    p = tok.encode(prompt("report"))
    pairs = [((p + t)[:max_len], ([-100] * len(p) + t)[:max_len])
             for t in (tok.encode(serialise_report(with_flaw(blocks))) for blocks in own)]
    with torch.no_grad():
        memory = torch.cat([model.encode(pixel_batch(arrays[i:i + 64]))[0] for i in range(0, len(arrays), 64)])
    decoder = [x for name, x in model.named_parameters() if name.startswith("layers.")]
    for x in model.parameters():
        x.requires_grad_(False)
    for x in decoder:
        x.requires_grad_(True)
    opt = torch.optim.AdamW(decoder, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in tqdm(range(steps), desc="teach the flaw", unit="step"):
        idx = sorted(rng.choice(len(pairs), size=min(batch_size, len(pairs)), replace=False).tolist())
        logp, n = sequence_logprobs(model, memory[idx], [pairs[i] for i in idx], tok.pad_id)
        loss = -(logp.sum() / n.sum().clamp(min=1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.config.model_version = "flawed-base"
    save_model(model, tok, Path(out), fp16=True)
    return Path(out)


def register_and_draft(service, studies: list[SynthStudy], model, tok, model_version_id: int,
                       version: str = "base") -> dict[str, int]:
    """Registers the studies and saves the model's drafts; returns study_uid -> study id."""
    return register_drafts(service, studies, draft_reports(studies, model, tok), model_version_id, version)


def draft_reports(studies: list[SynthStudy], model, tok) -> list[list[SentenceBlock]]:
    """The model's greedy report (sentence blocks) for each study."""
    size = model.config.image_size
    return generate_reports(model, tok, [image_array(s.image_path, size) for s in studies])


def register_drafts(service, studies: list[SynthStudy], reports: list[list[SentenceBlock]], model_version_id: int,
                    version: str = "base") -> dict[str, int]:
    """Registers the studies and saves the given drafts (one report per study); returns study_uid -> study id."""
    ids = {}
    for study, blocks in zip(studies, reports):
        info = service.register_study(study.study_uid, study.image_path, width=study.width, height=study.height)
        service.save_draft(info.id, model_version_id, blocks_to_bundle(blocks, study.width, study.height,
                                                                       version=version))
        ids[study.study_uid] = info.id
    return ids


class SimulatedReader:
    """Reviews drafts through the ReviewService API, systematically correcting one error.

    strategy "overcall": delete sentences stating ``label`` when the study does not have it;
    strategy "box": move boxes of sentences stating ``label`` onto the ground-truth box (IoU < min_iou).
    """

    def __init__(self, service, username: str, label: str = FLAW_LABEL, strategy: str = "overcall",
                 min_iou: float = 0.5, seed: int = 0):
        if strategy not in ("overcall", "box"):
            raise ValueError(f"strategy must be overcall or box, got {strategy!r}")
        self.service, self.username, self.label, self.strategy, self.min_iou = service, username, label, strategy, min_iou
        self.rng = random.Random(seed)
        self.corrections = 0

    def review(self, study_id: int, truth: SynthStudy) -> int:
        """Reviews one study; returns how many corrections it made."""
        state = self.service.open_session(self.username, study_id)
        made = 0
        for sentence in (state.draft or {}).get("sentences", []):
            made += self._decide(state.session_id, sentence, truth)
        final = self.service.session_state(self.username, state.session_id)
        text = " ".join(s.final_text for s in final.sentences if s.final_text) or "Reviewed."
        self.service.sign_off(self.username, state.session_id, "modify" if made else "accept", text,
                              active_ms=float(self.rng.randint(20_000, 90_000)), accept_rest=True)
        self.corrections += made
        return made

    def _decide(self, session_id: int, sentence: dict, truth: SynthStudy) -> int:
        sid = sentence["id"]
        stated = sentence.get("label") or infer_label(sentence.get("text") or "")  # what a reader reads
        if self.strategy == "overcall" and stated == self.label and self.label not in truth.labels:
            self.service.decide_sentence(self.username, session_id, sid, "deleted", error_category="finding",
                                         clinically_significant=True, duration_ms=1500.0)
            return 1
        if self.strategy == "box" and stated == self.label:
            target = next((b.box for b in truth.positives if b.label == self.label and b.box is not None), None)
            drawn = Box.from_dict(sentence.get("observation_box"))
            if target is not None and (drawn is None or drawn.iou(target) < self.min_iou):
                self.service.decide_sentence(self.username, session_id, sid, "accepted", duration_ms=800.0)
                if drawn is None:
                    self.service.decide_box(self.username, session_id, None, "added", linked_sentence_id=sid,
                                            box=(target.x_min, target.y_min, target.x_max, target.y_max))
                else:
                    self.service.decide_box(self.username, session_id, sid, "moved",
                                            box=(target.x_min, target.y_min, target.x_max, target.y_max))
                return 1
        self.service.decide_sentence(self.username, session_id, sid, "accepted", duration_ms=800.0)
        return 0
