"""Subcommands owned by gazex_core: analyze, ask, ground."""

from __future__ import annotations

import argparse


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    pass  # analyze / ask / ground are added by the model work
