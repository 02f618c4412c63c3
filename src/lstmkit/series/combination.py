"""A forecast combination: the LSTM ensemble's forecast and Holt-Winters', weighted.

The combined forecast of the automatic forecaster (:mod:`lstmkit.series.auto`, with
:attr:`~lstmkit.series.auto_candidates.AutoConfig.combine`) is

    y_hat_j = w lstm_j + (1 - w) hw_j          j = 1 .. h

where hw is the forecast of Holt-Winters without a trend (:mod:`lstmkit.series.smoothing`,
ETS(A,N,A), or ETS(A,N,N) for m = 1): l_{n-1} + s_{n+j-m}; with
:attr:`~lstmkit.series.auto_candidates.AutoConfig.combine_trend`, with a trend, ETS(A,A,A):
l_{n-1} + b_{n-1} j + s_{n+j-m}. The weight w is one of
:data:`WEIGHTS`, the one with the least mean absolute error on the search's validation
windows (never the held-out tail), :func:`choose_weight`:

* the LSTM's validation forecasts stand for the ensemble's: at every origin, the median of
  the ``top`` candidates' forecasts (each at its early-stopping checkpoint), cross-fitted
  as the intervals' errors are (:func:`lstmkit.series.conformal.cross_fit`): the early half
  of the origins takes the median of the candidates ranked best on the late half, and the
  other way round, so the candidates' selection does not favour the LSTM
  (:func:`cross_fitted_median`);
* Holt-Winters is fitted on the history before the first validation origin (the part the
  candidates trained on) and forecasts from each origin after the values before it
  (:func:`errors_at`).

Errors are linear in the forecasts: the combination's error is w e_lstm + (1 - w) e_hw,
which is how the intervals' calibration errors are recomputed for the combined forecast.
In the spirit of the M4 competition, where combinations of simple forecasts were among the
hardest benchmarks to beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lstmkit.series import smoothing

__all__ = ["WEIGHTS", "Combination", "choose_weight", "cross_fitted_median", "errors_at"]

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the LSTM's weight w


@dataclass(frozen=True)
class Combination:
    """The LSTM's weight w and the Holt-Winters smoothing (fitted on the whole history)."""

    weight: float
    smoothing: smoothing.Smoothing

    def combine(self, lstm: np.ndarray, y: np.ndarray) -> np.ndarray:
        """w lstm + (1 - w) hw: the LSTM's forecast lstm (h,) after the history y (n,) -> (h,)."""
        lstm = np.asarray(lstm, np.float64)
        if self.weight == 1.0:
            return lstm
        return self.weight * lstm + (1.0 - self.weight) * forecast(y, self.smoothing, len(lstm))


def fit(y: np.ndarray, m: int, trend: bool = False) -> smoothing.Smoothing:
    """Holt-Winters fitted on y (n,): additive season when m > 1, a trend if ``trend``."""
    return smoothing.fit(y, m, seasonal=m > 1, trend=trend)


def forecast(y: np.ndarray, sm: smoothing.Smoothing, h: int) -> np.ndarray:
    """The h values after the history y (n,) -> (h,): l_{n-1} + b_{n-1} (j + 1) + s_{n+j-m}."""
    run = smoothing.smooth(np.asarray(y, np.float64), sm)
    return run.level[-1] + run.trend[-1] * np.arange(1, h + 1) + run.future_season(h)


def errors_at(
    y: np.ndarray, m: int, h: int, origins: np.ndarray, actual: np.ndarray, trend: bool = False
) -> np.ndarray:
    """actual - forecast (R, h) of Holt-Winters fitted on y[:origins[0]] and run over the
    history y[:o] before each origin o (R,). ``actual`` (n,) is y with NaN where missing."""
    sm = fit(y[: origins[0]], m, trend)
    return np.stack([actual[o : o + h] - forecast(y[:o], sm, h) for o in origins])


def cross_fitted_median(errors: list[np.ndarray], top: int) -> np.ndarray:
    """The ensemble's stand-in on the validation windows: each candidate's errors (R_i, h)
    from origins one apart that end together -> (R, h), R = max R_i, the errors of the
    median forecast of the ``top`` candidates ranked on the other half of the origins (the
    last R - R // 2 origins are the late half; see the module docstring), among those with
    errors in the half (as :func:`lstmkit.series.conformal.cross_fit` ranks). The median of
    forecasts actual - e_i is actual - median(e_i). With R < 2, the median of the ``top``
    ranked on all origins. Missing errors (NaN; a short row's early origins) are skipped;
    an origin no candidate has is NaN."""
    finite = [np.asarray(e, np.float64) for e in errors if np.isfinite(e).any()]
    if not finite:
        return np.full((1, np.asarray(errors[0]).shape[1]), np.nan)
    R, h = max(e.shape[0] for e in finite), finite[0].shape[1]
    rows = np.full((len(finite), R, h), np.nan)
    for i, e in enumerate(finite):
        rows[i, R - e.shape[0] :] = e  # the rows end together
    if R < 2:
        every = slice(None)
        return _nanmedian(rows[_ranked(rows, every, every, top)])
    late = R // 2  # origins late.. form the late half
    out = np.full((R, h), np.nan)
    for fold, other in ((slice(0, late), slice(late, R)), (slice(late, R), slice(0, late))):
        chosen = _ranked(rows, fold, other, top)
        if chosen:
            out[fold] = _nanmedian(rows[chosen, fold])
    return out


def _ranked(rows: np.ndarray, fold: slice, other: slice, top: int) -> list[int]:
    """The ``top`` candidates of rows (C, R, h), among those with errors at the origins
    ``fold``, with the least mean |error| at the origins ``other`` (none there: ranked last)."""
    have = [i for i in range(len(rows)) if np.isfinite(rows[i, fold]).any()]
    return sorted(have, key=lambda i: _mean_abs(rows[i, other]))[:top]


def _mean_abs(e: np.ndarray) -> float:
    known = np.abs(e[np.isfinite(e)])
    return float(np.mean(known)) if known.size else math.inf


def _nanmedian(e: np.ndarray) -> np.ndarray:
    """The median over axis 0 of the finite values (NaN where there is none)."""
    with np.errstate(all="ignore"):
        known = np.isfinite(e).any(axis=0)
        out = np.full(e.shape[1:], np.nan)
        out[known] = np.nanmedian(e[:, known], axis=0)
    return out


def choose_weight(
    e_lstm: np.ndarray, e_hw: np.ndarray, weights: tuple[float, ...] = WEIGHTS
) -> float:
    """The weight w of ``weights`` whose combination w e_lstm + (1 - w) e_hw (errors, both
    (R, h), NaN where unknown) has the least mean absolute error over the entries both
    know; ties go to the larger w (the LSTM alone is the default), and with no common
    entry w = 1."""
    e_lstm, e_hw = np.asarray(e_lstm, np.float64), np.asarray(e_hw, np.float64)
    if e_lstm.shape != e_hw.shape:
        raise ValueError(f"e_hw: expected the shape of e_lstm {e_lstm.shape}, got {e_hw.shape}")
    known = np.isfinite(e_lstm) & np.isfinite(e_hw)
    if not known.any():
        return 1.0
    a, b = e_lstm[known], e_hw[known]
    scores = [(float(np.mean(np.abs(w * a + (1.0 - w) * b))), -w) for w in weights]
    return -min(scores)[1]
