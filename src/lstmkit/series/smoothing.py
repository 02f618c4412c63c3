"""Exponential smoothing of a level, a trend and an additive season (Holt-Winters).

The state-space form of ETS(A,A,A) (without a trend ETS(A,N,A); without a season, or for
m = 1, ETS(A,A,N) / ETS(A,N,N)), for the values y_0 .. y_{n-1}:

    e_t = y_t - l_{t-1} - b_{t-1} - s_{t-m}    (the one-step error)
    l_t = l_{t-1} + b_{t-1} + alpha e_t        (the level after y_t)
    b_t = b_{t-1} + beta e_t                   (the trend; beta = 0 and b = 0 without one)
    s_t = s_{t-m} + gamma e_t                  (the season; gamma = 0 without one)

from the initial states l_{-1} = ``level0``, b_{-1} = ``trend0`` and s_{t-m} = ``season0[t]``
for t = 0 .. m - 1. :func:`fit` chooses alpha, beta and gamma by the sum of squared one-step
errors on the values it is given (a coarse grid refined by ``scipy.optimize``), the initial
states from those values (:func:`_initial`); :func:`smooth` runs the recursion. The hybrid
forecaster (:mod:`lstmkit.series.hybrid`) has the LSTM learn what they leave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.series.transform import seasonal_indices

__all__ = ["Smoothed", "Smoothing", "fit", "smooth"]


@dataclass(frozen=True)
class Smoothing:
    """The parameters and initial states of the recursion (see the module docstring)."""

    alpha: float
    gamma: float
    level0: float
    season0: np.ndarray  # (m,) s_{t-m} for t = 0 .. m - 1 (zeros: no season)
    beta: float = 0.0
    trend0: float = 0.0  # b_{-1} (0 with beta 0: no trend)


@dataclass(frozen=True)
class Smoothed:
    """The recursion run over y (n,)."""

    level: np.ndarray  # (n,) l_t, the level after y_t
    trend: np.ndarray  # (n,) b_t, the trend after y_t
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
    m, n = sm.season0.shape[0], len(y)
    s = [float(v) for v in sm.season0]  # s[t mod m] holds s_{t-m} before step t
    level, trend, season, errors = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    l_prev, b_prev = float(sm.level0), float(sm.trend0)
    alpha, beta, gamma = float(sm.alpha), float(sm.beta), float(sm.gamma)
    for t, y_t in enumerate(y.tolist()):
        p = t % m
        e = y_t - l_prev - b_prev - s[p]
        season[t], errors[t] = s[p], e
        l_prev = l_prev + b_prev + alpha * e
        b_prev = b_prev + beta * e
        s[p] = s[p] + gamma * e
        level[t], trend[t] = l_prev, b_prev
    season_next = np.array([s[(n + j) % m] for j in range(m)])
    return Smoothed(level, trend, season, errors, season_next)


def _initial(y: np.ndarray, m: int, seasonal: bool, trend: bool) -> tuple[float, float, np.ndarray]:
    """(level0, trend0, season0 (m,)): the classical seasonal indices of y (zeros if not
    seasonal or too short); the mean of the first max(m, 10) deseasoned values (fewer if y
    is), or with a trend the least-squares line through the first max(2m, 10), at t = -1."""
    s0 = seasonal_indices(y, m) if seasonal and m > 1 else np.zeros(m)
    t = np.arange(min(max(m * (1 + int(trend)), 10), len(y)))
    d = y[t] - s0[t % m]
    if not trend or len(t) < 2:
        return float(np.mean(d)), 0.0, s0
    slope, intercept = np.polyfit(t, d, 1)
    return float(intercept - slope), float(slope), s0


def _smoothing(p: np.ndarray, names: list[str], init: tuple[float, float, np.ndarray]) -> Smoothing:
    """The Smoothing whose free parameters ``names`` (alpha, then beta and/or gamma) are p."""
    free = dict(zip(names, (float(v) for v in p)))
    level0, trend0, season0 = init
    beta, gamma = free.get("beta", 0.0), free.get("gamma", 0.0)
    return Smoothing(free["alpha"], gamma, level0, season0, beta, trend0)


def _sse(
    p: np.ndarray, y: np.ndarray, names: list[str], init: tuple[float, float, np.ndarray]
) -> float:
    """Sum of squared one-step errors with the free parameters ``names`` set to p."""
    e = smooth(y, _smoothing(p, names, init)).errors
    return float(e @ e)


def fit(y: np.ndarray, m: int, seasonal: bool, trend: bool = False) -> Smoothing:
    """Smoothing of y (n,) with season m: alpha in [0.01, 1], beta in [0, 0.3] with a
    ``trend`` (else 0), gamma in [0, 0.5] when ``seasonal`` and m > 1 (else 0), minimising
    the sum of squared one-step errors; the initial states from :func:`_initial`. Reads
    nothing but y."""
    from scipy.optimize import minimize

    y = np.asarray(y, np.float64)
    if y.ndim != 1 or len(y) < 2 or not np.all(np.isfinite(y)):
        raise ValueError(f"y: expected at least 2 finite values in a 1-D array, got {y.shape}")
    if m < 1:
        raise ValueError(f"m: expected an integer >= 1, got {m}")
    seasonal = seasonal and m > 1
    init = _initial(y, m, seasonal, trend)
    free = {  # name: (grid, bounds)
        "alpha": ((0.02, 0.1, 0.3, 0.6, 1.0), (0.01, 1.0)),
        "beta": ((0.0, 0.02, 0.1), (0.0, 0.3)),
        "gamma": ((0.0, 0.05, 0.2), (0.0, 0.5)),
    }
    names = ["alpha"] + ["beta"] * trend + ["gamma"] * seasonal
    axes = np.meshgrid(*(free[k][0] for k in names), indexing="ij")
    grid = np.stack([a.ravel() for a in axes], axis=1)  # (points, parameters)
    start = min(grid, key=lambda p: _sse(p, y, names, init))
    bounds = [free[k][1] for k in names]
    best = minimize(_sse, start, args=(y, names, init), method="L-BFGS-B", bounds=bounds)
    p = best.x if best.fun <= _sse(start, y, names, init) else start
    return _smoothing(p, names, init)
