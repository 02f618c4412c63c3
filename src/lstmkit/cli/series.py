"""``lstmkit series train | forecast | eval | backtest | dataset``: the time-series forecaster."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from lstmkit.cli import series_global
from lstmkit.cli.errors import UserError
from lstmkit.cli.options import (
    add_run_option,
    add_training_options,
    check_at_least,
    check_memory,
    check_positive,
    existing_run,
    json_safe,
    output_file,
    output_folder,
    run_trainer,
)
from lstmkit.cli.series_auto import auto_config as _auto_config
from lstmkit.cli.series_auto import baseline_names
from lstmkit.cli.series_auto import single_config as _single_config
from lstmkit.cli.series_auto import train_auto as _train_auto
from lstmkit.cli.series_missing import add_missing_option, filled_before, refuse_mask, say_filled
from lstmkit.train.checkpoint import CheckpointError


def add_commands(subparsers: Any) -> None:
    series = subparsers.add_parser("series", help="time-series forecaster")
    sub = series.add_subparsers(dest="series_command", metavar="ACTION", required=True)

    from lstmkit.series.backtest import BASELINES
    from lstmkit.series.datasets import DATASETS
    from lstmkit.series.train import TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a forecaster on a CSV column",
        description="Train a forecaster on one numeric column of a CSV file; the last "
        "--holdout values (default: the horizon) are left for `series eval`. By default the "
        "automatic forecaster: it chooses its lookback (multiples of the season), season "
        "handling, differencing, size and training length on validation windows inside the "
        "training part, then refits a median ensemble of LSTMs on all of it (auto.npz in "
        "--out; --minutes caps the fit, 1 by default). With --lookback or --difference: one "
        "LSTM, split in time order into training part | validation part (--val, picks "
        "best.npz) | held-out tail, resumable and exportable to ONNX. The scaler is fitted "
        "on the training part only and stored with the model.",
    )
    _data_options(p, column_required=True)
    add_training_options(p, d, "windows per step")
    p.add_argument("--horizon", type=int, default=d.horizon, help="forecast steps (%(default)s)")
    p.add_argument("--lookback", type=int, help=f"one LSTM with this window (e.g. {d.lookback})")
    p.add_argument("--holdout", type=int, help="tail kept out of training (default: horizon)")
    p.add_argument("--val", type=int, help="one LSTM: validation values (default: horizon)")
    p.add_argument("--season", type=int, help="auto: seasonal period (default: inferred, else 1)")
    p.add_argument(
        "--difference", action="store_true", help="one LSTM on the changes v_t - v_{t-1}"
    )
    _auto_defaults(p)
    p.add_argument(
        "--hybrid",
        action="store_true",
        help="auto: also search the ES-hybrid forms (an exponential-smoothing level; no ONNX "
        "export for an ensemble that holds one)",
    )
    _no_level_option(p)
    series_global.add_options(p, "train")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "forecast",
        help="forecast the next values of a series",
        description="Forecast --horizon values after the end of the CSV's series (or, with "
        "--holdout N, after its first n - N values, next to the N actual ones) by recursive "
        "roll-out. Writes a CSV and a PNG of history, forecast and actuals.",
    )
    _run_options(p)
    p.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    p.add_argument("--out", required=True, help="output CSV, e.g. forecast.csv")
    p.add_argument("--holdout", type=int, default=0, help="forecast from before the last N")
    p.add_argument("--plot", help="PNG path (default: --out with .png)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument(
        "--level",
        type=int,
        help="automatic forecaster: prediction interval in percent, columns lo_L and hi_L "
        "(default 80; 0: none)",
    )
    series_global.add_options(p, "forecast")
    p.set_defaults(func=_forecast)

    p = sub.add_parser(
        "eval",
        help="MAE, RMSE, sMAPE, MASE on a held-out tail, next to naive baselines",
        description="Forecast the last --holdout values from the ones before and score it "
        "next to the naive (last value) and seasonal-naive (last season) forecasts. MASE "
        "divides by the in-sample MAE of the seasonal-naive forecast. The season is --season, "
        "else inferred from the time column (monthly 12, quarterly 4, weekly 52, daily 7, "
        "hourly 24, yearly 1), else 1.",
    )
    _run_options(p)
    p.add_argument("--holdout", type=int, help="values to score (default: the run's holdout)")
    p.add_argument("--season", type=int, help="seasonal period (default: inferred, else 1)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "backtest",
        help="rolling-origin backtest next to AutoETS, AutoARIMA, AutoTheta, naive models",
        description="Rolling-origin evaluation: at each of --origins forecast origins "
        "(--step apart, the last one --horizon values before the end) lstmkit trains a new "
        "forecaster on the values before the origin (a run folder under --out) and "
        "statsforecast's AutoETS, AutoARIMA, AutoTheta, SeasonalNaive and Naive are fitted "
        "on the same values; each forecasts --horizon values. Prints MAE, RMSE, sMAPE and "
        "MASE (the MAE over the in-sample seasonal-naive MAE of the values before the "
        "origin, as in M4) averaged over the origins, and the MASE at each origin. "
        "By default lstmkit is the automatic forecaster: at each origin it chooses its "
        "lookback, season handling, differencing, size and training length on validation "
        "windows inside the history and forecasts with a median ensemble (--minutes caps "
        "each fit, 1 by default; --steps caps each candidate's training). --lookback or "
        "--difference trains one LSTM with the given options instead. "
        "Needs: pip install 'lstmkit[baselines]'.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--csv", help="CSV file with a header row")
    where.add_argument("--dataset", choices=list(DATASETS), help="a bundled series instead")
    p.add_argument("--column", help="value column (needed with --csv)")
    p.add_argument("--time-column", help="time stamp column, optional (infers --season)")
    add_missing_option(p)
    p.add_argument("--horizon", type=int, default=d.horizon, help="forecast steps (%(default)s)")
    p.add_argument("--origins", type=int, default=5, help="forecast origins (%(default)s)")
    p.add_argument("--step", type=int, help="values between origins (default: horizon)")
    p.add_argument("--season", type=int, help="seasonal period (default: inferred, else 1)")
    p.add_argument(
        "--models",
        default=",".join(BASELINES),
        help="comma-separated baselines, or 'none' (default: %(default)s)",
    )
    p.add_argument(
        "--level",
        type=int,
        default=80,
        help="prediction interval in percent; its coverage is reported (%(default)s; 0: none)",
    )
    p.add_argument("--out", required=True, help="folder for the lstmkit runs (one per origin)")
    p.add_argument("--json", help="write the report (forecasts, scores) to this JSON file")
    p.add_argument("--plot", help="write forecasts and MASE per origin to this PNG")
    add_training_options(p, d, "windows per step", run_folder=False)  # its --no-progress: quiet
    p.add_argument("--lookback", type=int, help="one LSTM with this window length (not auto)")
    p.add_argument("--val", type=int, help="validation values at the end of each history")
    p.add_argument(
        "--difference", action="store_true", help="one LSTM on the changes v_t - v_{t-1}"
    )
    _auto_defaults(p)
    p.add_argument(
        "--hybrid",
        action="store_true",
        help="auto: also search the ES-hybrid forms (an exponential-smoothing level; no ONNX "
        "export for an ensemble that holds one)",
    )
    _no_level_option(p)
    series_global.add_options(p, "backtest")
    p.set_defaults(func=_backtest, holdout=0)

    names = ", ".join(f"{k} ({v[2]})" for k, v in DATASETS.items())
    p = sub.add_parser(
        "dataset",
        help="write a real series bundled with statsmodels to CSV",
        description=f"Write a dataset bundled with statsmodels to CSV: {names}. "
        "Needs: pip install 'lstmkit[datasets]'. The value column is named 'value'.",
    )
    p.add_argument("name", choices=list(DATASETS), help="dataset name")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=_dataset)


_PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _auto_defaults(p: argparse.ArgumentParser) -> None:
    """--hidden, --steps and --eval-every default to None: the automatic forecaster's own
    defaults, or one LSTM's (see cli/series_auto.py); their help says both."""
    from lstmkit.series.auto import AutoConfig
    from lstmkit.series.train import TrainConfig

    a, d = AutoConfig(), TrainConfig()
    helps = {
        "hidden": f"LSTM size (auto: {a.hidden}, then {a.sizes} tried; one LSTM: {d.hidden})",
        "steps": f"training steps (auto: at most {a.steps} per candidate; one LSTM: {d.steps})",
        "eval_every": f"validate every N steps (auto: {a.eval_every}; one LSTM: {d.eval_every})",
    }
    for action in p._actions:
        if action.dest in helps:
            action.help, action.default = helps[action.dest], None


def _no_level_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-level",
        action="store_true",
        help="auto: the differenced forms never read the level as a second input (by default "
        "they do where the ADF test finds the history mean-reverting)",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    """--run and the CSV to read with it (its columns default to the run's)."""
    add_run_option(p)
    _data_options(p, column_required=False)


def _data_options(p: argparse.ArgumentParser, column_required: bool) -> None:
    p.add_argument("--csv", required=True, help="CSV file with a header row")
    where = "" if column_required else " (default: the run's)"
    p.add_argument("--column", required=column_required, help=f"value column{where}")
    p.add_argument("--time-column", help=f"time stamp column, optional{where}")
    add_missing_option(p)


def _read(path: str, column: str, time_column: str | None, missing: str = "error") -> Any:
    from lstmkit.series.data import CSVError, read_csv

    try:
        return read_csv(path, column, time_column, missing)
    except (CSVError, FileNotFoundError, UnicodeDecodeError, ModuleNotFoundError) as e:
        raise UserError(str(e)) from None


def _reader(args: argparse.Namespace) -> Any:
    """``read(csv, column, time_column)`` with the command's --missing."""
    return partial(_read, missing=args.missing)


def _train(args: argparse.Namespace) -> int:
    from lstmkit.series.train import train

    if series_global.wanted(args):
        return series_global.train_global(args)
    if args.lookback is None and not args.difference:
        return _train_auto(args, _reader(args))
    if args.season is not None:
        raise UserError("--season goes with the automatic forecaster (no --lookback)")
    refuse_mask(args)
    config = _single_config(args)
    series = _read(args.csv, args.column, args.time_column, args.missing)
    end = len(series) - config.resolved().holdout
    say_filled(series, end)
    s = run_trainer(args, train, config, filled_before(series, end))
    if s is None:
        return 0  # not rank 0
    split = s["split"]
    val = (
        f"validation loss {s['val_loss']:.4f} (best {s['best_val_loss']:.4f}), "
        f"{split['n_val']}-step forecast MAE {s['val_mae']:.4g}; "
        if split["n_val"]
        else ""
    )
    where = f" on {s['processes']} MPI processes" if s["processes"] > 1 else ""
    print(
        f"trained {s['steps']} steps{where} on {split['n_fit']} values ({s['windows']} windows): "
        f"train loss {s['train_loss']:.4f}, {val}{split['n_holdout']} values held out; "
        f"run folder {s['run']}"
    )
    return 0


def _load(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Any]:
    """The run's model (an LSTM or an automatic forecaster's ensemble) and meta, and the CSV
    series (column defaults from the run)."""
    from lstmkit.series.auto_run import is_auto_run, load_ensemble
    from lstmkit.series.global_run import is_global_run
    from lstmkit.series.train import load_model

    if is_global_run(existing_run(args.run)):
        raise UserError(
            f"--run: {args.run} holds a global forecaster (covariates or --id-column); score "
            "it with series backtest, or series forecast --holdout N"
        )
    model: Any
    try:
        if is_auto_run(args.run):
            model, meta = load_ensemble(args.run)
        else:
            model, meta, _ = load_model(args.run)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    column = args.column or meta["data"]["column"]
    time_column = args.time_column
    if time_column is None and args.column is None:
        time_column = meta["data"]["time_column"]
    return model, meta, _read(args.csv, column, time_column, args.missing)


def _members(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The lookback and differencing of a run's model(s): one LSTM or an ensemble's members."""
    return meta["members"] if "members" in meta else [meta["train_config"]]


def _forecast(args: argparse.Namespace) -> int:
    import numpy as np

    from lstmkit.series.data import future_times
    from lstmkit.series.evaluate import predict_run
    from lstmkit.series.global_run import is_global_run

    if is_global_run(args.run):
        return series_global.forecast_global(args)
    if args.future_csv is not None:
        raise UserError("--future-csv: the run was trained without --future-covariates")
    check_positive(args, "horizon")
    output_file(args.out, "--out")
    png = None
    if not args.no_plot:
        png = output_file(args.plot or Path(args.out).with_suffix(".png"), "--plot")
        if png.suffix.lower() not in _PLOT_SUFFIXES:
            raise UserError(
                f"--plot: expected a file name ending in {', '.join(_PLOT_SUFFIXES)}, got {png}"
            )
    model, meta, series = _load(args)
    level = _forecast_level(args.level, "members" in meta)
    n, holdout = len(series), args.holdout
    need = 1 + int(any(m["difference"] for m in _members(meta)))
    if holdout < 0 or n - holdout < need:
        raise UserError(f"--holdout: expected 0 <= holdout <= {n - need}, got {holdout}")
    say_filled(series, n - holdout)
    history = series.history(n - holdout)  # the forecast's context
    actual = series.values[n - holdout : n - holdout + args.horizon]  # NaN: missing
    origin = n - holdout
    if series.times is None:  # label rows by position in the series (0-based)
        times = [str(origin + k) for k in range(args.horizon)]
    else:  # the CSV's own stamps over the held-out part, then stamps continued past the end
        known = series.times[origin : origin + args.horizon]
        try:
            times = known + future_times(series.times, args.horizon - len(known))
        except ValueError as e:
            raise UserError(str(e)) from None
    predicted = predict_run(model, meta, history, args.horizon)
    bounds = _interval(model, history, args.horizon, level)
    time_name = series.time_column or "step"
    header = [time_name, "forecast"] + [f"{b}_{level}" for b in ("lo", "hi") if bounds]
    try:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header + (["actual"] if holdout else []))
            for k, (t, v) in enumerate(zip(times, predicted)):
                row = [t, repr(float(v))]
                if bounds is not None:
                    row += [repr(float(bounds[0][k])), repr(float(bounds[1][k]))]
                if holdout:
                    known = k < len(actual) and np.isfinite(actual[k])
                    row.append(repr(float(actual[k])) if known else "")
                writer.writerow(row)
    except OSError as e:
        raise UserError(f"--out: cannot write {args.out}: {e.strerror or e}") from None
    message = f"wrote {args.horizon} forecast values to {args.out}"
    if png is not None:
        from lstmkit.series.plot import plot_forecast

        plot_forecast(
            png,
            history,
            predicted,
            actual if holdout else None,
            title=f"{series.column}: {args.horizon}-step forecast",
            ylabel=series.column,
            show_last=max(4 * args.horizon, 5 * max(m["lookback"] for m in _members(meta))),
            interval=bounds,
            level=level,
        )
        message += f" and a plot to {png}"
    known = np.isfinite(actual)
    if holdout and known.any():
        from lstmkit.series.evaluate import mae

        m = len(actual)
        message += (
            f"; MAE on the {int(known.sum())} held-out values "
            f"{mae(actual[known], predicted[:m][known]):.4g}"
        )
    print(message)
    return 0


def _forecast_level(level: int | None, auto: bool) -> int | None:
    """``series forecast --level``: the interval's percent (80 by default for the automatic
    forecaster), None for none (0, or one LSTM without --level); a UserError if invalid."""
    if level is not None and not 0 <= level < 100:
        raise UserError(f"--level: expected a percentage 0 <= level < 100, got {level}")
    if not auto:
        if level:
            raise UserError(
                "--level: one LSTM (a run trained with --lookback) has no prediction interval; "
                "train the automatic forecaster (no --lookback) for one"
            )
        return None
    level = 80 if level is None else level
    return level or None


def _interval(model: Any, history: Any, horizon: int, level: int | None) -> Any:
    """(lo, hi), each (horizon,), of the automatic forecaster's ``level`` % interval after
    ``history``; None without a level."""
    if level is None:
        return None
    lo, hi = model.interval(horizon, level, history)
    import numpy as np

    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        print(
            f"note: the {level} % interval is unbounded or unknown (too few validation errors "
            "for the level: a short history); its columns hold inf or nan",
            file=sys.stderr,
        )
    return lo, hi


def _eval(args: argparse.Namespace) -> int:
    from lstmkit.series.evaluate import evaluate, format_report

    check_positive(args, "season")
    check_at_least(args, 0, "holdout")
    model, meta, series = _load(args)
    holdout = args.holdout if args.holdout is not None else meta["data"]["split"]["n_holdout"]
    say_filled(series, len(series) - holdout)
    if holdout < 1:
        raise UserError(
            "the run kept no held-out tail (--holdout 0 at training); pass --holdout N "
            "(values the model may have seen in training)"
        )
    try:
        report = evaluate(model, meta, series, holdout, args.season)
    except ValueError as e:
        raise UserError(str(e)) from None
    n_seen = meta["data"]["split"]["n_fit"] + meta["data"]["split"]["n_val"]
    report["overlaps_training"] = report["origin"] < n_seen
    if args.json:
        print(json.dumps(json_safe(report)))
        return 0
    print(format_report(report, title=f"{series.column} ({series.source}): "))
    if report["overlaps_training"]:
        print(
            f"note: the run trained and validated on the first {n_seen} values; this tail "
            "starts inside them, so the LSTM's scores are optimistic"
        )
    return 0


def _backtest_series(args: argparse.Namespace) -> Any:
    """The series named by --csv/--column or --dataset."""
    if args.csv is not None:
        if args.column is None:
            raise UserError("--column: required with --csv (the value column)")
        return _read(args.csv, args.column, args.time_column, args.missing)
    import numpy as np

    from lstmkit.series.data import Series
    from lstmkit.series.datasets import load

    if args.column is not None or args.time_column is not None:
        raise UserError("--column and --time-column go with --csv, not --dataset")
    try:
        time_column, times, values = load(args.dataset)
    except ModuleNotFoundError as e:
        raise UserError(str(e)) from None
    y = np.array(values, np.float64)
    return Series(y, times, "value", time_column, args.dataset, args.missing)


def _backtest(args: argparse.Namespace) -> int:
    from lstmkit.series import backtest as bt
    from lstmkit.series.evaluate import resolve_season
    from lstmkit.train.run_folder import Run
    from lstmkit.train.trainer import TrainingError

    if series_global.wanted(args):
        return series_global.backtest_global(args)
    check_positive(args, "horizon", "origins", "step", "season")
    if not 0 <= args.level < 100:
        raise UserError(f"--level: expected a percentage 0 <= level < 100, got {args.level}")
    level = args.level or None
    names = baseline_names(args)
    if args.json is not None:
        output_file(args.json, "--json")
    if args.plot is not None:
        png = output_file(args.plot, "--plot")
        if png.suffix.lower() not in _PLOT_SUFFIXES:
            raise UserError(
                f"--plot: expected a file name ending in {', '.join(_PLOT_SUFFIXES)}, got {png}"
            )
    auto = args.lookback is None and not args.difference
    if not auto:
        refuse_mask(args)
    config = _auto_config(args) if auto else _single_config(args)
    series = _backtest_series(args)
    say_filled(series, len(series))
    step = args.step if args.step is not None else args.horizon
    try:
        season, source = resolve_season(series, args.season)
        if auto:  # a validation part of one horizon and four values before it
            need = max(season + 1, args.horizon + 5)
        else:  # the LSTM's training windows and validation part, MASE's scale
            r = config.resolved()
            need = max(season + 1, r.lookback + 2 + int(r.difference) + r.val)
        origins = bt.origins(len(series), args.horizon, args.origins, step, need)
    except ValueError as e:
        raise UserError(str(e)) from None
    out = output_folder(args.out, "--out", create=True)
    taken = [
        o
        for o in origins
        if Run(out / f"origin-{o}").exists() or (out / f"origin-{o}" / "auto.json").exists()
    ]
    if taken:
        raise UserError(
            f"--out: {out / f'origin-{taken[0]}'} already holds a run; pass another --out"
        )
    # progress (each model at each origin, the LSTM's training) on stderr; --no-progress: none
    log = partial(print, file=sys.stderr) if not args.no_progress else None
    if auto:
        lstm = bt.auto_forecaster(config, season, out, log or _quiet, level)
    else:
        check_memory(config)
        lstm = bt.lstm_forecaster(config, out, log is not None, log or _quiet)
    forecasters = {"lstmkit": lstm}
    forecasters.update({name: bt.baseline(name, season, level) for name in names})
    try:
        report = bt.backtest(series, args.horizon, origins, season, forecasters, log)
    except (TrainingError, ValueError) as e:
        raise UserError(str(e)) from None
    report = {
        "series": {"source": series.source, "column": series.column, "n": len(series)},
        "step": step,
        "season_source": source,
        "level": level,
        "lstmkit": "auto" if auto else "single LSTM",
        "train_config": asdict(config),
        "runs": [str(out / f"origin-{o}") for o in origins],
        **report,
    }
    print(bt.format_backtest(report, title=f"{series.column} ({series.source}): "))
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(json_safe(report), f, indent=1)
        print(f"wrote the report to {args.json}")
    if args.plot is not None:
        from lstmkit.series.plot import plot_backtest

        plot_backtest(
            args.plot, series.values, report, title=f"{series.column} ({series.source}): backtest"
        )
        print(f"wrote a plot to {args.plot}")
    return 0


def _quiet(message: str) -> None:
    """A log that drops its messages."""


def _dataset(args: argparse.Namespace) -> int:
    from lstmkit.series.datasets import write_csv

    output_file(args.out, "--out")
    try:
        path, n = write_csv(args.name, args.out)
    except ModuleNotFoundError as e:
        raise UserError(str(e)) from None
    print(f"wrote {n} values of {args.name} to {path}")
    return 0
