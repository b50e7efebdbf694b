"""The training side's subcommands for `talklike` (import, stats, train, evaluate, export)."""

from __future__ import annotations

import importlib

# Each module defines register(subparsers); heavy imports happen inside the handlers.
COMMAND_MODULES = (
    "training.import_command",
    "training.train_command",
    "training.evaluate_command",
    "training.export_command",
)


def register(subparsers) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(subparsers)
