"""``gazex train-second-look``: a second, closer look at a larger copy of the image, trained beside a frozen model.

    gazex train-second-look --model gazex_core/weights/gazex-tiny --data data/synth6k --threads 2

gazex-tiny's encoder sees 128 x 128 pixels, where a 1 cm nodule is 3 pixels wide; Lung Lesion and Consolidation
were its weakest labels and a pneumothorax's grade (a thin rim) its weakest severity. The second look
(:class:`gazex_core.model.SecondLook`) reads the same film at ``--image-size`` (256) with its own small conv stem
and gives, per label, a finding logit, severity logits, side logits and a box per side slot. The encoder, finding head, attribute
head and decoder are not touched (their tensors are saved byte-identical: the input check's statistics stay
valid; the sentence-confidence calibrator reads finding probabilities, so refit it afterwards with
``gazex calibrate fit``). Steps:

1. the dataset's cache (training/cache.py, the one loader path) at the base's size and at ``--image-size``;
2. targets from the synthetic ground truth: the 14 finding labels, severity / side as for the attribute head
   (training/attribute_head.py, the one home of those targets), and per label and side slot the first box;
3. trained with a fixed seed (BCE on findings + cross-entropy on severity + BCE on sides + L1 and 1 - IoU on
   boxes, AdamW, one-cycle schedule, small random shifts); the epoch with the lowest validation loss is kept;
4. per label, on the validation split, whichever of the base's finding head, the second look, or the mean of
   their logits has the best F1 (each at its own F1-best threshold) gives that label's finding probability; severity
   and side come from the second look where it is more accurate than the attribute head (or where there is none),
   and a label's observation boxes where its IoU beats the decoder's boxes;
5. saved to ``--out`` with ``config.second_look`` naming those choices, the new thresholds in
   ``config.finding_thresholds`` and the choice's validation numbers in ``config.second_look["validation"]``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gazex_core import checkpoint
from gazex_core.evidence import Box
from gazex_core.model import BOX_SLOTS, GazeXModel, SecondLook
from gazex_core.vocab import CHEXPERT_LABELS
from training.attribute_head import BestEpoch, answer_labels, frozen_base, save_with_heads, stack_targets, train_val_indices
from training.cache import build_cache, load_cache
from training.train import calibrate_thresholds, f1_scores

DEFAULT_SIZE, DEFAULT_CHANNELS = 256, (8, 16, 32, 64)
FUSIONS = ("base", "second", "mean")  # where a label's finding probability comes from


# ------------------------------------------------------------------ data


def box_slot(laterality: str | None) -> int:
    return BOX_SLOTS.index(laterality) if laterality in ("left", "right") else BOX_SLOTS.index("other")


def box_targets(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per label and slot (BOX_SLOTS) the ground-truth box (x0, y0, x1, y1 in 0-1) and whether there is one
    (the first finding of that label and side, when a study has two)."""
    n = len(CHEXPERT_LABELS)
    boxes, known = np.zeros((n, len(BOX_SLOTS), 4), np.float32), np.zeros((n, len(BOX_SLOTS)), np.float32)
    for f in rec["findings"]:
        i, k = CHEXPERT_LABELS.index(f["label"]), box_slot(f["laterality"])
        if f["box"] is not None and not known[i, k]:
            boxes[i, k], known[i, k] = f["box"], 1.0
    return boxes, known


def targets_of(records: list[dict]) -> dict[str, torch.Tensor]:
    boxes = [box_targets(r) for r in records]
    return {"finding": torch.tensor([r["labels"] for r in records], dtype=torch.float32), **stack_targets(records),
            "box": torch.from_numpy(np.stack([b[0] for b in boxes])),
            "box_known": torch.from_numpy(np.stack([b[1] for b in boxes]))}


def batch_pixels(images: np.ndarray, idx: list[int] | torch.Tensor, shift: int = 0,
                 gen: torch.Generator | None = None) -> torch.Tensor:
    """Cached uint8 images -> (B, 1, S, S) in 0-1; with ``shift``, each moved by up to that many pixels (edge
    padding), so the look learns findings, not their exact pixel positions."""
    pix = torch.from_numpy(np.stack([images[int(i)] for i in idx])).float().div_(255.0)[:, None]
    if not shift:
        return pix
    s = pix.shape[-1]
    padded = F.pad(pix, (shift, shift, shift, shift), mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, len(pix)), generator=gen).tolist()
    return torch.stack([padded[b, :, dy[b] : dy[b] + s, dx[b] : dx[b] + s] for b in range(len(pix))])


# ------------------------------------------------------------------ training


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes (..., 4) as x0, y0, x1, y1."""
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (_area(a) + _area(b) - inter).clamp(min=1e-6)


def _area(box: torch.Tensor) -> torch.Tensor:
    return (box[..., 2] - box[..., 0]).clamp(min=0) * (box[..., 3] - box[..., 1]).clamp(min=0)


def look_loss(outputs: tuple[torch.Tensor, ...], t: dict[str, torch.Tensor]) -> torch.Tensor:
    finding, severity, side, boxes = outputs
    loss = F.binary_cross_entropy_with_logits(finding, t["finding"])
    known = t["severity"] >= 0
    if known.any():
        loss = loss + F.cross_entropy(severity[known], t["severity"][known])
    side_bce = F.binary_cross_entropy_with_logits(side, t["side"], reduction="none").mean(-1)
    mask = t["side_known"] * t["finding"]  # side is asked of present findings only
    loss = loss + (side_bce * mask).sum() / mask.sum().clamp(min=1)
    known = t["box_known"] > 0
    if known.any():
        pred, true = boxes[known], t["box"][known]
        loss = loss + 5 * F.l1_loss(pred, true) + (1 - box_iou(pred, true)).mean()
    return loss


@torch.no_grad()
def look_outputs(look: SecondLook, images: np.ndarray, indices: list[int], batch_size: int = 64) -> tuple[torch.Tensor, ...]:
    look.eval()
    parts = [look(batch_pixels(images, indices[s : s + batch_size])) for s in range(0, len(indices), batch_size)]
    return tuple(torch.cat([p[k] for p in parts]) for k in range(4))


def fit_look(model: GazeXModel, images: np.ndarray, train_ix: list[int], train_t: dict, val_ix: list[int], val_t: dict,
             epochs: int, lr: float, weight_decay: float, batch_size: int, shift: int, seed: int,
             start: SecondLook | None = None) -> tuple[SecondLook, dict]:
    """Train a second look (from ``start``'s weights where given, else freshly initialised); the best epoch."""
    torch.manual_seed(seed)
    look = SecondLook(model.config)
    look.apply(model._init_weights)
    if start is not None:
        look.load_state_dict(start.state_dict())
    opt = torch.optim.AdamW(look.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(train_ix) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    best = BestEpoch()
    bar = tqdm(range(epochs), desc="train second look", unit="epoch")
    for epoch in bar:
        look.train()
        for order in torch.randperm(len(train_ix), generator=gen).split(batch_size):
            pix = batch_pixels(images, [train_ix[i] for i in order], shift, gen)
            loss = look_loss(look(pix), {k: v[order] for k, v in train_t.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        val_loss = float(look_loss(look_outputs(look, images, val_ix), val_t))
        bar.set_postfix(val_loss=f"{val_loss:.4f}")
        best.update(look, val_loss, epoch + 1)
    return best.restore(look), best.summary


# ------------------------------------------------------------------ choosing, per label, what the look gives


def choose_fusion(base_logits: np.ndarray, look_logits: np.ndarray, truth: np.ndarray,
                  base_thresholds: list[float]) -> tuple[list[str], list[float], dict]:
    """Per label: the source of its finding probability with the best validation F1 and that source's threshold
    (a label left to the base keeps the base's threshold)."""
    candidates = {"base": base_logits, "second": look_logits, "mean": (base_logits + look_logits) / 2}
    probs = {k: 1 / (1 + np.exp(-v)) for k, v in candidates.items()}
    thresholds = {k: np.array(calibrate_thresholds(p, truth)) for k, p in probs.items()}  # each at its best
    f1 = {k: f1_scores(p, truth, thresholds[k]) for k, p in probs.items()}
    chosen, report = [], {}
    for j, lab in enumerate(CHEXPERT_LABELS):
        if truth[:, j].sum() == 0:
            chosen.append("base")
            continue
        best = max(FUSIONS, key=lambda k: (f1[k][j] + (1e-9 if k == "base" else 0)))  # ties keep the base
        chosen.append(best)
        report[lab] = {k: round(float(f1[k][j]), 4) for k in FUSIONS} | {"chosen": best}
    kept = [float(base_thresholds[j]) if c == "base" else float(thresholds[c][j]) for j, c in enumerate(chosen)]
    return chosen, kept, report


def attribute_accuracy(severity: torch.Tensor, side: torch.Tensor, t: dict, finding: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per label (nan where there are none): severity accuracy over graded findings, and the side score over
    present one- or two-sided findings, scored as ``ask`` answers: the mean of the which-side answer (bilateral
    when both sides are >= 0.5, else the more probable side) being right and of the two "is there a left / right
    ...?" answers (each side >= 0.5) being right."""
    sev_ok = (severity.argmax(-1) == t["severity"]).float()
    sev_known = (t["severity"] >= 0).float()
    present = (t["side_known"] > 0) & (t["side"].sum(-1) > 0) & (finding > 0.5)
    said = side > 0  # logits: probability >= 0.5
    both_said, both_true = said.all(-1), t["side"].sum(-1) == 2
    which_ok = torch.where(both_said | both_true, both_said & both_true, side.argmax(-1) == t["side"].argmax(-1))
    yes_no_ok = (said.float() == t["side"]).float().mean(-1)
    side_ok = (which_ok.float() + yes_no_ok) / 2
    with np.errstate(invalid="ignore"):
        sev = ((sev_ok * sev_known).sum(0) / sev_known.sum(0)).numpy()
        sd = ((side_ok * present).sum(0) / present.float().sum(0)).numpy()
    return sev, sd


def choose_attributes(model: GazeXModel, memory_val: torch.Tensor | None, look_out: tuple[torch.Tensor, ...], val_t: dict,
                      answerable: dict[str, list[str]]) -> tuple[list[str], list[str], dict]:
    """The labels whose severity / side the second look gives: better on validation than the attribute head
    (or no attribute head answers for them); only labels with enough training examples (``answerable``)."""
    _, l_sev, l_side, _ = look_out
    look_sev, look_side = attribute_accuracy(l_sev, l_side, val_t, val_t["finding"])
    head = model.config.attribute_head or {}
    if memory_val is not None and model.attribute_head is not None:
        with torch.no_grad():
            h_sev, h_side = model.attribute_head(memory_val)
        head_sev, head_side = attribute_accuracy(h_sev, h_side, val_t, val_t["finding"])
    else:
        head_sev = head_side = np.full(len(CHEXPERT_LABELS), np.nan)

    def pick(kind: str, look_acc: np.ndarray, head_acc: np.ndarray) -> tuple[list[str], dict]:
        out, rep = [], {}
        for lab in answerable[f"{kind}_labels"]:
            j = CHEXPERT_LABELS.index(lab)
            has_head = lab in head.get(f"{kind}_labels", ())
            better = not has_head or np.nan_to_num(look_acc[j]) > np.nan_to_num(head_acc[j])
            rep[lab] = {"second": _r(look_acc[j]), "attribute_head": _r(head_acc[j]) if has_head else None,
                        "chosen": "second" if better else "attribute_head"}
            if better:
                out.append(lab)
        return out, rep

    sev_labels, sev_rep = pick("severity", look_sev, head_sev)
    side_labels, side_rep = pick("side", look_side, head_side)
    return sev_labels, side_labels, {"severity": sev_rep, "side": side_rep}


def choose_boxes(model: GazeXModel, tok, base_images: np.ndarray, val_ix: list[int], val_records: list[dict],
                 look_boxes: torch.Tensor, train_t: dict, min_examples: int = 20) -> tuple[dict[str, list[str]], dict]:
    """The labels (and their slots with >= ``min_examples`` training boxes) whose boxes the second look gives: those
    where its validation IoU beats the decoder's, scored as ``gazex evaluate`` scores the draft (each ground-truth
    finding of a label the decoder's draft reports: the best IoU of the draft's boxes for that label)."""
    from training.finetune.modelio import generate_reports

    drafts = generate_reports(model, tok, [base_images[i] for i in val_ix])
    trained = train_t["box_known"].sum(0) >= min_examples  # (L, slots)
    ious: dict[str, dict[str, list[float]]] = {}
    for n, (rec, blocks) in enumerate(zip(val_records, drafts)):
        for f in rec["findings"]:
            drafted = [b.box for b in blocks if b.label == f["label"] and b.box is not None]
            j, k = CHEXPERT_LABELS.index(f["label"]), box_slot(f["laterality"])
            if f["box"] is None or not drafted or not trained[j, k]:
                continue
            truth = Box(*f["box"])
            per = ious.setdefault(f["label"], {"decoder": [], "second": []})
            per["decoder"].append(max(truth.iou(b) for b in drafted))
            per["second"].append(truth.iou(Box(*look_boxes[n, j, k].tolist())))
    chosen, report = {}, {}
    for lab, per in ious.items():
        dec, sec = float(np.mean(per["decoder"])), float(np.mean(per["second"]))
        report[lab] = {"decoder": round(dec, 4), "second": round(sec, 4), "n": len(per["second"]),
                       "chosen": "second" if sec > dec else "decoder"}
        if sec > dec:
            j = CHEXPERT_LABELS.index(lab)
            chosen[lab] = [slot for k, slot in enumerate(BOX_SLOTS) if trained[j, k]]
    return chosen, report


def _r(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 4)


# ------------------------------------------------------------------ the command


def train_second_look(model_dir: str | Path, data: str | Path, out: str | Path | None = None, cache: str | Path | None = None,
                      image_size: int = DEFAULT_SIZE, channels: tuple[int, ...] = DEFAULT_CHANNELS, epochs: int = 20,
                      lr: float = 3e-3, weight_decay: float = 0.05, batch_size: int = 32, shift: int = 8, seed: int = 0,
                      threads: int = 0, limit: int | None = None, workers: int = 1, reuse: str | Path | None = None,
                      start: str | Path | None = None) -> dict:
    """Train the second look of ``model_dir`` on ``data``'s train split (choices on val) and save to ``out``.
    ``reuse``: a directory whose trained second look is taken as it is (only the per-label choices are made again);
    ``start``: a directory whose trained second look is trained further (continued training, e.g. on more data)."""
    model_dir = Path(model_dir)
    out = Path(out) if out is not None else model_dir
    model, tok = frozen_base(model_dir, "train-second-look", threads)
    cache_dir = Path(cache or Path(data) / "cache")
    base_size = model.config.image_size
    for size in (base_size, image_size):
        build_cache(data, cache_dir, size, workers=workers, limit=limit)
    base_images, records = load_cache(cache_dir, base_size)
    images, _ = load_cache(cache_dir, image_size)
    split_ix = train_val_indices(records, data)
    targets = {s: targets_of([records[i] for i in ix]) for s, ix in split_ix.items()}
    base_thresholds = model.config.head_thresholds  # read before the second look's config is replaced below
    model.config.second_look = {"image_size": image_size, "channels": list(channels)}
    if reuse is None:
        start_look, earlier = _trained_look(Path(start), model) if start is not None else (None, None)
        look, best = fit_look(model, images, split_ix["train"], targets["train"], split_ix["val"], targets["val"],
                              epochs, lr, weight_decay, batch_size, shift, seed, start_look)
        if start is not None:
            best = {**best, "started_from": str(start), "earlier_training": earlier}
    else:
        look, earlier = _trained_look(Path(reuse), model)
        best = {**earlier, "reused_from": str(reuse)}
    look_val = look_outputs(look, images, split_ix["val"])
    memory_val, base_logits = _base_outputs(model, base_images, split_ix["val"])
    fusion, thresholds, fusion_report = choose_fusion(base_logits.numpy(), look_val[0].numpy(),
                                                      targets["val"]["finding"].numpy(), base_thresholds)
    sev_labels, side_labels, attr_report = choose_attributes(model, memory_val, look_val, targets["val"],
                                                             answer_labels(targets["train"]))
    box_labels, box_report = choose_boxes(model, tok, base_images, split_ix["val"], [records[i] for i in split_ix["val"]],
                                          look_val[3], targets["train"])
    model.second_look = look
    model.config.finding_thresholds = thresholds
    model.config.second_look = {
        "image_size": image_size, "channels": list(channels),
        "finding_labels": {lab: f for lab, f in zip(CHEXPERT_LABELS, fusion) if f != "base"},
        "base_finding_thresholds": list(base_thresholds),
        "severity_labels": sev_labels, "side_labels": side_labels, "box_labels": box_labels,
        "training": best if reuse is not None else {
            **best, "data": str(data), "n_train": len(split_ix["train"]), "n_val": len(split_ix["val"]), "epochs": epochs,
            "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "shift": shift, "seed": seed},
        "validation": {"finding_f1": fusion_report, **attr_report, "box_iou": box_report},
    }
    save_with_heads(model, model_dir, out, new_prefixes=("second_look.",))
    return model.config.second_look


def _trained_look(path: Path, model: GazeXModel) -> tuple[SecondLook, dict]:
    """The second look saved in ``path`` (built for ``model``'s config) and its training summary."""
    trained, _ = checkpoint.load_model(path)
    spec = trained.config.second_look or {}
    if trained.second_look is None or spec["image_size"] != model.config.second_look["image_size"] \
            or spec["channels"] != model.config.second_look["channels"]:
        raise ValueError(f"{path}: no second look of size {model.config.second_look['image_size']} and channels "
                         f"{model.config.second_look['channels']} to start from or reuse")
    return trained.second_look.eval(), spec["training"]


@torch.no_grad()
def _base_outputs(model: GazeXModel, images: np.ndarray, indices: list[int], batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    memory, logits = [], []
    for s in range(0, len(indices), batch_size):
        m, lg = model.encode(batch_pixels(images, indices[s : s + batch_size]))
        memory.append(m)
        logits.append(lg)
    return torch.cat(memory), torch.cat(logits)
