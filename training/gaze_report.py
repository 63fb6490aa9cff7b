"""``gazex train-gaze-report``: the decoder taught to write each sentence from its region and key frames (task e).

    gazex train-gaze-report --model gazex_core/weights/gazex-tiny --data data/synth6k --threads 2

The paper's gaze-conditioned report writes the dictated sentences from the reader's gaze. gazex-tiny's report task
already puts each sentence's region and key frames before its text, but every training report is in ABCDEF order,
so the decoder learned to write by position: forcing a reader's looks in reverse order, the text still followed the
order (docs/model_card.md). This fine-tune keeps the task mixture of ``gazex train`` and adds reports whose findings
sentences are shuffled (``report_shuffled`` in training/tasks.py): there, only the region and key frames say what a
sentence is about. Only the decoder (token and position embeddings, decoder layers, final norm) is trained; the
encoder and every head are saved byte-identical (checked), so the input check, calibrator inputs, finding
probabilities and gaze head stay as they were. ``GazeX.analyze(image, looks=...)`` drafts from a reader's looks.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from training.attribute_head import frozen_base, save_with_heads
from training.cache import build_cache, load_cache
from training.train import Batcher, compute_loss, lr_at

DECODER_PREFIXES = ("embed_tokens.", "embed_positions.", "layers.", "ln_f.")
TASK_WEIGHTS = {"report": 0.3, "report_shuffled": 0.1, "plain": 0.05, "ground": 0.2, "vqa": 0.25, "order": 0.1}


def train_gaze_report(model_dir: str | Path, data: str | Path, out: str | Path | None = None,
                      cache: str | Path | None = None, steps: int = 300, lr: float = 3e-4, batch_size: int = 16,
                      short_per_image: int = 3, warmup: int = 20, seed: int = 0, threads: int = 0,
                      limit: int | None = None) -> dict:
    """Fine-tune ``model_dir``'s decoder on ``data``'s train split with shuffled reports mixed in; save to ``out``."""
    model_dir = Path(model_dir)
    out = Path(out) if out is not None else model_dir
    torch.manual_seed(seed)
    model, tok = frozen_base(model_dir, "train-gaze-report", threads)
    if not getattr(model.config, "use_gaze", True):
        raise ValueError(f"{model_dir}: a no-gaze model has no key frames to write from")
    trainable = [p for name, p in model.named_parameters() if name.startswith(DECODER_PREFIXES)]
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(DECODER_PREFIXES))
    cache_dir = Path(cache or Path(data) / "cache")
    build_cache(data, cache_dir, model.config.image_size, limit=limit)
    images, records = load_cache(cache_dir, model.config.image_size)
    train_ix = [i for i, r in enumerate(records) if r["split"] == "train"]
    if not train_ix:
        raise ValueError(f"{data}: no studies in the train split")
    batcher = Batcher(images, records, train_ix, tok, TASK_WEIGHTS, True, model.config.max_positions, short_per_image, seed)
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    model.eval()  # the frozen encoder reads as at inference (its BatchNorm statistics stay as they are)
    model.layers.train()
    model.drop.train()
    started, ema = time.time(), None
    bar = tqdm(range(steps), desc="train gaze report", unit="step")
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, warmup, lr)
        loss, parts = compute_loss(model, batcher.batch(batch_size), "cpu")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        ema = parts["lm"] if ema is None else 0.95 * ema + 0.05 * parts["lm"]
        bar.set_postfix(lm=f"{ema:.3f}")
    model.eval()
    summary = {"data": str(data), "steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
               "task_weights": TASK_WEIGHTS, "lm_loss_ema": round(float(ema), 4) if ema is not None else None,
               "wall_s": round(time.time() - started, 1), "n_train": len(train_ix)}
    model.config.gaze_report_training = summary
    save_with_heads(model, model_dir, out, new_prefixes=DECODER_PREFIXES)
    return summary
