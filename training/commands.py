"""Subcommands owned by training/: synth, train, train-heads, evaluate, gaze-ablation, finetune, models (training/finetune/cli.py), export-sft.

Each subcommand registers itself here with ``add_parser(...).set_defaults(handler=...)``.
Heavy imports happen inside the handlers so ``gazex --help`` stays fast.
"""

from __future__ import annotations

import argparse


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    from training.synth.cli import add_synth_command

    add_synth_command(subparsers)

    from training.model_cli import add_model_commands

    add_model_commands(subparsers)

    from training.finetune.cli import add_finetune_command, add_models_command

    add_finetune_command(subparsers)
    add_models_command(subparsers)

    from training.experiments.cli import add_experiment_command

    add_experiment_command(subparsers)

    from training.sft_export import add_export_command

    add_export_command(subparsers)

    from training.input_check import add_input_check_command

    add_input_check_command(subparsers)

    from training.gaze_ablation import add_gaze_ablation_command

    add_gaze_ablation_command(subparsers)

    from training.calibration import add_calibrate_command

    add_calibrate_command(subparsers)
