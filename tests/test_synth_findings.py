"""Every finding type is really visible inside its ground-truth box.

Each finding is drawn into a study and the same study is rendered again without it (same
anatomy, same noise). Thresholds, on displayed intensity (0-1):
- mean |with - without| inside the box >= 0.03 for area findings (3% of the display range,
  ~120 of 4096 grey levels), and at least 5x the mean change outside the box (it is local);
- thin devices (lines, tubes, leads): the 99th percentile change inside the box >= 0.2.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from training.synth.findings import DEVICES, SAMPLERS, SynthFinding
from training.synth.study import render_image, sample_study_findings

SIZE = 256
CASES = [(k, None) for k in SAMPLERS if k != "support_device"] + [("support_device", d) for d in DEVICES]
MIN_MEAN_CHANGE = 0.03
MIN_LOCALITY = 5.0
MIN_DEVICE_P99 = 0.2


def with_and_without(kind: str, device: str | None, index: int):
    anatomy, _ = sample_study_findings(11, index, SIZE)
    rng = np.random.default_rng(zlib.crc32(f"{kind}/{device}/{index}".encode()))
    finding: SynthFinding = SAMPLERS[kind](rng, anatomy)
    while device is not None and finding.device != device:
        finding = SAMPLERS[kind](rng, anatomy)
    finding.texture_seed = index
    _, with_finding = render_image(11, index, anatomy, [finding])
    _, without = render_image(11, index, anatomy, [])
    return finding, with_finding, without


@pytest.mark.parametrize("kind,device", CASES)
@pytest.mark.parametrize("index", [0, 1])
def test_finding_is_visible_in_its_box(kind, device, index):
    finding, with_finding, without = with_and_without(kind, device, index)
    assert finding.box is not None
    x0, y0, x1, y1 = (int(round(v)) for v in finding.box)
    assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
    change = np.abs(with_finding - without)
    inside = change[y0:y1, x0:x1]
    outside = np.ones(change.shape, bool)
    outside[y0:y1, x0:x1] = False
    if kind == "support_device":
        assert np.percentile(inside, 99) >= MIN_DEVICE_P99
    else:
        assert inside.mean() >= MIN_MEAN_CHANGE
        assert inside.mean() >= MIN_LOCALITY * change[outside].mean()


@pytest.mark.parametrize("index", [0, 1])
def test_pneumothorax_space_is_darker_than_the_lung_it_replaced(index):
    finding, with_finding, without = with_and_without("pneumothorax", None, index)
    x0, y0, x1, y1 = (int(round(v)) for v in finding.box)
    # the collapsed space is darker than the aerated lung that was there (no vessels, more air)
    assert with_finding[y0:y1, x0:x1].min() < without[y0:y1, x0:x1].min()
    assert (without[y0:y1, x0:x1] - with_finding[y0:y1, x0:x1]).max() > 0.05


def test_cardiomegaly_raises_the_cardiothoracic_ratio_above_half():
    finding, with_finding, _ = with_and_without("cardiomegaly", None, 0)
    anatomy, _ = sample_study_findings(11, 0, SIZE)
    width = finding.box[2] - finding.box[0]
    assert width / anatomy.thoracic_width > 0.5
    assert anatomy.heart_ctr < 0.5


def test_normal_fraction_and_finding_counts_are_realistic():
    counts = [len(sample_study_findings(2, i, 128)[1]) for i in range(400)]
    normal = counts.count(0) / len(counts)
    assert 0.30 < normal < 0.46
    abnormal = [c for c in counts if c]
    assert sum(c <= 2 for c in abnormal) / len(abnormal) > 0.8 and max(abnormal) == 3
