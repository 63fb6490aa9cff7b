"""``gazex train-heads``: the attribute head (severity and side of each finding) trained on the frozen encoder.

    gazex train-heads --model gazex_core/weights/gazex-tiny --data data/synth6k --out DIR --threads 1

The image encoder, finding head and decoder are not touched (their tensors are saved byte-identical, so the
model directory's input-check statistics and calibrator stay valid). Steps:

1. the dataset's cache (training/cache.py, the one loader path) gives every study's image and record;
2. the encoder runs once per train / val study and its memory (P x d) is kept;
3. targets come from the synthetic ground truth in the records: per label, the severity of its findings
   (small / moderate / large; masked when the label is absent or its findings disagree) and whether it is
   on the left / on the right (both for a bilateral finding; both "no" when the label is absent; masked
   when a present label's findings have no side);
4. :class:`gazex_core.model.AttributeHead`, started from the finding head's queries and attention, is
   trained with a fixed seed (cross-entropy on severity + BCE on the sides, AdamW); the epoch with the
   lowest validation loss is kept;
5. the model is saved to ``--out`` with ``config.attribute_head`` naming the labels the head answers for
   (severity: the labels with each of the three grades >= ``--min-examples`` times in training; side: the labels
   with a one-sided finding as often),
   the model directory's other files copied beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gazex_core import checkpoint
from gazex_core.model import SEVERITIES, SIDES, AttributeHead, GazeXModel
from gazex_core.vocab import CHEXPERT_LABELS
from training.cache import build_cache, load_cache
from training.floors import record_labels

MIN_EXAMPLES = 20  # a label is answered for only when each severity grade (or one side) has this many training examples


# ------------------------------------------------------------------ targets


def attribute_targets(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One cached record -> severity class per label (-1 = unknown), side targets (L, 2), side mask (L,)."""
    n = len(CHEXPERT_LABELS)
    severity = np.full(n, -1, dtype=np.int64)
    side = np.zeros((n, len(SIDES)), dtype=np.float32)
    side_known = np.ones(n, dtype=np.float32)
    present = record_labels(rec)
    for i, lab in enumerate(CHEXPERT_LABELS):
        findings = [f for f in rec["findings"] if f["label"] == lab]
        grades = {f["severity"] for f in findings}
        if len(grades) == 1 and None not in grades:
            severity[i] = SEVERITIES.index(grades.pop())
        sides = {f["laterality"] for f in findings}
        if lab not in present:
            continue
        if not findings or None in sides or not sides <= {"left", "right", "bilateral"}:
            side_known[i] = 0.0
            continue
        for j, s in enumerate(SIDES):
            side[i, j] = float(s in sides or "bilateral" in sides)
    return severity, side, side_known


def stack_targets(records: list[dict]) -> dict[str, torch.Tensor]:
    parts = [attribute_targets(r) for r in records]
    return {"severity": torch.from_numpy(np.stack([p[0] for p in parts])),
            "side": torch.from_numpy(np.stack([p[1] for p in parts])),
            "side_known": torch.from_numpy(np.stack([p[2] for p in parts]))}


def answer_labels(train: dict[str, torch.Tensor], min_examples: int = MIN_EXAMPLES) -> dict[str, list[str]]:
    """The labels the head answers for: every severity grade (or a side) seen often enough in training."""
    sev, known, side = train["severity"], train["side_known"], train["side"]
    severity_labels = [lab for i, lab in enumerate(CHEXPERT_LABELS)
                       if all(int((sev[:, i] == k).sum()) >= min_examples for k in range(len(SEVERITIES)))]
    side_labels = [lab for i, lab in enumerate(CHEXPERT_LABELS)
                   if int(((side[:, i].sum(-1) == 1) & (known[:, i] > 0)).sum()) >= min_examples]
    return {"severity_labels": severity_labels, "side_labels": side_labels}


# ------------------------------------------------------------------ features


@torch.inference_mode()
def encoder_memory(model: GazeXModel, images: np.ndarray, indices: list[int], batch_size: int = 32,
                   desc: str = "encode") -> torch.Tensor:
    """The frozen encoder's memory (N, P, d) for the cached images ``indices``."""
    out = []
    for start in tqdm(range(0, len(indices), batch_size), desc=desc, unit="batch"):
        idx = indices[start : start + batch_size]
        pix = torch.from_numpy(np.stack([images[i] for i in idx])).float().div_(255.0)[:, None]
        out.append(model.encoder(pix).float())
    return torch.cat(out)


# ------------------------------------------------------------------ training


def head_loss(head: AttributeHead, memory: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    severity_logits, side_logits = head(memory)
    sev = targets["severity"]
    known = sev >= 0
    loss = F.cross_entropy(severity_logits[known], sev[known]) if known.any() else severity_logits.sum() * 0
    side_bce = F.binary_cross_entropy_with_logits(side_logits, targets["side"], reduction="none").mean(-1)
    mask = targets["side_known"]
    return loss + (side_bce * mask).sum() / mask.sum().clamp(min=1)


def start_from_finding_head(head: AttributeHead, model: GazeXModel) -> None:
    """The finding head's per-label queries already attend to each finding's place: start there."""
    with torch.no_grad():
        head.queries.copy_(model.finding_head.queries)
        head.attn.load_state_dict(model.finding_head.attn.state_dict())
        head.ln.load_state_dict(model.finding_head.ln.state_dict())


def accuracies(head: AttributeHead, memory: torch.Tensor, targets: dict[str, torch.Tensor],
               labels: dict[str, list[str]]) -> dict[str, float | None]:
    """Severity accuracy and side exact-match (both sides right) over the labels the head answers for."""
    with torch.no_grad():
        severity_logits, side_logits = head(memory)
    sev_ix = [CHEXPERT_LABELS.index(lab) for lab in labels["severity_labels"]]
    side_ix = [CHEXPERT_LABELS.index(lab) for lab in labels["side_labels"]]
    sev_t = targets["severity"][:, sev_ix]
    known = sev_t >= 0
    sev_ok = (severity_logits[:, sev_ix].argmax(-1) == sev_t)[known]
    side_t = targets["side"][:, side_ix]
    side_known = targets["side_known"][:, side_ix] > 0
    present = side_known & (side_t.sum(-1) > 0)  # the which-side question: asked of present findings only
    side_ok = ((side_logits[:, side_ix] > 0).float() == side_t).all(-1)[present]
    return {"severity_accuracy": float(sev_ok.float().mean()) if sev_ok.numel() else None, "severity_n": int(sev_ok.numel()),
            "side_accuracy": float(side_ok.float().mean()) if side_ok.numel() else None, "side_n": int(side_ok.numel())}


def fit_head(model: GazeXModel, train_memory: torch.Tensor, train_t: dict, val_memory: torch.Tensor, val_t: dict,
             epochs: int, lr: float, weight_decay: float, batch_size: int, seed: int) -> tuple[AttributeHead, dict]:
    torch.manual_seed(seed)
    head = AttributeHead(model.config)
    start_from_finding_head(head, model)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    best = BestEpoch()
    bar = tqdm(range(epochs), desc="train heads", unit="epoch")
    for epoch in bar:
        head.train()
        for idx in torch.randperm(len(train_memory), generator=gen).split(batch_size):
            loss = head_loss(head, train_memory[idx], {k: v[idx] for k, v in train_t.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            val_loss = float(head_loss(head, val_memory, val_t))
        bar.set_postfix(val_loss=f"{val_loss:.4f}")
        best.update(head, val_loss, epoch + 1)
    return best.restore(head), best.summary


class BestEpoch:
    """Keeps a module's weights from the epoch with the lowest validation loss."""

    def __init__(self):
        self.summary: dict = {"val_loss": float("inf")}
        self.state: dict | None = None

    def update(self, module: torch.nn.Module, val_loss: float, epoch: int) -> None:
        if val_loss < self.summary["val_loss"]:
            self.summary = {"val_loss": val_loss, "epoch": epoch}
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def restore(self, module: torch.nn.Module) -> torch.nn.Module:
        module.load_state_dict(self.state)
        return module.eval()


# ------------------------------------------------------------------ the command


def frozen_base(model_dir: Path, command: str, threads: int = 0):
    """The full checkpoint a head is trained beside (model, tokenizer), in eval mode; an adapter is refused."""
    if threads:
        torch.set_num_threads(threads)
    if checkpoint.is_adapter_dir(model_dir):
        raise ValueError(f"{model_dir}: an adapter; {command} needs a full checkpoint (config.json + model.safetensors)")
    model, tok = checkpoint.load_model(model_dir)
    return model.eval(), tok


def train_val_indices(records: list[dict], data: str | Path) -> dict[str, list[int]]:
    """The cache rows of the train and the val split; both must have studies."""
    split_ix = {s: [i for i, r in enumerate(records) if r["split"] == s] for s in ("train", "val")}
    if not split_ix["train"] or not split_ix["val"]:
        raise ValueError(f"{data}: needs studies in both the train and the val split "
                         f"(has {len(split_ix['train'])} / {len(split_ix['val'])})")
    return split_ix


def frozen_memory(model_dir: Path, data: str | Path, cache: str | Path | None, command: str, threads: int = 0,
                  limit: int | None = None) -> tuple[GazeXModel, list[dict], dict[str, list[int]], dict[str, torch.Tensor]]:
    """What a head trained on the frozen encoder starts from: the base model, the dataset's cached records, the
    rows of its train / val split and the encoder's memory of each."""
    model, _ = frozen_base(model_dir, command, threads)
    size = model.config.image_size
    cache_dir = Path(cache or Path(data) / "cache")
    build_cache(data, cache_dir, size, limit=limit)
    images, records = load_cache(cache_dir, size)
    split_ix = train_val_indices(records, data)
    memory = {s: encoder_memory(model, images, ix, desc=f"encode {s}") for s, ix in split_ix.items()}
    return model, records, split_ix, memory


def train_heads(model_dir: str | Path, data: str | Path, out: str | Path | None = None, cache: str | Path | None = None,
                epochs: int = 40, lr: float = 2e-3, weight_decay: float = 0.01, batch_size: int = 64, seed: int = 0,
                threads: int = 0, limit: int | None = None, min_examples: int = MIN_EXAMPLES) -> dict:
    """Train the attribute head of ``model_dir`` on ``data``'s train split (picked on val) and save to ``out``."""
    model_dir = Path(model_dir)
    out = Path(out) if out is not None else model_dir
    model, records, split_ix, memory = frozen_memory(model_dir, data, cache, "train-heads", threads, limit)
    targets = {s: stack_targets([records[i] for i in ix]) for s, ix in split_ix.items()}
    labels = answer_labels(targets["train"], min_examples)
    head, best = fit_head(model, memory["train"], targets["train"], memory["val"], targets["val"],
                          epochs, lr, weight_decay, batch_size, seed)
    summary = {**best, "data": str(data), "n_train": len(split_ix["train"]), "n_val": len(split_ix["val"]),
               "epochs": epochs, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "seed": seed,
               "val": accuracies(head, memory["val"], targets["val"], labels)}
    model.attribute_head = head
    model.config.attribute_head = labels
    model.config.attribute_head_training = summary
    save_with_heads(model, model_dir, out)
    return summary


def save_with_heads(model: GazeXModel, base_dir: Path, out: Path, new_prefixes: tuple[str, ...] = ("attribute_head.",)) -> None:
    """Saves in the base's stored dtype; the base's other files (tokenizer, input check, calibrator) beside it.
    Checks that every tensor the base had (but the head being trained, ``new_prefixes``) is stored unchanged."""
    from safetensors.torch import load_file

    base = load_file(str(base_dir / checkpoint.CHECKPOINT_FILES[1]))
    stored = next(v.dtype for v in base.values() if v.is_floating_point())
    model.to(stored).save_pretrained(out)
    model.float()
    if out.resolve() != base_dir.resolve():
        for name in (checkpoint.CHECKPOINT_FILES[2], *checkpoint.MODEL_SIDE_FILES):
            if (base_dir / name).is_file():
                shutil.copy2(base_dir / name, out / name)
    saved = load_file(str(out / checkpoint.CHECKPOINT_FILES[1]))
    changed = [k for k, v in base.items() if not k.startswith(new_prefixes) and not torch.equal(saved[k], v)]
    if changed:
        raise RuntimeError(f"{out}: base tensors changed while adding {new_prefixes[0].rstrip('.')}: {changed[:3]}")
