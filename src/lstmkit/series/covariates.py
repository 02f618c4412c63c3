"""Covariates: known-future and past-observed columns as extra inputs of the LSTM.

A target y (n,) becomes the model-space series z (see :mod:`lstmkit.series.transform`; with
differencing z_k belongs to time t = k + 1, else to t = k: ``off`` = 1 or 0). Next to it:

* known-future covariates x_t (F,) — a calendar, a promotion flag: known for the forecast
  horizon too. The input at step t carries the covariate of the step being predicted, t + 1;
* past-observed covariates p_t (P,) — known only up to now. They are inputs, and for a
  multi-step forecast the model predicts them jointly as extra outputs and feeds them back.

Both are scaled per series and per column (mean and standard deviation of the history; a
constant column keeps scale 1). At z-step k, with t = k + off::

    u_k = [z_k, x~_{t+1}, p~_t]        input  (1 + F + P,)
    v_k = [z_{k+1}, p~_{t+1}]          target (1 + P,)

:class:`CovariateLSTM` maps u (T, N, 1 + F + P) to predictions of v (T, N, 1 + P);
:func:`roll_out` reads a context once and then feeds each prediction back, with the known
x of each future step. With F = P = 0 this is the plain forecaster of
:mod:`lstmkit.series.model`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmkit.nn.feedforward import Linear
from lstmkit.nn.model import Model
from lstmkit.nn.recurrent import LSTM

__all__ = [
    "CovariateLSTM",
    "as_matrix",
    "context",
    "fit_scales",
    "inputs_targets",
    "roll_out",
    "roll_out_batch",
    "windows",
]

State = tuple[np.ndarray, ...]


class CovariateLSTM(Model):
    """An LSTM over u_k (1 + F + P,) with a linear head predicting v_k (1 + P,).

    Parameter names as :class:`lstmkit.series.model.Forecaster`'s (``lstm.*``, ``head.*``).
    """

    def __init__(
        self, hidden: int, F: int = 0, P: int = 0, seed: int | np.random.Generator | None = None
    ) -> None:
        super().__init__()
        self.F, self.P, self.hidden = F, P, hidden
        self.dtype = np.dtype(np.float32)
        rng = np.random.default_rng(seed)
        self.lstm: LSTM = self.add("lstm", LSTM(1 + F + P, hidden, dtype=self.dtype, seed=rng))
        self.head: Linear = self.add("head", Linear(hidden, 1 + P, dtype=self.dtype, seed=rng))

    def __repr__(self) -> str:
        return f"CovariateLSTM(hidden={self.hidden}, F={self.F}, P={self.P})"

    def forward(
        self, u: np.ndarray, state: State | None = None, *, inference: bool = False
    ) -> tuple[np.ndarray, State]:
        """u (T, N, 1 + F + P) -> predictions of v (T, N, 1 + P), final state."""
        y, state = self.lstm(u, state, inference=inference)  # (T, N, H)
        return self.head(y), state  # (T, N, 1 + P)

    def backward(self, dv: np.ndarray) -> None:
        """Accumulate every parameter's gradient from dv (T, N, 1 + P)."""
        self.lstm.backward(self.head.backward(dv))

    def step(self, u_t: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """u_t (N, 1 + F + P) -> prediction (N, 1 + P), new state."""
        y, state = self.lstm.step(u_t, state)  # (N, H)
        return self.head(y), state


def as_matrix(values: Any, name: str, n: int | None = None) -> np.ndarray:
    """Covariates given as an array (n,) or (n, C), a list, or a pandas Series/DataFrame ->
    (n, C) float64; a ValueError/TypeError naming ``name`` when they are not finite numbers
    or (with ``n``) not n rows."""
    if type(values).__module__.startswith("pandas"):
        import pandas as pd

        frame = values.to_frame() if isinstance(values, pd.Series) else values
        bad = [
            c
            for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c].dtype)
            or pd.api.types.is_bool_dtype(frame[c].dtype)
        ]
        if bad:
            raise TypeError(f"{name}: expected numeric columns, got {bad} (encode them as 0/1)")
        values = frame.to_numpy(np.float64, na_value=np.nan)
    try:
        X = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected numbers, got {type(values).__name__}") from None
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{name}: expected shape (n,) or (n, columns), got {X.shape}")
    if n is not None and X.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows, got {X.shape[0]}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name}: expected finite values, got missing or infinite ones")
    return X


def fit_scales(C: np.ndarray) -> np.ndarray:
    """(columns, 2) mean and scale of each column of C (n, columns); scale 1 if constant."""
    mean, std = C.mean(axis=0), C.std(axis=0)
    return np.stack([mean, np.where(std > 0, std, 1.0)], axis=1)


def _scaled(C: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return (C - scales[:, 0]) / scales[:, 1]


def inputs_targets(
    z: np.ndarray, off: int, X: np.ndarray, Pc: np.ndarray, scales: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The aligned u (K, 1 + F + P) and v (K, 1 + P), K = len(z) - 1, of one series: z (n -
    off,), X (n, F), Pc (n, P), ``scales`` (F + P, 2) (see the module docstring)."""
    F = X.shape[1]
    x, p = _scaled(X, scales[:F]), _scaled(Pc, scales[F:])
    k = np.arange(len(z) - 1)
    t = k + off
    u = np.concatenate([z[k, None], x[t + 1], p[t]], axis=1)
    v = np.concatenate([z[k + 1, None], p[t + 1]], axis=1)
    return u, v


def windows(u: np.ndarray, v: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``lookback`` steps: u (K, D) -> (lookback, M, D), v likewise, M = K -
    lookback + 1 (the count :func:`lstmkit.series.data.make_windows` gives for z)."""
    M = u.shape[0] - lookback + 1
    if M < 1:
        raise ValueError(f"expected at least {lookback} aligned steps, got {u.shape[0]}")
    idx = np.arange(lookback)[:, None] + np.arange(M)[None, :]  # (lookback, M)
    return u[idx], v[idx]


def context(
    z: np.ndarray,
    off: int,
    X: np.ndarray,
    Pc: np.ndarray,
    scales: np.ndarray,
    X_future: np.ndarray,
    lookback: int,
) -> tuple[np.ndarray, np.ndarray]:
    """What a roll-out reads after one history: the last ``lookback`` inputs u (lookback,
    D) (fewer if z is shorter) and the scaled known-future covariates (h - 1, F) of the
    inputs that follow; z (n - off,), X (n, F), Pc (n, P), X_future (h, F)."""
    F = X.shape[1]
    x = _scaled(np.concatenate([X, X_future]), scales[:F])  # (n + h, F)
    p = _scaled(Pc, scales[F:])
    k = np.arange(max(len(z) - lookback, 0), len(z))
    t = k + off
    u = np.concatenate([z[k, None], x[t + 1], p[t]], axis=1)  # (L, D)
    n = len(z) + off
    return u, x[n + 1 :]


def roll_out_batch(model: CovariateLSTM, u: np.ndarray, x_next: np.ndarray) -> np.ndarray:
    """N roll-outs at once: contexts u (L, N, D) and the scaled known-future covariates
    x_next (h - 1, N, F) of the fed-back steps -> the next h model-space values (h, N).

    The context is read once; then each prediction [z, p] is fed back with the next x."""
    was_training = model.training
    model.eval()
    try:
        pred, state = model(u.astype(model.dtype), inference=True)  # (L, N, 1 + P)
        v = pred[-1]  # (N, 1 + P)
        out = [v[:, 0]]
        for x_t in x_next:  # (N, F)
            u_t = np.concatenate([v[:, :1], x_t.astype(model.dtype), v[:, 1:]], axis=1)
            v, state = model.step(u_t, state)
            out.append(v[:, 0])
    finally:
        model.train(was_training)
    return np.stack(out).astype(np.float64)  # (h, N)


def roll_out(
    model: CovariateLSTM,
    z: np.ndarray,
    off: int,
    X: np.ndarray,
    Pc: np.ndarray,
    scales: np.ndarray,
    X_future: np.ndarray,
    lookback: int,
) -> np.ndarray:
    """The next h model-space values (h,) after one history: z (n - off,), X (n, F), Pc
    (n, P), the known-future covariates X_future (h, F) of the steps to forecast."""
    u, x_next = context(z, off, X, Pc, scales, X_future, lookback)
    return roll_out_batch(model, u[:, None, :], x_next[:, None, :])[:, 0]
