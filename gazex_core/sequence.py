"""The GazeX token-sequence format: how reports, trajectories, boxes and answers become tokens, and back.

A sequence is a list of *items*: special-token strings (``"<reg_cardiac>"``, ``"<b37>"``) and plain
text (``str`` that is not a special token, BPE-encoded by :mod:`gazex_core.tokenizer`). Coordinates
are quantised into ``N_BINS`` = 100 bins of the *original* image, normalised to 0-1 (as MAIRA-2 does);
bin ``k`` covers ``[k/100, (k+1)/100)`` and decodes to its centre.

One report sentence (a :class:`SentenceBlock`) is written, in ABCDEF reading order::

    <sec_findings> <reg_breathing>                 section, region (or <reg_none>)
    cx cy <szW_H> <dwK>  ...                       ordered trajectory (<= MAX_CLUES key frames): clue centroid
                                                   (2 bins), clue-box size (one token: width bin x height bin,
                                                   SIZE_EDGES), dwell bin (DWELL_EDGES_MS)
    <box> x1 y1 x2 y2 | <nobox>                    observation box
    <lab_Pleural_Effusion> | <lab_none>            finding label stated as present
    Small left pleural effusion.                   the text

Tasks (prompt -> target; ``<bos>`` starts and ``<eos>`` ends every sequence):

* ``<task_report>`` -> sentence blocks (the report with per-sentence trajectory, task a/f)
* ``<task_plain>`` -> ``<sec_..> text`` per sentence (gaze-free plain report, task f)
* ``<task_ground> sentence <sep>`` -> ``<reg_..> clues <box..>|<nobox> <lab_..>`` (phrase grounding, task b)
* ``<task_order> <k0> cx cy <k1> cx cy ... <sep>`` -> ``<kI> <kJ> ...`` (trajectory ordering, task c)
* ``<task_vqa> question <sep>`` -> ``answer [<box> x1 y1 x2 y2]`` (VQA, task d)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .evidence import Box, TrajectoryPoint
from .vocab import CHEXPERT_LABELS, REGIONS, SECTIONS

N_BINS = 100
DWELL_EDGES_MS = (150.0, 300.0, 600.0, 1200.0, 2400.0, 4800.0)  # 7 bins: <dw0> .. <dw6>
SIZE_EDGES = (0.04, 0.08, 0.12, 0.17, 0.23, 0.30, 0.40)  # 8 bins of clue-box width/height (normalised)
MAX_CLUES = 3  # key frames kept per sentence (the longest dwells, in time order)
MAX_ORDER_FRAMES = 16

BOS, EOS, PAD, UNK, SEP = "<bos>", "<eos>", "<pad>", "<unk>", "<sep>"
BOX, NOBOX = "<box>", "<nobox>"
TASKS = ("report", "plain", "ground", "order", "vqa")


def task_token(task: str) -> str:
    return f"<task_{task}>"


def label_token(label: str | None) -> str:
    return "<lab_none>" if label is None else "<lab_" + label.replace(" ", "_") + ">"


def region_token(region: str | None) -> str:
    return f"<reg_{region}>" if region in REGIONS else "<reg_none>"


def section_token(section: str) -> str:
    return f"<sec_{section}>"


def bin_token(k: int) -> str:
    return f"<b{k}>"


def dwell_token(k: int) -> str:
    return f"<dw{k}>"


def size_token(w: int, h: int) -> str:
    return f"<sz{w}_{h}>"


def frame_token(k: int) -> str:
    return f"<k{k}>"


def special_tokens() -> list[str]:
    """Every special token, in a fixed order (their ids follow this order after the BPE vocabulary)."""
    toks = [PAD, BOS, EOS, UNK, SEP, BOX, NOBOX]
    toks += [task_token(t) for t in TASKS]
    toks += [section_token(s) for s in SECTIONS]
    toks += [region_token(r) for r in REGIONS] + [region_token(None)]
    toks += [label_token(lab) for lab in CHEXPERT_LABELS] + [label_token(None)]
    toks += [bin_token(k) for k in range(N_BINS)]
    toks += [dwell_token(k) for k in range(len(DWELL_EDGES_MS) + 1)]
    toks += [size_token(w, h) for w in range(len(SIZE_EDGES) + 1) for h in range(len(SIZE_EDGES) + 1)]
    toks += [frame_token(k) for k in range(MAX_ORDER_FRAMES)]
    return toks


SPECIAL_TOKENS: tuple[str, ...] = tuple(special_tokens())
_SPECIAL_SET = frozenset(SPECIAL_TOKENS)
_LABEL_OF = {label_token(lab): lab for lab in CHEXPERT_LABELS} | {label_token(None): None}
_REGION_OF = {region_token(r): r for r in REGIONS} | {region_token(None): None}
_SECTION_OF = {section_token(s): s for s in SECTIONS}
LABEL_TOKENS: tuple[str, ...] = tuple(_LABEL_OF)
REGION_TOKENS: tuple[str, ...] = tuple(_REGION_OF)
SECTION_TOKENS: tuple[str, ...] = tuple(_SECTION_OF)
BIN_TOKENS: tuple[str, ...] = tuple(bin_token(k) for k in range(N_BINS))
DWELL_TOKENS: tuple[str, ...] = tuple(dwell_token(k) for k in range(len(DWELL_EDGES_MS) + 1))


class SequenceError(ValueError):
    """A token sequence that does not follow the format (only raised in strict parsing)."""


def is_special(item: str) -> bool:
    return item in _SPECIAL_SET


# ---------------------------------------------------------------- quantisation


def quantise(v: float) -> int:
    """0-1 value -> bin 0..99 (clipped)."""
    if not math.isfinite(v):
        v = 0.0
    return min(N_BINS - 1, max(0, int(math.floor(v * N_BINS))))


def dequantise(k: int) -> float:
    return (k + 0.5) / N_BINS


def dwell_bin(ms: float) -> int:
    for i, edge in enumerate(DWELL_EDGES_MS):
        if ms < edge:
            return i
    return len(DWELL_EDGES_MS)


def size_bin(v: float) -> int:
    for i, edge in enumerate(SIZE_EDGES):
        if v < edge:
            return i
    return len(SIZE_EDGES)


def size_of_bin(k: int) -> float:
    lo = SIZE_EDGES[k - 1] if k > 0 else 0.02
    hi = SIZE_EDGES[k] if k < len(SIZE_EDGES) else 0.5
    return (lo + hi) / 2


def _size_of(item: str) -> tuple[int, int] | None:
    if item.startswith("<sz") and item.endswith(">") and "_" in item:
        a, b = item[3:-1].split("_", 1)
        if a.isdigit() and b.isdigit():
            return int(a), int(b)
    return None


def dwell_ms_of_bin(k: int) -> float:
    """Representative dwell of a bin (geometric centre; the open ends use 100 ms and 6000 ms)."""
    lo = DWELL_EDGES_MS[k - 1] if k > 0 else 100.0
    hi = DWELL_EDGES_MS[k] if k < len(DWELL_EDGES_MS) else 7500.0
    return float(math.sqrt(lo * hi))


def box_items(box: Box) -> list[str]:
    x1, y1 = quantise(box.x_min), quantise(box.y_min)
    x2, y2 = max(x1, quantise(box.x_max)), max(y1, quantise(box.y_max))
    return [BOX, bin_token(x1), bin_token(y1), bin_token(x2), bin_token(y2)]


def _bin_of(item: str) -> int | None:
    if item.startswith("<b") and item.endswith(">") and item[2:-1].isdigit():
        k = int(item[2:-1])
        return k if 0 <= k < N_BINS else None
    return None


def _dwell_of(item: str) -> int | None:
    if item.startswith("<dw") and item.endswith(">") and item[3:-1].isdigit():
        return int(item[3:-1])
    return None


def _box_from_bins(b: list[int]) -> Box:
    x1, y1, x2, y2 = b
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    # min corners decode to their bin's start, max corners to their bin's end (a 1-bin box is 1/N_BINS wide);
    # every coordinate is within 1/N_BINS of the original
    return Box(x1 / N_BINS, y1 / N_BINS, (x2 + 1) / N_BINS, (y2 + 1) / N_BINS)


# ---------------------------------------------------------------- structures


@dataclass
class Clue:
    """One key frame of the trajectory, normalised 0-1: centroid, clue-box size, dwell."""

    cx: float
    cy: float
    w: float
    h: float
    dwell_ms: float

    def items(self) -> list[str]:
        return [bin_token(quantise(self.cx)), bin_token(quantise(self.cy)),
                size_token(size_bin(self.w), size_bin(self.h)), dwell_token(dwell_bin(self.dwell_ms))]

    def box(self) -> Box:
        x1, y1 = max(0.0, self.cx - self.w / 2), max(0.0, self.cy - self.h / 2)
        return Box(x1, y1, max(x1, min(1.0, self.cx + self.w / 2)), max(y1, min(1.0, self.cy + self.h / 2)))

    def to_point(self) -> TrajectoryPoint:
        return TrajectoryPoint(x=min(max(self.cx, 0.0), 1.0), y=min(max(self.cy, 0.0), 1.0), dwell_ms=self.dwell_ms,
                               clue_box=self.box())

    @classmethod
    def from_box(cls, box: Box, cx: float, cy: float, dwell_ms: float) -> "Clue":
        return cls(cx=cx, cy=cy, w=box.width, h=box.height, dwell_ms=dwell_ms)


@dataclass
class SentenceBlock:
    """One report sentence with its evidence (normalised coordinates)."""

    section: str = "findings"
    region: str | None = None
    clues: list[Clue] = field(default_factory=list)
    box: Box | None = None
    label: str | None = None
    text: str = ""


def _clue_items(clues: list[Clue]) -> list[str]:
    return [it for c in clues for it in c.items()]


def evidence_items(block: SentenceBlock, with_clues: bool = True) -> list[str]:
    """region, clues, box, label (the grounding target)."""
    items = [region_token(block.region)]
    if with_clues:
        items += _clue_items(block.clues)
    items += box_items(block.box) if block.box is not None else [NOBOX]
    items.append(label_token(block.label))
    return items


def serialise_report(blocks: list[SentenceBlock], with_clues: bool = True) -> list[str]:
    """Target of the report task (without <bos>/<task>; with <eos>)."""
    items: list[str] = []
    for b in blocks:
        items.append(section_token(b.section))
        items += evidence_items(b, with_clues)
        items.append(b.text)
    return items + [EOS]


def serialise_plain(blocks: list[SentenceBlock]) -> list[str]:
    items: list[str] = []
    for b in blocks:
        items += [section_token(b.section), b.text]
    return items + [EOS]


def prompt(task: str, *extra: str) -> list[str]:
    return [BOS, task_token(task), *extra]


def ground_prompt(sentence: str) -> list[str]:
    return prompt("ground", sentence.strip(), SEP)


def vqa_prompt(question: str) -> list[str]:
    return prompt("vqa", question.strip(), SEP)


def order_prompt(frames: list[Clue]) -> list[str]:
    items: list[str] = []
    for i, c in enumerate(frames[:MAX_ORDER_FRAMES]):
        items += [frame_token(i), bin_token(quantise(c.cx)), bin_token(quantise(c.cy))]
    return prompt("order", *items, SEP)


def serialise_order(order: list[int]) -> list[str]:
    return [frame_token(i) for i in order] + [EOS]


def serialise_answer(answer: str, box: Box | None = None) -> list[str]:
    return [answer.strip()] + (box_items(box) if box is not None else []) + [EOS]


# ---------------------------------------------------------------- parsing


def _strip(items: list[str]) -> list[str]:
    out = []
    for it in items:
        if it == EOS:
            break
        if it in (PAD, BOS):
            continue
        out.append(it)
    return out


def _parse_evidence(items: list[str], i: int, block: SentenceBlock, strict: bool) -> int:
    """Parse region/clues/box/label starting at i into block; returns the index after them."""
    n = len(items)
    if i < n and items[i] in _REGION_OF:
        block.region = _REGION_OF[items[i]]
        i += 1
    while i < n and _bin_of(items[i]) is not None:
        bx = _bin_of(items[i])
        by = _bin_of(items[i + 1]) if i + 1 < n else None
        sz = _size_of(items[i + 2]) if i + 2 < n else None
        dw = _dwell_of(items[i + 3]) if i + 3 < n else None
        if by is not None and sz is not None and dw is not None:
            block.clues.append(Clue(dequantise(bx), dequantise(by), size_of_bin(sz[0]), size_of_bin(sz[1]),
                                    dwell_ms_of_bin(dw)))
            i += 4
        else:
            if strict:
                raise SequenceError(f"malformed clue at item {i}: {items[i:i + 4]}")
            i += 1
            while i < n and (_bin_of(items[i]) is not None or _dwell_of(items[i]) is not None
                             or _size_of(items[i]) is not None):
                i += 1
    if i < n and items[i] == BOX:
        bins = [_bin_of(x) for x in items[i + 1 : i + 5]]
        if len(bins) == 4 and None not in bins:
            block.box = _box_from_bins(bins)  # type: ignore[arg-type]
            i += 5
        else:
            if strict:
                raise SequenceError(f"malformed box at item {i}: {items[i:i + 5]}")
            i += 1
            while i < n and _bin_of(items[i]) is not None:
                i += 1
    elif i < n and items[i] == NOBOX:
        i += 1
    if i < n and items[i] in _LABEL_OF:
        block.label = _LABEL_OF[items[i]]
        i += 1
    return i


def parse_report(items: list[str], strict: bool = False) -> list[SentenceBlock]:
    """Target items (after the prompt) -> sentence blocks. Lenient by default: skips what it cannot read."""
    items = _strip(items)
    blocks: list[SentenceBlock] = []
    i, n = 0, len(items)
    while i < n:
        it = items[i]
        if it not in _SECTION_OF:
            if strict:
                raise SequenceError(f"expected a section token at item {i}, got {it!r}")
            i += 1
            continue
        block = SentenceBlock(section=_SECTION_OF[it])
        i = _parse_evidence(items, i + 1, block, strict)
        texts = []
        while i < n and items[i] not in _SECTION_OF:
            if not is_special(items[i]):
                texts.append(items[i])
            elif strict:
                raise SequenceError(f"unexpected {items[i]!r} in sentence text at item {i}")
            i += 1
        block.text = " ".join(t.strip() for t in texts if t.strip())
        blocks.append(block)
    return blocks


def parse_evidence(items: list[str], strict: bool = False) -> SentenceBlock:
    """Grounding target -> a block (region, clues, box, label; no text)."""
    items = _strip(items)
    block = SentenceBlock()
    end = _parse_evidence(items, 0, block, strict)
    if strict and end != len(items):
        raise SequenceError(f"trailing items after grounding target: {items[end:]}")
    return block


def parse_order(items: list[str], n_frames: int | None = None) -> list[int]:
    out: list[int] = []
    for it in _strip(items):
        if it.startswith("<k") and it.endswith(">") and it[2:-1].isdigit():
            k = int(it[2:-1])
            if k not in out and (n_frames is None or k < n_frames):
                out.append(k)
    return out


def parse_answer(items: list[str]) -> tuple[str, Box | None]:
    items = _strip(items)
    text = " ".join(it.strip() for it in items if not is_special(it) and it.strip())
    box = None
    for i, it in enumerate(items):
        if it == BOX:
            bins = [_bin_of(x) for x in items[i + 1 : i + 5]]
            if len(bins) == 4 and None not in bins:
                box = _box_from_bins(bins)  # type: ignore[arg-type]
            break
    return text, box


def select_clues(clues: list[Clue], k: int = MAX_CLUES) -> list[Clue]:
    """The ``k`` longest-dwell clues, kept in their time order."""
    if len(clues) <= k:
        return list(clues)
    keep = sorted(sorted(range(len(clues)), key=lambda i: -clues[i].dwell_ms)[:k])
    return [clues[i] for i in keep]
