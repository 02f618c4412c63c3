"""The ES-RNN-style hybrid form: the LSTM reads each window relative to a smoothed level.

In the spirit of Smyl's ES-RNN (the M4 winner), additive: an exponential-smoothing level l
and season s (:mod:`lstmkit.series.smoothing`, fitted on the training part first, not
jointly with the LSTM) normalise every window. A window of the lookback L ending at time e
(its last input) reads

    x_k = (y_k - s_{k-m} - l_e) / scale        k = e - L + 1 .. e + 1

(inputs k <= e, the targets one step later), so the LSTM learns what the level and the
season leave, in the frame of the level at the window's end. A forecast from the history
y_0 .. y_{n-1} rolls the LSTM out from the last L values in the frame of l_{n-1}, then
re-levels and re-seasons: y_hat_{n+j} = l_{n-1} + scale z_hat_j + s_{n+j-m}.

:func:`fit_form` fits a candidate's transform: this one when ``c.hybrid``, else the
differencing / seasonal-indices :class:`~lstmkit.series.transform.Transform`. Both offer
``encode``, ``decode``, ``windows`` and ``contexts`` with the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmkit.series import smoothing
from lstmkit.series.data import Scaler
from lstmkit.series.transform import Transform

__all__ = ["LevelTransform", "fit_form"]


def fit_form(y: np.ndarray, m: int, c: Any) -> Transform | LevelTransform:
    """The transform of candidate c (fields lookback, deseason, difference and, optionally,
    hybrid) fitted on the history y (n,) with season m."""
    if getattr(c, "hybrid", False):
        return LevelTransform.fit(y, m, c.deseason, c.lookback)
    return Transform.fit(y, m, c.deseason, c.difference)


def _window_index(n: int, lookback: int) -> np.ndarray:
    """(L, M) positions of the M = n - L windows' inputs (those of ``make_windows``)."""
    return np.arange(lookback)[:, None] + np.arange(n - lookback)[None, :]


@dataclass(frozen=True)
class LevelTransform:
    """y (n,) <-> the windows in the frame of the smoothed level; see the module docstring."""

    smoothing: smoothing.Smoothing
    scaler: Scaler  # mean 0; scale: the RMS of the training windows' inputs y - s - l_e
    difference = False  # the Transform's field, for code that reads it (the need of a member)

    @property
    def season(self) -> np.ndarray:
        """(m,) the smoothing's initial season (zeros: none)."""
        return self.smoothing.season0

    @classmethod
    def fit(cls, y: np.ndarray, m: int, deseason: bool, lookback: int) -> LevelTransform:
        """Fitted on the history y (n,): the smoothing, then the scale of its windows."""
        y = np.asarray(y, np.float64)
        unit = cls(smoothing.fit(y, m, deseason), Scaler(0.0, 1.0))
        X, Y = unit.windows(y, lookback)
        scale = float(np.sqrt(np.mean(X**2)))
        return cls(unit.smoothing, Scaler(0.0, scale if scale > 0 else 1.0))

    def _deseasoned(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(d (n,) = y_t - s_{t-m}, level (n,) = l_t) of the history y (n,)."""
        y = np.asarray(y, np.float64)
        run = smoothing.smooth(y, self.smoothing)
        return y - run.season, run.level

    def encode(self, y: np.ndarray) -> np.ndarray:
        """History y (n,) -> z (n,) in the frame of its last level l_{n-1}."""
        d, level = self._deseasoned(y)
        return (d - level[-1]) / self.scaler.scale

    def windows(self, y: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Every window of y (n,): inputs X (L, M, 1) and next-step targets Y (L, M, 1), the
        M = n - L windows of ``make_windows``, each in the frame of its own last input's level."""
        d, level = self._deseasoned(y)
        idx = _window_index(len(d), lookback)  # (L, M)
        frame = level[idx[-1]][None, :]  # (1, M): l_e at each window's last input
        X, Y = (d[idx] - frame) / self.scaler.scale, (d[idx + 1] - frame) / self.scaler.scale
        return X[..., None], Y[..., None]

    def contexts(self, y: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
        """(L, R) the last L values before each origin o (history y[:o]), each in the frame
        of l_{o-1}: column r equals ``encode(y[:origins[r]])[-L:]``."""
        d, level = self._deseasoned(y)
        idx = np.asarray(origins)[None, :] + np.arange(-lookback, 0)[:, None]  # (L, R)
        return (d[idx] - level[np.asarray(origins) - 1][None, :]) / self.scaler.scale

    def decode(self, z_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Model-space forecasts z_hat (h, ...) following the history y (n,) -> values (h, ...):
        l_{n-1} + scale z_hat_j + s_{n+j-m}."""
        run = smoothing.smooth(np.asarray(y, np.float64), self.smoothing)
        z_hat = np.asarray(z_hat, np.float64)
        s = run.future_season(z_hat.shape[0]).reshape((-1,) + (1,) * (z_hat.ndim - 1))
        return run.level[-1] + self.scaler.scale * z_hat + s
