"""``series train`` and ``series backtest`` without --lookback: the automatic forecaster's
options and its training command (with --lookback, one LSTM's options)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from lstmkit.cli.errors import UserError
from lstmkit.cli.options import check_at_least, check_positive, output_folder, training_config
from lstmkit.cli.series_missing import say_filled


def train_auto(args: argparse.Namespace, read: Callable[[str, str, str | None], Any]) -> int:
    """``series train`` without --lookback: the automatic forecaster into --out/auto.npz;
    ``read(csv, column, time_column)`` reads the series (a UserError if it cannot)."""
    from lstmkit.series.auto import fit_auto
    from lstmkit.series.auto_progress import stamp
    from lstmkit.series.auto_run import save_ensemble
    from lstmkit.series.evaluate import resolve_season
    from lstmkit.series.missing import fill

    config = one_go_config(args, "automatic")
    comm = communicator(args)
    output_folder(args.out, "--out")
    check_out(Path(args.out), args.resume)
    series = read(args.csv, args.column, args.time_column)
    holdout = args.horizon if args.holdout is None else args.holdout
    n_fit = len(series) - holdout
    if n_fit < args.horizon + 4:
        raise UserError(
            f"the series has {len(series)} values; after the held-out tail ({holdout}) "
            f"{n_fit} remain and the horizon {args.horizon} needs at least {args.horizon + 4}; "
            "use a smaller --horizon or --holdout"
        )
    try:
        season, source = resolve_season(series, args.season)
    except ValueError as e:
        raise UserError(str(e)) from None
    y, observed = fill(series.values[:n_fit], series.missing)  # from the training part alone
    mask = observed if series.missing == "mask" else None
    folder = Path(args.out)

    def announce() -> None:
        print(f"searching on {n_fit} values, season {season} ({source})", file=sys.stderr)
        say_filled(series, n_fit)

    s = stamp(y, season, args.horizon, config, mask)
    with resumable_run(comm, folder, args.resume, s, announce) as progress:
        ensemble = fit_saving(partial(fit_auto, y, season, args.horizon, config, mask), progress)
        path = comm.on_root(partial(save_ensemble, folder, ensemble, series, holdout))
        comm.on_root(progress.remove)
    if comm.rank:
        return 0
    chosen = ", ".join(
        f"lookback {m['lookback']}{' ES-hybrid' if m['hybrid'] else ''}"
        f"{' deseasoned' if m['deseason'] else ''}"
        f"{' differenced' if m['difference'] else ''} hidden {m['hidden']} ({m['steps']} steps)"
        for m in ensemble.summary()["members"][:: config.seeds]
    )
    late = "; the time budget cut the search short (raise --minutes)" if ensemble.truncated else ""
    print(
        f"trained the automatic forecaster on {n_fit} values ({len(ensemble.table)} candidates; "
        f"median of {len(ensemble.members)} LSTMs: {chosen}){late}; {holdout} values held out; "
        f"wrote {path}"
    )
    return 0


@contextmanager
def resumable_run(
    comm: Any,
    folder: Path,
    resume: bool,
    stamp: dict[str, Any],
    announce: Callable[[], None],
    kind: Any = None,
    final: str | None = None,
    model: Any = None,
) -> Iterator[Any]:
    """The memo of a resumable forecaster's run in ``folder``: rank 0 creates and locks the
    folder, checks it (``kind``, ``final``: see :func:`check_out`), opens the progress
    file (new, or with ``resume`` the saved one) and calls ``announce()``; any error there
    is raised on every rank. In one process the memo is that progress; under MPI a memo
    sharing the work among the ranks, ``model(c)`` making an untrained member of
    candidate c (default: the automatic forecaster's)."""
    with ExitStack() as stack:
        saving: list[Any] = []  # rank 0's progress file

        def open_run() -> None:
            output_folder(folder, "--out", create=True)
            stack.enter_context(locked(folder))
            check_out(folder, resume, kind, final)  # again: another process may have written
            saving.append(open_progress(folder, resume, stamp, kind))
            announce()
            if comm.size > 1:
                print(f"sharing the candidates among {comm.size} MPI processes", file=sys.stderr)

        comm.on_root(open_run)  # every rank raises rank 0's error
        yield _shared(comm, saving[0] if saving else None, model)


def communicator(args: argparse.Namespace) -> Any:
    """The MPI communicator of the run (one process without a launcher)."""
    from lstmkit.train import distributed

    try:
        return distributed.from_arguments(args)
    except distributed.DistributedError as e:
        raise UserError(str(e)) from None


def _shared(comm: Any, progress: Any, model: Any = None) -> Any:
    """``progress`` alone in one process; under MPI a memo sharing the work among the ranks
    (:mod:`lstmkit.series.auto_shared`), which rank 0's ``progress`` saves."""
    if comm.size == 1:
        return progress
    from lstmkit.series.auto_shared import Shared

    return Shared(comm, progress, model)


def fit_saving(fit: Callable[[Any], Any], progress: Any) -> Any:
    """``fit(progress)``; on Ctrl-C, says what is saved and how to go on."""
    try:
        return fit(progress)
    except KeyboardInterrupt:
        print(
            f"saved {len(progress.rows)} candidates and {len(progress.members)} members in "
            f"{progress.path}: the same command with --resume continues",
            file=sys.stderr,
        )
        raise


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """The run folder's lock held (another lstmkit process training into it is refused)."""
    from lstmkit.train.run_folder import Run, RunFolderError

    try:
        run = Run(folder).lock()
    except RunFolderError as e:
        raise UserError(str(e)) from None
    try:
        yield
    finally:
        run.release()


def check_out(out: Path, resume: bool, kind: Any = None, final: str | None = None) -> None:
    """--out for a new run (neither a finished nor an interrupted forecaster in it) or, with
    --resume, an interrupted one's; ``kind``: the Progress class (default the automatic
    forecaster's), ``final``: the finished run's file (default ``auto.npz``)."""
    from lstmkit.series.auto_progress import Progress
    from lstmkit.series.auto_run import FILE

    kind, final = kind or Progress, final or FILE
    what = "global" if kind.file != Progress.file else "automatic"
    if (out / final).exists():
        if resume:
            raise UserError(f"--resume: {out / final} exists: the run is finished")
        raise UserError(f"--out: {out / final} already exists; pass another --out")
    if resume and not (out / kind.file).is_file():
        raise UserError(
            f"--resume: no interrupted {what} forecaster in {out} ({kind.file} is missing)"
        )
    if not resume and (out / kind.file).exists():
        raise UserError(
            f"--out: {out} holds an interrupted {what} forecaster ({kind.file}); pass "
            "--resume to continue it, or another --out"
        )


def open_progress(folder: Path, resume: bool, stamp: dict[str, Any], kind: Any = None) -> Any:
    """The run's progress (``kind``: the Progress class, default the automatic
    forecaster's): a new one, or with --resume the saved one (a UserError if it was saved
    for other values or options, or cannot be read)."""
    from lstmkit.series.auto_progress import Progress
    from lstmkit.train.checkpoint import CheckpointError

    kind = kind or Progress
    if not resume:
        return kind.start(folder, stamp)
    try:
        progress = kind.resume(folder, stamp)
    except (CheckpointError, ValueError) as e:
        raise UserError(str(e)) from None
    print(
        f"resuming: {len(progress.rows)} candidates and {len(progress.members)} members done, "
        f"{progress.spent:.0f} s of the time budget spent",
        file=sys.stderr,
    )
    return progress


def one_go_config(args: argparse.Namespace, which: str) -> Any:
    """The AutoConfig of a forecaster chosen on validation windows (``which``: "automatic"
    or "global"): no --val; positive sizes."""
    if args.val is not None:
        raise UserError(
            f"--val goes with one LSTM (--lookback N); the {which} forecaster validates "
            "inside the training part"
        )
    check_positive(args, "horizon", "season")
    check_at_least(args, 0, "holdout")
    return auto_config(args)


def baseline_names(args: argparse.Namespace) -> list[str]:
    """``--models``: the statistical baselines to run (none for 'none'), checked and
    installed."""
    from lstmkit.series import backtest as bt

    names = [] if args.models.strip() == "none" else [m.strip() for m in args.models.split(",")]
    unknown = [m for m in names if m not in bt.BASELINES]
    if unknown or not all(names):
        raise UserError(
            f"--models: expected names among {', '.join(bt.BASELINES)} (comma-separated) "
            f"or 'none', got {args.models!r}"
        )
    if names:
        try:
            bt.check_baselines_installed()
        except ModuleNotFoundError as e:
            raise UserError(str(e)) from None
    return names


def auto_config(args: argparse.Namespace) -> Any:
    """The automatic forecaster's settings: its defaults, with --steps, --minutes, --hidden
    (one size instead of a search over sizes), --batch, --lr, --clip, --eval-every, --seed,
    --hybrid, --no-level."""
    from lstmkit.series.auto import AutoConfig

    d = AutoConfig()
    if args.layers != 1 or args.dropout or args.warmup or args.schedule != "constant":
        raise UserError(
            "--layers, --dropout, --warmup and --schedule go with one LSTM (--lookback N); "
            "the automatic forecaster uses one layer, no dropout, a constant rate"
        )
    values = {
        "steps": args.steps if args.steps is not None else d.steps,
        "minutes": args.minutes if args.minutes is not None else d.minutes,
        "hidden": args.hidden if args.hidden is not None else d.hidden,
        "sizes": () if args.hidden is not None else d.sizes,
        "eval_every": args.eval_every if args.eval_every is not None else d.eval_every,
        "batch": args.batch,
        "lr": args.lr,
        "clip": args.clip,
        "seed": args.seed,
        "hybrid": getattr(args, "hybrid", False),
        "level_if_stationary": not getattr(args, "no_level", False),
    }
    try:
        return AutoConfig(**values)
    except ValueError as e:
        raise UserError(f"--{str(e).replace('_', '-')}") from None


def single_config(args: argparse.Namespace) -> Any:
    """One LSTM's TrainConfig, with its own defaults where the backtest left None."""
    from lstmkit.series.train import TrainConfig

    d = TrainConfig()
    if args.lookback is None:
        args.lookback = d.lookback
    if args.hidden is None:
        args.hidden = d.hidden
    if args.steps is None:
        args.steps = d.steps
    if args.eval_every is None:
        args.eval_every = d.eval_every
    return training_config(TrainConfig, args)
