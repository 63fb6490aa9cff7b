"""Subcommands owned by gazex_core: analyze, ask, ground."""

from __future__ import annotations

import argparse
import json


def _model(args: argparse.Namespace):
    from gazex_core.serving import open_model
    from gazex_core.checkpoint import DEFAULT_MODEL_DIR

    return open_model(args.model or DEFAULT_MODEL_DIR, threads=args.threads or None)


def _image(args: argparse.Namespace):
    from gazex_core.imaging import drafting_scope, load_image

    image = load_image(args.path)  # bad input and out-of-scope studies fail here, before the model loads
    drafting_scope(image)
    return image


def _analyze(args: argparse.Namespace) -> int:
    from gazex_core.imaging import load_image
    from gazex_core.input_check import InputRefused

    image = load_image(args.path) if args.draft_out_of_scope else _image(args)
    try:  # the input check (header and feature score) refuses out-of-scope studies in one line
        bundle = _model(args).analyze(image, **({"draft_out_of_scope": True} if args.draft_out_of_scope else {}))
    except InputRefused as exc:
        raise InputRefused(f"{exc} (--draft-out-of-scope drafts it anyway, every sentence marked out of scope)",
                           exc.input_check) from None
    if args.json:
        print(bundle.to_json(indent=2))
        return 0
    for s in bundle.sentences:
        box = s.observation_box
        where = f" box=({box.x_min:.2f},{box.y_min:.2f},{box.x_max:.2f},{box.y_max:.2f})" if box else ""
        print(f"[{s.section}/{s.region or '-'}]{' [OUT OF SCOPE]' if s.out_of_scope else ''} {s.text}  "
              f"(label={s.label or '-'}, conf={s.confidence:.2f}, "
              f"trajectory={len(s.trajectory)} pts{where})")
    print("findings: " + ", ".join(f"{lab} {p:.2f}" for lab, p in bundle.findings[:5]))
    for w in bundle.all_warnings:
        print(f"warning: {w}")
    return 0


def _ask(args: argparse.Namespace) -> int:
    image = _image(args)
    ans = _model(args).ask(image, args.question)
    print(json.dumps(ans.to_dict(), indent=2) if args.json else ans.text + (f"  box={ans.box.to_dict()}" if ans.box else ""))
    return 0


def _ground(args: argparse.Namespace) -> int:
    image = _image(args)
    g = _model(args).ground(image, args.sentence)
    print(json.dumps(g.to_dict(), indent=2))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="image: DICOM, PNG or JPEG")
    p.add_argument("--model", default=None, help="model directory (default: the shipped gazex-tiny checkpoint)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("analyze", help="draft a report with per-sentence evidence (EvidenceBundle)")
    _common(p)
    p.add_argument("--draft-out-of-scope", action="store_true",
                   help="draft a study that fails the input check anyway; every sentence is marked out of scope")
    p.set_defaults(handler=_analyze)
    p = subparsers.add_parser("ask", help="answer a question about an image")
    _common(p)
    p.add_argument("question")
    p.set_defaults(handler=_ask)
    p = subparsers.add_parser("ground", help="trajectory + observation box for a sentence")
    _common(p)
    p.add_argument("sentence")
    p.set_defaults(handler=_ground)
