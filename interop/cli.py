"""Subcommands owned by interop: ``gazex import``, ``gazex pacs pull|push``, ``gazex export-review``.

Like ``gazex db``, each takes ``--url`` / ``--data-dir`` (default: GAZEX_DATABASE_URL, else the SQLite file under
GAZEX_DATA_DIR or ~/.gazex); imported files go under the data directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_STUDY_SET = "imported"


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    imp = _add(subparsers, "import", "import DICOM/PNG/JPEG files, folders or zips (de-identified) into a study set",
               _import)
    imp.add_argument("paths", nargs="+", help="files, folders or .zip archives")
    imp.add_argument("--study-set", default=DEFAULT_STUDY_SET, help="name of the study set to add them to")
    imp.add_argument("--linkage-file", default=None,
                     help="also write original -> new identifiers to this CSV (mode 600); off by default")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    pacs = subparsers.add_parser("pacs", help="a PACS over DICOMweb: pull studies in, push results out")
    pacs_commands = pacs.add_subparsers(dest="pacs_command", required=True)
    pull = _add(pacs_commands, "pull", "QIDO-RS query + WADO-RS retrieve into a study set (de-identified)", _pull)
    pull.add_argument("server", help="DICOMweb base URL, e.g. http://pacs:8042/dicom-web")
    pull.add_argument("--study-set", default=DEFAULT_STUDY_SET)
    pull.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                      help="QIDO-RS matching, e.g. ModalitiesInStudy=CR or StudyDate=20240101-20240131")
    pull.add_argument("--limit", type=int, default=None)
    push = _add(pacs_commands, "push", "STOW-RS: store DICOM files (e.g. an exported review) on the server", _push)
    push.add_argument("server")
    push.add_argument("files", nargs="+")
    export = _add(subparsers, "export-review", "a signed review as DICOM SR (TID 1500) + GSPS + report + JSON",
                  _export_review)
    export.add_argument("session_id", type=int)
    export.add_argument("--out", required=True, help="folder to write sr.dcm, gsps.dcm, report.txt, review.json")
    export.add_argument("--as", dest="acting", default=None,
                        help="read the session as this reader (default: the first admin)")


def _add(subparsers: argparse._SubParsersAction, name: str, help_text: str, handler) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--url", default=None, help="database URL (default: GAZEX_DATABASE_URL or the SQLite file)")
    parser.add_argument("--data-dir", default=None, help="data directory (database file, imported images, key)")
    parser.set_defaults(handler=handler)
    return parser


def data_dir(args: argparse.Namespace) -> Path:
    from annotations_db.engine import default_data_dir

    return Path(args.data_dir) if args.data_dir else default_data_dir()


def _service(args: argparse.Namespace):
    from annotations_db.service import ReviewService

    return ReviewService.open(args.url, data_dir=str(data_dir(args)))


def _import(args: argparse.Namespace) -> int:
    from .importer import import_paths

    service = _service(args)
    try:
        report = import_paths(service, args.paths, study_set=args.study_set, data_dir=data_dir(args),
                              linkage_file=args.linkage_file, progress=not args.quiet)
    finally:
        service.close()
    for line in report.lines():
        print(line, file=sys.stderr)
    print(f"{report.summary()}; study set {args.study_set!r}; "
          f"drafts queued for {len(report.imported)} (computed by the app's background worker when it runs)")
    return 0 if report.imported or not report.skipped else 1


def _pull(args: argparse.Namespace) -> int:
    from .dicomweb import pull

    filters = dict(item.split("=", 1) for item in args.filter if "=" in item)
    service = _service(args)
    try:
        report = pull(service, args.server, study_set=args.study_set, data_dir=data_dir(args), filters=filters,
                      limit=args.limit, progress=True)
    finally:
        service.close()
    for line in report.lines():
        print(line, file=sys.stderr)
    print(f"{report.summary()}; study set {args.study_set!r}")
    return 0 if report.imported or not report.skipped else 1


def _push(args: argparse.Namespace) -> int:
    from .dicomweb import push

    stored = push(args.server, [Path(f) for f in args.files])
    print(f"stored {stored} instances on {args.server}")
    return 0


def _export_review(args: argparse.Namespace) -> int:
    from .sr import export_review

    service = _service(args)
    try:
        acting = args.acting or next((r.username for r in service.list_readers() if r.role == "admin"), None)
        if acting is None:
            raise SystemExit("gazex export-review: no admin reader exists; give --as READER")
        paths = export_review(service, acting, args.session_id, args.out)
    finally:
        service.close()
    print(f"review session {args.session_id} exported: {paths.sr}, {paths.gsps}, {paths.report}, {paths.review_json}")
    return 0
