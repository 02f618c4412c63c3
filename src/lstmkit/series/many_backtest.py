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
mean over series (every series weighs alike).
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
) -> dict[str, Any]:
    """Every model at every origin of every series; see the module docstring. Returns
    ``{"horizon", "season", "ids", "models": {name: {"mase": [[per origin] per series],
    "per_series": [...], "mean": float}}}``."""
    K = len(panel.y)
    mase: dict[str, np.ndarray] = {
        name: np.empty((K, len(origins))) for name in ["lstmkit", *baselines]
    }
    for i, ends in enumerate(origins):
        if log is not None:
            log(f"origin {i + 1}/{len(origins)}: fitting the global model on {K} series")
        ensemble = fit_global(panel.cut(ends), season, h, config, names)
        X_future = [x[o : o + h] for x, o in zip(panel.X, ends)]
        forecasts = ensemble.predict(h, X_future)  # (K, h)
        for j, (y, o) in enumerate(zip(panel.y, ends)):
            history, actual = y[:o], y[o : o + h]
            mase["lstmkit"][j, i] = scores(actual, forecasts[j], history, season)["mase"]
            for name in baselines:
                series = Series(history.copy(), None, "y", None, panel.ids[j])
                f = np.asarray(baseline(name, season)(series, h), np.float64)
                mase[name][j, i] = scores(actual, f, history, season)["mase"]
    models = {
        name: {
            "mase": m.tolist(),
            "per_series": m.mean(axis=1).tolist(),
            "mean": float(m.mean(axis=1).mean()),
        }
        for name, m in mase.items()
    }
    return {"horizon": h, "season": season, "ids": list(panel.ids), "models": models}


def format_panel_backtest(report: dict[str, Any]) -> str:
    """One row per model: the MASE averaged over origins and series, then at each origin
    (averaged over series); with several series, a second table of each series' mean
    MASE over the origins (the first 8 series)."""
    ids = report["ids"]
    k = len(next(iter(report["models"].values()))["mase"][0])
    lines = [
        f"{len(ids)} series, {k} origins, horizon {report['horizon']}, season "
        f"{report['season']}; MASE averaged over origins, then over series",
        f"{'model':<14}{'MASE':>8}  " + " ".join(f"{f'MASE@{i + 1}':>7}" for i in range(k)),
    ]
    for name, m in report["models"].items():
        at = np.mean(np.asarray(m["mase"]), axis=0)
        lines.append(f"{name:<14}{m['mean']:>8.3f}  " + " ".join(f"{v:>7.3f}" for v in at))
    if len(ids) > 1:
        shown = ids[:8]
        lines.append("mean MASE per series" + (f" (first 8 of {len(ids)})" if len(ids) > 8 else ""))
        lines.append(f"{'model':<14}" + " ".join(f"{s[:8]:>8}" for s in shown))
        for name, m in report["models"].items():
            per = " ".join(f"{v:>8.3f}" for v in m["per_series"][: len(shown)])
            lines.append(f"{name:<14}{per}")
    return "\n".join(lines)
