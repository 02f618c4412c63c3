"""The statistical part of the automatic forecaster: season, differencing and scale.

A history y_0 .. y_{n-1} with season m becomes the model-space series z in three steps, each
optional except the last:

    d_t = y_t - s_{t mod m}              (deseason: additive seasonal indices s, sum 0)
    e_t = d_t - d_{t-1}                  (difference: the LSTM reads the changes)
    z_t = (e_t - mean) / scale           (scale: mean and standard deviation of e)

The seasonal indices come from the classical decomposition: a centred moving average of one
season (2 x m for even m) estimates the trend, and s_j is the mean of y_t - trend_t over the
steps t with t mod m = j, shifted to sum to 0. That needs three seasons; with
``min_seasons=2`` a history of two to three seasons takes a least-squares line as its trend
instead (the global forecaster's short series). In the spirit of ES-RNN, the LSTM then learns
what the season (and, with differencing, the level) leaves. :meth:`Transform.decode` inverts
the three steps for forecasts that follow the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.series.data import Scaler, make_windows

__all__ = ["Transform", "seasonal_indices"]


def seasonal_indices(y: np.ndarray, m: int, min_seasons: int = 3) -> np.ndarray:
    """Additive seasonal indices (m,) of y (n,), indexed by t mod m; zeros if m == 1 or
    the history holds fewer than ``min_seasons`` seasons (3: two past the moving average;
    2: from 2m to 3m values the trend is a least-squares line)."""
    y = np.asarray(y, np.float64)
    n = y.shape[0]
    if m == 1 or n < min(min_seasons, 3) * m:
        return np.zeros(m)
    if n < 3 * m:
        t = np.arange(n)
        A = np.stack([np.ones(n), t], axis=1)  # (n, 2): level and slope
        detrended = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
    else:
        w = np.ones(m) / m if m % 2 else np.r_[0.5, np.ones(m - 1), 0.5] / m
        trend = np.convolve(y, w, mode="valid")  # centred: trend[k] belongs to t = k + len(w)//2
        t = np.arange(trend.shape[0]) + w.shape[0] // 2
        detrended = y[t] - trend
    s = np.array([detrended[t % m == j].mean() for j in range(m)])
    return s - s.mean()


@dataclass(frozen=True)
class Transform:
    """y (n,) <-> z, fitted on a history; see the module docstring for the equations."""

    season: np.ndarray  # (m,) seasonal indices by t mod m (zeros: no deseasoning)
    difference: bool
    scaler: Scaler

    @classmethod
    def fit(
        cls, y: np.ndarray, m: int, deseason: bool, difference: bool, min_seasons: int = 3
    ) -> Transform:
        """Fitted on the history y (n,); ``min_seasons``: see :func:`seasonal_indices`."""
        y = np.asarray(y, np.float64)
        season = seasonal_indices(y, m, min_seasons) if deseason else np.zeros(m)
        e = cls(season, difference, Scaler(0.0, 1.0))._unscaled(y)
        return cls(season, difference, Scaler.fit(e))

    def _unscaled(self, y: np.ndarray) -> np.ndarray:
        m = self.season.shape[0]
        d = np.asarray(y, np.float64) - self.season[np.arange(len(y)) % m]
        return np.diff(d) if self.difference else d

    def encode(self, y: np.ndarray) -> np.ndarray:
        """History y (n,) -> z (n,), or (n - 1,) with differencing."""
        return self.scaler.transform(self._unscaled(y))

    def decode(self, z_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Model-space forecasts z_hat (h, ...) following the history y (n,) -> values (h, ...).

        The season's phase continues from the history's length n: step j is t = n + j.
        """
        y = np.asarray(y, np.float64)
        n, m = y.shape[0], self.season.shape[0]
        e = self.scaler.inverse(z_hat)
        s_future = self.season[(n + np.arange(e.shape[0])) % m].reshape((-1,) + (1,) * (e.ndim - 1))
        if self.difference:
            d_last = y[-1] - self.season[(n - 1) % m]
            return d_last + np.cumsum(e, axis=0) + s_future
        return e + s_future

    def windows(self, y: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Every window of ``encode(y)``: inputs X (L, M, 1) and next-step targets (L, M, 1)."""
        return make_windows(self.encode(y), lookback)

    def contexts(self, y: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
        """(L, R) the model-space values of the last L values before each origin o (history
        y[:o]): column r equals ``encode(y[:origins[r]])[-L:]`` (encode is causal)."""
        ends = np.asarray(origins) - int(self.difference)  # z[k] holds the value at k + difference
        return self.encode(y)[ends[None, :] + np.arange(-lookback, 0)[:, None]]
