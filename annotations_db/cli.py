"""Subcommands owned by annotations_db: db upgrade, readers."""

from __future__ import annotations

import argparse


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    pass  # "gazex db ..." is added by the database work
