"""``series train | forecast | backtest`` with covariates or many series (one global model).

``--future-covariates COL,COL`` (known for the forecast horizon too), ``--past-covariates
COL,COL`` (known up to now) and ``--id-column NAME`` (a long-format CSV: one row per id and
time) select the global forecaster of :mod:`lstmkit.series.many`; ``series forecast`` reads
the future covariates from ``--future-csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.cli.errors import UserError
from lstmkit.cli.options import check_positive, output_file, output_folder
from lstmkit.cli.series_auto import (
    auto_config,
    baseline_names,
    check_out,
    communicator,
    fit_saving,
    one_go_config,
    resumable_run,
)

__all__ = [
    "add_options",
    "backtest_global",
    "forecast_global",
    "train_global",
    "wanted",
]


def add_options(p: argparse.ArgumentParser, command: str) -> None:
    """The global forecaster's flags of ``series <command>``."""
    if command == "forecast":
        p.add_argument(
            "--future-csv",
            help="CSV with the known-future covariates of the forecast steps (a run trained "
            "with --future-covariates; with --id-column runs, the id column too)",
        )
        return
    p.add_argument(
        "--id-column",
        nargs="?",
        const="unique_id",
        help="long format: the series id column (default name unique_id); one global model "
        "for every series, each scaled by its own statistics",
    )
    p.add_argument("--future-covariates", help="known-future columns, comma-separated")
    p.add_argument("--past-covariates", help="past-observed columns, comma-separated")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks for the global forecaster."""
    return any(
        getattr(args, k, None) is not None
        for k in ("id_column", "future_covariates", "past_covariates")
    )


def _list(value: str | None, flag: str) -> list[str]:
    if value is None:
        return []
    names = [c.strip() for c in value.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise UserError(f"{flag}: expected distinct comma-separated column names, got {value!r}")
    return names


def _check_single_lstm(args: argparse.Namespace) -> None:
    if args.lookback is not None or args.difference:
        raise UserError(
            "--id-column and covariates go with the automatic forecaster; drop --lookback "
            "and --difference"
        )


def _read(args: argparse.Namespace, future: list[str], past: list[str]) -> Any:
    """The panel, its times (or None) and its covariate names, from --csv."""
    from lstmkit.series.data import CSVError, read_csv
    from lstmkit.series.many import Panel
    from lstmkit.series.panel_data import read_columns, read_long

    both = set(future) & set(past)
    if both or args.column in future + past:
        raise UserError(
            f"--future-covariates and --past-covariates: a column may appear once and not be "
            f"the value column, got {sorted(both) or args.column!r}"
        )
    try:
        if args.id_column is not None:
            d = read_long(args.csv, args.id_column, args.column, args.time_column, future, past)
            return Panel(d.y, d.X, d.P, d.ids), d.times
        s = read_csv(args.csv, args.column, args.time_column)
        X = read_columns(args.csv, future, "--future-covariates")
        Pc = read_columns(args.csv, past, "--past-covariates")
        return Panel([s.values], [X], [Pc], [args.column]), None if s.times is None else [s.times]
    except (CSVError, FileNotFoundError, UnicodeDecodeError) as e:
        raise UserError(str(e)) from None


def _season(args: argparse.Namespace, times: list[list[str]] | None) -> int:
    from lstmkit.series.data import infer_frequency

    if args.season is not None:
        return int(args.season)
    frequency = infer_frequency(times[0]) if times else None
    return frequency[1] if frequency else 1


def train_global(args: argparse.Namespace) -> int:
    """``series train`` with --id-column or covariates: the global forecaster's global.npz."""
    from lstmkit.series.global_run import FILE, save_global
    from lstmkit.series.many import check_lengths, fit_global
    from lstmkit.series.many_progress import GlobalProgress, stamp

    _check_single_lstm(args)
    config = one_go_config(args, "global")
    comm = communicator(args)
    future, past = (
        _list(args.future_covariates, "--future-covariates"),
        _list(args.past_covariates, "--past-covariates"),
    )
    output_folder(args.out, "--out")
    check_out(Path(args.out), args.resume, GlobalProgress, FILE)
    panel, times = _read(args, future, past)
    holdout = args.horizon if args.holdout is None else args.holdout
    season = _season(args, times)
    fitted = panel.cut([len(y) - holdout for y in panel.y])
    try:
        check_lengths(fitted, args.horizon)
    except ValueError as e:
        raise UserError(f"{e} (after the held-out tail of {holdout})") from None
    data = {
        "column": args.column,
        "time_column": args.time_column,
        "id_column": args.id_column,
        "source": str(args.csv),
        "n_holdout": holdout,
    }
    folder = Path(args.out)

    def announce() -> None:
        print(f"searching on {len(panel.y)} series, season {season}", file=sys.stderr)

    s = stamp(fitted, season, args.horizon, config)
    model = partial(_member, panel.F, panel.n_past)
    run = (comm, folder, args.resume, s, announce, GlobalProgress, FILE, model)
    with resumable_run(*run) as progress:
        fit = partial(fit_global, fitted, season, args.horizon, config, (future, past))
        ensemble = fit_saving(fit, progress)
        path = comm.on_root(partial(save_global, folder, ensemble, data))
        comm.on_root(progress.remove)
    if comm.rank:
        return 0
    m = ensemble.summary()["members"][0]
    print(
        f"trained the global forecaster on {len(panel.y)} series ({len(ensemble.table)} "
        f"candidates; best: lookback {m['lookback']}, hidden {m['hidden']}, {m['steps']} "
        f"steps; covariates: future {future or 'none'}, past {past or 'none'}); "
        f"{holdout} values of each held out; wrote {path}"
    )
    return 0


def _member(F: int, P: int, c: Any) -> Any:
    """An untrained member of candidate c reading F future and P past covariates."""
    from lstmkit.series.covariates import CovariateLSTM

    return CovariateLSTM(c.hidden, F, P)


def _future_rows(args: argparse.Namespace, meta: dict[str, Any], ids: list[str]) -> list[Any]:
    """Each series' rows of --future-csv: (k_i, F) arrays (empty without the flag)."""
    from lstmkit.series.data import CSVError
    from lstmkit.series.panel_data import read_columns, read_long

    names = meta["future_covariates"]
    if args.future_csv is None:
        return [np.zeros((0, len(names))) for _ in ids]
    if not names:
        raise UserError("--future-csv: the run was trained without --future-covariates")
    id_column = meta["data"]["id_column"]
    try:
        if id_column is None:
            return [read_columns(args.future_csv, names, "--future-csv")]
        d = read_long(args.future_csv, id_column, names[0], None, names)
    except (CSVError, FileNotFoundError, UnicodeDecodeError) as e:
        raise UserError(str(e)) from None
    by_id = dict(zip(d.ids, d.X))
    return [by_id.get(i, np.zeros((0, len(names)))) for i in ids]


def forecast_global(args: argparse.Namespace) -> int:
    """``series forecast`` of a global run: a CSV of the forecasts (long format by id)."""
    from lstmkit.series.global_run import load_global
    from lstmkit.train.checkpoint import CheckpointError

    check_positive(args, "horizon")
    if args.level is not None and not 0 <= args.level < 100:
        raise UserError(f"--level: expected a percentage 0 <= level < 100, got {args.level}")
    args.level = 80 if args.level is None else args.level  # 0: no interval
    output_file(args.out, "--out")
    png = (
        None
        if args.no_plot
        else output_file(args.plot or Path(args.out).with_suffix(".png"), "--plot")
    )
    if png is not None and png.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"--plot: expected a file name ending in .png, .svg, .pdf, got {png}")
    try:
        ensemble, meta = load_global(args.run)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    d = meta["data"]
    args.column = args.column or d["column"]
    if args.time_column is None and args.column == d["column"]:
        args.time_column = d["time_column"]
    args.id_column = d["id_column"]
    panel, times = _read(args, meta["future_covariates"], meta["past_covariates"])
    unknown = [i for i in panel.ids if i not in ensemble.panel.ids]
    missing = [i for i in ensemble.panel.ids if i not in panel.ids]
    if unknown or missing:
        raise UserError(
            f"--csv: expected the run's series ids, got {len(unknown)} unknown "
            f"({unknown[:3]}) and {len(missing)} missing ({missing[:3]})"
        )
    order = [panel.ids.index(i) for i in ensemble.panel.ids]
    h, hold = args.horizon, args.holdout
    extra = _future_rows(args, meta, ensemble.panel.ids)
    ends, X_future = [], []
    for k, j in enumerate(order):
        n = len(panel.y[j])
        if hold < 0 or n - hold < 2:
            raise UserError(f"--holdout: expected 0 <= holdout <= {n - 2}, got {hold}")
        ends.append(n - hold)
        x = np.concatenate([panel.X[j][n - hold :], extra[k]])[:h]
        if not meta["future_covariates"]:
            x = np.zeros((h, 0))
        elif x.shape[0] < h:
            raise UserError(
                f"--future-csv: the {h} forecast steps need the known-future covariates "
                f"{meta['future_covariates']}; got {x.shape[0]} rows for series "
                f"{ensemble.panel.ids[k]!r}"
            )
        X_future.append(x)
    ordered = type(panel)(
        [panel.y[j] for j in order], [panel.X[j] for j in order], [panel.P[j] for j in order],
        ensemble.panel.ids,
    )  # fmt: skip
    try:
        predicted = ensemble.predict(h, X_future, ordered.cut(ends))
        bounds = None
        if args.level:
            bounds = ensemble.interval(h, args.level, X_future, ordered.cut(ends))
    except ValueError as e:
        raise UserError(str(e)) from None
    times = [None if times is None else times[j] for j in order]
    _write(args, ordered, ends, times, predicted, bounds)
    message = f"wrote {h} forecast values of each of {len(ordered.y)} series to {args.out}"
    print(message + _plot(args, png, ordered, ends, predicted))
    return 0


def _plot(
    args: argparse.Namespace, png: Path | None, panel: Any, ends: list[int], predicted: Any
) -> str:
    """One series: its PNG (as for the automatic forecaster), unless --no-plot; many: none."""
    if png is None:
        return ""
    if len(panel.y) > 1:
        return "; no plot for many series"
    from lstmkit.series.plot import plot_forecast

    y, o, h = panel.y[0], ends[0], args.horizon
    actual = y[o : o + h] if args.holdout else None
    title = f"{args.column}: {h}-step forecast with covariates"
    plot_forecast(png, y[:o], predicted[0], actual, title, args.column, show_last=4 * h + 36)
    return f" and a plot to {png}"


def _write(
    args: argparse.Namespace,
    panel: Any,
    ends: list[int],
    times: list[Any],
    predicted: Any,
    bounds: Any = None,
) -> None:
    """The forecast CSV: id, time, forecast, with ``bounds`` (lo, hi) (K, h) the columns
    ``lo_<level>`` and ``hi_<level>``, and with --holdout the actual values."""
    from lstmkit.series.data import future_times

    h, hold = args.horizon, args.holdout
    header = ([args.id_column] if args.id_column else []) + [args.time_column or "step"]
    rows = []
    for k, (name, y, o) in enumerate(zip(panel.ids, panel.y, ends)):
        if times[k] is None:
            labels = [str(o + j) for j in range(h)]
        else:
            known = times[k][o : o + h]
            try:
                labels = known + future_times(times[k], h - len(known))
            except ValueError as e:
                raise UserError(str(e)) from None
        for j in range(h):
            actual = repr(float(y[o + j])) if hold and o + j < len(y) else ""
            row = ([name] if args.id_column else []) + [labels[j], repr(float(predicted[k, j]))]
            if bounds is not None:
                row += [repr(float(bounds[0][k, j])), repr(float(bounds[1][k, j]))]
            rows.append(row + ([actual] if hold else []))
    level = "" if bounds is None else f"{args.level:g}"
    try:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            names = [] if bounds is None else [f"lo_{level}", f"hi_{level}"]
            writer.writerow(header + ["forecast", *names] + (["actual"] if hold else []))
            writer.writerows(rows)
    except OSError as e:
        raise UserError(f"--out: cannot write {args.out}: {e.strerror or e}") from None


def backtest_global(args: argparse.Namespace) -> int:
    """``series backtest`` with --id-column or covariates."""
    import json

    from lstmkit.series.many_backtest import backtest_panel, format_panel_backtest, panel_origins

    _check_single_lstm(args)
    if args.csv is None or args.column is None:
        raise UserError("--id-column and covariates need --csv and --column")
    check_positive(args, "horizon", "origins", "step", "season")
    if not 0 <= args.level < 100:
        raise UserError(f"--level: expected a percentage 0 <= level < 100, got {args.level}")
    config = auto_config(args)
    future = _list(args.future_covariates, "--future-covariates")
    past = _list(args.past_covariates, "--past-covariates")
    names = baseline_names(args)
    if args.json is not None:
        output_file(args.json, "--json")
    if args.plot is not None:
        raise UserError("--plot: not available with --id-column or covariates (use --json)")
    out = output_folder(args.out, "--out")
    panel, times = _read(args, future, past)
    season = _season(args, times)
    step = args.step if args.step is not None else args.horizon
    need = max(season + 1, args.horizon + 5)
    try:
        origins = panel_origins([len(y) for y in panel.y], args.horizon, args.origins, step, need)
    except ValueError as e:
        raise UserError(str(e)) from None
    log = None if args.no_progress else (lambda s: print(s, file=sys.stderr))
    try:
        report = backtest_panel(
            panel, args.horizon, origins, season, config, names, (future, past), log,
            args.level or None,
        )  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from None
    report.update({"future_covariates": future, "past_covariates": past, "origins": origins})
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(format_panel_backtest(report))
    note = "the baselines are fitted on each series alone, without covariates"
    if future:
        note += "; lstmkit is given the true known-future covariates of each forecast step"
    print(note)
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        print(f"wrote the report to {args.json}")
    return 0
