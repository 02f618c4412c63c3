"""Multi-step forecasts by recursive roll-out, streaming with the LSTM's ``step``.

The context (the last ``lookback`` values, as in training) is read once by the
whole-sequence forward; its last prediction is the first forecast, and every further step
feeds the previous prediction back through ``model.step`` with the state carried — the
context is never re-run. So the roll-out equals ``model.forward`` on the context followed by
the forecasts themselves (a test checks exactly that).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmkit.series.data import Scaler, decode, encode
from lstmkit.series.model import Forecaster

__all__ = ["forecast", "forecast_run", "roll_out"]


def roll_out(model: Forecaster, context: np.ndarray, horizon: int) -> np.ndarray:
    """Model-space context (T, N) -> the next ``horizon`` model-space values (horizon, N)."""
    context = np.asarray(context)
    if context.ndim != 2 or context.shape[0] < 1:
        raise ValueError(f"context: expected shape (T, N) with T >= 1, got {context.shape}")
    if horizon < 1:
        raise ValueError(f"horizon: expected >= 1, got {horizon}")
    was_training = model.training
    model.eval()
    try:
        pred, state = model(context.astype(model.dtype)[:, :, None], inference=True)  # (T, N, 1)
        z = pred[-1]  # (N, 1)
        out = [z]
        for _ in range(horizon - 1):
            z, state = model.step(z, state)  # (N, 1)
            out.append(z)
    finally:
        model.train(was_training)
    return np.stack(out)[:, :, 0]  # (horizon, N)


def forecast(
    model: Forecaster,
    values: np.ndarray,
    horizon: int,
    scaler: Scaler,
    lookback: int,
    difference: bool = False,
) -> np.ndarray:
    """The ``horizon`` values following ``values`` (1-D, original units), as float64.

    The context is the last ``lookback`` model-space values (fewer if the series is short).
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.shape[0] < 1 + int(difference):
        raise ValueError(
            f"values: expected a 1-D series of at least {1 + int(difference)} values, "
            f"got shape {values.shape}"
        )
    z = encode(values, scaler, difference)[-lookback:]
    z_hat = roll_out(model, z[:, None], horizon)[:, 0].astype(np.float64)
    return decode(z_hat, scaler, difference, float(values[-1]))


def forecast_run(
    model: Forecaster, meta: dict[str, Any], values: np.ndarray, horizon: int
) -> np.ndarray:
    """:func:`forecast` with the scaler, lookback and differencing stored in a run's meta."""
    config = meta["train_config"]
    return forecast(
        model,
        values,
        horizon,
        Scaler.from_dict(meta["scaler"]),
        int(config["lookback"]),
        bool(config["difference"]),
    )
