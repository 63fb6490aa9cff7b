"""The full-scale GazeX backbone: Qwen2-VL (the paper's model) with a LoRA adapter, behind GazeX's API.

    from gazex_core.qwen2vl import Qwen2VLGazeX
    gx = Qwen2VLGazeX("/models/gazex-qwen2vl-lora")       # an adapter dir (base named inside) or a base dir
    bundle = gx.analyze("study.dcm")                       # the same EvidenceBundle as gazex-tiny
    bundles = gx.analyze_many(paths, batch_size=8)         # a whole worklist, batched on a GPU

``analyze`` runs the upstream gaze-free report task, then the grounding task once per sentence (batched),
and parses the upstream output text (:mod:`gazex_core.upstream_format`) into trajectories and observation
boxes. What the parser could not read is listed in the bundle's warnings, never silently dropped. The sentences
then go through the same :func:`gazex_core.report_text.assemble` as gazex-tiny's: no finding both stated and
negated, no repeated sentence, an impression that covers every stated finding, sizes from the box and spacing.

Weights are read from local directories only. A missing or mismatched model gives :class:`ModelNotFound` /
:class:`ModelMismatch` with a one-line message; the hub is contacted only with ``allow_download=True``.

Model directories:

* a base model: a Qwen2-VL checkpoint with its processor (``config.json`` with ``model_type: qwen2_vl``,
  ``*.safetensors``, tokenizer and preprocessor files), as ``save_pretrained`` writes it;
* an adapter: peft's ``adapter_config.json`` + ``adapter_model.safetensors`` and ``gazex_backbone.json``
  (``{"backbone": "qwen2-vl", "base_model": PATH}``; a relative base is resolved against the adapter dir).

Imports nothing outside gazex_core (transformers and peft are imported when a model is loaded).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import (QWEN2VL_BACKBONE as BACKBONE, QWEN2VL_META as BACKBONE_META, ModelMismatch, ModelNotFound,
                         is_qwen2vl_dir, resolve_base)
from . import report_text
from .evidence import EvidenceBundle, EvidenceSentence, TrajectoryPoint
from .imaging import ImageSource, drafting_scope, header_reasons, load_image, scope_warnings
from .input_check import InputCheck, InputRefused, combine
from .labeler import sentence_label
from .sequence import Clue, SentenceBlock
from .upstream_format import parse_grounding, prompt, split_report
from .vocab import LABEL_REGION

MAX_IMAGE_SIDE = 768  # upstream inference: images up to 768 x 768
MIN_IMAGE_SIDE = 56


@dataclass
class GenerationSettings:
    max_new_tokens: int = 512
    do_sample: bool = False  # upstream samples (temperature 1.0, top_p 0.9); drafts for review are greedy
    temperature: float = 1.0
    top_p: float = 0.9
    max_image_side: int = MAX_IMAGE_SIDE


def check_processor(model, processor) -> None:
    """The processor's special tokens and vocabulary must be the model's."""
    cfg = model.config
    tok = processor.tokenizer
    for name in ("image_token_id", "video_token_id"):
        got = getattr(processor, name, None)
        if got != getattr(cfg, name):
            raise ModelMismatch(f"processor {name} {got} != model {name} {getattr(cfg, name)}")
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tok) > vocab:
        raise ModelMismatch(f"processor vocabulary ({len(tok)} tokens) is larger than the model's ({vocab})")


def check_torchvision() -> None:
    """transformers' Qwen2-VL processors import torchvision. The CPU-only workstation install
    (scripts/install_workstation.sh) has none, because no torchvision on this machine kind is built for its torch;
    one that is installed but built for another torch raises RuntimeError, not ImportError. Either way transformers
    fails deep inside with a message that names neither; say it in one line instead."""
    import torch

    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a torchvision built for another torch fails with RuntimeError
        raise ModelMismatch(f"the Qwen2-VL backbone needs torchvision built for torch {torch.__version__} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}); "
                            "this looks like the CPU-only workstation install, which serves gazex-tiny only: "
                            "install with pip install -e . instead") from exc


def load_qwen2vl(path: str | Path, *, device: str = "cpu", dtype=None, allow_download: bool = False):
    """(model in eval mode, processor, base dir, adapter dir) from a local base or adapter directory."""
    import torch

    check_torchvision()
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    base, adapter = resolve_base(path)
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    hf_logging.disable_progress_bar()
    try:
        model = Qwen2VLForConditionalGeneration.from_pretrained(base, dtype=dtype, local_files_only=not allow_download)
        processor = AutoProcessor.from_pretrained(base, local_files_only=not allow_download)
    except (OSError, ValueError) as exc:
        raise ModelMismatch(f"{base}: cannot load Qwen2-VL ({str(exc).splitlines()[0]})") from exc
    finally:
        hf_logging.enable_progress_bar()
    check_processor(model, processor)
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelMismatch(f"{adapter}: adapter does not fit base {base} ({str(exc).splitlines()[0]})") from exc
    return model.to(device).eval(), processor, base, adapter


def to_rgb_uint8(image: ImageSource, max_side: int = MAX_IMAGE_SIDE, scope: list[str] | None = None
                 ) -> tuple[np.ndarray, int, int, list[str]]:
    """The image the processor sees: grey 0-1 from gazex_core's reader -> RGB uint8, long side <= max_side.
    With ``scope`` (a list to fill) the DICOM header is checked first, as for gazex-tiny: an out-of-scope
    modality raises OutOfScopeError, body part / view warnings are appended to ``scope``."""
    import cv2

    img = load_image(image)
    if scope is not None:
        scope.extend(drafting_scope(img))
    grey = (np.clip(img.pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
    h, w = grey.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(MIN_IMAGE_SIDE, round(w * scale)), max(MIN_IMAGE_SIDE, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    return np.repeat(grey[:, :, None], 3, axis=2), img.width, img.height, list(img.warnings)


def user_messages(text: str) -> list[dict]:
    """An upstream user turn (``<video>``/``<image>`` placeholders) as chat-template content parts."""
    parts: list[dict] = []
    rest = text
    while rest:
        cut = min((i for i in (rest.find("<image>"), rest.find("<video>")) if i >= 0), default=-1)
        if cut < 0:
            parts.append({"type": "text", "text": rest})
            break
        if cut > 0:
            parts.append({"type": "text", "text": rest[:cut]})
        parts.append({"type": "image" if rest.startswith("<image>", cut) else "video"})
        rest = rest[cut + 7:]
    return [{"role": "user", "content": parts}]


def label_of_sentence(text: str) -> str | None:
    """The finding a drafted sentence states (None for a negative or normal statement): the one labeler."""
    return sentence_label(text)[0]


@dataclass
class _GroundedClue(Clue):
    """A clue read from upstream text: its trajectory point is the parsed one (centroid and clue box as written)."""

    point: TrajectoryPoint | None = None

    def to_point(self) -> TrajectoryPoint:
        return self.point


def _block(section: str, text: str, parsed, width: int, height: int) -> SentenceBlock:
    """One grounded sentence as the sentence block :func:`report_text.assemble` reads (normalised coordinates)."""
    label = label_of_sentence(text)
    clues = [_GroundedClue(cx=p.x, cy=p.y, w=p.clue_box.width, h=p.clue_box.height, dwell_ms=p.dwell_ms, point=p)
             for p in parsed.trajectory(width, height)]
    return SentenceBlock(section=section, region=LABEL_REGION.get(label) if label else None, clues=clues,
                         box=parsed.observation.to_box(width, height) if parsed.observation else None, label=label,
                         text=text)


class Qwen2VLGazeX:
    """A loaded Qwen2-VL GazeX. Same public API as :class:`gazex_core.inference.GazeX`."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", threads: int | None = None,
                 settings: GenerationSettings | None = None, allow_download: bool = False):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.path = Path(model_dir)
        self.device = device
        self.settings = settings or GenerationSettings()
        self.model, self.processor, self.base_dir, self.adapter_dir = load_qwen2vl(
            model_dir, device=device, allow_download=allow_download)
        self.version = self.path.name
        self._lock = threading.Lock()

    # ------------------------------------------------------------ generation
    def _inputs(self, turns: list[str], images: list[np.ndarray]):
        texts = [self.processor.apply_chat_template(user_messages(t), tokenize=False, add_generation_prompt=True)
                 for t in turns]
        self.processor.tokenizer.padding_side = "left"
        return self.processor(text=texts, images=images, padding=True, return_tensors="pt").to(self.device)

    def generate(self, turns: list[str], images: list[np.ndarray], max_new_tokens: int | None = None) -> list[str]:
        """One assistant reply per (upstream user turn, image)."""
        import torch

        s = self.settings
        inputs = self._inputs(turns, images)
        kwargs = dict(max_new_tokens=max_new_tokens or s.max_new_tokens, do_sample=s.do_sample,
                      pad_token_id=self.processor.tokenizer.pad_token_id)
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]

    # ------------------------------------------------------------ public API
    def analyze(self, image: ImageSource, draft_out_of_scope: bool = False) -> EvidenceBundle:
        return self.analyze_many([image], draft_out_of_scope=draft_out_of_scope)[0]

    def analyze_many(self, images: list[ImageSource], batch_size: int = 8,
                     draft_out_of_scope: bool = False) -> list[EvidenceBundle]:
        """Draft a whole worklist: the report task batched, then each report's grounding batched.
        The input check is the header's only (no feature statistics for this backbone yet); a study that fails
        it raises InputRefused unless ``draft_out_of_scope``, which marks every sentence out of scope."""
        bundles: list[EvidenceBundle] = []
        for start in range(0, len(images), batch_size):
            loaded = [load_image(im) for im in images[start:start + batch_size]]
            checks = [self._input_check(img, draft_out_of_scope) for img in loaded]
            chunk = [to_rgb_uint8(img, self.settings.max_image_side) for img in loaded]
            t0 = time.perf_counter()
            reports = self.generate([prompt("report")] * len(chunk), [c[0] for c in chunk])
            for rgb_etc, img, check, report in zip(chunk, loaded, checks, reports):
                bundles.append(self._bundle(rgb_etc, img, report, t0, check))
        return bundles

    def draft_from_report(self, image: ImageSource, report: str, draft_out_of_scope: bool = False) -> EvidenceBundle:
        """A bundle for a given report text (``FINDINGS:`` / ``IMPRESSION:`` heads optional): each sentence grounded
        on the image by the model, the whole made consistent as a drafted report is."""
        img = load_image(image)
        check = self._input_check(img, draft_out_of_scope)
        return self._bundle(to_rgb_uint8(img, self.settings.max_image_side), img, report, time.perf_counter(), check)

    @staticmethod
    def _input_check(img, draft_out_of_scope: bool) -> InputCheck:
        check = combine(header_reasons(img), None, None)
        if not check.passed and not draft_out_of_scope:
            raise InputRefused(f"{img.source}: not drafted: {check.summary()}", check)
        return check

    def _bundle(self, rgb_etc, img, report: str, t0: float, check: InputCheck) -> EvidenceBundle:
        rgb, width, height, warnings = rgb_etc
        sentences = split_report(report)
        groundings = self.generate([prompt("ground", sentence=text) for _, text in sentences],
                                   [rgb] * len(sentences)) if sentences else []
        blocks = []
        for i, ((section, text), raw) in enumerate(zip(sentences, groundings)):
            parsed = parse_grounding(raw)
            warnings += [f"sentence {i + 1}: {d}" for d in parsed.dropped]
            blocks.append(_block(section, text, parsed, width, height))
        blocks, _ = report_text.assemble(blocks, [1.0] * len(blocks),
                                         report_text.Geometry(width, height, img.pixel_spacing_mm))
        evidence = [EvidenceSentence(
            id=f"s{i + 1}", section=b.section, text=b.text, label=b.label, region=b.region, confidence=1.0,
            observation_box=b.box, trajectory=[c.to_point() for c in b.clues], out_of_scope=not check.passed)
            for i, b in enumerate(blocks)]
        if not sentences:
            warnings.append("the model's report text had no sentences")
        if not check.passed:
            warnings.append(f"drafted anyway although out of scope, every sentence is out of scope: {check.summary()}")
        return EvidenceBundle(model_name=f"gazex-{BACKBONE}", model_version=self.version, image_width=width,
                              image_height=height, sentences=evidence, findings=[],
                              timing_ms={"total": (time.perf_counter() - t0) * 1000.0},
                              warnings=warnings, scope_warnings=scope_warnings(img), input_check=check).validate()

    def ask(self, image: ImageSource, question: str):
        from .inference import Answer

        scope: list[str] = []
        rgb, _, _, warnings = to_rgb_uint8(image, self.settings.max_image_side, scope)
        text = self.generate(["<image>" + question.strip()], [rgb], max_new_tokens=64)[0]
        return Answer(text=text, confidence=1.0, warnings=warnings + scope)

    def ground(self, image: ImageSource, sentence: str):
        from .inference import Grounding

        scope: list[str] = []
        rgb, width, height, warnings = to_rgb_uint8(image, self.settings.max_image_side, scope)
        parsed = parse_grounding(self.generate([prompt("ground", sentence=sentence)], [rgb])[0])
        label = label_of_sentence(sentence)
        return Grounding(sentence=sentence, region=LABEL_REGION.get(label) if label else None, label=label,
                         trajectory=parsed.trajectory(width, height),
                         box=parsed.observation.to_box(width, height) if parsed.observation else None,
                         warnings=warnings + scope + parsed.dropped)
