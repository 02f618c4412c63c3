"""PNGs: the history, the forecast and the actual values; a backtest's forecasts and MASE."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.train import files

__all__ = ["plot_backtest", "plot_forecast"]


def plot_forecast(
    path: str | os.PathLike[str],
    history: Any,
    forecast: Any,
    actual: Any = None,
    title: str = "",
    ylabel: str = "",
    show_last: int | None = None,
    interval: Any = None,
    level: int | None = None,
) -> Path:
    """Write a line plot: history (t = 0..n-1), forecast and actuals from t = n on.

    ``show_last`` limits the history drawn to its last values (the forecast stays readable
    on a long series); ``interval`` (lo, hi), each (h,), is shaded around the forecast and
    labelled with ``level`` (percent).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = np.asarray(history, np.float64)
    forecast = np.asarray(forecast, np.float64)
    n, h = history.shape[0], forecast.shape[0]
    start = 0 if show_last is None else max(0, n - show_last)
    future = np.arange(n, n + h)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(np.arange(start, n), history[start:], color="0.3", lw=1.2, label="history")
    # join the forecast to the last observed value so the lines connect
    ax.plot(
        np.r_[n - 1, future], np.r_[history[-1], forecast], color="C1", lw=1.8, label="forecast"
    )
    if interval is not None:
        # an unbounded interval (too few calibration errors) is not drawn: inf breaks the axes
        lo, hi = (np.where(np.isfinite(b), b, np.nan) for b in np.asarray(interval, np.float64))
        label = f"{level} % interval" if level else "interval"
        ax.fill_between(future, lo, hi, color="C1", alpha=0.2, lw=0, label=label)
    if actual is not None:
        actual = np.asarray(actual, np.float64)
        ax.plot(
            np.r_[n - 1, future[: actual.shape[0]]],
            np.r_[history[-1], actual],
            color="C0",
            lw=1.2,
            ls="--",
            label="held-out actual",
        )
    ax.axvline(n - 0.5, color="0.7", lw=0.8)
    ax.set_xlabel("time step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    files.save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_backtest(
    path: str | os.PathLike[str], values: Any, report: dict[str, Any], title: str = ""
) -> Path:
    """Two panels: the series around the origins with every model's forecast at each origin
    (one color per model), and each model's MASE at each origin (its mean in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(values, np.float64)
    origins, h = report["origins"], int(report["horizon"])
    n = values.shape[0]
    start = max(0, origins[0] - 3 * h)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), height_ratios=[3, 2])
    top.plot(np.arange(start, n), values[start:], color="0.2", lw=1.2, label="actual")
    for j, (name, m) in enumerate(report["models"].items()):
        color = f"C{j % 10}"
        for i, (o, f) in enumerate(zip(origins, m["forecast"])):
            top.plot(np.arange(o, o + h), f, color=color, lw=1.3, label=name if i == 0 else None)
        mase = [p["mase"] for p in m["per_origin"]]
        bottom.plot(
            np.arange(1, len(origins) + 1),
            mase,
            color=color,
            marker="o",
            label=f"{name} (mean {m['mean']['mase']:.3f})",
        )
    for o in origins:
        top.axvline(o - 0.5, color="0.8", lw=0.8)
    top.set_xlabel("time step")
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, ncol=2)
    bottom.axhline(1.0, color="0.6", lw=0.8, ls="--")
    bottom.set_xticks(np.arange(1, len(origins) + 1))
    bottom.set_xlabel("origin")
    bottom.set_ylabel(f"MASE (season {report['season']})")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=8, ncol=2)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
