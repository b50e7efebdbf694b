"""The training side's subcommands for `talklike` (import, stats, train, evaluate, export)."""

from __future__ import annotations

from training import evaluate_command, export_command, import_command, train_command


def register(subparsers) -> None:
    # Each module adds its parsers; heavy imports (torch) happen inside the handlers.
    for module in (import_command, train_command, evaluate_command, export_command):
        module.register(subparsers)
