"""The ``lstmkit`` command line: ``lstmkit SUBCOMMAND --help`` describes each one.

Each feature module registers its own subcommands through ``add_commands(subparsers)``;
a subcommand's handler takes the parsed arguments and returns an exit code.
Conventions: every error is one line on stderr, ``lstmkit COMMAND: error: ...``, and no
traceback: usage errors (argparse's, and option values no command can use: an empty path,
a float that is not finite) exit 2; failures exit 1 (:class:`UserError`, and whatever else
escapes a handler: an ``OSError`` names its path, a ``MemoryError`` the sizes asked for);
``lstmkit --debug ...`` lets what escapes end in its traceback instead. Ctrl-C exits 130
after the handler saved what it had.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from lstmkit.cli.errors import UserError, one_line

# Modules that contribute subcommands, in the order --help lists them.
_COMMAND_MODULES = [
    "lstmkit.cli.text",
    "lstmkit.cli.series",
    "lstmkit.cli.memory",
    "lstmkit.cli.study",
    "lstmkit.cli.export",
    "lstmkit.cli.bench",
    "lstmkit.cli.demo",
]


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its usage errors on one line (exit 2); subparsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (usage: {self.prog} --help)\n")


def finite_float(text: str) -> float:
    """A float option's type: a finite number (nan and inf are no length, rate or time)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


finite_float.numeric_kind = "float"  # type: ignore[attr-defined]

# Options that name a file or folder: an empty string is no path (Path("") is the current
# directory: `--text ''` trained on it, `--out ''` wrote a run into it).
_PATH_DESTS = frozenset({"out", "run", "text", "csv", "plot"})


def path_text(text: str) -> str:
    """A path option's type: a non-empty string without NUL bytes."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r} (it holds a NUL byte)")
    return text


def _harden(parser: argparse.ArgumentParser, leaf_debug: bool) -> None:
    """Give every float option the finite type and every path option the non-empty type, and
    every leaf subcommand a --debug flag, in this parser and its subparsers."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
        elif action.dest in _PATH_DESTS and action.type is None and action.option_strings:
            action.type = path_text
    for action in subparsers:
        for sub in action.choices.values():
            _harden(sub, leaf_debug=True)
    if leaf_debug and not subparsers and "--debug" not in parser._option_string_actions:
        if not any(a.nargs == argparse.REMAINDER for a in parser._actions):
            parser.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP
            )


_DEBUG_HELP = "show the traceback of an unexpected error instead of a one-line message"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lstmkit",
        description="Train, use and inspect LSTM, GRU and RNN models on NumPy.",
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # a feature not present in this build
        module.add_commands(subparsers)
    _harden(parser, leaf_debug=False)
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
    where = f"lstmkit {args.command}"
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"{where}: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lstmkit text sample ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # what escaped the handler: one line, unless --debug
        if args.debug:
            raise
        print(f"{where}: error: {describe(e, args)}", file=sys.stderr)
        return 1


def _is_lstmkit_error(e: BaseException) -> bool:
    """A failure lstmkit reports on purpose (a diverged run, a bad checkpoint)."""
    from lstmkit.train.checkpoint import CheckpointError
    from lstmkit.train.trainer import TrainingError

    return isinstance(e, (CheckpointError, TrainingError))


def describe(e: BaseException, args: Any = None) -> str:
    """One line for an exception that escaped a subcommand's handler."""
    if isinstance(e, OSError) and (e.strerror or e.errno):
        path = e.filename  # the path named, or None (a write's error after open)
        what = e.strerror or os.strerror(e.errno or 0)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            what = {
                errno.ENOSPC: "no space left on the device (disk full)",
                errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large (a file size limit, or a full disk)",
            }[e.errno]
            if path is None and getattr(args, "out", None):
                what += f" while writing --out {args.out}"
        return one_line(f"{path}: {what}" if path is not None else what)
    if isinstance(e, MemoryError):
        sizes = [
            f"--{name.replace('_', '-')} {getattr(args, name)}"
            for name in ("hidden", "layers", "embed", "batch", "seq_len", "lookback")
            if getattr(args, name, None) is not None
        ]
        asked = f" for {', '.join(sizes)}" if sizes else ""
        return f"not enough memory{asked}: try smaller sizes ({one_line(str(e)) or 'MemoryError'})"
    if isinstance(e, (ValueError, OverflowError, OSError)) or _is_lstmkit_error(e):
        return one_line(str(e)) or type(e).__name__
    return (
        f"unexpected {type(e).__name__}: {one_line(str(e))} (a bug: please report it; "
        "`lstmkit --debug ...` shows the traceback)"
    )
