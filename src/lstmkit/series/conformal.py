"""Split-conformal prediction intervals, one per step ahead.

Calibration: the chosen models' forecast errors e_{r,j} = y - forecast at step j = 1..H
from R origins r inside a validation part the models did not train on. For a level
alpha (0.8 for 80 %) the half-width at step j is the finite-sample conformal quantile of
the n_j finite scores |e_{1,j}| .. |e_{n_j,j}|:

    q_j = the k-th smallest |e_{r,j}|,   k = ceil((n_j + 1) alpha)

(Vovk et al. 2005; Lei et al. 2018): if the errors of a new forecast are exchangeable with
the calibration ones, P(|e_new,j| <= q_j) >= alpha, and <= alpha + 1/(n_j + 1) without
ties. When k > n_j there are too few scores for the level: q_j is infinite, and
:func:`step_quantiles` falls back to pooling the steps (see there). The interval at step j
is forecast_j -+ q_j. Steps past the calibrated H (a longer forecast
than the validation windows) widen like a random walk's: q_j = q_H sqrt(j / H).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["conformal_quantile", "interval", "step_quantiles"]


def _fraction(level: float) -> float:
    if not 0 < level < 100:
        raise ValueError(f"level: expected a percentage between 0 and 100, got {level!r}")
    return float(level) / 100.0


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) level/100)-th smallest of the n finite scores (n,): inf if that rank
    exceeds n, NaN if there is no finite score. ``level`` is a percentage (80)."""
    alpha = _fraction(level)
    s = np.sort(np.asarray(scores, np.float64).ravel())
    s = s[np.isfinite(s)]
    n = s.shape[0]
    if n == 0:
        return math.nan
    # the rank, computed in integers where possible: (n + 1) alpha can be 8.000000000000002
    k = math.ceil(round((n + 1) * alpha, 9))
    return float(s[k - 1]) if k <= n else math.inf


def step_quantiles(errors: np.ndarray, level: float) -> np.ndarray:
    """errors (R, H) y - forecast (NaN where unknown) -> q (H,), q_j from column j's
    absolute errors by :func:`conformal_quantile`.

    A step with too few errors for the level (q_j infinite: a short history held few
    validation origins) takes the pooled scale instead: the conformal quantile of
    |e_{r,j}| / sqrt(j) over all steps, times sqrt(j) (still infinite if the pool is short).
    """
    errors = np.asarray(errors, np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors: expected a 2-D array (origins, steps), got {errors.shape}")
    q = np.array([conformal_quantile(np.abs(errors[:, j]), level) for j in range(errors.shape[1])])
    short = np.isinf(q)
    if short.any():
        root_j = np.sqrt(np.arange(1, errors.shape[1] + 1))
        pooled = conformal_quantile(np.abs(errors) / root_j, level)
        q[short] = pooled * root_j[short]
    return q


def interval(forecast: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """forecast (h,), per-step half-widths q (H,) -> (lo, hi), each (h,); past step H the
    half-width is q_H sqrt(j / H)."""
    forecast = np.asarray(forecast, np.float64)
    h, H = forecast.shape[0], q.shape[0]
    j = np.arange(1, h + 1)
    with np.errstate(invalid="ignore"):  # inf * 0 cannot happen: sqrt(j / H) > 0
        width = np.where(j <= H, q[np.minimum(j, H) - 1], q[-1] * np.sqrt(j / H))
    return forecast - width, forecast + width
