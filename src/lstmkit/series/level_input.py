"""The level as a second LSTM input, for the differenced forms of the automatic forecaster.

Differencing (:mod:`lstmkit.series.transform`) hides where the level stands: the LSTM reads
z_t = (e_t - mean_e) / scale_e with e_t = d_t - d_{t-1}, d_t = y_t - s_{t mod m} the
deseasoned values. With :attr:`~lstmkit.series.auto_candidates.AutoConfig.level_input`,
every step of a differenced form also reads the undifferenced value

    u_t = (d_t - mean_d) / scale_d          (mean and scale of d over the fitted history)

so the LSTM knows where in its cycle a mean-reverting series (El Nino) stands. The input at
step t is x_t = (z_t, u_t) and the target z_{t+1}, as without the level. A roll-out feeds
back z_hat and the level it implies, u_{t+1} = u_t + (scale_e z_hat + mean_e) / scale_d
(:meth:`LevelInput.roll_out`); decoding is the differenced transform's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmkit.series.data import Scaler
from lstmkit.series.transform import Transform

__all__ = ["LevelInput"]


@dataclass(frozen=True)
class LevelInput:
    """y (n,) <-> x (n - 1, 2): the differenced values and the level; see the module."""

    base: Transform  # differenced (difference=True)
    level: Scaler  # mean_d, scale_d of the deseasoned values d

    @property
    def season(self) -> np.ndarray:
        """(m,) the seasonal indices (zeros: no deseasoning)."""
        return self.base.season

    @property
    def scaler(self) -> Scaler:
        """The differenced values' scaler (mean_e, scale_e)."""
        return self.base.scaler

    @classmethod
    def fit(cls, y: np.ndarray, m: int, deseason: bool) -> LevelInput:
        """Fitted on the history y (n,): the differenced transform, then the scale of d."""
        base = Transform.fit(y, m, deseason, True)
        return cls(base, Scaler.fit(cls(base, Scaler(0.0, 1.0))._deseasoned(y)))

    def _deseasoned(self, y: np.ndarray) -> np.ndarray:
        """d (n,) = y_t - s_{t mod m}."""
        y = np.asarray(y, np.float64)
        m = self.season.shape[0]
        return y - self.season[np.arange(len(y)) % m]

    def encode(self, y: np.ndarray) -> np.ndarray:
        """History y (n,) -> x (n - 1, 2): row k holds (z, u) at time k + 1."""
        u = self.level.transform(self._deseasoned(y))[1:]
        return np.stack([self.base.encode(y), u], axis=1)

    def decode(self, z_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Model-space forecasts z_hat (h, ...) following the history y (n,) -> values."""
        return self.base.decode(z_hat, y)

    def windows(self, y: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Every window: inputs X (L, M, 2) and next-step targets Y (L, M, 1), z only."""
        x = self.encode(y)  # (n - 1, 2)
        if lookback < 1 or x.shape[0] < lookback + 1:
            raise ValueError(
                f"expected a lookback >= 1 and at least lookback + 2 values, got lookback "
                f"{lookback} and {len(y)} values"
            )
        idx = np.arange(lookback)[:, None] + np.arange(x.shape[0] - lookback)[None, :]  # (L, M)
        return x[idx], x[idx + 1, :1]

    def contexts(self, y: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
        """(L, R, 2) the last L inputs before each origin o (history y[:o]): column r equals
        ``encode(y[:origins[r]])[-L:]`` (encode is causal; x[k] holds time k + 1)."""
        ends = np.asarray(origins) - 1
        return self.encode(y)[ends[None, :] + np.arange(-lookback, 0)[:, None]]

    def roll_out(self, model: Any, context: np.ndarray, horizon: int) -> np.ndarray:
        """Inputs context (T, N, 2) -> the next ``horizon`` z values (horizon, N), each fed
        back with the level it implies (see the module docstring)."""
        context = np.asarray(context)
        if context.ndim != 3 or context.shape[0] < 1 or context.shape[2] != 2:
            raise ValueError(f"context: expected shape (T, N, 2) with T >= 1, got {context.shape}")
        was_training = model.training
        model.eval()
        try:
            pred, state = model(context.astype(model.dtype), inference=True)  # (T, N, 1)
            z, u = pred[-1], context[-1, :, 1:].astype(np.float64)  # (N, 1) each
            out = [z]
            for _ in range(horizon - 1):
                u = u + self.scaler.inverse(z.astype(np.float64)) / self.level.scale
                z, state = model.step(np.concatenate([z, u.astype(model.dtype)], axis=1), state)
                out.append(z)
        finally:
            model.train(was_training)
        return np.stack(out)[:, :, 0]  # (horizon, N)
