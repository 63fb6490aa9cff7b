"""``gazex export-sft``: any loader's studies -> the six GazeX tasks in the upstream ShareGPT format.

The output trains unchanged with the upstream recipe (LLaMA-Factory, template ``qwen2_vl``) and with
``gazex train --backbone qwen2-vl``::

    OUT/gazex_sft.json       [{"messages": [{"role": "user", "content": "<video><image>..."},
                                            {"role": "assistant", "content": "..."}],
                               "images": ["images/<study>.png"], "videos": ["videos/<...>.mp4"],
                               "gazex": {"task": ..., "study_id": ..., "reader": ...}}, ...]
    OUT/dataset_info.json    LLaMA-Factory's dataset entry (formatting sharegpt, role/content tags)
    OUT/images/*.png         the radiograph (8-bit, windowed by gazex_core's reader)
    OUT/videos/*.mp4         key frames at 1 fps, at a quarter of the image size (upstream's scale)

Key frames follow gazex_method.md §3: one frame per gaze cluster in time order, grey image x (0.15 + 0.85 x
heat); the heat here is a Gaussian at the clue's centroid sized by its box (our key-frame pipeline keeps
boxes and centroids, not the cluster's pixels). Ordering targets use single digits, so a shuffled video
has at most 9 frames (the longest dwells, kept in time order). Paths in the JSON are relative to OUT.

Every dictated sentence with gaze counts as a "finding" for the clip tasks (upstream cuts one clip per
sentence, normal statements included). Gaze tasks (report_gaze, finding, order, finding_order, and the grounding task's clues) need gaze: a study
without gaze gets only the gaze-free report task, and the export says how many studies that was.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gazex_core.evidence import Box
from gazex_core.imaging import load_image
from gazex_core.upstream_format import (COORD_SCALE, Grounding, Ordering, ScaledBox, format_grounding, format_order,
                                        parse_grounding, parse_order, prompt, task_of_prompt)

TASKS = ("report_gaze", "report", "finding", "ground", "order", "finding_order")
MAX_VIDEO_FRAMES = 128  # upstream video_maxlen
MAX_ORDER_FRAMES = 9  # <seq> holds one digit per frame
IMAGE_LONG_SIDE = 1024
DATASET_NAME = "gazex"
SFT_FILE = "gazex_sft.json"


class ExportError(ValueError):
    """A dataset that cannot be exported (one line)."""


@dataclass
class SftRecord:
    """One ShareGPT record, read back."""

    task: str
    user: str
    assistant: str
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    study_id: str | None = None

    @property
    def grounding(self) -> Grounding:
        return parse_grounding(self.assistant)

    @property
    def ordering(self) -> Ordering:
        return parse_order(self.assistant)


# --- frames ---------------------------------------------------------------------------------------


def _small_grey(study) -> np.ndarray:
    import cv2

    pixels = load_image(study.image_path).pixels
    h, w = pixels.shape
    small = cv2.resize(pixels, (max(1, w // COORD_SCALE), max(1, h // COORD_SCALE)), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0, 1)


def _heat_frame(grey: np.ndarray, clues: list[list[float]]) -> np.ndarray:
    """grey x (0.15 + 0.85 x heat) for Gaussians at the clues (normalised cx, cy, w, h, dwell)."""
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    heat = np.zeros_like(grey, dtype=np.float32)
    for cx, cy, bw, bh, *_ in clues:
        sx, sy = max(bw * w / 4, 1.5), max(bh * h / 4, 1.5)
        heat += np.exp(-(((xx - cx * w) / sx) ** 2 + ((yy - cy * h) / sy) ** 2) / 2)
    heat = np.log1p(heat)
    heat /= heat.max() if heat.max() > 0 else 1.0
    return (np.clip(grey * (0.15 + 0.85 * heat), 0, 1) * 255 + 0.5).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    import cv2

    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1.0, (w, h))
    if not writer.isOpened():
        raise ExportError(f"{path}: OpenCV cannot write mp4 here")
    for frame in frames:
        writer.write(np.repeat(frame[:, :, None], 3, axis=2))
    writer.release()


def read_video(path: str | Path) -> list[np.ndarray]:
    """RGB uint8 frames of a key-frame video (for training and the round-trip test)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1].copy())
    cap.release()
    if not frames:
        raise ExportError(f"{path}: no frames could be read")
    return frames


# --- targets --------------------------------------------------------------------------------------


def _report_text(record: dict) -> str:
    parts = []
    for section in ("findings", "impression"):
        text = " ".join(s["text"] for s in record["sentences"] if s["section"] == section)
        if text:
            parts.append(f"{section.upper()}: {text}")
    return "\n".join(parts)


def _grounding_target(clues: list[list[float]], obs: list[float] | None, width: int, height: int) -> str:
    boxes = [ScaledBox.from_normalised(Box(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2).clipped(1, 1),
                                       width, height, centre=(cx, cy)) for cx, cy, bw, bh, *_ in clues]
    obs_box = ScaledBox.from_normalised(Box(*obs).clipped(1, 1), width, height) if obs else None
    return format_grounding(boxes, obs_box)


def _order_sample(frames: list[list[float]], rng: random.Random) -> tuple[list[list[float]], list[int]]:
    """Up to 9 frames (longest dwells, time order kept), shuffled; returns (shuffled, viewing order 1-based)."""
    keep = sorted(sorted(range(len(frames)), key=lambda i: -frames[i][4])[:MAX_ORDER_FRAMES])
    kept = [frames[i] for i in keep]
    perm = list(range(len(kept)))
    rng.shuffle(perm)
    shuffled = [kept[p] for p in perm]
    position = {p: i + 1 for i, p in enumerate(perm)}
    return shuffled, [position[t] for t in range(len(kept))]


# --- export ---------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, out: Path, seed: int):
        self.out = out
        self.rng = random.Random(seed)
        self.records: list[dict] = []
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "videos").mkdir(parents=True, exist_ok=True)

    def add(self, task: str, user: str, assistant: str, study_id: str, image: str | None, videos: list[str],
            reader: str | None = None) -> None:
        self.records.append({
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
            "images": [image] if image else [], "videos": videos,
            "gazex": {"task": task, "study_id": study_id, "reader": reader}})

    def video(self, name: str, grey: np.ndarray, clue_frames: list[list[list[float]]]) -> str:
        rel = f"videos/{name}.mp4"
        write_video(self.out / rel, [_heat_frame(grey, c) for c in clue_frames])
        return rel


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def _export_study(w: _Writer, study, record: dict, tasks: tuple[str, ...]) -> bool:
    """Writes one study's records; returns whether it had gaze."""
    import cv2

    sid = _safe(study.study_id)
    grey = _small_grey(study)
    full = load_image(study.image_path).pixels
    h, wd = full.shape
    scale = min(1.0, IMAGE_LONG_SIDE / max(h, wd))
    png = cv2.resize(full, (round(wd * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else full
    image = f"images/{sid}.png"
    cv2.imwrite(str(w.out / image), (np.clip(png, 0, 1) * 255 + 0.5).astype(np.uint8))
    width, height = record["width"], record["height"]
    report = _report_text(record)
    if "report" in tasks and report:
        w.add("report", prompt("report"), report, study.study_id, image, [])
    for reading in record["readings"]:
        reader = _safe(reading["reader"])
        frames = reading["frames"][:MAX_VIDEO_FRAMES]
        if "report_gaze" in tasks and frames and report:
            video = w.video(f"{sid}_{reader}", grey, [[f] for f in frames])
            w.add("report_gaze", prompt("report_gaze", n_frames=len(frames)), report, study.study_id, image,
                  [video], reader)
        if "order" in tasks and len(frames) >= 2 and report:
            shuffled, order = _order_sample(frames, w.rng)
            video = w.video(f"{sid}_{reader}_shuffled", grey, [[f] for f in shuffled])
            w.add("order", prompt("order", n_frames=len(shuffled)), format_order(order, report), study.study_id,
                  image, [video], reader)
        for j, (sentence, gaze) in enumerate(zip(record["sentences"], reading["sentences"])):
            if gaze is None or not gaze["clues"]:
                continue
            clues = gaze["clues"]
            if "ground" in tasks:
                w.add("ground", prompt("ground", sentence=sentence["text"]),
                      _grounding_target(clues, gaze.get("obs"), width, height), study.study_id, image, [], reader)
            if "finding" in tasks:
                video = w.video(f"{sid}_{reader}_s{j + 1}", grey, [[c] for c in clues] + [clues])
                w.add("finding", prompt("finding", n_frames=len(clues) + 1), sentence["text"], study.study_id,
                      image, [video], reader)
            if "finding_order" in tasks and len(clues) >= 2:
                shuffled, order = _order_sample(clues, w.rng)
                video = w.video(f"{sid}_{reader}_s{j + 1}_shuffled", grey, [[c] for c in shuffled])
                w.add("finding_order", prompt("finding_order", n_frames=len(shuffled)), format_order(order),
                      study.study_id, None, [video], reader)
    return bool(record["readings"])


def export_sharegpt(studies, out_dir: str | Path, tasks: tuple[str, ...] = TASKS, seed: int = 0) -> dict:
    """Writes OUT (see module doc); returns a summary {records, studies, studies_without_gaze, per_task}."""
    from training.tasks import study_record

    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ExportError(f"unknown task(s) {sorted(unknown)}; known: {', '.join(TASKS)}")
    out = Path(out_dir)
    writer = _Writer(out, seed)
    without_gaze = 0
    for study in tqdm(studies, desc="export-sft", unit="study"):
        if study.image_path is None:
            continue
        record = study_record(study)
        without_gaze += not _export_study(writer, study, record, tasks)
    (out / SFT_FILE).write_text(json.dumps(writer.records, indent=1))
    (out / "dataset_info.json").write_text(json.dumps({DATASET_NAME: dataset_info_entry()}, indent=2))
    per_task = {t: sum(r["gazex"]["task"] == t for r in writer.records) for t in TASKS}
    return {"records": len(writer.records), "studies": len(studies), "studies_without_gaze": without_gaze,
            "per_task": per_task}


def dataset_info_entry() -> dict:
    return {"file_name": SFT_FILE, "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images", "videos": "videos"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}


def read_sharegpt(path: str | Path) -> list[SftRecord]:
    """A ShareGPT JSON (ours or upstream's) -> SftRecords; paths made absolute against the file's folder."""
    path = Path(path)
    if path.is_dir():
        path = path / SFT_FILE
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: cannot read ({exc})") from exc
    out = []
    for i, row in enumerate(rows):
        try:
            user = next(m["content"] for m in row["messages"] if m["role"] == "user")
            assistant = next(m["content"] for m in row["messages"] if m["role"] == "assistant")
        except (KeyError, StopIteration, TypeError):
            raise ExportError(f"{path}: record {i}: needs a user and an assistant message") from None
        meta = row.get("gazex") or {}
        task = meta.get("task") or task_of_prompt(user)
        if task is None:
            raise ExportError(f"{path}: record {i}: prompt matches none of the GazeX tasks")
        out.append(SftRecord(task=task, user=user, assistant=assistant,
                             images=[str(path.parent / p) for p in row.get("images", [])],
                             videos=[str(path.parent / p) for p in row.get("videos", [])],
                             study_id=meta.get("study_id")))
    return out


def main(args) -> int:
    from training.data.loaders import load_dataset

    result = load_dataset(args.kind, args.data)
    for issue in result.issues:
        print(issue)
    tasks = tuple(args.tasks.split(",")) if args.tasks else TASKS
    summary = export_sharegpt(result.studies[:args.limit] if args.limit else result.studies, args.out, tasks,
                              seed=args.seed)
    print(f"wrote {summary['records']} records from {summary['studies']} studies to {args.out} "
          f"({summary['studies_without_gaze']} without gaze: gaze-free tasks only); per task: {summary['per_task']}")
    return 0


def add_export_command(subparsers) -> None:
    p = subparsers.add_parser("export-sft", help="write the six GazeX tasks in the upstream ShareGPT format")
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--kind", default="synthetic", help="loader: synthetic, reflacx, egd-cxr, ...")
    p.add_argument("--format", default="sharegpt", choices=["sharegpt"])
    p.add_argument("--out", required=True)
    p.add_argument("--tasks", default=None, help=f"comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=main)
