"""Training one candidate of the automatic forecaster, and its forecasts.

:func:`fit_windows` trains a model on every window of a series (random batches, the loss after
the burn-in, masked where values were missing): a small task (:class:`_Windows`) run by the
one training loop, :class:`lstmkit.train.trainer.Trainer`, without a run folder;
:func:`_train` builds the candidate's LSTM and its windows first. :func:`_predict` and
:func:`_errors_at` roll a trained candidate out from one history or from many origins (see
:mod:`lstmkit.series.auto`, steps 1 and 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lstmkit.nn.losses import mse
from lstmkit.series.auto_candidates import AutoConfig, Candidate
from lstmkit.series.data import make_windows
from lstmkit.series.forecast import roll_out
from lstmkit.series.model import Forecaster
from lstmkit.train.trainer import Evaluation, Options, Task, Trainer

__all__ = ["fit_windows"]


def _train(
    tf: Any,
    y: np.ndarray,
    c: Candidate,
    config: AutoConfig,
    seed: int,
    steps: int,
    deadline: float,
    every: Any = None,
    z_observed: np.ndarray | None = None,
) -> Forecaster:
    """An LSTM trained on the windows ``tf.windows`` cuts from y (n,) for ``steps`` Adam steps
    (fewer past the deadline); ``every(step, model)`` is called every ``eval_every`` steps and
    at the end.
    ``z_observed`` (n,) bool: the loss skips the targets that are False (missing="mask")."""
    model = Forecaster(c.model_config(), seed=seed, inputs=c.inputs())
    X, Y = tf.windows(y, c.lookback)  # (L, M, D), (L, M, 1)
    X, Y = X.astype(model.dtype), Y.astype(model.dtype)
    W = None if z_observed is None else make_windows(z_observed.astype(model.dtype), c.lookback)[1]
    return fit_windows(model, X, Y, W, c, config, seed, steps, deadline, every)


def fit_windows(
    model: Any,
    X: np.ndarray,
    Y: np.ndarray,
    W: np.ndarray | None,
    c: Candidate,
    config: AutoConfig,
    seed: int,
    steps: int,
    deadline: float,
    every: Any = None,
) -> Any:
    """``model`` (a Forecaster or a CovariateLSTM) trained on the windows X (L, M, D) ->
    Y (L, M, K) for ``steps`` Adam steps on random batches (fewer past the ``deadline``, a
    ``time.monotonic()`` instant read after each step), the loss the MSE after the burn-in
    (with W (L, M, K): only where W is 1); ``every(step, model)`` is called every
    ``eval_every`` steps and at the last one. The loop is :class:`lstmkit.train.trainer.Trainer`
    without a run folder (a divergence is its TrainingError)."""
    options = Options(
        config.lr,
        config.clip,
        config.eval_every,
        steps,
        seed=seed,
        deadline=deadline if deadline < math.inf else None,
        evaluate_last=True,
    )
    Trainer(_Windows(model, X, Y, W, c, config, seed, every), options).fit()
    return model


class _Windows(Task):
    """:func:`fit_windows` as a task: step k draws B of the M windows without replacement
    from the generator ``(seed, 1)`` (one draw per step, in order); the loss is the MSE of
    the positions after the burn-in, masked by W; the evaluation calls ``every``."""

    def __init__(
        self,
        model: Any,
        X: np.ndarray,
        Y: np.ndarray,
        W: np.ndarray | None,
        c: Candidate,
        config: AutoConfig,
        seed: int,
        every: Any,
    ) -> None:
        self.model, self.X, self.Y, self.W, self.every = model, X, Y, W, every
        self.rng = np.random.default_rng([seed, 1])
        self.B = min(config.batch, X.shape[1])
        self.skip = min(int(config.burn_in * c.lookback), c.lookback - 1)  # burn-in positions

    def loss(self, step: int) -> tuple[float, np.ndarray]:
        """The batch's MSE after the burn-in and dL/dpred (L, B, K), zero in the burn-in."""
        idx = self.rng.choice(self.X.shape[1], self.B, replace=False)
        pred, _ = self.model(self.X[:, idx])  # (L, B, K)
        kept, target = pred[self.skip :], self.Y[self.skip :, idx]
        if self.W is None:
            loss, d_kept = mse(kept, target)
        else:
            loss, d_kept = _masked_mse(kept, target, self.W[self.skip :, idx])
        dpred = np.zeros_like(pred)
        dpred[self.skip :] = d_kept
        return loss, dpred

    def evaluate(self, step: int) -> Evaluation:
        if self.every is not None:
            self.every(step, self.model)
        return Evaluation()


def _masked_mse(pred: np.ndarray, target: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """sum(w (pred - target)^2) / sum(w) and its gradient d/dpred, all (T, B, K); w is 1
    where the target was observed, 0 where missing (no target: no loss, no gradient)."""
    n = max(float(w.sum()), 1.0)
    loss = float(np.sum(w * np.square(pred - target, dtype=np.float64)) / n)
    return loss, (2.0 * w * (pred - target) / n).astype(pred.dtype)


def _z_observed(observed: np.ndarray | None, difference: bool) -> np.ndarray | None:
    """Which model-space values z (n,) or (n - 1,) rest on observed values only."""
    if observed is None:
        return None
    return observed[1:] & observed[:-1] if difference else observed.copy()


def _predict(model: Forecaster, c: Candidate, tf: Any, y: np.ndarray, h: int) -> np.ndarray:
    """The h values following the history y (n,) -> (h,)."""
    z = tf.encode(y)[-c.lookback :]  # (L,) or (L, D)
    return tf.decode(_roll_out(model, tf, z[:, None], h)[:, 0].astype(np.float64), y)


def _roll_out(model: Forecaster, tf: Any, context: np.ndarray, h: int) -> np.ndarray:
    """The transform's own roll-out (the level-input form feeds back two values), else
    :func:`~lstmkit.series.forecast.roll_out`: context (L, N) or (L, N, D) -> (h, N)."""
    own = getattr(tf, "roll_out", None)
    return own(model, context, h) if own is not None else roll_out(model, context, h)


def _errors_at(
    model: Forecaster,
    c: Candidate,
    tf: Any,
    y: np.ndarray,
    actual: np.ndarray,
    origins: np.ndarray,
    h: int,
    one_by_one: bool = False,
) -> np.ndarray:
    """actual - forecast (origins, h) of h-step forecasts from each origin o (history y[:o];
    ``actual`` is y with NaN where missing), all origins rolled out in one batch, or with
    ``one_by_one`` each on its own (:func:`_predict`; the search's scores keep its roundings)."""
    if one_by_one:
        return np.stack([actual[o : o + h] - _predict(model, c, tf, y[:o], h) for o in origins])
    contexts = tf.contexts(y, origins, c.lookback)  # (L, origins) or (L, origins, D)
    z_hat = _roll_out(model, tf, contexts, h).astype(np.float64)  # (h, origins)
    return np.stack(
        [actual[o : o + h] - tf.decode(z_hat[:, i], y[:o]) for i, o in enumerate(origins)]
    )
