"""The ``gazex`` command. Each package owns its subcommands; this module only composes them.

training is the one package allowed to depend on both gazex_core and annotations_db,
so the composed entry point lives here.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, function that adds its subcommands to the parser's subparsers)
SUBCOMMAND_MODULES = (
    "gazex_core.cli",
    "annotations_db.cli",
    "training.commands",
    "interop.cli",
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every package's subcommands, or, when ``command`` is given, only as far as the package that
    owns it: a cold ``gazex analyze`` then never imports the training modules (a quarter of its start-up)."""
    parser = argparse.ArgumentParser(prog="gazex", description="GazeX Review command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.add_subcommands(subparsers)
        if command is not None and command in subparsers.choices:
            break
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user, never a bare traceback
        if getattr(args, "debug", False):
            raise
        print(f"gazex {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
