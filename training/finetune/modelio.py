"""Model and image I/O for fine-tuning: images as the model sees them, batched greedy report generation,
and conversions between sentence blocks and EvidenceBundle drafts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gazex_core.evidence import Box, EvidenceBundle, EvidenceSentence
from gazex_core.imaging import load_image, resize_square
from gazex_core.sequence import Clue, SentenceBlock, parse_report, prompt

MAX_REPORT_TOKENS = 320


def image_array(path: str | Path, size: int) -> np.ndarray:
    """The study image as training sees it: grey, stretched to size x size, uint8-quantised (training/cache.py)."""
    img = load_image(str(path))
    return (resize_square(img.pixels, size) * 255.0 + 0.5).astype(np.uint8)


def pixel_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).float().div_(255.0)[:, None]


@torch.no_grad()
def generate_reports(model, tok, arrays: list[np.ndarray], batch_size: int = 32,
                     max_new_tokens: int = MAX_REPORT_TOKENS) -> list[list[SentenceBlock]]:
    """Greedy ``<task_report>`` generation for each image -> its parsed sentence blocks."""
    was_training = model.training
    model.eval()
    prompt_ids = torch.tensor([tok.encode(prompt("report"))], dtype=torch.long)
    out: list[list[SentenceBlock]] = []
    for start in range(0, len(arrays), batch_size):
        pixels = pixel_batch(arrays[start:start + batch_size])
        memory, _ = model.encode(pixels)
        ids, _ = model.generate_greedy(memory, prompt_ids.expand(pixels.shape[0], -1), max_new_tokens=max_new_tokens)
        out += [parse_report(tok.decode(row)) for row in ids]
    model.train(was_training)
    return out


@torch.no_grad()
def finding_probabilities(model, arrays: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
    model.eval()
    probs = []
    for start in range(0, len(arrays), batch_size):
        _, logits = model.encode(pixel_batch(arrays[start:start + batch_size]))
        probs.append(torch.sigmoid(logits).numpy())
    return np.concatenate(probs) if probs else np.zeros((0, model.config.n_labels))


def blocks_to_bundle(blocks: list[SentenceBlock], width: int, height: int, name: str = "gazex",
                     version: str = "dev") -> dict:
    """Sentence blocks -> EvidenceBundle JSON (sentence ids s1, s2, ...)."""
    sentences = [EvidenceSentence(id=f"s{i + 1}", section=b.section, text=b.text or "(empty)", region=b.region,
                                  label=b.label, observation_box=b.box, trajectory=[c.to_point() for c in b.clues])
                 for i, b in enumerate(blocks)]
    bundle = EvidenceBundle(model_name=name, model_version=version, image_width=width, image_height=height,
                            sentences=sentences)
    return bundle.validate().to_dict()


def sentence_to_block(sentence: dict) -> SentenceBlock:
    """One EvidenceBundle sentence dict -> a block (trajectory points become clues)."""
    clues = []
    for p in sentence.get("trajectory") or []:
        cb = Box.from_dict(p.get("clue_box"))
        w, h = (cb.width, cb.height) if cb is not None else (0.05, 0.05)
        clues.append(Clue(cx=float(p["x"]), cy=float(p["y"]), w=w, h=h, dwell_ms=float(p["dwell_ms"])))
    return SentenceBlock(section=sentence.get("section") or "findings", region=sentence.get("region"), clues=clues,
                         box=Box.from_dict(sentence.get("observation_box")), label=sentence.get("label"),
                         text=str(sentence.get("text", "")).strip())
