"""Forecast accuracy on a held-out tail, next to the naive and seasonal-naive baselines.

With actuals a_1..a_h, forecasts f_1..f_h and the values before the tail y_1..y_n:

    MAE   = mean |a - f|
    RMSE  = sqrt(mean (a - f)^2)
    sMAPE = mean 200 |a - f| / (|a| + |f|)        in percent, 0..200 (a term 0/0 counts 0)
    MASE  = MAE / mean_{t > m} |y_t - y_{t-m}|    (Hyndman & Koehler 2006; m = season)

A MASE below 1 beats the in-sample seasonal-naive forecast (the naive one for m = 1).
Baselines: naive repeats the last value y_n; seasonal naive repeats the last season,
f_j = y_{n - m + ((j - 1) mod m) + 1}. With m = 1 the two coincide.

The season m is ``--season`` if given, else inferred from the time column (12 for monthly,
4 quarterly, 52 weekly, 7 daily, 24 hourly, 1 yearly; see :func:`infer_frequency`), else 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lstmkit.series.auto import Ensemble
from lstmkit.series.data import Series
from lstmkit.series.forecast import forecast_run
from lstmkit.series.model import Forecaster
from lstmkit.series.times import infer_frequency

__all__ = [
    "evaluate",
    "format_report",
    "mae",
    "mase",
    "naive",
    "predict_run",
    "rmse",
    "resolve_season",
    "seasonal_naive",
    "smape",
]


def _pair(actual: Any, forecast: Any) -> tuple[np.ndarray, np.ndarray]:
    a, f = np.asarray(actual, np.float64), np.asarray(forecast, np.float64)
    if a.shape != f.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"expected actual and forecast of the same 1-D shape, got {a.shape} and {f.shape}"
        )
    return a, f


def mae(actual: Any, forecast: Any) -> float:
    a, f = _pair(actual, forecast)
    return float(np.mean(np.abs(a - f)))


def rmse(actual: Any, forecast: Any) -> float:
    a, f = _pair(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2)))


def smape(actual: Any, forecast: Any) -> float:
    """Symmetric MAPE in percent (0..200); a term with a = f = 0 counts 0."""
    a, f = _pair(actual, forecast)
    denom = np.abs(a) + np.abs(f)
    terms = np.divide(200.0 * np.abs(a - f), denom, out=np.zeros_like(a), where=denom > 0)
    return float(np.mean(terms))


def mase(actual: Any, forecast: Any, history: Any, season: int = 1) -> float:
    """MAE scaled by the in-sample MAE of the seasonal-naive forecast on ``history``.

    NaN if the history is constant at lag ``season`` (the scale is 0).
    """
    history = np.asarray(history, np.float64)
    if season < 1 or history.shape[0] <= season:
        raise ValueError(
            f"MASE: expected a history longer than the season {season}, "
            f"got {history.shape[0]} values"
        )
    scale = float(np.mean(np.abs(history[season:] - history[:-season])))
    return mae(actual, forecast) / scale if scale > 0 else math.nan


def naive(history: Any, horizon: int) -> np.ndarray:
    """The last value repeated ``horizon`` times."""
    history = np.asarray(history, np.float64)
    return np.full(horizon, history[-1])


def seasonal_naive(history: Any, horizon: int, season: int) -> np.ndarray:
    """The last ``season`` values repeated: f_j = y[n - m + (j - 1) mod m]."""
    history = np.asarray(history, np.float64)
    if season < 1 or history.shape[0] < season:
        raise ValueError(
            f"seasonal naive: expected at least season = {season} values, got {history.shape[0]}"
        )
    last = history[-season:]
    return last[np.arange(horizon) % season]


def resolve_season(series: Series, season: int | None) -> tuple[int, str]:
    """The season to use and where it came from (for the report)."""
    if season is not None:
        if season < 1:
            raise ValueError(f"--season: expected >= 1, got {season}")
        return season, "--season"
    frequency = infer_frequency(series.times)
    if frequency is not None:
        return frequency[1], f"inferred: {frequency[0]} time column"
    return 1, "default: no time column with a recognised frequency (pass --season)"


def scores(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, m: int) -> dict:
    """MAE, RMSE, sMAPE, MASE over the known actuals (a missing one, NaN, is left out; all
    NaN if none is known)."""
    known = np.isfinite(np.asarray(actual, np.float64))
    if not known.all():
        if not known.any():
            return dict.fromkeys(("mae", "rmse", "smape", "mase"), math.nan)
        actual, forecast = np.asarray(actual)[known], np.asarray(forecast)[known]
    return {
        "mae": mae(actual, forecast),
        "rmse": rmse(actual, forecast),
        "smape": smape(actual, forecast),
        "mase": mase(actual, forecast, history, m),
    }


def evaluate(
    model: Forecaster | Ensemble,
    meta: dict[str, Any],
    series: Series,
    holdout: int,
    season: int | None = None,
) -> dict[str, Any]:
    """Forecast the last ``holdout`` values from the ones before; score it and the baselines.

    Returns ``{"holdout", "season", "season_source", "origin", "models": {"lstm": {...},
    "naive": {...}, "seasonal_naive": {...}}, "forecast": [...], "actual": [...]}``.
    """
    n = len(series)
    if holdout < 1 or holdout >= n:
        raise ValueError(
            f"--holdout: expected 1 <= holdout < {n} (the series length), got {holdout}"
        )
    m, source = resolve_season(series, season)
    history, actual = series.history(n - holdout), series.values[-holdout:]  # NaN: missing
    if history.shape[0] <= m:
        raise ValueError(
            f"the {history.shape[0]} values before the held-out tail are too few for "
            f"season {m}; use a smaller --holdout or --season"
        )
    predictions = {
        "lstm": predict_run(model, meta, history, holdout),
        "naive": naive(history, holdout),
        "seasonal_naive": seasonal_naive(history, holdout, m),
    }
    return {
        "holdout": holdout,
        "season": m,
        "season_source": source,
        "origin": n - holdout,
        "models": {k: scores(actual, f, history, m) for k, f in predictions.items()},
        "forecast": predictions["lstm"].tolist(),
        "actual": actual.tolist(),
    }


def predict_run(
    model: Forecaster | Ensemble, meta: dict[str, Any], values: np.ndarray, horizon: int
) -> np.ndarray:
    """The ``horizon`` values after ``values`` (n,) by a run's model: one LSTM
    (:func:`~lstmkit.series.forecast.forecast_run`) or an automatic forecaster's ensemble."""
    if isinstance(model, Ensemble):
        return model.predict(horizon, values)
    return forecast_run(model, meta, values, horizon)


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A small table: one row per model, MAE, RMSE, sMAPE %, MASE."""
    lines = [
        f"{title}held-out tail: last {report['holdout']} values; season {report['season']} "
        f"({report['season_source']})",
        f"{'model':<16}{'MAE':>12}{'RMSE':>12}{'sMAPE %':>10}{'MASE':>8}",
    ]
    for name, s in report["models"].items():
        lines.append(
            f"{name.replace('_', '-'):<16}{s['mae']:>12.4g}{s['rmse']:>12.4g}"
            f"{s['smape']:>10.3f}{s['mase']:>8.3f}"
        )
    return "\n".join(lines)
