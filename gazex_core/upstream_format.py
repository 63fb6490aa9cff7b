"""The upstream GazeX text format (the official code trains Qwen2-VL on it through LLaMA-Factory).

Six tasks, all supervised next-token targets (gazex_method.md §4, real_world.md §6):

=========  ===============================  =======================================================
task       input                            target
=========  ===============================  =======================================================
report_gaze  key-frame video + image        the report's sentences
report     image only                       the same sentences
finding    one sentence's key-frame clip    that sentence
ground     image + one sentence             ``visual clues : [(x1,y1)(x2,y2)(cx,cy),...] observation : [...]``
order      shuffled key-frame video + image ``<seq>31245</seq><description>...</description>``
finding_order  one sentence's shuffled clip ``<seq>...</seq>``
=========  ===============================  =======================================================

Coordinates are integers in the image downscaled by 4 (upstream's preprocessing divides image and gaze by
4). :func:`parse_grounding` and :func:`parse_order` keep what they can read and list what they dropped, so a
malformed model output never silently becomes an empty trajectory.

Imports nothing outside gazex_core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .evidence import Box, TrajectoryPoint

COORD_SCALE = 4  # upstream coordinates are pixels of the image divided by 4
IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"

PROMPTS: dict[str, str] = {
    "report_gaze": ("This video contains {n_frames} frames of a radiologist's eye-tracking data while reading the "
                    "chest X-ray. This is the X-ray. Generate a detailed description or diagnosis of the X-ray."),
    "report": ("This is a chest X-ray. Using the radiologist's interpretation pattern, generate a detailed "
               "description of the X-ray."),
    "finding": ("This video contains {n_frames} frames of a radiologist's eye-tracking data on one finding of the "
                "chest X-ray. This is the X-ray. Describe the finding the radiologist was looking at."),
    "ground": ("This is a chest X-ray. For the finding \"{sentence}\", identify the visual clues and an overall "
               "observation area."),
    "order": ("This video contains {n_frames} shuffled frames of a radiologist's eye-tracking data. This is the "
              "X-ray. Put the frames in the order the radiologist looked at them and describe the X-ray."),
    "finding_order": ("This video contains {n_frames} shuffled frames of a radiologist's eye-tracking data on one "
                      "finding. Put the frames in the order the radiologist looked at them."),
}
VIDEO_TASKS = ("report_gaze", "finding", "order", "finding_order")
IMAGE_TASKS = ("report_gaze", "report", "finding", "ground", "order")
GAZE_TASKS = VIDEO_TASKS

_TRIPLE = re.compile(r"\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)")
_GROUP = re.compile(r"\[([^\[\]]*)\]")
_SEQ = re.compile(r"<seq>\s*([0-9]*)\s*</seq>")
_DESCRIPTION = re.compile(r"<description>(.*?)(?:</descriptions?>|$)", re.S)


def prompt(task: str, *, n_frames: int = 0, sentence: str = "") -> str:
    """The user turn for ``task`` with its ``<video>`` / ``<image>`` placeholders, in upstream order."""
    if task not in PROMPTS:
        raise ValueError(f"task {task!r} is not one of {sorted(PROMPTS)}")
    head = (VIDEO_TOKEN if task in VIDEO_TASKS else "") + (IMAGE_TOKEN if task in IMAGE_TASKS else "")
    return head + PROMPTS[task].format(n_frames=n_frames, sentence=sentence)


def task_of_prompt(text: str) -> str | None:
    """The task whose wording a user turn uses (round trip of :func:`prompt`)."""
    body = text.replace(VIDEO_TOKEN, "").replace(IMAGE_TOKEN, "")
    for task, template in PROMPTS.items():
        pattern = re.escape(template).replace(re.escape("{n_frames}"), r"\d+").replace(re.escape("{sentence}"), ".*")
        if re.fullmatch(pattern, body, re.S):
            return task
    return None


# --- grounding: visual clues and observation ------------------------------------------------------


@dataclass
class ScaledBox:
    """A box with its centroid, in upstream coordinates (pixels / 4)."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int
    cx: int
    cy: int

    def text(self) -> str:
        return f"({self.x_min},{self.y_min})({self.x_max},{self.y_max})({self.cx},{self.cy})"

    def to_box(self, width: int, height: int) -> Box:
        """Normalised 0-1 box of an image of ``width`` x ``height`` original pixels."""
        sw, sh = width / COORD_SCALE, height / COORD_SCALE
        return Box(self.x_min / sw, self.y_min / sh, self.x_max / sw, self.y_max / sh).clipped(1.0, 1.0)

    def centre(self, width: int, height: int) -> tuple[float, float]:
        sw, sh = width / COORD_SCALE, height / COORD_SCALE
        return min(max(self.cx / sw, 0.0), 1.0), min(max(self.cy / sh, 0.0), 1.0)

    @classmethod
    def from_normalised(cls, box: Box, width: int, height: int, centre: tuple[float, float] | None = None) -> "ScaledBox":
        sw, sh = width / COORD_SCALE, height / COORD_SCALE
        cx, cy = centre if centre is not None else box.center
        return cls(round(box.x_min * sw), round(box.y_min * sh), round(box.x_max * sw), round(box.y_max * sh),
                   round(cx * sw), round(cy * sh))


@dataclass
class Grounding:
    clues: list[ScaledBox] = field(default_factory=list)
    observation: ScaledBox | None = None
    dropped: list[str] = field(default_factory=list)  # what could not be read, one line each

    def trajectory(self, width: int, height: int, dwell_ms: float = 0.0) -> list[TrajectoryPoint]:
        points = []
        for clue in self.clues:
            x, y = clue.centre(width, height)
            points.append(TrajectoryPoint(x, y, dwell_ms, clue.to_box(width, height)))
        return points


def format_grounding(clues: list[ScaledBox], observation: ScaledBox | None) -> str:
    text = "visual clues : [" + ",".join(c.text() for c in clues) + "]"
    if observation is not None:
        text += " observation : [" + observation.text() + "]"
    return text


def _parse_box(chunk: str) -> ScaledBox | None:
    pairs = _TRIPLE.findall(chunk)
    if len(pairs) != 3:
        return None
    (x0, y0), (x1, y1), (cx, cy) = [(round(float(a)), round(float(b))) for a, b in pairs]
    if x1 < x0 or y1 < y0 or min(x0, y0) < 0:
        return None
    return ScaledBox(x0, y0, x1, y1, cx, cy)


def _split_boxes(group: str) -> list[str]:
    """'(a,b)(c,d)(e,f),(g,h)...' -> one chunk per three parenthesised pairs."""
    pairs = list(_TRIPLE.finditer(group))
    chunks = [group[pairs[i].start():pairs[i + 2].end()] for i in range(0, len(pairs) - 2, 3)]
    leftover = len(pairs) % 3
    if leftover:
        chunks.append(group[pairs[-leftover].start():])
    return chunks


def parse_grounding(text: str) -> Grounding:
    """``visual clues : [...] observation : [...]`` -> clue boxes in temporal order + observation box."""
    out = Grounding()
    lower = text.lower()
    clue_at, obs_at = lower.find("visual clues"), lower.find("observation")
    if clue_at < 0:
        out.dropped.append("no 'visual clues' list")
    else:
        end = obs_at if obs_at > clue_at else len(text)
        group = _GROUP.search(text[clue_at:end])
        if group is None:
            out.dropped.append("'visual clues' without a [...] list")
        else:
            for chunk in _split_boxes(group.group(1)):
                box = _parse_box(chunk)
                if box is None:
                    out.dropped.append(f"clue {chunk.strip()!r} is not (x1,y1)(x2,y2)(cx,cy) with x1<=x2, y1<=y2")
                else:
                    out.clues.append(box)
    if obs_at >= 0:
        group = _GROUP.search(text[obs_at:])
        box = _parse_box(group.group(1)) if group else None
        if box is None:
            out.dropped.append("observation is not one (x1,y1)(x2,y2)(cx,cy) box")
        out.observation = box
    return out


# --- ordering ---------------------------------------------------------------------------------------


@dataclass
class Ordering:
    order: list[int] = field(default_factory=list)  # 1-based frame numbers in viewing order
    description: str = ""
    dropped: list[str] = field(default_factory=list)


def format_order(order: list[int], description: str | None = None) -> str:
    seq = "<seq>" + "".join(str(i) for i in order) + "</seq>"
    return seq if description is None else seq + f"<description>{description}</description>"


def parse_order(text: str, n_frames: int | None = None) -> Ordering:
    """``<seq>31245</seq><description>...`` (upstream closes with ``</descriptions>``; both are read)."""
    out = Ordering()
    seq = _SEQ.search(text)
    if seq is None:
        out.dropped.append("no <seq>...</seq>")
    else:
        digits = [int(c) for c in seq.group(1)]
        expected = set(range(1, (n_frames or len(digits)) + 1))
        if set(digits) != expected or len(digits) != len(expected):
            out.dropped.append(f"<seq>{seq.group(1)}</seq> is not a permutation of 1..{len(expected)}")
        else:
            out.order = digits
    desc = _DESCRIPTION.search(text)
    if desc:
        out.description = desc.group(1).strip()
    return out


# --- report text ------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_SECTION_HEAD = re.compile(r"^\s*(findings|impression)\s*:\s*", re.I)


def split_report(text: str) -> list[tuple[str, str]]:
    """Report text -> [(section, sentence)]: ``FINDINGS:`` / ``IMPRESSION:`` heads when present, else findings."""
    out: list[tuple[str, str]] = []
    section = "findings"
    for paragraph in re.split(r"\n\s*\n|\n", text.strip()):
        head = _SECTION_HEAD.match(paragraph)
        if head:
            section = head.group(1).lower()
            paragraph = paragraph[head.end():]
        for sentence in _SENTENCE_END.split(paragraph.strip()):
            if sentence.strip():
                out.append((section, sentence.strip()))
    return out
