"""The ES-RNN-style hybrid form: the LSTM reads each window relative to a smoothed level.

In the spirit of Smyl's ES-RNN (the M4 winner), additive: an exponential-smoothing level l,
trend b and season s (:mod:`lstmkit.series.smoothing`, Holt-Winters, fitted on the
training part first, not jointly with the LSTM) normalise every window. A window of the
lookback L ending at time e (its last input) reads

    x_k = (y_k - s_{k-m} - l_e - b_e (k - e)) / scale        k = e - L + 1 .. e + 1

(inputs k <= e, the targets one step later), so the LSTM learns what the level, trend and
season leave, in the frame of the line through l_e at the window's end. With ``burn_in``
(the training's: only the predictions from the input positions p >= min(int(burn_in L),
L - 1) carry the loss) the frame is set at that first input position instead,
e = start + min(int(burn_in L), L - 1), so the targets that carry the loss lie 1, 2, ...
steps past the frame's point, as a forecast's steps lie past the history's end. A forecast from the
history y_0 .. y_{n-1} rolls the LSTM out from the last L values in the frame at n - 1, then
re-levels and re-seasons: y_hat_{n+j} = l_{n-1} + b_{n-1} (j + 1) + scale z_hat_j + s_{n+j-m}.

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
from lstmkit.series.level_input import LevelInput
from lstmkit.series.transform import Transform

__all__ = ["LevelTransform", "fit_form"]


def fit_form(
    y: np.ndarray, m: int, c: Any, burn_in: float | None = None, trend: bool = False
) -> Transform | LevelTransform | LevelInput:
    """The transform of candidate c (fields lookback, deseason, difference and, optionally,
    hybrid and level) fitted on the history y (n,) with season m. For the hybrid: ``burn_in`` sets
    its training windows' frame (None: at their end), ``trend`` gives its smoothing a trend
    (tried on CO2 and Nile and not adopted: docs/forecasting.md)."""
    if getattr(c, "hybrid", False):
        return LevelTransform.fit(y, m, c.deseason, c.lookback, trend, burn_in)
    if getattr(c, "level", False):
        return LevelInput.fit(y, m, c.deseason)
    return Transform.fit(y, m, c.deseason, c.difference)


def _window_index(n: int, lookback: int) -> np.ndarray:
    """(L, M) positions of the M = n - L windows' inputs (those of ``make_windows``)."""
    return np.arange(lookback)[:, None] + np.arange(n - lookback)[None, :]


@dataclass(frozen=True)
class LevelTransform:
    """y (n,) <-> the windows in the frame of the smoothed level; see the module docstring."""

    smoothing: smoothing.Smoothing
    scaler: Scaler  # mean 0; scale: the RMS of the training windows' inputs y - s - l_e
    burn_in: float | None = None  # where the training windows' frame is: see the module

    @property
    def season(self) -> np.ndarray:
        """(m,) the smoothing's initial season (zeros: none)."""
        return self.smoothing.season0

    @classmethod
    def fit(
        cls,
        y: np.ndarray,
        m: int,
        deseason: bool,
        lookback: int,
        trend: bool = False,
        burn_in: float | None = None,
    ) -> LevelTransform:
        """Fitted on the history y (n,): the smoothing (with a ``trend`` or b = 0), then
        the scale of its windows."""
        y = np.asarray(y, np.float64)
        unit = cls(smoothing.fit(y, m, deseason, trend), Scaler(0.0, 1.0), burn_in)
        X, Y = unit.windows(y, lookback)
        scale = float(np.sqrt(np.mean(X**2)))
        return cls(unit.smoothing, Scaler(0.0, scale if scale > 0 else 1.0), burn_in)

    def _deseasoned(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d (n,) = y_t - s_{t-m}, level l_t (n,), trend b_t (n,)) of the history y (n,)."""
        y = np.asarray(y, np.float64)
        run = smoothing.smooth(y, self.smoothing)
        return y - run.season, run.level, run.trend

    def _frame(self, y: np.ndarray, idx: np.ndarray, end: np.ndarray) -> np.ndarray:
        """(d_k - l_e - b_e (k - e)) / scale at the positions idx (L, M) of windows ending
        at e = end (M,)."""
        d, level, trend = self._deseasoned(y)
        line = level[end][None, :] + trend[end][None, :] * (idx - end[None, :])
        return (d[idx] - line) / self.scaler.scale

    def encode(self, y: np.ndarray) -> np.ndarray:
        """History y (n,) -> z (n,) in the frame at its end n - 1."""
        n = len(y)
        return self._frame(y, np.arange(n)[:, None], np.array([n - 1]))[:, 0]

    def windows(self, y: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Every window of y (n,): inputs X (L, M, 1) and next-step targets Y (L, M, 1), the
        M = n - L windows of ``make_windows``, each in the frame at its last input (or, with
        ``burn_in``, at the first input whose prediction carries the loss)."""
        idx = _window_index(len(y), lookback)  # (L, M)
        e = (
            lookback - 1
            if self.burn_in is None
            else min(int(self.burn_in * lookback), lookback - 1)
        )
        X, Y = self._frame(y, idx, idx[e]), self._frame(y, idx + 1, idx[e])
        return X[..., None], Y[..., None]

    def contexts(self, y: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
        """(L, R) the last L values before each origin o (history y[:o]), each in the frame
        of l_{o-1}: column r equals ``encode(y[:origins[r]])[-L:]``."""
        origins = np.asarray(origins)
        idx = origins[None, :] + np.arange(-lookback, 0)[:, None]  # (L, R)
        return self._frame(y, idx, origins - 1)

    def decode(self, z_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Model-space forecasts z_hat (h, ...) following the history y (n,) -> values (h, ...):
        l_{n-1} + b_{n-1} (j + 1) + scale z_hat_j + s_{n+j-m}."""
        run = smoothing.smooth(np.asarray(y, np.float64), self.smoothing)
        z_hat = np.asarray(z_hat, np.float64)
        shape = (-1,) + (1,) * (z_hat.ndim - 1)
        s = run.future_season(z_hat.shape[0]).reshape(shape)
        line = run.level[-1] + run.trend[-1] * np.arange(1, z_hat.shape[0] + 1).reshape(shape)
        return line + self.scaler.scale * z_hat + s
