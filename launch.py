#!/usr/bin/env python
"""Start GazeX Review with one command: embedded SQLite, the shipped model, a demo worklist.

    python launch.py [--host 127.0.0.1] [--port 7860] [--data-dir DIR] [--database-url URL]
                     [--model PATH] [--demo-n 12] [--no-demo] [--real-film] [--review-only]

The data directory is the one every entry point uses (``gazex db``, ``gazex finetune``, ``gazex models``):
GAZEX_DATA_DIR, else ~/.gazex. On first launch it creates an admin and a demo reader (passwords from
GAZEX_ADMIN_PASSWORD / GAZEX_DEMO_PASSWORD, never printed or saved; else generated, printed once and saved
to <data-dir>/credentials.txt readable only by you), generates a synthetic demo worklist with
training.synth and registers it, then starts the app; drafts are computed in the background by the shared
inference worker.
``--real-film`` adds a real adult PA chest radiograph (RG1 from ``pip install pydicom-data``: CR, MONOCHROME1,
15-bit, lossless JPEG 2000) to the worklist, imported (de-identified) into the study set ``real-film``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import secrets
import sys
from pathlib import Path

from annotations_db.engine import default_data_dir
from annotations_db.service import ReviewService

log = logging.getLogger("gazex.launch")

ADMIN_USER = "admin"
DEMO_USER = "demo"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("GAZEX_HOST", "127.0.0.1"),
                        help="interface to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GAZEX_PORT", "7860")))
    parser.add_argument("--data-dir", default=str(default_data_dir()),
                        help="where the SQLite database, the demo studies, adapters and credentials live "
                             "(default: GAZEX_DATA_DIR, else ~/.gazex - the same for every gazex command)")
    parser.add_argument("--database-url", default=os.environ.get("GAZEX_DATABASE_URL"),
                        help="SQLAlchemy URL (default: SQLite file under --data-dir)")
    parser.add_argument("--model", default=os.environ.get("GAZEX_MODEL"),
                        help="checkpoint to register and run (default: the active version, else the shipped one)")
    parser.add_argument("--demo-n", type=int, default=12, help="synthetic studies in the demo worklist")
    parser.add_argument("--no-demo", action="store_true", help="do not generate a demo worklist")
    parser.add_argument("--real-film", action="store_true",
                        help="add pydicom-data's real PA chest radiograph (RG1) to the worklist")
    parser.add_argument("--review-only", action="store_true",
                        help="load no model (drafts must already be in the database)")
    parser.add_argument("--draft-out-of-scope", action="store_true",
                        help="draft studies the input check refuses (e.g. --real-film) anyway, every sentence marked "
                             "out of scope")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def ensure_accounts(service: ReviewService, data_dir: Path) -> list[tuple[str, str, str | None]]:
    """Creates the admin and the demo reader on an empty database; returns the new (role, user, password), the
    password None when it came from the environment. Only generated passwords are saved to credentials.txt."""
    existing = {r.username for r in service.list_readers()}
    created: list[tuple[str, str, str | None]] = []
    for role, username, env in (("admin", ADMIN_USER, "GAZEX_ADMIN_PASSWORD"),
                                ("reader", DEMO_USER, "GAZEX_DEMO_PASSWORD")):
        if username in existing:
            continue
        given = os.environ.get(env)
        password = given or secrets.token_urlsafe(12)
        acting = None if not existing and not created else ADMIN_USER
        service.create_reader(username, password, role, acting=acting)
        created.append((role, username, None if given else password))
    generated = [entry for entry in created if entry[2] is not None]
    if generated:
        save_credentials(data_dir / "credentials.txt", generated)
    return created


def save_credentials(path: Path, created: list[tuple[str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        for role, username, password in created:
            handle.write(f"{role}\t{username}\t{password}\n")


def ensure_demo_studies(service: ReviewService, data_dir: Path, n: int, seed: int,
                        workers: int | None = None) -> list[tuple[int, str, str]]:
    """Generates the synthetic demo worklist once (training.synth) and registers every study (idempotent)."""
    demo_dir = data_dir / "demo"
    if not (demo_dir / "metadata.csv").exists():
        from training import synth

        print(f"Generating {n} synthetic demo studies in {demo_dir} ...", flush=True)
        synth.generate(n, demo_dir, seed=seed, workers=workers, progress=False)
    return register_studies(service, demo_dir)


def register_studies(service: ReviewService, dataset_dir: Path) -> list[tuple[int, str, str]]:
    """Registers every study in a synthetic/MIMIC-layout metadata.csv; returns (id, uid, image path)."""
    studies = []
    with open(dataset_dir / "metadata.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            image_path = (dataset_dir / row["image_path"]).resolve()
            uid = row["study_id"] if str(row["study_id"]).startswith("s") else f"s{row['study_id']}"
            meta = {k: row[k] for k in ("subject_id", "dicom_id", "split", "photometric", "modality") if k in row}
            info = service.register_study(uid, str(image_path), width=int(row["width"]), height=int(row["height"]),
                                          meta=meta)
            studies.append((info.id, info.study_uid, info.image_path))
    return studies


REAL_FILM = "RG1_J2KR.dcm"  # pydicom-data: a real adult PA chest CR, lossless JPEG 2000 (= RG1_UNCR bit for bit)
REAL_FILM_SET = "real-film"


def ensure_real_film(service: ReviewService, data_dir: Path) -> list[tuple[int, str, str]]:
    """Imports the real chest film once (interop importer: de-identified, checked); returns it as (id, uid, path)."""
    try:
        import data_store  # the pydicom-data package
    except ImportError:
        print("--real-film: pydicom-data is not installed (pip install pydicom-data); skipped.", flush=True)
        return []
    from interop.importer import import_paths

    have_set = REAL_FILM_SET in {s.name for s in service.study_sets()}
    if not have_set or not service.study_set_studies(REAL_FILM_SET):
        film = Path(data_store.__file__).parent / "data" / REAL_FILM
        report = import_paths(service, [film], study_set=REAL_FILM_SET, data_dir=data_dir)
        for line in report.lines():
            print(f"--real-film: {line}", flush=True)
    return [(s.id, s.study_uid, s.image_path) for s in service.study_set_studies(REAL_FILM_SET)]


def imported_studies(service: ReviewService) -> list[tuple[int, str, str]]:
    """Every study of every study set, as (id, uid, path) for the draft queue (drafted ones are skipped there)."""
    return [(s.id, s.study_uid, s.image_path) for study_set in service.study_sets()
            for s in service.study_set_studies(study_set.name)]


def quiet_logging() -> None:
    """Our own INFO lines (model version, drafts); libraries (Alembic's migration steps, HTTP clients) only
    from WARNING up."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("gazex", "app", "annotations_db", "training", "interop"):
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from app.runtime import build_context, limit_malloc_arenas

    limit_malloc_arenas()  # first, before any thread starts
    quiet_logging()
    from app.main import build_app, launch_app

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    service = ReviewService.open(args.database_url, data_dir=str(data_dir))
    created = ensure_accounts(service, data_dir)
    for role, username, password in created:  # a password is printed only when it was generated here
        shown = f"password: {password}" if password else "password: the one given in the environment"
        print(f"Created {role:6s} account  user: {username}  {shown}", flush=True)
    studies = [] if args.no_demo else ensure_demo_studies(service, data_dir, args.demo_n, args.seed)
    if args.real_film:
        studies += ensure_real_film(service, data_dir)
    studies += imported_studies(service)  # `gazex import`, admin uploads and PACS pulls: drafted in the background
    context = build_context(service, Path(args.model) if args.model else None, review_only=args.review_only,
                            draft_out_of_scope=args.draft_out_of_scope)
    context.data_dir = data_dir
    if context.worker is not None and studies:
        queued = context.worker.enqueue_drafts(studies)
        print(f"{len(studies)} demo studies; {queued} drafts queued for the background worker.", flush=True)
    if any(password for _, _, password in created):
        print(f"Generated passwords are also in {data_dir / 'credentials.txt'} (mode 600).", flush=True)
    demo = build_app(context)
    launch_app(demo, context, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
