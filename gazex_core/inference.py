"""GazeX inference: ``analyze`` (report + evidence), ``ask`` (VQA), ``ground`` (sentence -> trajectory + box).

    from gazex_core import GazeX, analyze, ask, ground
    gx = GazeX()                      # the shipped checkpoint (gazex_core/weights/gazex-tiny); load once
    bundle = gx.analyze("study.dcm")  # EvidenceBundle (schema gazex.evidence/4)
    ans = gx.ask("study.dcm", "Is there a left pleural effusion?")   # Answer(text, box, confidence, ...)
    g = gx.ground("study.dcm", "Small left pleural effusion.")       # Grounding(region, label, trajectory, box, ...)

Images may be a DICOM, PNG or JPEG (path or bytes) or a numpy array (see :mod:`gazex_core.imaging`); bad
input raises :class:`~gazex_core.imaging.ImageInputError` with a one-line message. ``analyze`` runs the
input check first (:mod:`gazex_core.input_check`: the DICOM header's reasons - a modality other than CR / DX,
a body part or view that is not chest / PA / AP - and the model's own feature score); a study that fails it
raises :class:`~gazex_core.input_check.InputRefused` (an ``OutOfScopeError``) with its reasons in one line,
unless ``draft_out_of_scope=True``, which drafts it with every sentence marked ``out_of_scope``. The bundle
records the check (``EvidenceBundle.input_check``). Each sentence's ``confidence`` is the calibrated
probability that it is true (:mod:`gazex_core.calibration`, the model directory's ``calibration.json``). ``ask`` and ``ground`` refuse an out-of-scope modality
(:func:`~gazex_core.imaging.drafting_scope`) and return the other header reasons as warnings.
A ``GazeX`` instance is safe to share between threads (one lock around the model; each call is well under
a second on CPU).

Classifier-guided decoding (documented in docs/model.md): while drafting, a sentence's label token is
restricted to ``<lab_none>`` and the labels the finding head calls present (per-label calibrated
thresholds); if the decoder tries to end the findings while a present label has no sentence yet, a
findings sentence is started for it with its ABCDEF region, an observation box (``<box>`` instead of
``<nobox>``) and its label forced (the trajectory, box coordinates and text are still decoded, conditioned
on them). A finding sentence that still has no box is grounded with the grounding task (its text as the
prompt) and gets that box; with a second look, a sentence about a label it boxes better takes its box (for the
sentence's side). The sentence text is decoded under :class:`~gazex_core.report_text.TextGuard` and
the sentences go through :func:`~gazex_core.report_text.assemble` (no contradiction, no repeat, an impression
that states every finding, measurements from the box and pixel spacing, and - when the model has an attribute
head - every sentence about a finding wording the head's severity of it). Sentences are then put in ABCDEF
order. Closed presence questions ("Is there a pleural effusion?") are answered from the finding head; sided
ones ("Is there a left ...?") answer "no" when the finding head calls the finding absent and otherwise come
from the attribute head's side output (yes when that side's probability is >= 0.5), or without one from the
decoder. With an attribute head, "Which side is the ... on?" (left, right, or bilateral when both sides are
>= 0.5) and "How severe is the ...?" (small / moderate / large) are answered from it too, for the labels it
was trained for (``config.attribute_head``); every other question is decoded.

With a second look (``config.second_look``, a 256 px copy of the image read by its own conv stem), the finding
probabilities, severities, sides and boxes above come, label by label, from whichever of it and the base heads
did better on validation (:meth:`gazex_core.model.GazeXModel.read_image`). With a gaze head (``config.gaze_head``),
a findings sentence that states no finding takes its region's points on this study as its trajectory (where readers
look; the decoder's own key frames for normal statements barely follow the study). After assembly, a sentence with no
trajectory is grounded; failing that it takes the same finding's trajectory, one key frame on its box, or the
draft's path through its region, so every sentence carries one.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, labeler, report_text
from .calibration import statement
from .evidence import Box, EvidenceBundle, EvidenceSentence, TrajectoryPoint
from .imaging import (ImageInputError, ImageSource, LoadedImage, OutOfScopeError, drafting_scope, header_reasons, load_image,
                      resize_square, scope_warnings)
from .input_check import InputCheck, InputRefused, combine
from .model import BOX_SLOTS, SEVERITIES, SIDES
from .sequence import (
    BOX,
    EOS,
    NOBOX,
    LABEL_TOKENS,
    REGION_TOKENS,
    Clue,
    SentenceBlock,
    ground_prompt,
    label_token,
    parse_answer,
    parse_evidence,
    parse_report,
    prompt,
    region_token,
    section_token,
    select_clues,
    vqa_prompt,
)
from .vocab import CHEXPERT_LABELS, LABEL_REGION, REGIONS, SECTIONS, region_index

DEFAULT_MODEL_DIR = checkpoint.DEFAULT_MODEL_DIR
MODEL_NAME = "gazex-tiny"
LOW_CONFIDENCE = 0.5
FALLBACK_DWELL_MS = 600.0  # the dwell of a one-key-frame trajectory on a sentence's box (a middle dwell bin)
GAZE_CLUE_SIZE = 0.15  # clue-box width / height of a gaze-head point where the decoder gave no key frame to copy
LOOK_CLUE_SIZE = 0.15  # clue-box width / height of a look's key frame given without a clue box
SIDED_QUESTION = re.compile(r"^(is|are) there (an? |any )?(.+?)\??$")
WHICH_SIDE_QUESTION = re.compile(r"^(which|what) side is (the |there )?(.+?)( on| in)?\??$")
SEVERITY_QUESTION = re.compile(r"^how (severe|large|big|bad) is (the )?(.+?)\??$")

@dataclass
class Answer:
    text: str
    box: Box | None = None  # normalised 0-1
    confidence: float = 1.0
    guided: bool = False  # True when the finding head decided (or overruled) the answer
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "box": self.box.to_dict() if self.box else None, "confidence": self.confidence,
                "guided": self.guided, "warnings": list(self.warnings)}


@dataclass
class Grounding:
    sentence: str
    region: str | None
    label: str | None
    trajectory: list[TrajectoryPoint]
    box: Box | None  # observation box, normalised 0-1
    confidence: float = 1.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "region": self.region, "label": self.label,
                "trajectory": [p.to_dict() for p in self.trajectory],
                "observation_box": self.box.to_dict() if self.box else None, "confidence": self.confidence,
                "warnings": list(self.warnings)}


class GazeX:
    """A loaded GazeX model. Load once (``GazeX()`` or ``GazeX(path)``), then call from any thread."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", threads: int | None = None):
        """``model_dir``: any model directory, a full checkpoint or a fine-tuned base + adapter (gazex_core.checkpoint)."""
        path = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        if not (path / "config.json").exists() and not checkpoint.is_adapter_dir(path):
            raise FileNotFoundError(f"{path}: no GazeX model here (no config.json, no {checkpoint.ADAPTER_META})")
        if threads:
            torch.set_num_threads(threads)
        self.path = path
        self.device = device
        model, self.tok = checkpoint.load_model(path)
        self.model = model.to(device).eval()
        self.identity = checkpoint.model_identity(path)
        self.config = self.model.config
        self.version = checkpoint.version_label(path)
        self.input_stats = checkpoint.load_input_stats(path)  # None: header reasons only
        self.calibrator = checkpoint.load_calibration(path)  # None: legacy, uncalibrated sentence confidence
        self._lock = threading.Lock()
        self._label_ids = {lab: self.tok.id(label_token(lab)) for lab in CHEXPERT_LABELS}
        self._none_id = self.tok.id(label_token(None))
        self._label_id_set = {self.tok.id(t) for t in LABEL_TOKENS}
        self._eos = self.tok.id(EOS)
        self._box_id, self._nobox_id = self.tok.id(BOX), self.tok.id(NOBOX)
        # labels whose sentences carry a box in training (every synthetic finding has one)
        self._boxed_labels = set(LABEL_REGION)
        self._sec_ids = {s: self.tok.id(section_token(s)) for s in SECTIONS}
        self._thresholds = np.array(self.config.finding_thresholds, dtype=np.float32)
        self._text_guard = report_text.TextGuard(self.tok)
        heads = [self.config.attribute_head or {}, self.config.second_look or {}]
        self._severity_labels = {lab for h in heads for lab in h.get("severity_labels", ())}
        self._side_labels = {lab for h in heads for lab in h.get("side_labels", ())}

    # ------------------------------------------------------------ helpers
    def _prepare(self, image: ImageSource) -> tuple[LoadedImage, list[str]]:
        """Read the image and check its header scope (refuses out-of-scope modalities)."""
        img = load_image(image)
        return img, drafting_scope(img)

    def _input_check(self, img: LoadedImage, memory: torch.Tensor) -> InputCheck:
        stats = self.input_stats
        score = stats.score(memory[0].float().cpu().numpy()) if stats is not None else None
        return combine(header_reasons(img), score, stats.threshold if stats is not None else None)

    def _model_input(self, img: LoadedImage, size: int | None = None) -> torch.Tensor:
        return torch.from_numpy(resize_square(img.pixels, size or self.config.image_size))[None, None].to(self.device)

    @torch.inference_mode()
    def check_input(self, image: ImageSource) -> InputCheck:
        """The input check alone (header reasons + feature score), without drafting; never raises for scope."""
        img = load_image(image)
        with self._lock:
            memory, _ = self.model.encode(self._model_input(img))
        return self._input_check(img, memory)

    @torch.inference_mode()
    def encoder_features(self, image: ImageSource) -> np.ndarray:
        """The encoder output (P, d) the input check scores, for fitting its statistics."""
        pix = self._model_input(load_image(image))
        with self._lock:
            memory, _ = self.model.encode(pix)
        return memory[0].float().cpu().numpy()

    def _read(self, img: LoadedImage) -> tuple[torch.Tensor, np.ndarray, tuple[np.ndarray, np.ndarray] | None,
                                               np.ndarray | None, np.ndarray | None]:
        """The encoder memory, the finding probabilities (n_labels,), the severity (n_labels, 3) and side
        (n_labels, 2) probabilities, the second look's boxes (n_labels, 3, 4) and the gaze head's points per region
        (n_regions, points, 2) (None without a head that gives them), from every head the model has."""
        second = self.config.second_look
        pix2 = self._model_input(img, second["image_size"]) if second else None
        r = self.model.read_image(self._model_input(img), pix2)
        probs = torch.sigmoid(r.finding_logits[0]).float().cpu().numpy()
        boxes = None if r.boxes is None else r.boxes[0].float().cpu().numpy()
        gaze = None if r.gaze is None else r.gaze[0].float().cpu().numpy()
        if r.severity is None:
            return r.memory, probs, None, boxes, gaze
        return r.memory, probs, (r.severity[0].float().cpu().numpy(), r.side[0].float().cpu().numpy()), boxes, gaze

    def _ground_missing(self, memory: torch.Tensor, blocks: list[SentenceBlock], draft: list[SentenceBlock] = ()) -> None:
        """Sentences the decoder left without a box (a finding's) or without a trajectory (any sentence, also one
        the assembly wrote): the grounding task gives the missing part for the sentence's text. A trajectory it
        does not give comes from the ``draft``'s sentence about the same finding, else is one key frame on the
        sentence's own box (where a reader ends up looking), else is the draft's path through the sentence's
        region, so every sentence carries its evidence."""
        for b in blocks:
            if not b.text:
                continue
            g_ids, _ = self._generate(memory, ground_prompt(b.text), 40)
            grounded = parse_evidence(self.tok.decode(g_ids))
            if b.box is None and b.label and b.label != "No Finding":
                b.box = grounded.box
            if not b.clues:
                b.region = b.region or grounded.region
                same = next((o.clues for o in draft if o.clues and b.label and o.label == b.label), None)
                box = b.box or grounded.box
                on_box = [Clue.from_box(box, *box.center, FALLBACK_DWELL_MS)] if box else []
                region = next((o.clues for o in draft if o.clues and b.region and o.region == b.region), [])
                b.clues = list(grounded.clues or same or on_box or region)

    def _second_look_boxes(self, blocks: list[SentenceBlock], boxes: np.ndarray | None,
                           attributes: tuple[np.ndarray, np.ndarray] | None) -> None:
        """A sentence about a label the second look boxes better than the decoder (``box_labels``, chosen on
        validation) takes the second look's box for the sentence's side: the side its text names, else the side
        output's more probable side (the midline / bilateral slot when neither side is >= 0.5), else that slot."""
        chosen = (self.config.second_look or {}).get("box_labels", {})
        if boxes is None or not chosen:
            return
        for b in blocks:
            slots = chosen.get(b.label)
            if not slots:
                continue
            j = CHEXPERT_LABELS.index(b.label)
            m = labeler.SIDE_WORD.search(b.text or "")
            named = m.group(1).lower() if m else None
            if named in ("left", "right"):
                slot = named
            elif named == "bilateral" or ("other" in slots and not {"left", "right"} & set(slots)):
                slot = "other"
            elif attributes is not None and b.label in self._side_labels:
                p_side = attributes[1][j]
                slot = "other" if p_side.max() < 0.5 and "other" in slots else SIDES[int(p_side.argmax())]
            else:
                slot = None
            if slot in slots:
                b.box = Box(*map(float, boxes[j, BOX_SLOTS.index(slot)]))

    def _gaze_trajectories(self, blocks: list[SentenceBlock], gaze: np.ndarray | None) -> None:
        """A findings sentence that states no finding takes the gaze head's points for its region: where readers
        look on this study's anatomy (the decoder's own key frames for normal statements barely follow the study).
        Each point keeps the clue-box size and dwell of the decoder's key frame in its place (or of its last one)."""
        if gaze is None:
            return
        regions = self.config.gaze_head["regions"]
        for b in blocks:
            if b.section != "findings" or b.label not in (None, "No Finding") or b.region not in regions:
                continue
            own = b.clues or [Clue(0.5, 0.5, GAZE_CLUE_SIZE, GAZE_CLUE_SIZE, FALLBACK_DWELL_MS)]
            b.clues = [Clue(float(x), float(y), own[min(k, len(own) - 1)].w, own[min(k, len(own) - 1)].h,
                            own[min(k, len(own) - 1)].dwell_ms) for k, (x, y) in enumerate(gaze[regions.index(b.region)])]

    def _look_items(self, clues: list[Clue], gaze: np.ndarray | None) -> list[int]:
        """The tokens a look forces: a findings section, its region and its key frames. The region is the gaze head's
        region nearest to the look (each key frame's distance to the region's nearest point, weighted by its dwell);
        without a head the decoder chooses one (``_LookConditioned.CHOOSE_REGION``)."""
        region: int = _LookConditioned.CHOOSE_REGION
        if gaze is not None:
            xy = np.array([[c.cx, c.cy] for c in clues])  # (n, 2); gaze: (n_regions, points, 2)
            dwell = np.array([c.dwell_ms for c in clues])
            dist = np.linalg.norm(gaze[:, None, :, :] - xy[None, :, None, :], axis=-1).min(-1)  # (n_regions, n)
            region = self.tok.id(region_token(self.config.gaze_head["regions"][int((dist @ dwell).argmin())]))
        items = [it for c in clues for it in c.items()]
        return [self._sec_ids["findings"], region, *(self.tok.id(it) for it in items)]

    def _grades(self, attributes: tuple[np.ndarray, np.ndarray] | None, present: list[str]) -> dict[str, str]:
        """The severity grade of each present finding the attribute head grades."""
        if attributes is None:
            return {}
        return {lab: SEVERITIES[int(attributes[0][CHEXPERT_LABELS.index(lab)].argmax())]
                for lab in present if lab in self._severity_labels}

    def _present(self, probs: np.ndarray) -> list[str]:
        """Labels the finding head calls present (no "No Finding"), most probable first."""
        labs = [(float(probs[i]), lab) for i, lab in enumerate(CHEXPERT_LABELS)
                if lab != "No Finding" and probs[i] >= self._thresholds[i]]
        return [lab for _, lab in sorted(labs, reverse=True)]

    def _generate(self, memory, items: list[str], max_new: int, hook=None) -> tuple[list[int], list[float]]:
        ids = torch.tensor([self.tok.encode(items)], dtype=torch.long, device=self.device)
        out, probs = self.model.generate_greedy(memory, ids, max_new_tokens=max_new, logits_hook=hook)
        return out[0], probs[0]

    # ------------------------------------------------------------ public API
    @torch.inference_mode()
    def findings(self, image: ImageSource) -> list[tuple[str, float]]:
        """Finding-head probabilities for the 14 CheXpert labels, most probable first."""
        with self._lock:
            img, _ = self._prepare(image)
            probs = self._read(img)[1]
        return sorted(((lab, float(probs[i])) for i, lab in enumerate(CHEXPERT_LABELS)), key=lambda x: -x[1])

    @torch.inference_mode()
    def analyze(self, image: ImageSource, guided: bool = True, max_new_tokens: int | None = None,
                draft_out_of_scope: bool = False, looks: list[list[TrajectoryPoint]] | None = None) -> EvidenceBundle:
        """Draft the report: every sentence with its region, trajectory, observation box and label.
        A study that fails the input check raises :class:`InputRefused` (one line, with its reasons) unless
        ``draft_out_of_scope``: then it is drafted with every sentence marked ``out_of_scope``.

        ``looks`` (task e, the gaze-conditioned report): a reader's looks at this film, each the key frames of one
        dictated sentence's window in time order (x, y in 0-1, dwell, clue box; e.g. from
        ``training.data.keyframes``). The draft then writes one findings sentence per look, conditioned on its key
        frames (the longest ``MAX_CLUES`` dwells, as in training), whose trajectory is that look; then it goes on
        as a guided draft. Each look's region is the gaze head's region nearest to it (without a head, the
        decoder's choice)."""
        t0 = time.perf_counter()
        look_clues = _look_clues(looks) if looks is not None else None
        img = load_image(image)
        scope = scope_warnings(img)
        t1 = time.perf_counter()
        with self._lock:
            memory, probs, attributes, boxes, gaze = self._read(img)
            check = self._input_check(img, memory)
            if not check.passed and not draft_out_of_scope:
                raise InputRefused(f"{img.source}: not drafted: {check.summary()}", check)
            t2 = time.perf_counter()
            present = self._present(probs)
            if look_clues:
                hook = _LookConditioned(self, present, [self._look_items(c, gaze) for c in look_clues])
            elif guided:
                hook = _GuidedReport(self, present)
            else:
                hook = lambda _row, gen, logits: self._text_guard(gen, logits)  # noqa: E731
            ids, tprobs = self._generate(memory, prompt("report"), max_new_tokens or self.config.max_positions, hook)
            blocks, confs = self._blocks_with_confidence(ids, tprobs)
            self._ground_missing(memory, [b for b in blocks if b.label and b.label != "No Finding" and b.box is None])
            self._second_look_boxes(blocks, boxes, attributes)
            geometry = report_text.Geometry(img.width, img.height, img.pixel_spacing_mm)
            grades = self._grades(attributes, present)
            blocks, confs = report_text.assemble(blocks, confs, geometry, grades)
            if not look_clues:  # a look's sentence keeps the look as its trajectory
                self._gaze_trajectories(blocks, gaze)
            self._ground_missing(memory, [b for b in blocks if not b.clues], blocks)
        t3 = time.perf_counter()
        warnings = list(img.warnings)
        if not ids or ids[-1] != self._eos:
            warnings.append("the draft report was cut off at the length limit")
        if not blocks:
            warnings.append("the model drafted no sentences; the image may not be a chest X-ray")
        if not check.passed:
            warnings.append(f"drafted anyway although out of scope, every sentence is out of scope: {check.summary()}")
        sentences = []
        order = sorted(range(len(blocks)), key=lambda i: (SECTIONS.index(blocks[i].section),
                                                          region_index(blocks[i].region) if blocks[i].section == "findings" else 0, i))
        for n, i in enumerate(order):
            b = blocks[i]
            sentences.append(EvidenceSentence(
                id=f"s{n + 1}", section=b.section, text=b.text or "(no text)", region=b.region, label=b.label,
                confidence=self._sentence_confidence(b, confs[i], probs),
                observation_box=b.box.clipped(1.0, 1.0) if (b.box is not None and b.label) else None,
                trajectory=[c.to_point() for c in b.clues], out_of_scope=not check.passed,
            ))
        finding_probs = sorted(((lab, float(probs[i])) for i, lab in enumerate(CHEXPERT_LABELS)), key=lambda x: -x[1])
        t4 = time.perf_counter()
        bundle = EvidenceBundle(
            model_name=MODEL_NAME, model_version=self.version, image_width=img.width, image_height=img.height,
            sentences=sentences, findings=finding_probs,
            timing_ms={"read_image": (t1 - t0) * 1e3, "encode": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3,
                       "total": (t4 - t0) * 1e3},
            warnings=warnings, scope_warnings=scope, input_check=check, confidence_calibrated=self.calibrator is not None,
            image_header={"modality": img.modality, "body_part": img.body_part, "view_position": img.view_position}
            if img.kind == "dicom" else {},
        )
        return bundle.validate()

    def _sentence_confidence(self, b: SentenceBlock, token_conf: float, probs: np.ndarray) -> float:
        """The calibrated probability that the sentence is true (gazex_core.calibration); without a calibrator
        the legacy score: the mean token probability, capped by the finding head's probability of its label."""
        if self.calibrator is not None:
            head = dict(zip(CHEXPERT_LABELS, map(float, probs)))
            return self.calibrator.confidence(statement(b.text or "", b.section, b.region, head))
        if b.label and b.label in CHEXPERT_LABELS and b.label != "No Finding":
            token_conf = min(token_conf, float(probs[CHEXPERT_LABELS.index(b.label)]))
        return float(np.clip(token_conf, 0.0, 1.0))

    def _blocks_with_confidence(self, ids: list[int], tprobs: list[float]) -> tuple[list[SentenceBlock], list[float]]:
        """Parse the generated report and give each sentence the mean probability of its tokens."""
        items = self.tok.decode(ids)
        blocks = parse_report(items)
        # sentence spans in id space: split at section tokens
        sec_ids = set(self._sec_ids.values())
        spans: list[list[float]] = []
        for tok_id, p in zip(ids, tprobs):
            if tok_id in sec_ids:
                spans.append([])
            if spans:
                spans[-1].append(p)
        confs = [float(np.mean(s)) if s else 0.0 for s in spans]
        confs += [0.0] * (len(blocks) - len(confs))
        return blocks, confs[: len(blocks)]

    @torch.inference_mode()
    def ask(self, image: ImageSource, question: str) -> Answer:
        """Answer a question about the image: text and, for "where" questions, a box."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question is empty")
        img, scope = self._prepare(image)
        with self._lock:
            memory, probs, attributes, _, _ = self._read(img)
            ids, tprobs = self._generate(memory, vqa_prompt(question), 48)
        text, box = parse_answer(self.tok.decode(ids))
        conf = float(np.mean(tprobs)) if tprobs else 0.0
        ans = Answer(text=text, box=box, confidence=conf, warnings=scope + list(img.warnings))
        self._guide_answer(question, ans, probs, attributes)
        return ans

    def _guide_answer(self, question: str, ans: Answer, probs: np.ndarray,
                      attributes: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        q = question.lower().strip()
        if attributes is not None and self._answer_attribute(q, ans, attributes):
            return
        m = SIDED_QUESTION.match(q)
        if not m:
            return
        thing = m.group(3)
        side = None
        for s in ("left", "right", "bilateral"):
            if thing.startswith(s + " "):
                side, thing = s, thing[len(s) + 1 :]
        label = _label_of_phrase(thing)
        if label is None:
            return
        i = CHEXPERT_LABELS.index(label)
        present = bool(probs[i] >= self._thresholds[i])
        if side is None:
            ans.text, ans.box, ans.guided = ("yes" if present else "no"), None, True
            ans.confidence = float(probs[i] if present else 1 - probs[i])
        elif not present:
            ans.text, ans.box, ans.guided = "no", None, True
            ans.confidence = float(1 - probs[i])
        elif attributes is not None and label in self._side_labels and side in SIDES:
            p_side = float(attributes[1][i, SIDES.index(side)])
            ans.text, ans.box, ans.guided = ("yes" if p_side >= 0.5 else "no"), None, True
            ans.confidence = max(p_side, 1 - p_side)

    def _answer_attribute(self, q: str, ans: Answer, attributes: tuple[np.ndarray, np.ndarray]) -> bool:
        """A which-side or severity question about a label the attribute head answers for: answered (True)."""
        severity, sides = attributes
        m = WHICH_SIDE_QUESTION.match(q)
        label = _label_of_phrase(m.group(3)) if m else None
        if label in self._side_labels:
            p_left, p_right = (float(p) for p in sides[CHEXPERT_LABELS.index(label)])
            if min(p_left, p_right) >= 0.5:
                ans.text, ans.confidence = "bilateral", p_left * p_right
            else:
                left = p_left >= p_right
                ans.text = "left" if left else "right"
                ans.confidence = p_left * (1 - p_right) if left else p_right * (1 - p_left)
            ans.box, ans.guided = None, True
            return True
        m = SEVERITY_QUESTION.match(q)
        label = _label_of_phrase(m.group(3)) if m else None
        if label in self._severity_labels:
            grade = severity[CHEXPERT_LABELS.index(label)]
            ans.text, ans.box, ans.guided, ans.confidence = SEVERITIES[int(grade.argmax())], None, True, float(grade.max())
            return True
        return False

    @torch.inference_mode()
    def ground(self, image: ImageSource, sentence: str) -> Grounding:
        """Where a sentence's finding is (observation box) and the inspection trajectory that leads to it (for a
        statement of no finding, with a gaze head, its region's points on this study)."""
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError("sentence is empty")
        img, scope = self._prepare(image)
        with self._lock:
            memory, _ = self.model.encode(self._model_input(img))
            ids, tprobs = self._generate(memory, ground_prompt(sentence), 40)
            gaze = self.model.gaze_head(memory)[0].float().cpu().numpy() if self.model.gaze_head is not None else None
        block = parse_evidence(self.tok.decode(ids))
        self._gaze_trajectories([block], gaze)  # a normal statement's trajectory follows this study, as in a draft
        return Grounding(sentence=sentence.strip(), region=block.region, label=block.label,
                         trajectory=[c.to_point() for c in block.clues],
                         box=block.box.clipped(1.0, 1.0) if block.box is not None else None,
                         confidence=float(np.mean(tprobs)) if tprobs else 0.0, warnings=scope + list(img.warnings))


def _label_of_phrase(thing: str) -> str | None:
    """The observation a question asks about ("a left pleural effusion" -> Pleural Effusion)."""
    mentioned = labeler.mentioned(thing.strip().rstrip("?").strip())
    return mentioned[0] if mentioned else None


def _look_clues(looks: list[list[TrajectoryPoint]]) -> list[list[Clue]]:
    """Validated looks -> each look's key frames as clues (the longest MAX_CLUES dwells, in time order)."""
    out = []
    for i, look in enumerate(looks, start=1):
        if not look:
            raise ValueError(f"look {i}: no key frames")
        clues = []
        for j, p in enumerate(look, start=1):
            if not (0.0 <= p.x <= 1.0 and 0.0 <= p.y <= 1.0) or not p.dwell_ms > 0:
                raise ValueError(f"look {i}, key frame {j}: x={p.x}, y={p.y} must be in 0-1 and dwell_ms={p.dwell_ms} > 0")
            box = p.clue_box
            clues.append(Clue(p.x, p.y, box.width if box else LOOK_CLUE_SIZE, box.height if box else LOOK_CLUE_SIZE, p.dwell_ms))
        out.append(select_clues(clues))
    return out


class _GuidedReport:
    """Logits hook for classifier-guided report decoding (see module docstring)."""

    def __init__(self, gx: GazeX, present: list[str]):
        self.gx = gx
        self.present = present
        self.allowed_label_ids = [gx._none_id] + [gx._label_ids[lab] for lab in present]
        if not present:
            self.allowed_label_ids.append(gx._label_ids["No Finding"])
        self.section = None
        self.emitted_findings: set[str] = set()
        self.forced: list[int] = []  # tokens to force next
        self.forced_label: str | None = None
        self.n_seen = 0

    def _observe(self, generated: list[int]) -> None:
        for tok in generated[self.n_seen :]:
            for s, sid in self.gx._sec_ids.items():
                if tok == sid:
                    self.section = s
            if tok in self.gx._label_id_set and self.section == "findings":
                for lab, lid in self.gx._label_ids.items():
                    if lid == tok:
                        self.emitted_findings.add(lab)
        self.n_seen = len(generated)

    def _force(self, logits: torch.Tensor, tok: int) -> torch.Tensor:
        out = torch.full_like(logits, float("-inf"))
        out[tok] = 0.0
        return out

    def __call__(self, row: int, generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        self._observe(generated)
        if self.forced:
            return self._force(logits, self.forced.pop(0))
        top = int(logits.argmax())
        gx = self.gx
        if self.forced_label is not None and top == gx._nobox_id and self.forced_label in gx._boxed_labels:
            return self._force(logits, gx._box_id)  # a forced finding sentence gets an observation box
        if top in self.gx._label_id_set:
            if self.forced_label is not None:
                lab, self.forced_label = self.forced_label, None
                return self._force(logits, gx._label_ids[lab])
            mask = torch.full_like(logits, float("-inf"))
            mask[self.allowed_label_ids] = 0.0
            return logits + mask
        missing = [lab for lab in self.present if lab not in self.emitted_findings and lab in LABEL_REGION]
        if missing and self.section in (None, "findings") and (top == gx._eos or top == gx._sec_ids["impression"]):
            lab = missing[0]
            self.emitted_findings.add(lab)  # one forced sentence per label
            self.forced_label = lab
            self.forced = [gx.tok.id(region_token(LABEL_REGION[lab]))]
            return self._force(logits, gx._sec_ids["findings"])
        return gx._text_guard(generated, logits)


class _LookConditioned(_GuidedReport):
    """Task (e): whenever the decoder would start a sentence (or end the report) while looks remain, the next look's
    section, region and key frames are forced; it then writes the box, label and text conditioned on them (guided as
    any draft). Once every look has its sentence, decoding goes on as guided drafting (missing findings, impression)."""

    CHOOSE_REGION = -1  # in a look's items: the decoder picks the region token (no gaze head to place the look)

    def __init__(self, gx: GazeX, present: list[str], looks: list[list[int]]):
        super().__init__(gx, present)
        self.looks = [list(look) for look in looks]
        self.region_ids = [gx.tok.id(t) for t in REGION_TOKENS]
        self.sentence_starts = set(gx._sec_ids.values()) | {gx._eos}

    def __call__(self, row: int, generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        self._observe(generated)
        if self.looks and not self.forced and (not generated or int(logits.argmax()) in self.sentence_starts):
            self.forced = self.looks.pop(0)
        if self.forced and self.forced[0] == self.CHOOSE_REGION:
            self.forced.pop(0)
            mask = torch.full_like(logits, float("-inf"))
            mask[self.region_ids] = 0.0
            return logits + mask
        return super().__call__(row, generated, logits)


# ------------------------------------------------------------ module-level convenience (default model)

_default: GazeX | None = None
_default_lock = threading.Lock()


def default_model() -> GazeX:
    """The shipped checkpoint, loaded once per process."""
    global _default
    with _default_lock:
        if _default is None:
            _default = GazeX()
        return _default


def analyze(image: ImageSource) -> EvidenceBundle:
    return default_model().analyze(image)


def ask(image: ImageSource, question: str) -> Answer:
    return default_model().ask(image, question)


def ground(image: ImageSource, sentence: str) -> Grounding:
    return default_model().ground(image, sentence)


__all__ = ["GazeX", "Answer", "Grounding", "ImageInputError", "OutOfScopeError", "InputRefused", "InputCheck", "analyze", "ask", "ground", "default_model",
           "DEFAULT_MODEL_DIR", "REGIONS"]
