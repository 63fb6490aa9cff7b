"""``gazex train-gaze-head``: where readers look for each ABCDEF region, learned from the study's own anatomy.

    gazex train-gaze-head --model gazex_core/weights/gazex-tiny --data data/synth6k --threads 2

The decoder's key frames for normal statements ("Trachea is midline.", "The lungs are clear.") came out nearly
the same for every study: a draft reused from a black image was almost as close to the readers' clues. Readers
look at the structures of *this* film (its lung fields, heart border, hemidiaphragms), which move from study to
study. :class:`gazex_core.model.GazeHead` reads those places from the frozen encoder's memory: per region a few
points. Drafts take their normal-region trajectories from it (gazex_core/inference.py). The encoder, heads and
decoder are not touched (their tensors are saved byte-identical). Steps:

1. the dataset's cache (training/cache.py) and the frozen encoder's memory of every train / val study;
2. targets: per study and region, the key-frame centroids (the DBSCAN clues, training/data/keyframes.py) of every
   reader for every sentence about that region that states no finding;
3. the head is trained with a fixed seed on a symmetric Chamfer distance: each point to its nearest reader clue
   (what ``gazex evaluate``'s clue distance measures) plus ``COVER_WEIGHT`` x each clue to its nearest point, so the
   points spread over where readers look instead of collapsing onto one; the epoch with the lowest validation
   loss is kept;
4. the same points fitted without the image (one fixed set per region: the image-blind floor) are scored on
   validation beside the head; both numbers are saved in ``config.gaze_head["validation"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gazex_core.model import GazeHead, GazeXModel
from gazex_core.sequence import MAX_CLUES
from gazex_core.vocab import REGIONS
from training.attribute_head import BestEpoch, frozen_memory, save_with_heads

COVER_WEIGHT = 0.5  # weight of the clue -> nearest point term
MAX_TARGETS = 24  # clue centroids kept per study and region (in reading order)
FAR = 10.0  # distance standing in for "no clue" (masked out of every mean)


# ------------------------------------------------------------------ targets


def normal_clues(rec: dict) -> dict[str, list[tuple[float, float]]]:
    """Per region, the readers' clue centroids (x, y in 0-1) for the sentences about it that state no finding."""
    out: dict[str, list[tuple[float, float]]] = {r: [] for r in REGIONS}
    for j, sent in enumerate(rec["sentences"]):
        if sent["section"] != "findings" or sent["region"] not in out or sent["label"] not in (None, "No Finding"):
            continue
        for reading in rec["readings"]:
            gaze = reading["sentences"][j] if j < len(reading["sentences"]) else None
            out[sent["region"]] += [(c[0], c[1]) for c in ((gaze or {}).get("clues") or [])]
    return out


def gaze_targets(records: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, n_regions, MAX_TARGETS, 2) clue centroids and the (N, n_regions, MAX_TARGETS) mask of real ones."""
    points = np.zeros((len(records), len(REGIONS), MAX_TARGETS, 2), np.float32)
    mask = np.zeros((len(records), len(REGIONS), MAX_TARGETS), bool)
    for i, rec in enumerate(records):
        by_region = normal_clues(rec)
        for r, region in enumerate(REGIONS):
            clues = by_region[region][:MAX_TARGETS]
            if clues:
                points[i, r, : len(clues)] = clues
                mask[i, r, : len(clues)] = True
    return torch.from_numpy(points), torch.from_numpy(mask)


# ------------------------------------------------------------------ loss


def point_distances(points: torch.Tensor, clues: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points (N, R, K, 2), clues (N, R, M, 2), mask (N, R, M) -> each point's distance to its nearest clue
    (N, R, K) and each clue's distance to its nearest point (N, R, M; 0 where masked)."""
    d = torch.linalg.vector_norm(points[:, :, :, None] - clues[:, :, None], dim=-1)  # (N, R, K, M)
    d = d.masked_fill(~mask[:, :, None, :], FAR)
    return d.min(-1).values, d.min(-2).values.masked_fill(~mask, 0.0)


def chamfer_loss(points: torch.Tensor, clues: torch.Tensor, mask: torch.Tensor,
                 cover_weight: float = COVER_WEIGHT) -> torch.Tensor:
    to_clue, to_point = point_distances(points, clues, mask)
    has = mask.any(-1)
    cover = to_point.sum(-1) / mask.sum(-1).clamp(min=1)
    return (to_clue.mean(-1) + cover_weight * cover)[has].mean()


def clue_distance(points: torch.Tensor, clues: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean distance of a point to its nearest reader clue, over studies and regions with clues (as evaluate)."""
    to_clue, _ = point_distances(points, clues, mask)
    return float(to_clue[mask.any(-1)].mean())


# ------------------------------------------------------------------ training


def fit_gaze_head(model: GazeXModel, train_memory: torch.Tensor, train_t: tuple, val_memory: torch.Tensor, val_t: tuple,
                  epochs: int, lr: float, weight_decay: float, batch_size: int, seed: int) -> tuple[GazeHead, dict]:
    torch.manual_seed(seed)
    head = GazeHead(model.config)
    head.apply(model._init_weights)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * -(-len(train_memory) // batch_size))
    gen = torch.Generator().manual_seed(seed)
    best = BestEpoch()
    bar = tqdm(range(epochs), desc="train gaze head", unit="epoch")
    for epoch in bar:
        head.train()
        for idx in torch.randperm(len(train_memory), generator=gen).split(batch_size):
            loss = chamfer_loss(head(train_memory[idx]), train_t[0][idx], train_t[1][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.no_grad():
            val_loss = float(chamfer_loss(head(val_memory), *val_t))
        bar.set_postfix(val_loss=f"{val_loss:.4f}")
        best.update(head, val_loss, epoch + 1)
    return best.restore(head), best.summary


def fit_fixed_points(train_t: tuple, points: int, seed: int, steps: int = 400) -> torch.Tensor:
    """The image-blind floor: one set of points per region, the same for every study, fitted by the same loss."""
    torch.manual_seed(seed)
    clues, mask = train_t
    fixed = torch.nn.Parameter(0.5 + 0.05 * torch.randn(len(REGIONS), points, 2))
    opt = torch.optim.Adam([fixed], lr=0.01)
    for _ in range(steps):
        loss = chamfer_loss(fixed.expand(len(clues), -1, -1, -1), clues, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return fixed.detach().clamp(0, 1)


def train_gaze_head(model_dir: str | Path, data: str | Path, out: str | Path | None = None, cache: str | Path | None = None,
                    points: int = MAX_CLUES, epochs: int = 30, lr: float = 3e-3, weight_decay: float = 0.01,
                    batch_size: int = 64, seed: int = 0, threads: int = 0, limit: int | None = None) -> dict:
    """Train the gaze head of ``model_dir`` on ``data``'s train split (picked on val) and save to ``out``."""
    model_dir = Path(model_dir)
    out = Path(out) if out is not None else model_dir
    model, records, split_ix, memory = frozen_memory(model_dir, data, cache, "train-gaze-head", threads, limit)
    targets = {s: gaze_targets([records[i] for i in ix]) for s, ix in split_ix.items()}
    model.config.gaze_head = {"points": points, "regions": list(REGIONS)}
    head, best = fit_gaze_head(model, memory["train"], targets["train"], memory["val"], targets["val"],
                               epochs, lr, weight_decay, batch_size, seed)
    fixed = fit_fixed_points(targets["train"], points, seed)
    with torch.no_grad():
        head_points = head(memory["val"])
    val_clues, val_mask = targets["val"]
    validation = {"clue_distance": round(clue_distance(head_points, val_clues, val_mask), 4),
                  "clue_distance_image_blind": round(clue_distance(fixed.expand(len(val_clues), -1, -1, -1), val_clues, val_mask), 4),
                  "n_val": len(split_ix["val"])}
    model.gaze_head = head
    model.config.gaze_head = {"points": points, "regions": list(REGIONS), "validation": validation,
                              "training": {**best, "data": str(data), "n_train": len(split_ix["train"]), "epochs": epochs,
                                           "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "seed": seed,
                                           "cover_weight": COVER_WEIGHT}}
    save_with_heads(model, model_dir, out, new_prefixes=("gaze_head.",))
    return model.config.gaze_head
