"""Missing values: an error by default, or filled or masked when the user chooses so.

A value is missing when its cell is empty (or ``NaN``, ``NA``, ``N/A``, ``null``) or when the
time stamps skip steps of their frequency (a month absent from a monthly series: the row is
added with a missing value; see :func:`complete_grid`). What happens is the ``missing``
mode, ``--missing`` on the command line and ``missing=`` in :class:`lstmkit.series.Forecaster`:

===========  ===============================================================================
error        (default) refuse the series, naming the first missing value and the choices
interpolate  linear interpolation between the observed neighbours
previous     the last observed value (forward fill)
mask         the automatic forecaster's loss and validation skip the missing targets; its
             *inputs* there are linearly interpolated (a window is never dropped, so a
             sparse series keeps all its windows). Elsewhere (forecast contexts, the
             baselines of a backtest) mask fills like interpolate.
===========  ===============================================================================

Before the first observed value (and, for interpolate and mask, after the last) a filled
value is the nearest observed one. Filling reads only the values it is given: callers pass
the history a model may see (a backtest fills each origin's history on its own, so no value
after an origin reaches it). Missing actuals are left out of the scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "CHOICES",
    "MODES",
    "MissingError",
    "check",
    "check_mode",
    "complete_grid",
    "fill",
    "is_missing_cell",
]

MODES = ("error", "interpolate", "previous", "mask")
_TOKENS = {"", "nan", "na", "n/a", "null"}
CHOICES = "interpolate (linear), previous (last value) or mask (the loss skips them)"


class MissingError(ValueError):
    """A series with missing values under ``missing="error"``."""


def is_missing_cell(cell: str) -> bool:
    """Whether a CSV cell (stripped) marks a missing value."""
    return cell.lower() in _TOKENS


def check_mode(mode: str, option: str = "--missing") -> str:
    if mode not in MODES:
        raise ValueError(f"{option}: expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check(
    values: np.ndarray,
    mode: str,
    where: Callable[[int], str] = lambda k: f"position {k}",
    option: str = "--missing",
) -> None:
    """A :class:`MissingError` naming the first missing value of ``values`` (n,) when the
    mode is "error"; the message says how to choose another."""
    check_mode(mode, option)
    gaps = np.flatnonzero(np.isnan(np.asarray(values, np.float64)))
    if gaps.size and mode == "error":
        more = f" (and {gaps.size - 1} more)" if gaps.size > 1 else ""
        raise MissingError(
            f"{where(int(gaps[0]))}: missing value{more}; fill the gaps or choose "
            f"{option} {CHOICES}"
        )


def fill(values: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """values (n,) with NaN where missing -> (filled (n,), observed (n,) bool).

    See the module docstring for each mode; "error" returns a copy if nothing is missing
    and raises a :class:`MissingError` otherwise.
    """
    v = np.asarray(values, np.float64).copy()
    observed = ~np.isnan(v)
    if observed.all():
        return v, observed
    check(v, mode)
    if not observed.any():
        raise MissingError(f"all {v.shape[0]} values are missing; nothing to fill from")
    t = np.arange(v.shape[0])
    if mode == "previous":
        last = np.maximum.accumulate(np.where(observed, t, -1))  # last observed index, or -1
        first = int(np.argmax(observed))
        v = v[np.where(last >= 0, last, first)]
    else:  # interpolate, mask: np.interp holds the end values past the first and last
        v = np.interp(t, t[observed], v[observed])
    return v, observed


def complete_grid(values: np.ndarray, stamps: Any, freq: str) -> tuple[np.ndarray, Any, list[int]]:
    """Insert the time stamps a regular frequency skips, with missing (NaN) values.

    values (n,), :class:`~lstmkit.series.times.Stamps` at frequency ``freq`` -> (values
    (N,), the full DatetimeIndex (N,), the positions (into N) of the inserted stamps).
    """
    import pandas as pd

    index = stamps.index
    grid = pd.date_range(index[0], index[-1], freq=freq, unit="s")
    if len(grid) == len(index):
        return np.asarray(values, np.float64), index, []
    out = np.full(len(grid), np.nan)
    at = grid.get_indexer(index)  # (n,) every stamp is on the grid (times.frequency)
    out[at] = values
    inserted = np.setdiff1d(np.arange(len(grid)), at)
    return out, grid, [int(k) for k in inserted]
