"""The text-to-label labeler (gazex_core.labeler) against the manual MeSH terms of the real IU X-Ray reports
(torchxrayvision's NLMCXR_reports.tgz), MeSH mapped to CheXpert by the IU loader's table.

The labeler's rules were written by reading reports, so the reports are split once, deterministically (CRC-32 of
the report id, even: development, odd: held-out): errors were only ever read on the development half; the
held-out half is the estimate of how it does on reports nobody tuned it on.

Per observation the MeSH mapping is the reference: positive when a major MeSH term maps to it, negative
otherwise ("No Finding" is judged only on reports whose every MeSH term maps, since an unmapped abnormality
such as a calcified granuloma is neither a CheXpert finding nor "normal"). The labeler reads FINDINGS + IMPRESSION; uncertain mentions count as positive (MeSH indexers
record hedged findings). Observations no MeSH term maps to in the corpus are left out.

    python -m training.labeler_validation [--reports PATH] [--markdown docs/labeler_table.md]
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path
from typing import Any

from gazex_core.labeler import CHEXPERT_OBSERVATIONS, report_labels

UNMAPPED = "(unmapped MeSH term)"
DEVELOPMENT, HELD_OUT = "development", "held-out"


def default_reports() -> Path | None:
    from training.data.loaders.iu_xray import default_view_table

    table = default_view_table()
    path = table.parent / "NLMCXR_reports.tgz" if table else None
    return path if path and path.exists() else None


def split_of(report_id: str) -> str:
    """The report's fixed half: development (errors read there) or held-out (never looked at)."""
    return HELD_OUT if zlib.crc32(report_id.encode("utf-8")) % 2 else DEVELOPMENT


def load_split(path: Path) -> dict[str, list[tuple[str, set[str]]]]:
    """(report text, MeSH-mapped observations) pairs by half, in file order."""
    from training.data.loaders.iu_xray import IuXrayLoader, mesh_term_labels

    halves: dict[str, list[tuple[str, set[str]]]] = {DEVELOPMENT: [], HELD_OUT: []}
    for study in IuXrayLoader(root=path).load().studies:
        terms = study.meta["mesh_major"]
        mapped = set().union(*(mesh_term_labels(term) for term in terms))
        if any(not mesh_term_labels(term) for term in terms):
            mapped.add(UNMAPPED)  # an abnormality outside the 14: not "No Finding", unknown for it
        halves[split_of(study.study_id)].append((" ".join(s.text for s in study.report.sentences), mapped))
    return halves


def load_pairs(path: Path) -> list[tuple[str, set[str]]]:
    """(report text, MeSH-mapped CheXpert observations) per IU report that has an image."""
    from training.data.loaders.iu_xray import IuXrayLoader, mesh_term_labels

    studies = IuXrayLoader(root=path).load().studies
    pairs = []
    for study in studies:
        text = " ".join(s.text for s in study.report.sentences)
        terms = study.meta["mesh_major"]
        mapped = set().union(*(mesh_term_labels(term) for term in terms))
        if any(not mesh_term_labels(term) for term in terms):
            mapped.add(UNMAPPED)  # an abnormality outside the 14: not "No Finding", unknown for it
        pairs.append((text, mapped))
    return pairs


def agreement(pairs: list[tuple[str, set[str]]]) -> dict[str, Any]:
    predicted = [report_labels(text) for text, _ in pairs]
    rows = []
    for label in CHEXPERT_OBSERVATIONS:
        known = [i for i, (_, truth) in enumerate(pairs) if label != "No Finding" or UNMAPPED not in truth]
        reference = [label in pairs[i][1] for i in known]
        if not any(reference):
            continue
        guess = [label in predicted[i] for i in known]
        tp = sum(r and g for r, g in zip(reference, guess))
        fp = sum(g and not r for r, g in zip(reference, guess))
        fn = sum(r and not g for r, g in zip(reference, guess))
        agree = sum(r == g for r, g in zip(reference, guess)) / len(known)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"label": label, "mesh_positive": sum(reference), "labeler_positive": sum(guess),
                     "precision": precision, "recall": recall, "f1": f1, "agreement": agree})
    return {"reports": len(pairs), "classes": rows, "macro_f1": sum(r["f1"] for r in rows) / len(rows)}


def markdown(result: dict[str, Any], title: str = "IU X-Ray reports") -> str:
    lines = [f"{title}: {result['reports']}; macro-F1 over {len(result['classes'])} mapped observations: "
             f"**{result['macro_f1']:.3f}**", "",
             "| observation | MeSH positive | labeler positive | precision | recall | F1 | agreement |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['mesh_positive']} | {r['labeler_positive']} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['f1']:.3f} | {r['agreement']:.3f} |" for r in result["classes"]]
    return "\n".join(lines) + "\n"


def split_markdown(halves: dict[str, list[tuple[str, set[str]]]]) -> str:
    """The held-out, development and whole-corpus tables."""
    parts = [("Held-out half", halves[HELD_OUT]), ("Development half", halves[DEVELOPMENT]),
             ("All reports", halves[DEVELOPMENT] + halves[HELD_OUT])]
    return "\n".join(markdown(agreement(pairs), title) for title, pairs in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    path = args.reports or default_reports()
    if path is None:
        raise SystemExit("no IU X-Ray reports: install torchxrayvision or pass --reports")
    text = split_markdown(load_split(path))
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
