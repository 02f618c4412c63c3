"""A PNG of the history, the forecast and (on a held-out tail) the actual values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.train import files

__all__ = ["plot_forecast"]


def plot_forecast(
    path: str | os.PathLike[str],
    history: Any,
    forecast: Any,
    actual: Any = None,
    title: str = "",
    ylabel: str = "",
    show_last: int | None = None,
) -> Path:
    """Write a line plot: history (t = 0..n-1), forecast and actuals from t = n on.

    ``show_last`` limits the history drawn to its last values (the forecast stays readable
    on a long series).
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
