"""Options and checks that several subcommands share (the trainers' common flags)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from lstmkit.cli.errors import UserError
from lstmkit.train.checkpoint import CheckpointError

R = TypeVar("R")


def add_training_options(
    p: argparse.ArgumentParser, d: Any, batch_help: str, run_folder: bool = True
) -> None:
    """The flags every trainer takes; ``d`` is its config with the defaults. ``run_folder``
    False leaves out --out, --resume and the MPI flags (a command training many runs)."""
    from lstmkit.train import distributed

    if run_folder:
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
    if run_folder:
        distributed.add_arguments(p)
    p.add_argument(
        "--dtype", choices=["float32", "float64"], default=d.dtype, help=argparse.SUPPRESS
    )
    add_variant_options(p)


def add_run_option(p: argparse.ArgumentParser, what: str = "run folder or checkpoint file") -> None:
    """--run: the run folder (or one checkpoint file) a command reads its model from;
    :func:`load_run` reads it."""
    p.add_argument("--run", required=True, help=what)


def existing_run(run: str) -> str:
    """``run`` (--run) if the path exists, else a UserError naming the flag."""
    if not Path(run).exists():
        raise UserError(f"--run: no such run folder or checkpoint: {run}")
    return run


def load_run(load: Callable[[str], R], run: str) -> R:
    """``load(run)`` for an existing --run; a refused checkpoint is a UserError."""
    try:
        return load(existing_run(run))
    except CheckpointError as e:
        raise UserError(str(e)) from None


# the switches' help; the flags themselves are lstmkit.train.variant.FLAGS
_VARIANT_HELP = {
    "peepholes": "i and f see c_{t-1}, o sees c_t (Gers & Schmidhuber 2000)",
    "coupled_gates": "CIFG: f = 1 - i",
    "input_gate": "NIG: i = 1",
    "forget_gate": "NFG: f = 1 (the 1997 cell)",
    "output_gate": "NOG: o = 1",
    "input_activation": "NIAF: no tanh on the candidate g",
    "output_activation": "NOAF: h = o * c, no tanh",
    "gate_recurrence": "FGR: i, f, o see the previous step's i, f, o",
    "layer_norm": "layer-normalised LSTM (Ba et al. 2016)",
    "recurrent_dropout": "variational dropout on x and h, one mask per sequence (0)",
    "zoneout_c": "zoneout rate of the cell state c (0)",
    "zoneout_h": "zoneout rate of the hidden state h (0)",
}


def add_variant_options(p: argparse.ArgumentParser) -> None:
    """The LSTM variant's flags (Greff et al. 2017's names in the help), one per option of
    ``lk.LSTM``; :func:`variant_of` reads them back."""
    from lstmkit.train.variant import FLAGS, RATES

    group = p.add_argument_group("LSTM variant (all off: the plain LSTM)")
    for name, flag in FLAGS.items():
        if name in RATES:
            group.add_argument(
                flag, dest=name, type=float, default=0.0, metavar="P", help=_VARIANT_HELP[name]
            )
        else:
            action = "store_false" if flag.startswith("--no-") else "store_true"
            group.add_argument(flag, dest=name, action=action, help=_VARIANT_HELP[name])


def variant_of(args: argparse.Namespace) -> dict[str, Any]:
    """The variant the flags of :func:`add_variant_options` ask for (checked: a bad value is
    a UserError naming its flag)."""
    from lstmkit.train.variant import FLAGS, normalise

    try:
        return normalise({name: getattr(args, name) for name in FLAGS})
    except ValueError as e:
        raise UserError(str(e)) from None


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """Each named option, when given, must be > 0."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')}: expected > 0, got {value}")


def check_at_least(args: argparse.Namespace, minimum: int, *names: str) -> None:
    """Each named option, when given, must be >= ``minimum``."""
    for name in names:
        value = getattr(args, name)
        if value is not None and not value >= minimum:
            raise UserError(f"--{name.replace('_', '-')}: expected >= {minimum}, got {value}")


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def output_file(path: str | Path, flag: str) -> Path:
    """``path`` as a file to write: not a folder, in an existing folder that can be written."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag}: {p} is a folder; expected a file name")
    parent = p.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise UserError(f"{flag}: cannot write {p}: the folder {parent} {what}")
    if not _writable(parent):
        raise UserError(f"{flag}: cannot write {p}: the folder {parent} is not writable")
    return p


def output_folder(path: str | Path, flag: str, create: bool = False) -> Path:
    """``path`` as a folder to write into: not a file, and it or its nearest existing parent
    is a writable folder. ``create``: make it now (parents included), before any work whose
    results it is to hold."""
    p = Path(path)
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == p else f" (its parent {existing} is a file)"
        raise UserError(f"{flag}: {p} is not a folder{where}")
    if not _writable(existing):
        raise UserError(f"{flag}: cannot write into {existing}: permission denied")
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{flag}: cannot create the folder {p}: {e.strerror or e}") from None
    return p


def training_config(cls: Any, args: argparse.Namespace) -> Any:
    """The trainer config ``cls`` from the options (its fields by name); --minutes alone lifts
    the default --steps. The config checks its values: a bad one is a UserError."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if f.name != "variant"}
    values["variant"] = variant_of(args)
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
    try:
        output_folder(args.out, "--out")
        check_memory(config)
    except UserError:
        if comm.rank != 0:
            raise SystemExit(1) from None  # rank 0 reports it
        raise
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


def available_memory() -> int | None:
    """Bytes this process may still allocate (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def training_bytes(config: Any) -> int:
    """A lower bound of the bytes a trainer's config needs: its LSTM's parameters four times
    (weights, gradients, Adam's two moments) and the forward's gate activations kept for
    backward (T x N x 4H per layer, with c and h)."""
    hidden, layers = int(config.hidden), int(getattr(config, "layers", 1))
    inputs = int(getattr(config, "embed", 1))
    steps = int(getattr(config, "seq_len", 0) or getattr(config, "lookback", 1))
    params = 0
    for layer in range(layers):
        width = inputs if layer == 0 else hidden
        params += 4 * hidden * (width + hidden + 2)
    activations = steps * int(config.batch) * 6 * hidden * layers
    itemsize = 8 if getattr(config, "dtype", "float32") == "float64" else 4
    return (4 * params + activations) * itemsize


def check_memory(config: Any) -> None:
    """Refuse up front a model that cannot fit in the memory available (rather than a
    MemoryError, or the kernel's OOM killer, minutes later)."""
    need, have = training_bytes(config), available_memory()
    if have is not None and need > have:
        sizes = f"--hidden {config.hidden}"
        if hasattr(config, "layers"):
            sizes += f", --layers {config.layers}"
        sizes += f", --batch {config.batch}"
        raise UserError(
            f"not enough memory for {sizes}: training needs at least {need / 2**30:.1f} GiB, "
            f"{have / 2**30:.1f} GiB are available; try smaller sizes"
        )


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) as None, so it dumps as strict JSON
    (null), through dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
