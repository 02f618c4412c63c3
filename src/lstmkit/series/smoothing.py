"""Exponential smoothing of a level and an additive season (Holt-Winters without a trend).

The state-space form of ETS(A,N,A) (ETS(A,N,N) when m = 1 or without a season), for the
values y_0 .. y_{n-1}:

    e_t = y_t - l_{t-1} - s_{t-m}        (the one-step error)
    l_t = l_{t-1} + alpha e_t            (the level after y_t)
    s_t = s_{t-m} + gamma e_t            (the season after y_t; gamma = 0 without a season)

from the initial level l_{-1} = ``level0`` and the initial season s_{t-m} = ``season0[t]``
for t = 0 .. m - 1. :func:`fit` chooses alpha and gamma by the sum of squared one-step
errors on the values it is given (a coarse grid refined by ``scipy.optimize``), the initial
states by the classical decomposition of those values; :func:`smooth` runs the recursion.
The hybrid forecaster (:mod:`lstmkit.series.hybrid`) has the LSTM learn what the level and
the season leave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.series.transform import seasonal_indices

__all__ = ["Smoothing", "Smoothed", "fit", "smooth"]


@dataclass(frozen=True)
class Smoothing:
    """The parameters and initial states of the recursion (see the module docstring)."""

    alpha: float
    gamma: float
    level0: float
    season0: np.ndarray  # (m,) s_{t-m} for t = 0 .. m - 1 (zeros: no season)


@dataclass(frozen=True)
class Smoothed:
    """The recursion run over y (n,)."""

    level: np.ndarray  # (n,) l_t, the level after y_t
    season: np.ndarray  # (n,) s_{t-m}, the season y_t was compared with (known before y_t)
    errors: np.ndarray  # (n,) e_t
    season_next: np.ndarray  # (m,) the season of times n .. n + m - 1 (s_{n+j-m})

    def future_season(self, h: int) -> np.ndarray:
        """The season of times n .. n + h - 1 -> (h,) (the last m states, repeated)."""
        m = self.season_next.shape[0]
        return self.season_next[np.arange(h) % m]


def smooth(y: np.ndarray, sm: Smoothing) -> Smoothed:
    """The recursion of the module docstring over y (n,)."""
    y = np.asarray(y, np.float64)
    m = sm.season0.shape[0]
    s = [float(v) for v in sm.season0]  # s[t mod m] holds s_{t-m} before step t
    level, season, errors = np.empty(len(y)), np.empty(len(y)), np.empty(len(y))
    l_prev, alpha, gamma = float(sm.level0), float(sm.alpha), float(sm.gamma)
    for t, y_t in enumerate(y.tolist()):
        p = t % m
        e = y_t - l_prev - s[p]
        season[t], errors[t] = s[p], e
        l_prev = l_prev + alpha * e
        s[p] = s[p] + gamma * e
        level[t] = l_prev
    n = len(y)
    season_next = np.array([s[(n + j) % m] for j in range(m)])
    return Smoothed(level, season, errors, season_next)


def _initial(y: np.ndarray, m: int, seasonal: bool) -> tuple[float, np.ndarray]:
    """(level0, season0 (m,)): the classical seasonal indices of y (zeros if not seasonal or
    too short) and the mean of the first max(m, 10) deseasoned values (fewer if y is)."""
    s0 = seasonal_indices(y, m) if seasonal and m > 1 else np.zeros(m)
    t = np.arange(min(max(m, 10), len(y)))
    return float(np.mean(y[t] - s0[t % m])), s0


def _sse(params: np.ndarray, y: np.ndarray, level0: float, season0: np.ndarray) -> float:
    alpha, gamma = float(params[0]), float(params[1]) if len(params) > 1 else 0.0
    e = smooth(y, Smoothing(alpha, gamma, level0, season0)).errors
    return float(e @ e)


def fit(y: np.ndarray, m: int, seasonal: bool) -> Smoothing:
    """Smoothing of y (n,) with season m: alpha in [0.01, 1] (and gamma in [0, 0.5] when
    ``seasonal`` and m > 1, else 0) minimising the sum of squared one-step errors; the initial
    states from :func:`_initial`. Reads nothing but y."""
    from scipy.optimize import minimize

    y = np.asarray(y, np.float64)
    if y.ndim != 1 or len(y) < 2 or not np.all(np.isfinite(y)):
        raise ValueError(f"y: expected at least 2 finite values in a 1-D array, got {y.shape}")
    if m < 1:
        raise ValueError(f"m: expected an integer >= 1, got {m}")
    seasonal = seasonal and m > 1
    level0, season0 = _initial(y, m, seasonal)
    alphas = (0.02, 0.1, 0.3, 0.6, 1.0)
    gammas = (0.0, 0.05, 0.2) if seasonal else (None,)
    grid = [np.array([a] if g is None else [a, g]) for a in alphas for g in gammas]
    start = min(grid, key=lambda p: _sse(p, y, level0, season0))
    bounds = [(0.01, 1.0)] + ([(0.0, 0.5)] if seasonal else [])
    best = minimize(_sse, start, args=(y, level0, season0), method="L-BFGS-B", bounds=bounds)
    p = best.x if best.fun <= _sse(start, y, level0, season0) else start
    gamma = float(p[1]) if seasonal else 0.0
    return Smoothing(float(p[0]), gamma, level0, season0)
