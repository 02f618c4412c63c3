"""Rolling-origin backtest of the global model over many series, next to per-series baselines.

Origin i of series j is o_ij = n_j - h - (k - 1 - i) s (as in :mod:`lstmkit.series.backtest`,
counted from each series' own end). At origin i one global model
(:func:`lstmkit.series.many.fit_global`) is fitted on every series cut at its o_ij and
forecasts each; the statsforecast baselines (AutoETS, AutoARIMA, ... through
:func:`lstmkit.series.backtest.baseline`, the same models statsforecast fits per
``unique_id``) are fitted on each series' history alone. Known-future covariates of the
forecast steps are handed to the global model (they are known in advance); the baselines
use no covariates.

Scores: the MASE of each series at each origin (scaled by that series' in-sample
seasonal-naive MAE before the origin), its mean over origins per series, and the overall
mean over series (every series weighs alike). With a ``level`` (percent), every model also
gives its prediction interval (lstmkit: each series' split-conformal interval,
:meth:`~lstmkit.series.many.GlobalEnsemble.interval`; the baselines: statsforecast's) and
the coverage (the share of the h actuals inside it) is averaged the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lstmkit.series.auto import AutoConfig
from lstmkit.series.backtest import baseline
from lstmkit.series.data import Series
from lstmkit.series.evaluate import scores
from lstmkit.series.many import Panel, fit_global

__all__ = ["backtest_panel", "format_panel_backtest", "panel_origins"]


def panel_origins(lengths: list[int], h: int, count: int, step: int, need: int) -> list[list[int]]:
    """origins[i][j]: origin i of series j; a ValueError if a series is too short."""
    out = [[n - h - (count - 1 - i) * step for n in lengths] for i in range(count)]
    shortest = min(range(len(lengths)), key=lambda j: out[0][j])
    if out[0][shortest] < need:
        raise ValueError(
            f"series {shortest + 1} has {lengths[shortest]} values: {count} origins {step} "
            f"apart with horizon {h} leave {out[0][shortest]} before the first origin and "
            f"at least {need} are needed; use fewer --origins, a smaller --step or --horizon"
        )
    return out


def backtest_panel(
    panel: Panel,
    h: int,
    origins: list[list[int]],
    season: int,
    config: AutoConfig,
    baselines: list[str],
    names: tuple[list[str], list[str]] = ([], []),
    log: Callable[[str], None] | None = None,
    level: int | None = None,
) -> dict[str, Any]:
    """Every model at every origin of every series; see the module docstring. Returns
    ``{"horizon", "season", "level", "ids", "models": {name: {"mase": [[per origin] per
    series], "per_series": [...], "mean": float}}}``, and with ``level`` ``"coverage"``,
    ``"coverage_per_series"`` and ``"coverage_mean"`` next to them."""
    K, k = len(panel.y), len(origins)
    models = ["lstmkit", *baselines]
    mase = {name: np.empty((K, k)) for name in models}
    cover = {name: np.empty((K, k)) for name in models}
    for i, ends in enumerate(origins):
        if log is not None:
            log(f"origin {i + 1}/{k}: fitting the global model on {K} series")
        ensemble = fit_global(panel.cut(ends), season, h, config, names)
        X_future = [x[o : o + h] for x, o in zip(panel.X, ends)]
        forecasts = ensemble.predict(h, X_future)  # (K, h)
        lo, hi = ensemble.interval(h, level, X_future) if level else (forecasts, forecasts)
        for j, (y, o) in enumerate(zip(panel.y, ends)):
            history, actual = y[:o], y[o : o + h]
            mase["lstmkit"][j, i] = scores(actual, forecasts[j], history, season)["mase"]
            cover["lstmkit"][j, i] = _coverage(actual, lo[j], hi[j])
            for name in baselines:
                series = Series(history.copy(), None, "y", None, panel.ids[j])
                f, b_lo, b_hi = _baseline(name, season, level, series, h)
                mase[name][j, i] = scores(actual, f, history, season)["mase"]
                cover[name][j, i] = _coverage(actual, b_lo, b_hi)
    report: dict[str, Any] = {
        "horizon": h, "season": season, "level": level, "ids": list(panel.ids), "models": {}
    }  # fmt: skip
    for name in models:
        entry = _averages(mase[name], "mase", "per_series", "mean")
        if level:
            entry.update(_averages(cover[name], "coverage", "coverage_per_series", "coverage_mean"))
        report["models"][name] = entry
    return report


def _baseline(name: str, season: int, level: int | None, series: Series, h: int) -> Any:
    """The baseline's forecast (h,) and its interval (lo, hi), or None, None without a level."""
    out = baseline(name, season, level)(series, h)
    if level is None:
        return np.asarray(out, np.float64), None, None
    return tuple(np.asarray(a, np.float64) for a in out)


def _coverage(actual: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None) -> float:
    """The share of the actuals (h,) inside [lo, hi] (NaN without an interval)."""
    if lo is None or hi is None:
        return float("nan")
    return float(np.mean((lo <= actual) & (actual <= hi)))


def _averages(m: np.ndarray, key: str, per_series: str, mean: str) -> dict[str, Any]:
    """m (series, origins) as its table, each series' mean over origins and their mean."""
    return {
        key: m.tolist(),
        per_series: m.mean(axis=1).tolist(),
        mean: float(m.mean(axis=1).mean()),
    }


def format_panel_backtest(report: dict[str, Any]) -> str:
    """One row per model: the MASE averaged over origins and series, the coverage of the
    prediction interval (with a level), then the MASE at each origin (averaged over series);
    with several series, a second table of each series' mean MASE over the origins (the
    first 8 series) and, with a level, a third of each series' coverage."""
    ids = report["ids"]
    k = len(next(iter(report["models"].values()))["mase"][0])
    level = report.get("level")
    cover = f"{f'cover{level}':>9}" if level else ""
    lines = [
        f"{len(ids)} series, {k} origins, horizon {report['horizon']}, season "
        f"{report['season']}; MASE averaged over origins, then over series",
        f"{'model':<14}{'MASE':>8}{cover}  " + " ".join(f"{f'MASE@{i + 1}':>7}" for i in range(k)),
    ]
    for name, m in report["models"].items():
        at = np.mean(np.asarray(m["mase"]), axis=0)
        c = f"{100 * m['coverage_mean']:>9.1f}" if level else ""
        lines.append(f"{name:<14}{m['mean']:>8.3f}{c}  " + " ".join(f"{v:>7.3f}" for v in at))
    if len(ids) > 1:
        shown = ids[:8]
        more = f" (first 8 of {len(ids)})" if len(ids) > 8 else ""
        tables = [("mean MASE per series", "per_series", 1.0, ".3f")]
        if level:
            tables.append((f"coverage of the {level}% interval per series, %",
                           "coverage_per_series", 100.0, ".1f"))  # fmt: skip
        for title, key, factor, form in tables:
            lines.append(title + more)
            lines.append(f"{'model':<14}" + " ".join(f"{s[:8]:>8}" for s in shown))
            for name, m in report["models"].items():
                values = (factor * v for v in m[key][: len(shown)])
                lines.append(f"{name:<14}" + " ".join(f"{v:>8{form}}" for v in values))
    return "\n".join(lines)
