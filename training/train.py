"""``gazex train``: train GazeX from scratch on a (synthetic) dataset, CPU by default.

One step = ``batch_size`` training images; the image encoder runs once per image and the decoder sees, per
image, one long sequence (the report with trajectories, or the plain report) and ``short_per_image`` short
ones (grounding, VQA, trajectory ordering) drawn by task weight - a cheap way to mix tasks. Loss =
token cross-entropy + finding-head BCE. AdamW, linear warm-up then cosine decay, gradient clipping.
Every ``eval_every`` steps (an "epoch" of the training split by default): validation loss + finding F1,
a checkpoint (model + optimiser + step + RNG) that ``--resume`` continues from.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gazex_core.model import GazeXConfig, GazeXModel, count_parameters, init_model
from gazex_core.tokenizer import GazeXTokenizer, train_tokenizer
from gazex_core.vocab import CHEXPERT_LABELS
from training.cache import build_cache, load_cache
from training.tasks import make_example, tokenizer_texts

LONG_TASKS = ("report", "report_shuffled", "plain")
SHORT_TASKS = ("ground", "vqa", "order")
DEFAULT_WEIGHTS = {"report": 0.9, "plain": 0.1, "ground": 0.35, "vqa": 0.45, "order": 0.2}


def parse_weights(text: str | None) -> dict[str, float]:
    w = dict(DEFAULT_WEIGHTS)
    if text:
        for part in text.split(","):
            k, v = part.split("=")
            if k not in w:
                raise ValueError(f"unknown task {k!r} in --task-weights")
            w[k] = float(v)
    return w


def encode_example(tok: GazeXTokenizer, prompt_items: list[str], target_items: list[str], max_len: int):
    p = tok.encode(prompt_items)
    t = tok.encode(target_items)
    ids = (p + t)[:max_len]
    labels = ([-100] * len(p) + t)[:max_len]
    return ids, labels


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    n = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (n - len(s)) for s in seqs], dtype=torch.long)


class Batcher:
    """Draws mixed-task batches from the cache."""

    def __init__(self, images, records, indices, tok, weights, use_gaze, max_len, short_per_image, seed):
        self.images, self.records, self.indices = images, records, list(indices)
        self.tok, self.use_gaze, self.max_len, self.short_per_image = tok, use_gaze, max_len, short_per_image
        self.long_w = {k: weights[k] for k in LONG_TASKS if weights.get(k, 0) > 0}
        self.short_w = {k: weights[k] for k in SHORT_TASKS if weights.get(k, 0) > 0 and (use_gaze or k != "order")}
        self.rng = random.Random(seed)
        self.order: list[int] = []

    def _next_index(self) -> int:
        if not self.order:
            self.order = list(self.indices)
            self.rng.shuffle(self.order)
        return self.order.pop()

    def _pick(self, w: dict[str, float]) -> str:
        return self.rng.choices(list(w), weights=list(w.values()))[0]

    def batch(self, batch_size: int, indices: list[int] | None = None) -> dict:
        idx = indices if indices is not None else [self._next_index() for _ in range(batch_size)]
        pix = torch.from_numpy(np.stack([self.images[i] for i in idx])).float().div_(255.0)[:, None]
        flab = torch.tensor([self.records[i]["labels"] for i in idx], dtype=torch.float32)
        groups: dict[str, tuple[list, list, list]] = {"long": ([], [], []), "short": ([], [], [])}
        for b, i in enumerate(idx):
            rec = self.records[i]
            wanted = ([("long", self._pick(self.long_w))] if self.long_w else [])
            wanted += [("short", self._pick(self.short_w)) for _ in range(self.short_per_image if self.short_w else 0)]
            for group, task in wanted:
                ex = make_example(rec, task, self.rng, self.use_gaze)
                if ex is None:
                    continue
                ids, labels = encode_example(self.tok, ex[0], ex[1], self.max_len)
                g = groups[group]
                g[0].append(ids), g[1].append(labels), g[2].append(b)
        out = {"pixel_values": pix, "finding_labels": flab, "groups": []}
        for ids, labels, owner in groups.values():
            if ids:
                out["groups"].append((pad(ids, self.tok.pad_id), pad(labels, -100), torch.tensor(owner)))
        return out


def compute_loss(model: GazeXModel, batch: dict, device: str) -> tuple[torch.Tensor, dict]:
    memory, flog = model.encode(batch["pixel_values"].to(device))
    fl = torch.nn.functional.binary_cross_entropy_with_logits(flog, batch["finding_labels"].to(device))
    tok_loss_sum, tok_count = 0.0, 0
    for ids, labels, owner in batch["groups"]:
        ids, labels = ids.to(device), labels.to(device)
        logits = model.decode(ids, memory=memory[owner.to(device)])
        tgt = labels[:, 1:]
        n = int((tgt != -100).sum())
        if n == 0:
            continue
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        tok_loss_sum = tok_loss_sum + loss
        tok_count += n
    lm = tok_loss_sum / max(tok_count, 1)
    total = lm + model.config.finding_loss_weight * fl
    return total, {"lm": float(lm.detach()) if torch.is_tensor(lm) else float(lm), "finding": float(fl.detach()),
                   "logits": flog.detach()}


def lr_at(step: int, total: int, warmup: int, peak: float, floor: float = 0.05) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * prog)))


def f1_scores(probs: np.ndarray, truth: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    pred = probs >= thresholds
    tp = (pred & (truth > 0.5)).sum(0)
    fp = (pred & (truth < 0.5)).sum(0)
    fn = (~pred & (truth > 0.5)).sum(0)
    return np.where(tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)


@torch.no_grad()
def evaluate_split(model, batcher: Batcher, indices: list[int], batch_size: int, device: str) -> dict:
    model.eval()
    rng_state = batcher.rng.getstate()
    batcher.rng.seed(1234)  # the same validation examples every time
    losses, probs, truth = [], [], []
    for s in range(0, len(indices), batch_size):
        b = batcher.batch(0, indices[s : s + batch_size])
        loss, parts = compute_loss(model, b, device)
        losses.append(parts["lm"])
        probs.append(torch.sigmoid(parts["logits"]).cpu().numpy())
        truth.append(b["finding_labels"].numpy())
    batcher.rng.setstate(rng_state)
    model.train()
    probs_a, truth_a = np.concatenate(probs), np.concatenate(truth)
    f1 = f1_scores(probs_a, truth_a)
    present = truth_a.sum(0) > 0
    present[CHEXPERT_LABELS.index("No Finding")] = False
    return {"val_lm_loss": float(np.mean(losses)), "val_finding_macro_f1": float(np.nanmean(f1[present])),
            "probs": probs_a, "truth": truth_a}


def calibrate_thresholds(probs: np.ndarray, truth: np.ndarray) -> list[float]:
    """Per-label threshold maximising validation F1 (0.5 where a label never occurs)."""
    out = []
    for j in range(probs.shape[1]):
        if truth[:, j].sum() == 0:
            out.append(0.5)
            continue
        best_t, best_f = 0.5, -1.0
        for t in np.linspace(0.1, 0.9, 33):
            f = f1_scores(probs[:, j : j + 1], truth[:, j : j + 1], t)[0]
            if f > best_f + 1e-9:
                best_t, best_f = float(t), f
        out.append(best_t)
    return out


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for but no CUDA device is available")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(args.cache or Path(args.data) / "cache")
    build_cache(args.data, cache_dir, args.image_size, workers=args.workers, limit=args.limit)
    images, records = load_cache(cache_dir, args.image_size)
    train_ix = [i for i, r in enumerate(records) if r["split"] == "train"]
    val_ix = [i for i, r in enumerate(records) if r["split"] == "val"][: args.val_size]
    if not train_ix:
        raise RuntimeError(f"{args.data}: no studies in the train split")
    use_gaze = not args.no_gaze

    tok_path = out / "tokenizer.json"
    if tok_path.exists():
        tok = GazeXTokenizer.from_file(tok_path)
    else:
        texts = tokenizer_texts([records[i] for i in train_ix])
        try:
            from training.synth.resources import iu_sentences

            texts += list(iu_sentences())
        except Exception as exc:  # the IU X-Ray file is optional for tiny smoke runs
            print(f"note: IU X-Ray sentences not used for the tokenizer ({exc})")
        tok = train_tokenizer(texts, vocab_size=args.vocab_size)
        tok.save(out)

    cfg = GazeXConfig(
        vocab_size=tok.vocab_size, image_size=args.image_size, d_model=args.d_model,
        stem_channels=[int(c) for c in args.stem_channels.split(",")], n_heads=args.n_heads,
        n_encoder_layers=args.encoder_layers, n_decoder_layers=args.decoder_layers, max_positions=args.max_len,
        dropout=args.dropout, use_gaze=use_gaze, pad_token_id=tok.pad_id, bos_token_id=tok.id("<bos>"),
        eos_token_id=tok.id("<eos>"),
    )
    model = init_model(cfg, seed=args.seed).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.98))
    weights = parse_weights(args.task_weights)
    batcher = Batcher(images, records, train_ix, tok, weights, use_gaze, args.max_len, args.short_per_image, args.seed)
    val_batcher = Batcher(images, records, val_ix, tok, weights, use_gaze, args.max_len, args.short_per_image, args.seed + 1)
    steps_per_epoch = max(1, len(train_ix) // args.batch_size)
    total = args.steps or steps_per_epoch * args.epochs
    eval_every = args.eval_every or steps_per_epoch
    step = 0
    history: list[dict] = []
    state_path = out / "train_state.pt"
    if args.resume and state_path.exists():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, history = st["step"], st["history"]
        batcher.rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        print(f"resumed from step {step}")
    print(f"GazeX {count_parameters(model) / 1e6:.2f}M params, {len(train_ix)} train / {len(val_ix)} val studies, "
          f"{total} steps of {args.batch_size}, gaze={'on' if use_gaze else 'off (ablation)'}, device={device}")
    model.train()
    t0 = time.time()
    wall_before = sum(h.get("wall_s", 0) for h in history[-1:])
    bar = tqdm(total=total, initial=step, desc="train", unit="step")
    ema = None
    start_step, budget_set = step, False
    while step < total:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, args.warmup, args.lr)
        batch = batcher.batch(args.batch_size)
        loss, parts = compute_loss(model, batch, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        lv = loss.item()
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.3f}", lm=f"{parts['lm']:.3f}", fl=f"{parts['finding']:.3f}")
        if args.time_budget_min and step == start_step + 20 and not budget_set:
            # fit the schedule to the wall-time budget, measured on the first 20 steps
            per_step = (time.time() - t0) / 20
            fit = start_step + int((args.time_budget_min * 60 - (time.time() - t0)) / (per_step * 1.08))
            if fit < total:
                total = max(fit, step + 1)
                bar.total = total
                tqdm.write(f"time budget {args.time_budget_min} min at {per_step:.2f} s/step -> {total} steps")
            budget_set = True
        if step % eval_every == 0 or step == total:
            ev = evaluate_split(model, val_batcher, val_ix, args.batch_size, device) if val_ix else {}
            wall = wall_before + time.time() - t0
            row = {"step": step, "train_loss_ema": ema, "wall_s": wall,
                   **{k: v for k, v in ev.items() if k not in ("probs", "truth")}}
            history.append(row)
            tqdm.write(json.dumps(row))
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "history": history,
                        "rng": batcher.rng.getstate(), "torch_rng": torch.get_rng_state()}, state_path)
            if ev:
                model.config.finding_thresholds = calibrate_thresholds(ev["probs"], ev["truth"])
            if step < total:  # a usable model after every evaluation, in case the run is stopped
                model.config.training = {"partial": True, "step": step, "history": history}
                save_model(model, tok, out, fp16=args.fp16)
                model.to(device).train()
    bar.close()
    model.config.training = {
        "data": str(args.data), "seed": args.seed, "steps": total, "batch_size": args.batch_size, "lr": args.lr,
        "task_weights": weights, "use_gaze": use_gaze, "n_train": len(train_ix), "n_val": len(val_ix),
        "wall_s": history[-1]["wall_s"] if history else None, "history": history,
        "sec_per_step": (history[-1]["wall_s"] / total) if history else None,
    }
    save_model(model, tok, out, fp16=args.fp16)
    return out


def save_model(model: GazeXModel, tok: GazeXTokenizer, out: Path, fp16: bool = True) -> None:
    """save_pretrained (safetensors) + tokenizer.json; fp16 storage halves the size, loading casts back."""
    m = model.to("cpu")
    if fp16:
        import copy

        m = copy.deepcopy(model).half()
    m.save_pretrained(out, safe_serialization=True)
    tok.save(out)


def main(args: argparse.Namespace) -> int:
    out = train(args)
    print(f"saved {out}")
    return 0
