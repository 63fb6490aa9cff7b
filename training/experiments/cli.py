"""``gazex experiment create | list | show | assign | inject | close | analyze | export``.

The command line has direct access to the database, so it acts as the local administrator (``--acting``,
default: the first admin). Every error is one line; nothing is half-created (one transaction per command).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KIND_HELP = "missed_finding | false_finding | wrong_side | wrong_severity | misplaced_box"


def add_experiment_command(subparsers: argparse._SubParsersAction) -> None:
    experiment = subparsers.add_parser("experiment", help="reader studies: design, assign, follow, analyse")
    commands = experiment.add_subparsers(dest="experiment_command", required=True)
    create = _add(commands, "create", "design an experiment and write every reader's schedule", _create)
    create.add_argument("name")
    create.add_argument("--design", choices=("crossover", "parallel"), default="crossover")
    create.add_argument("--arms", default="unaided,draft,draft_trajectory", help="comma-separated arm names")
    create.add_argument("--readers", required=True, help="comma-separated usernames")
    create.add_argument("--cases", default=None, help="comma-separated study ids")
    create.add_argument("--cases-file", default=None, help="file of study ids, one a line")
    create.add_argument("--study-set", default=None, help="every study of this study set (gazex import --set)")
    create.add_argument("--washout-days", type=int, default=28)
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--unblinded", action="store_true", help="let admins read the sessions")
    create.add_argument("--questionnaires", default=None, help="JSON file: {post_case: [...], post_session: [...]}")
    create.add_argument("--inject", action="append", default=[], metavar="STUDY:KIND",
                        help=f"one deliberate draft error on a case ({KIND_HELP}); repeatable")
    _add(commands, "list", "list experiments", _list)
    show = _add(commands, "show", "design, injected errors and every reader's progress", _show)
    show.add_argument("experiment_id", type=int)
    assign = _add(commands, "assign", "add readers to an open experiment", _assign)
    assign.add_argument("experiment_id", type=int)
    assign.add_argument("--readers", required=True)
    inject = _add(commands, "inject", "mark a case to show one deliberate draft error", _inject)
    inject.add_argument("experiment_id", type=int)
    inject.add_argument("study_id", type=int)
    inject.add_argument("kind", help=KIND_HELP)
    close = _add(commands, "close", "close an experiment (no further reads)", _close)
    close.add_argument("experiment_id", type=int)
    analyze = _add(commands, "analyze", "HTML report, CSV and JSON of an experiment", _analyze)
    analyze.add_argument("experiment_id", type=int)
    analyze.add_argument("--out", required=True, help="output directory")
    export = _add(commands, "export", "the long table (reader, case, arm, period, outcomes) as CSV", _export)
    export.add_argument("experiment_id", type=int)
    export.add_argument("--out", required=True)


def _add(commands: argparse._SubParsersAction, name: str, help_text: str, handler) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--url", default=None, help="database URL (default: GAZEX_DATABASE_URL or the SQLite file)")
    parser.add_argument("--data-dir", default=None, help="directory of the default SQLite file")
    parser.add_argument("--acting", default=None, help="admin username (default: the first admin)")
    parser.set_defaults(handler=handler)
    return parser


def _service(args: argparse.Namespace):
    from annotations_db import ReviewService

    return ReviewService.open(args.url, data_dir=args.data_dir)


def _admin(service, args: argparse.Namespace) -> str:
    if args.acting:
        return args.acting
    admins = [r.username for r in service.list_readers() if r.role == "admin"]
    if not admins:
        raise ValueError("the database has no admin; create one with `gazex db add-reader NAME --role admin`")
    return admins[0]


def _names(text: str, what: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"--{what} is empty")
    return names


def _study_ids(service, args: argparse.Namespace) -> list[int]:
    if sum(bool(x) for x in (args.cases, args.cases_file, args.study_set)) != 1:
        raise ValueError("give the cases with exactly one of --cases, --cases-file or --study-set")
    if args.study_set:
        return [study.id for study in service.study_set_studies(args.study_set)]
    if args.cases:
        return [_int(part, "--cases") for part in _names(args.cases, "cases")]
    lines = Path(args.cases_file).read_text(encoding="utf-8").splitlines()
    return [_int(line.strip(), f"{args.cases_file} line {n}") for n, line in enumerate(lines, 1) if line.strip()]


def _int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a study id") from None


def _injections(specs: list[str]) -> dict[int, str]:
    injected: dict[int, str] = {}
    for spec in specs:
        study, _, kind = spec.partition(":")
        study_id = _int(study, f"--inject {spec}")
        if not kind or study_id in injected:
            raise ValueError(f"--inject {spec}: needs STUDY:KIND, one per case")
        injected[study_id] = kind
    return injected


def _create(args: argparse.Namespace) -> int:
    service = _service(args)
    questionnaires = None
    if args.questionnaires:
        try:
            questionnaires = json.loads(Path(args.questionnaires).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{args.questionnaires}: not JSON ({exc.msg}, line {exc.lineno})") from None
    experiment_id = service.create_experiment(
        args.name, design=args.design, arms=_names(args.arms, "arms"), readers=_names(args.readers, "readers"),
        study_ids=_study_ids(service, args), washout_days=args.washout_days, blinded=not args.unblinded, seed=args.seed,
        acting=_admin(service, args), questionnaires=questionnaires, injected=_injections(args.inject))
    info = service.get_experiment(experiment_id)
    print(f"created experiment {experiment_id} {info['name']!r}: {info['design']}, arms {', '.join(info['arms'])}, "
          f"{len(info['readers'])} readers x {len(info['cases'])} cases = {info['assignments']} reads")
    return 0


def _list(args: argparse.Namespace) -> int:
    for info in _service(args).list_experiments():
        print(f"{info['id']}\t{info['name']}\t{info['design']}\t{','.join(info['arms'])}\t{info['status']}\t"
              f"{len(info['readers'])} readers\t{len(info['cases'])} cases")
    return 0


def _show(args: argparse.Namespace) -> int:
    service = _service(args)
    info = service.get_experiment(args.experiment_id)
    print(f"experiment {info['id']} {info['name']!r} ({info['status']})")
    print(f"  design {info['design']}, arms {', '.join(info['arms'])}, washout {info['washout_days']} days, "
          f"seed {info['seed']}, {'blinded' if info['blinded'] else 'unblinded'}")
    print(f"  cases {len(info['cases'])}, injected errors {len(info['injected_errors'])}"
          + "".join(f"\n    study {s}: {k}" for s, k in info["injected_errors"].items()))
    from annotations_db.experiments import progress_line

    for item in service.experiment_progress(args.experiment_id):
        print("  " + progress_line(item))
    return 0


def _assign(args: argparse.Namespace) -> int:
    service = _service(args)
    n = service.assign_readers(args.experiment_id, _names(args.readers, "readers"), acting=_admin(service, args))
    print(f"assigned {n} reads to {args.readers}")
    return 0


def _inject(args: argparse.Namespace) -> int:
    service = _service(args)
    error = service.mark_injected_error(args.experiment_id, args.study_id, args.kind, acting=_admin(service, args))
    print(f"study {error['study_id']}: {error['kind']} on sentence {error['sentence_id']}")
    return 0


def _close(args: argparse.Namespace) -> int:
    service = _service(args)
    service.close_experiment(args.experiment_id, acting=_admin(service, args))
    print(f"closed experiment {args.experiment_id}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from .report import analyze_experiment

    paths = analyze_experiment(_service(args), args.experiment_id, Path(args.out))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .analysis import long_table

    table = long_table(_service(args).experiment_table(args.experiment_id))
    table.to_csv(args.out, index=False)
    print(f"wrote {len(table)} rows to {args.out}")
    return 0
