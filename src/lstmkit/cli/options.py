"""Options and checks that several subcommands share (the trainers' common flags)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import fields
from functools import partial
from typing import Any, TypeVar

from lstmkit.cli.errors import UserError
from lstmkit.train.checkpoint import CheckpointError

R = TypeVar("R")


def add_training_options(p: argparse.ArgumentParser, d: Any, batch_help: str) -> None:
    """The flags every trainer takes; ``d`` is its config with the defaults."""
    from lstmkit.train import distributed

    p.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--hidden", type=int, default=d.hidden, help="LSTM size (%(default)s)")
    p.add_argument("--layers", type=int, default=d.layers, help="LSTM layers (%(default)s)")
    p.add_argument("--dropout", type=float, default=d.dropout, help="dropout (%(default)s)")
    p.add_argument("--batch", type=int, default=d.batch, help=f"{batch_help} (%(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps (%(default)s)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (%(default)s)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    p.add_argument(
        "--schedule",
        choices=["constant", "cosine"],
        default=d.schedule,
        help="learning-rate schedule after the warm-up (%(default)s; cosine needs --steps)",
    )
    p.add_argument("--clip", type=float, default=d.clip, help="global grad-norm clip")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="validate every N steps")
    p.add_argument("--seed", type=int, default=d.seed, help="initialisation/dropout seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    distributed.add_arguments(p)
    p.add_argument(
        "--dtype", choices=["float32", "float64"], default=d.dtype, help=argparse.SUPPRESS
    )


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """Each named option, when given, must be > 0."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')}: expected > 0, got {value}")


def training_config(cls: Any, args: argparse.Namespace) -> Any:
    """The trainer config ``cls`` from the options (its fields by name); --minutes alone lifts
    the default --steps. The config checks its values: a bad one is a UserError."""
    values = {f.name: getattr(args, f.name) for f in fields(cls)}
    if args.minutes and args.steps == cls.steps:
        values["steps"] = None  # the time budget decides
    try:
        return cls(**values)
    except ValueError as e:
        raise UserError(str(e)) from None


def run_trainer(
    args: argparse.Namespace, train: Callable[..., R], config: Any, data: Any
) -> R | None:
    """``train(config, args.out, data, ...)`` on this process's MPI communicator (or alone);
    its summary on rank 0, None on the other ranks (which print nothing).

    A failure the user can fix is a UserError on rank 0; the other ranks, which see the same
    failure, exit 1 quietly. Another rank's own failure aborts the job rather than hang it.
    """
    from lstmkit.train import distributed
    from lstmkit.train.trainer import TrainingError

    try:
        comm = distributed.from_arguments(args)
    except distributed.DistributedError as e:
        raise UserError(str(e)) from None
    log = partial(print, file=sys.stderr)
    try:
        summary = train(config, args.out, data, args.resume, not args.no_progress, log, comm)
    except (TrainingError, CheckpointError, FileNotFoundError, ValueError, RuntimeError) as e:
        if comm.rank != 0:
            raise SystemExit(1) from None  # every rank has the same error: rank 0 reports it
        raise UserError(str(e)) from None
    except Exception as e:
        if comm.size > 1:
            comm.abort(f"{type(e).__name__}: {e}")
        raise
    return summary if comm.rank == 0 else None
