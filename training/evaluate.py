"""``gazex evaluate --model M --data DIR --out DIR``: GazeX on a dataset's test split, end to end.

Every study's image file is read with gazex_core.imaging and run through the public API (``analyze``,
``ask``, ``ground``), exactly as the app does. Written: ``metrics.json`` and ``metrics.md`` (a table).

Metrics
* finding labels: the draft's positive labels (sentence labels) vs the ground-truth labels; per-label
  precision/recall/F1 and the macro F1 over the labels that occur in the split's ground truth
  (No Finding excluded). The finding head alone (calibrated thresholds) is reported for reference.
* observation box: for each ground-truth finding with a box whose label the draft reports, the best IoU
  of the draft's boxes for that label; mean and acc@0.5. Also ``ground(gt sentence)`` box IoU.
* closed VQA: 4 fixed questions per study (presence yes/no, sided yes/no, which side, severity; fixed seed),
  exact-match accuracy, per kind.
* trajectory: per simulated reader, region coverage = |regions the draft gives a trajectory for ∩ regions
  the reader inspected while dictating| / |the reader's regions|; order agreement of the draft's region
  sequence with the reader's (Kendall tau over shared regions, 1 - normalised edit distance); mean
  distance of predicted clue centroids to the nearest reader clue of the same sentence. Trajectory
  ordering task (shuffled key frames -> order): exact match and Kendall tau.
* text (training/report_metrics.py): corpus BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of the draft against the
  ground-truth report (pycocoevalcap), and clinical efficacy: micro/macro precision, recall and F1 over the
  14 CheXpert observations the project's labeler reads from both.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gazex_core.evidence import Box
from gazex_core.imaging import load_image
from gazex_core.inference import GazeX
from gazex_core.sequence import Clue, order_prompt, parse_order
from gazex_core.vocab import CHEXPERT_LABELS, REGIONS
from training.cache import build_cache, load_cache
from training.report_metrics import clinical_efficacy, nlg_metrics
from training.tasks import closed_questions


def kendall_tau(a: list, b: list) -> float | None:
    """Kendall tau between two orderings of their shared items (None if fewer than 2 shared)."""
    shared = [x for x in a if x in b]
    if len(shared) < 2:
        return None
    pos_b = {x: b.index(x) for x in shared}
    conc = disc = 0
    for i in range(len(shared)):
        for j in range(i + 1, len(shared)):
            if pos_b[shared[i]] < pos_b[shared[j]]:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / (conc + disc)


def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _dedupe(seq: list) -> list:
    out = []
    for x in seq:
        if x is not None and (not out or out[-1] != x):
            out.append(x)
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return p, r, f


def evaluate(model_dir: str | None, data: str, out_dir: str, cache: str | None = None, split: str = "test",
             limit: int = 0, questions_per_study: int = 4, threads: int = 0) -> dict:
    gx = GazeX(model_dir, threads=threads or None)
    size = gx.config.image_size
    cache_dir = Path(cache or Path(data) / "cache")
    build_cache(data, cache_dir, size)
    _, records = load_cache(cache_dir, size)
    recs = [r for r in records if r["split"] == split]
    if limit:
        recs = recs[:limit]
    if not recs:
        raise RuntimeError(f"{data}: no studies in split {split!r}")
    labels_eval = [k for k in CHEXPERT_LABELS if k != "No Finding"]
    counts = {k: [0, 0, 0] for k in labels_eval}  # tp fp fn (draft)
    head_counts = {k: [0, 0, 0] for k in labels_eval}
    gt_support = Counter()
    ious, ground_ious = [], []
    vqa = Counter()
    vqa_ok = Counter()
    coverage, taus, ned, clue_dist = [], [], [], []
    order_exact, order_tau = [], []
    refs, hyps = [], []
    analyze_ms = []
    use_gaze = bool(getattr(gx.config, "use_gaze", True))
    for k, rec in enumerate(tqdm(recs, desc=f"evaluate {split}", unit="study")):
        img = load_image(Path(rec["image_path"]))
        t0 = time.perf_counter()
        bundle = gx.analyze(img)
        analyze_ms.append((time.perf_counter() - t0) * 1e3)
        gt = {f["label"] for f in rec["findings"]} | {lab for lab, v in zip(CHEXPERT_LABELS, rec["labels"]) if v}
        gt.discard("No Finding")
        pred = bundle.positive_labels()
        probs = dict(bundle.findings)
        thr = dict(zip(CHEXPERT_LABELS, gx.config.finding_thresholds))
        head = {lab for lab in labels_eval if probs.get(lab, 0) >= thr[lab]}
        for lab in labels_eval:
            gt_support[lab] += lab in gt
            for c, p in ((counts, pred), (head_counts, head)):
                c[lab][0] += (lab in gt) and (lab in p)
                c[lab][1] += (lab not in gt) and (lab in p)
                c[lab][2] += (lab in gt) and (lab not in p)
        # boxes on correctly reported findings
        for f in rec["findings"]:
            if f["box"] is None or f["label"] not in pred:
                continue
            gbox = Box(*f["box"])
            cands = [s.observation_box for s in bundle.sentences if s.label == f["label"] and s.observation_box]
            ious.append(max((gbox.iou(b) for b in cands), default=0.0))
        # grounding of the ground-truth finding sentences
        for s in rec["sentences"]:
            if s["gt_box"] is not None and s["section"] == "findings":
                g = gx.ground(img, s["text"])
                ground_ious.append(Box(*s["gt_box"]).iou(g.box) if g.box else 0.0)
        # closed VQA
        for kind, q, a in closed_questions(rec, random.Random(10_000 + k), n=questions_per_study):
            ans = gx.ask(img, q)
            vqa[kind] += 1
            vqa_ok[kind] += ans.text.strip().lower().rstrip(".") == a
        # trajectory vs the simulated readers
        pred_regions = [s.region for s in bundle.sentences if s.section == "findings" and s.trajectory]
        pred_seq = _dedupe([s.region for s in bundle.sentences if s.section == "findings"])
        for reading in rec["readings"]:
            reader_regions = [rec["sentences"][j]["region"] for j, g in enumerate(reading["sentences"])
                              if g and g["clues"] and rec["sentences"][j]["section"] == "findings"
                              and rec["sentences"][j]["region"] in REGIONS]
            if reader_regions:
                rset = set(reader_regions)
                coverage.append(len(rset & set(pred_regions)) / len(rset))
                rseq = _dedupe(reader_regions)
                t = kendall_tau(pred_seq, rseq)
                if t is not None:
                    taus.append(t)
                ned.append(1 - edit_distance(pred_seq, rseq) / max(len(pred_seq), len(rseq), 1))
        # clue centroids vs readers' clues of the matching ground-truth sentence (same region + label)
        used = set()
        for s in bundle.sentences:
            if s.section != "findings" or not s.trajectory:
                continue
            js = [j for j, g in enumerate(rec["sentences"]) if j not in used and g["section"] == "findings"
                  and g["region"] == s.region and g["label"] == s.label]
            if not js:
                continue
            used.add(js[0])
            rc = [c for rd in rec["readings"] for c in ((rd["sentences"][js[0]] or {}).get("clues") or [])]
            if rc:
                for p in s.trajectory:
                    clue_dist.append(min(math.hypot(p.x - c[0], p.y - c[1]) for c in rc))
        # trajectory ordering task
        if use_gaze and rec["readings"]:
            frames = [Clue(*c) for c in rec["readings"][0]["frames"]][:8]
            if len(frames) >= 2:
                rng = random.Random(20_000 + k)
                perm = list(range(len(frames)))
                rng.shuffle(perm)
                truth = sorted(range(len(perm)), key=lambda i: perm[i])
                with gx._lock:
                    import torch

                    with torch.inference_mode():
                        from gazex_core.imaging import resize_square

                        pix = torch.from_numpy(resize_square(img.pixels, size))[None, None]
                        memory, _ = gx.model.encode(pix)
                        ids, _ = gx._generate(memory, order_prompt([frames[p] for p in perm]), 20)
                got = parse_order(gx.tok.decode(ids), len(frames))
                order_exact.append(got == truth)
                t = kendall_tau(got, truth)
                order_tau.append(t if t is not None else 0.0)
        refs.append(" ".join(s["text"] for s in rec["sentences"]))
        hyps.append(" ".join(s.text for s in bundle.sentences))

    per_label = {}
    for lab in labels_eval:
        if gt_support[lab] == 0:
            continue
        p, r, f = prf(*counts[lab])
        hp, hr, hf = prf(*head_counts[lab])
        per_label[lab] = {"support": gt_support[lab], "precision": p, "recall": r, "f1": f, "head_f1": hf}
    vqa_total = sum(vqa.values())
    metrics = {
        "model": str(gx.path), "model_version": gx.version, "model_identity": gx.identity,  # checkpoint.model_identity
        "use_gaze": use_gaze, "data": str(data), "split": split,
        "n_studies": len(recs),
        "finding_macro_f1": float(np.mean([v["f1"] for v in per_label.values()])) if per_label else 0.0,
        "finding_head_macro_f1": float(np.mean([v["head_f1"] for v in per_label.values()])) if per_label else 0.0,
        "per_label": per_label,
        "box_iou_mean": float(np.mean(ious)) if ious else 0.0,
        "box_acc_at_0.5": float(np.mean([i >= 0.5 for i in ious])) if ious else 0.0,
        "box_n": len(ious),
        "ground_iou_mean": float(np.mean(ground_ious)) if ground_ious else 0.0,
        "ground_acc_at_0.5": float(np.mean([i >= 0.5 for i in ground_ious])) if ground_ious else 0.0,
        "ground_n": len(ground_ious),
        "vqa_closed_accuracy": sum(vqa_ok.values()) / vqa_total if vqa_total else 0.0,
        "vqa_closed_n": vqa_total,
        "vqa_by_kind": {k: {"n": vqa[k], "accuracy": vqa_ok[k] / vqa[k]} for k in vqa},
        "trajectory_region_coverage": float(np.mean(coverage)) if coverage else 0.0,
        "trajectory_order_kendall_tau": float(np.mean(taus)) if taus else None,
        "trajectory_order_1_minus_ned": float(np.mean(ned)) if ned else None,
        "trajectory_clue_distance_mean": float(np.mean(clue_dist)) if clue_dist else None,
        "ordering_task_exact": float(np.mean(order_exact)) if order_exact else None,
        "ordering_task_kendall_tau": float(np.mean(order_tau)) if order_tau else None,
        **nlg_metrics(refs, hyps),
        "clinical_efficacy": clinical_efficacy(refs, hyps),
        "analyze_ms_p50": float(np.percentile(analyze_ms, 50)),
        "analyze_ms_p95": float(np.percentile(analyze_ms, 95)),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "metrics.md").write_text(markdown(metrics))
    return metrics


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _ce(m: dict, kind: str) -> str:
    v = m["clinical_efficacy"][kind]
    return f"{v['precision']:.3f} / {v['recall']:.3f} / {v['f1']:.3f}"


def markdown(m: dict) -> str:
    rows = [
        ("finding-label macro F1 (draft)", m["finding_macro_f1"]),
        ("finding-label macro F1 (finding head alone)", m["finding_head_macro_f1"]),
        (f"observation-box IoU mean, correctly reported findings (n={m['box_n']})", m["box_iou_mean"]),
        ("observation-box acc@0.5", m["box_acc_at_0.5"]),
        (f"grounding IoU mean, GT finding sentences (n={m['ground_n']})", m["ground_iou_mean"]),
        ("grounding acc@0.5", m["ground_acc_at_0.5"]),
        (f"closed VQA accuracy (n={m['vqa_closed_n']})", m["vqa_closed_accuracy"]),
        ("trajectory region coverage vs readers", m["trajectory_region_coverage"]),
        ("trajectory order Kendall tau vs readers", m["trajectory_order_kendall_tau"]),
        ("trajectory order 1 - normalised edit distance", m["trajectory_order_1_minus_ned"]),
        ("clue centroid distance to nearest reader clue (normalised)", m["trajectory_clue_distance_mean"]),
        ("ordering task exact match", m["ordering_task_exact"]),
        ("ordering task Kendall tau", m["ordering_task_kendall_tau"]),
        *((f"BLEU-{n}", m[f"bleu{n}"]) for n in range(1, 5)),
        ("METEOR", m["meteor"]), ("ROUGE-L", m["rouge_l"]), ("CIDEr-D", m["cider"]),
        ("clinical efficacy micro P / R / F1 (labeler, 14 observations)", _ce(m, "micro")),
        ("clinical efficacy macro P / R / F1", _ce(m, "macro")),
        ("analyze p50 / p95 ms (during evaluation)", f"{m['analyze_ms_p50']:.0f} / {m['analyze_ms_p95']:.0f}"),
    ]
    lines = [f"# GazeX evaluation: {m['model_version']} on {m['split']} ({m['n_studies']} studies, gaze={'on' if m['use_gaze'] else 'off'})",
             "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows]
    lines += ["", "| label | support | precision | recall | F1 (draft) | F1 (head) |", "|---|---|---|---|---|---|"]
    for lab, v in m["per_label"].items():
        lines.append(f"| {lab} | {v['support']} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['head_f1']:.3f} |")
    lines += ["", "| VQA kind | n | accuracy |", "|---|---|---|"]
    for k, v in m["vqa_by_kind"].items():
        lines.append(f"| {k} | {v['n']} | {v['accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    m = evaluate(args.model, args.data, args.out, args.cache, args.split, args.limit, args.questions_per_study,
                 args.threads)
    print(markdown(m))
    return 0
