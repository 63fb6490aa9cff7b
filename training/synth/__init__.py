"""Synthetic chest X-ray studies: images, findings with boxes, reports and simulated radiologist gaze.

``generate(n, out, seed=0, size=1024, workers=None, raw_gaze=False)`` writes the dataset layout of
docs/synthetic_format.md; ``make_study(seed, index, size)`` computes one study in memory.
"""

from __future__ import annotations


def generate(*args, **kwargs):
    from .generator import generate as _generate

    return _generate(*args, **kwargs)


def make_study(*args, **kwargs):
    from .study import make_study as _make_study

    return _make_study(*args, **kwargs)


__all__ = ["generate", "make_study"]
