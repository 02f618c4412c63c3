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

Two corrections for the automatic forecaster, whose calibration errors come from the same
validation windows that chose its models (issue 18):

* :func:`cross_fit` - selection makes the winners' errors on the windows that chose them
  optimistic. The origins are split into an early and a late half; the errors of each half
  come from the ``top`` candidates ranked on the *other* half, so no calibration error was
  used to choose the model it belongs to (cross-fitting).
* :func:`pooled_quantiles` - one score per origin and step gives few scores per step; the
  scores |e_{r,j}| / sqrt(j) are pooled over all steps (R H of them) and
  q_j = sqrt(j) Q, Q their conformal quantile (the random walk's growth of the spread).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["conformal_quantile", "cross_fit", "interval", "pooled_quantiles", "step_quantiles"]


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


def pooled_quantiles(errors: np.ndarray, level: float) -> np.ndarray:
    """errors (R, H) y - forecast (NaN where unknown) -> q (H,): q_j = sqrt(j) Q, Q the
    conformal quantile of the R H scores |e_{r,j}| / sqrt(j) (inf if too few, NaN if none)."""
    errors = np.asarray(errors, np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors: expected a 2-D array (origins, steps), got {errors.shape}")
    root_j = np.sqrt(np.arange(1, errors.shape[1] + 1))
    return conformal_quantile(np.abs(errors) / root_j, level) * root_j


def cross_fit(errors: list[np.ndarray], top: int) -> np.ndarray:
    """Calibration errors free of the selection: each candidate's errors (R_i, H) from
    validation origins one apart that end together (every row's last origin is the same)
    -> (R', H).

    With R = max R_i, the last R - R // 2 origins form the late half and the ones before
    them the early half (a short row may lie in the late half only). Each half's errors
    are those of the ``top`` candidates, among the ones with errors in that half, with the
    smallest mean |error| on the other half (none there: ranked last). Candidates without a
    finite error are left out; with R < 2 (no halves) the ``top`` candidates' errors are
    returned as they are, and with no candidate a (1, H) row of NaN.
    """
    rows = [np.asarray(e, np.float64) for e in errors]
    if not rows:
        raise ValueError("errors: expected at least one candidate's errors, got none")
    finite = [e for e in rows if np.isfinite(e).any()]
    if not finite:
        return np.full((1, rows[0].shape[1]), np.nan)
    R = max(e.shape[0] for e in finite)
    if R < 2:
        return np.concatenate(sorted(finite, key=_mean_abs)[:top])
    n_late = R - R // 2
    halves = [(e[: max(len(e) - n_late, 0)], e[max(len(e) - n_late, 0) :]) for e in finite]
    parts = []
    for fold, other in ((0, 1), (1, 0)):
        have = [pair for pair in halves if len(pair[fold])]
        chosen = sorted(have, key=lambda pair: _mean_abs(pair[other]))[:top]
        parts += [pair[fold] for pair in chosen]
    return np.concatenate(parts)


def _mean_abs(e: np.ndarray) -> float:
    known = np.abs(e[np.isfinite(e)])
    return float(np.mean(known)) if known.size else math.inf


def interval(forecast: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """forecast (h,), per-step half-widths q (H,) -> (lo, hi), each (h,); past step H the
    half-width is q_H sqrt(j / H)."""
    forecast = np.asarray(forecast, np.float64)
    h, H = forecast.shape[0], q.shape[0]
    j = np.arange(1, h + 1)
    with np.errstate(invalid="ignore"):  # inf * 0 cannot happen: sqrt(j / H) > 0
        width = np.where(j <= H, q[np.minimum(j, H) - 1], q[-1] * np.sqrt(j / H))
    return forecast - width, forecast + width
