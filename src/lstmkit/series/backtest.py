"""Rolling-origin backtest: lstmkit's forecaster next to statsforecast's automatic models.

With n values, horizon h, k origins and step s, origin i (0-based, oldest first) is

    o_i = n - h - (k - 1 - i) s          (the last origin leaves exactly h values)

and every model — lstmkit's LSTM and the baselines — sees only ``values[:o_i]`` (the
history) and forecasts ``values[o_i : o_i + h]``. Nothing at or after the origin reaches a
model: it is handed a :class:`~lstmkit.series.data.Series` cut at the origin (a test checks
it). The LSTM trains a new model at every origin (its validation part, which picks the best
checkpoint, is the end of that history; there is no held-out tail inside it).

Scores per origin (see :mod:`lstmkit.series.evaluate`): MAE, RMSE, sMAPE (percent, 0..200)
and MASE as in the M4 competition: the MAE divided by the in-sample MAE of the seasonal-naive
forecast on the history of that origin,

    MASE_i = MAE_i / ( 1/(o_i - m) sum_{t=m}^{o_i - 1} |y_t - y_{t-m}| )     (m = season)

so every origin (and every model at an origin) is scaled by the same number. The mean row is
the arithmetic mean over origins of each score (NaN if any origin's is).

The baselines are Nixtla's statsforecast models (an optional extra:
``pip install 'lstmkit[baselines]'``): ``AutoETS``, ``AutoARIMA``, ``AutoTheta`` (all with
``season_length=m``), ``SeasonalNaive`` (m) and ``Naive``, each fitted on the same history
by ``model.forecast(y=history, h=h)``. statsforecast is imported only when a baseline runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.series.data import Series
from lstmkit.series.evaluate import scores

__all__ = [
    "BASELINES",
    "INSTALL_HINT",
    "Forecaster",
    "auto_forecaster",
    "backtest",
    "baseline",
    "format_backtest",
    "lstm_forecaster",
    "origins",
]

BASELINES = ("AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive", "Naive")
INSTALL_HINT = (
    "the baselines need statsforecast: pip install 'lstmkit[baselines]' "
    "(or pip install 'statsforecast>=1.7' 'pandas>=2')"
)

# (history up to the origin, horizon) -> horizon forecast values, or (values, lo, hi) with a
# prediction interval
Forecaster = Callable[[Series, int], Any]


def origins(n: int, horizon: int, count: int, step: int, min_history: int = 2) -> list[int]:
    """The ``count`` forecast origins, oldest first: o_i = n - h - (count - 1 - i) step.

    A ValueError if the oldest leaves fewer than ``min_history`` values before it.
    """
    for name, value in (("horizon", horizon), ("origins", count), ("step", step)):
        if value < 1:
            raise ValueError(f"--{name}: expected >= 1, got {value}")
    out = [n - horizon - (count - 1 - i) * step for i in range(count)]
    if out[0] < min_history:
        raise ValueError(
            f"the series has {n} values: {count} origins {step} apart with horizon {horizon} "
            f"leave {out[0]} values before the first origin, and at least {min_history} are "
            "needed; use fewer --origins, a smaller --step or --horizon"
        )
    return out


def _models_module() -> Any:
    try:
        import statsforecast.models as models
    except ModuleNotFoundError:
        raise ModuleNotFoundError(INSTALL_HINT, name="statsforecast") from None
    return models


def check_baselines_installed() -> None:
    """ModuleNotFoundError (with the install command) if statsforecast is missing."""
    _models_module()


def baseline(name: str, season: int, level: int | None = None) -> Forecaster:
    """The statsforecast model ``name`` (one of :data:`BASELINES`) as a forecaster; with
    ``level`` (percent) it also returns statsforecast's prediction interval."""
    if name not in BASELINES:
        raise ValueError(f"--models: expected names among {', '.join(BASELINES)}, got {name!r}")
    models = _models_module()

    def run(history: Series, horizon: int) -> Any:
        cls = getattr(models, name)
        model = cls() if name == "Naive" else cls(season_length=season)
        y = history.history()  # missing values filled by the series' mode
        if level is None:
            return np.asarray(model.forecast(y=y, h=horizon)["mean"], np.float64)
        out = model.forecast(y=y, h=horizon, level=[level])
        return out["mean"], out[f"lo-{level}"], out[f"hi-{level}"]

    return run


def lstm_forecaster(
    config: Any,
    out: str | Path,
    show_progress: bool = False,
    log: Callable[[str], None] = print,
) -> Forecaster:
    """lstmkit's forecaster: at each origin a new run ``out/origin-<o>`` trained by
    :func:`lstmkit.series.train.train` on the history alone (no held-out tail), then its
    best checkpoint forecasts by recursive roll-out."""
    from lstmkit.series.forecast import forecast_run
    from lstmkit.series.train import TrainConfig, load_model, train

    assert isinstance(config, TrainConfig)
    config = replace(config, holdout=0)
    out = Path(out)

    def run(history: Series, horizon: int) -> Any:
        folder = out / f"origin-{len(history)}"
        # the trainer prints its validation lines on stdout: they go to ``log`` instead,
        # so that stdout holds the backtest's table alone
        filled = replace(history, values=history.history())
        with contextlib.redirect_stdout(_Lines(log)):
            summary = train(config, folder, filled, show_progress=show_progress, log=log)
        model, meta, _ = load_model(summary["run"])
        return np.asarray(forecast_run(model, meta, filled.values, horizon), np.float64)

    return run


def auto_forecaster(
    config: Any,
    season: int,
    out: str | Path,
    log: Callable[[str], None] = print,
    level: int | None = None,
) -> Forecaster:
    """lstmkit's automatic forecaster (:func:`lstmkit.series.auto.fit_auto`): at each origin
    a new search and ensemble on the history alone; its choices go to
    ``out/origin-<o>/auto.json`` and one line to ``log``. With ``level`` (percent) it also
    returns its prediction interval (:meth:`~lstmkit.series.auto.Ensemble.interval`)."""
    from lstmkit.series.auto import AutoConfig, fit_auto
    from lstmkit.series.missing import fill

    assert isinstance(config, AutoConfig)
    out = Path(out)

    def run(history: Series, horizon: int) -> Any:
        y, observed = fill(history.values, history.missing)
        mask = observed if history.missing == "mask" else None
        ensemble = fit_auto(y, season, horizon, config, mask)
        summary = ensemble.summary()
        folder = out / f"origin-{len(history)}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "auto.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        _save_calibration(folder / "calibration.npz", ensemble)
        chosen = "; ".join(
            f"lookback {m['lookback']}{', ES-hybrid' if m['hybrid'] else ''}, deseason "
            f"{m['deseason']}, difference "
            f"{m['difference']}, hidden {m['hidden']}, {m['steps']} steps"
            for m in summary["members"][:: config.seeds]
        )
        log(f"lstmkit at {len(history)}: {len(summary['search'])} candidates; chose {chosen}")
        if level is None:
            return ensemble.predict(horizon)
        return (ensemble.predict(horizon), *ensemble.interval(horizon, level))

    return run


def _save_calibration(path: Path, ensemble: Any) -> None:
    """The material behind an origin's interval, for studying calibration rules offline:
    ``candidate<i>`` (R_i, h) each search row's validation errors, ``cut<k>`` (forms, R, h)
    the chosen forms' errors at earlier cuts, ``errors`` the calibration used."""
    arrays = {f"candidate{i}": e for i, e in enumerate(ensemble.candidate_errors)}
    arrays.update({f"cut{k + 1}": e for k, e in enumerate(ensemble.cut_errors)})
    np.savez(path, errors=ensemble.errors, **arrays)


class _Lines(io.TextIOBase):
    """A text stream that hands each non-empty line written to it to ``log``."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log

    def write(self, s: str) -> int:
        for line in s.splitlines():
            if line.strip():
                self.log(line)
        return len(s)


def _cut(series: Series, origin: int) -> Series:
    """The series up to (not including) ``origin``: all a model may see (missing values
    still NaN: each forecaster fills them from this history alone)."""
    times = None if series.times is None else series.times[:origin]
    return replace(series, values=series.values[:origin].copy(), times=times)


def backtest(
    series: Series,
    horizon: int,
    origin_list: Sequence[int],
    season: int,
    forecasters: dict[str, Forecaster],
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every forecaster at every origin; their forecasts, scores and the means.

    Returns ``{"horizon", "season", "origins", "actual": [[...] per origin], "models":
    {name: {"forecast": [[...] per origin], "per_origin": [{mae, rmse, smape, mase}],
    "mean": {...}, "seconds": float}}}``. A forecaster that fails raises a ValueError
    naming it and the origin.
    """
    n = len(series)
    for o in origin_list:
        if not season < o <= n - horizon:
            raise ValueError(
                f"origin {o}: expected more than season = {season} values before it and "
                f"horizon = {horizon} after it (the series has {n})"
            )
    report: dict[str, Any] = {
        "horizon": horizon,
        "season": season,
        "origins": list(origin_list),
        "actual": [series.values[o : o + horizon].tolist() for o in origin_list],
        "models": {},
    }
    for name, predict in forecasters.items():
        forecasts, per_origin, intervals, seconds = [], [], [], 0.0
        for i, o in enumerate(origin_list):
            if log is not None:
                log(f"{name}: origin {i + 1}/{len(origin_list)} (after {o} values)")
            history = _cut(series, o)
            start = time.perf_counter()
            try:
                f, interval = _forecast_and_interval(predict(history, horizon))
            except (ArithmeticError, ValueError, RuntimeError, np.linalg.LinAlgError) as e:
                raise ValueError(f"{name} at origin {o}: {e}") from None
            seconds += time.perf_counter() - start
            if f.shape != (horizon,):
                raise ValueError(
                    f"{name} at origin {o}: expected {horizon} forecast values, got {f.shape}"
                )
            actual = series.values[o : o + horizon]  # NaN where missing: not scored
            forecasts.append(f.tolist())
            per_origin.append(scores(actual, f, history.history(), season))
            if interval is not None:
                lo, hi = interval
                known = np.isfinite(actual)
                inside = (lo <= actual) & (actual <= hi)
                per_origin[-1]["coverage"] = (
                    float(np.mean(inside[known])) if known.any() else np.nan
                )
                per_origin[-1]["width"] = float(np.mean(hi - lo))
                intervals.append([lo.tolist(), hi.tolist()])
        mean = {k: float(np.mean([s[k] for s in per_origin])) for k in per_origin[0]}
        report["models"][name] = {
            "forecast": forecasts,
            "interval": intervals,
            "per_origin": per_origin,
            "mean": mean,
            "seconds": seconds,
        }
    return report


def format_backtest(report: dict[str, Any], title: str = "") -> str:
    """One row per model: mean MAE, RMSE, sMAPE %, MASE, the coverage of its prediction
    interval (percent of actuals inside; "-" without one), then the MASE at each origin."""
    k = len(report["origins"])
    source = f" ({report['season_source']})" if report.get("season_source") else ""
    level = report.get("level")
    cover = f"cover{level}" if level else "cover"
    lines = [
        f"{title}{k} origins {report['origins']}, horizon {report['horizon']}, "
        f"season {report['season']}{source}; means over the origins",
        f"{'model':<14}{'MAE':>10}{'RMSE':>10}{'sMAPE %':>9}{'MASE':>8}{cover:>9}  "
        + " ".join(f"{f'MASE@{i + 1}':>7}" for i in range(k)),
    ]
    for name, m in report["models"].items():
        s = m["mean"]
        c = f"{100 * s['coverage']:>9.1f}" if "coverage" in s else f"{'-':>9}"
        lines.append(
            f"{name:<14}{s['mae']:>10.4g}{s['rmse']:>10.4g}{s['smape']:>9.3f}{s['mase']:>8.3f}"
            f"{c}  " + " ".join(f"{p['mase']:>7.3f}" for p in m["per_origin"])
        )
    return "\n".join(lines)


def _forecast_and_interval(
    out: Any,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """A forecaster's answer as (values, (lo, hi) or None), all float64."""
    if isinstance(out, tuple):
        f, lo, hi = (np.asarray(a, np.float64) for a in out)
        if not lo.shape == hi.shape == f.shape:
            raise ValueError(
                f"expected forecast, lo and hi of one shape, got {f.shape}, {lo.shape}, {hi.shape}"
            )
        return f, (lo, hi)
    return np.asarray(out, np.float64), None
