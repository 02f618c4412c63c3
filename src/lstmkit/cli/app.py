"""The ``lstmkit`` command line: ``lstmkit SUBCOMMAND --help`` describes each one.

Each feature module registers its own subcommands through ``add_commands(subparsers)``;
a subcommand's handler takes the parsed arguments and returns an exit code.
Conventions: usage errors exit 2 (argparse), failures exit 1 with a one-line message on
stderr and no traceback (:class:`UserError`), Ctrl-C exits 130 after the handler saved
what it had.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from lstmkit.cli.errors import UserError

# Modules that contribute subcommands, in the order --help lists them.
_COMMAND_MODULES = [
    "lstmkit.cli.text",
    "lstmkit.cli.series",
    "lstmkit.cli.memory",
    "lstmkit.cli.export",
    "lstmkit.cli.bench",
    "lstmkit.cli.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmkit",
        description="Train, use and inspect LSTM, GRU and RNN models on NumPy.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # a feature not present in this build
        module.add_commands(subparsers)
    return parser


# Subcommands that hand every argument on to another program (``lstmkit bench --json
# out.json``): argparse's REMAINDER alone rejects a first argument that looks like an option.
_PASS_THROUGH = ("bench",)


def _pass_on(argv: list[str]) -> list[str]:
    """argv with ``--`` after a pass-through subcommand (unless it asks for its own help)."""
    if argv[:1] and argv[0] in _PASS_THROUGH and argv[1:2] not in (["--"], ["-h"], ["--help"]):
        return [argv[0], "--", *argv[1:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_pass_on(list(sys.argv[1:] if argv is None else argv)))
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"lstmkit {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lstmkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lstmkit text sample ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
