"""The forecaster: an LSTM over a scalar series, a linear head on every step.

At every time step t the model reads the (scaled) value z_t and predicts z_{t+1}, exactly
as the char-LM predicts the next character; training scores every step of a window, and a
forecast reads a context once and then feeds each prediction back with :meth:`step`.

With ``ForecasterConfig.highway = q > 0`` a linear autoregressive highway (LSTNet, Lai et
al. 2018) is added to the head, trained jointly, its weights starting at 0::

    pred_t = W_head h_t + b_head + a . [z_{t-q+1}, ..., z_t]        (a: highway.weight (1, q))

so a differenced form holds ARIMA(q, 1, 0) with drift (b_head) as the special case
W_head = 0, and an undifferenced one can follow a level past its training range (the head
alone is bounded by |W_head| + |b_head|, h_t being in (-1, 1)). Values before the first
of x are 0 (or the state's). The state then carries the last q values z (N, q) after
the LSTM's, so :meth:`step` continues :meth:`forward` exactly.

Shapes, with H the hidden size and L the number of LSTM layers:

=========  ===========
x          (T, N, D)   scaled values z_t (D = ``inputs``: 1, or 2 with the level,
                       :mod:`lstmkit.series.level_input`); the highway reads x[..., 0]
y          (T, N, H)
pred       (T, N, 1)   predictions of z_{t+1}
state      ((L, N, H), (L, N, H))
=========  ===========
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lstmkit.nn.feedforward import Dropout, Linear
from lstmkit.nn.model import Model
from lstmkit.nn.recurrent import LSTM

__all__ = ["Forecaster", "ForecasterConfig"]

State = tuple[np.ndarray, ...]  # (h, c), or (h, c, a) with gate_recurrence; + z (N, q)


@dataclass(frozen=True)
class ForecasterConfig:
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    dtype: str = "float32"  # "float64" for gradient checks
    # the LSTM's options away from torch's ({"peepholes": True}; see lstmkit.train.variant)
    variant: dict[str, Any] = field(default_factory=dict)
    highway: int = 0  # q: the linear autoregressive highway's order (0: none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Forecaster(Model):
    def __init__(
        self,
        config: ForecasterConfig,
        seed: int | np.random.Generator | None = None,
        inputs: int = 1,
    ) -> None:
        """``inputs``: values read per step (2: the level-input form)."""
        super().__init__()
        if config.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {config.dtype!r}")
        self.config = config
        self.dtype = np.dtype(config.dtype)
        rng = np.random.default_rng(seed)
        self.lstm: LSTM = self.add(
            "lstm",
            LSTM(
                inputs,
                config.hidden,
                config.layers,
                dropout=config.dropout,
                dtype=self.dtype,
                seed=rng,
                **config.variant,
            ),
        )
        self.drop: Dropout = self.add("drop", Dropout(config.dropout, seed=rng))
        self.head: Linear = self.add("head", Linear(config.hidden, 1, dtype=self.dtype, seed=rng))
        self.q = int(config.highway)
        if isinstance(config.highway, bool) or self.q < 0:
            raise ValueError(f"highway: expected an integer >= 0, got {config.highway!r}")
        if self.q:  # its own generator: the LSTM's and the head's draws stay the same
            highway = Linear(self.q, 1, bias=False, dtype=self.dtype, seed=0)
            highway.parameters()["weight"][...] = 0.0  # starts as the LSTM alone
            self.highway: Linear = self.add("highway", highway)

    def initial_state(self, batch: int) -> State:
        """Zeros: h and c (L, N, H), and a (L, N, 3H) with gate_recurrence; with the
        highway, then the last q values z (N, q)."""
        state: State = self.lstm.zero_state(batch)
        if self.q:
            state = (*state, np.zeros((batch, self.q), self.dtype))
        return state

    def forward(
        self, x: np.ndarray, state: State | None = None, *, inference: bool = False
    ) -> tuple[np.ndarray, State]:
        """x (T, N, D) -> predictions of the next value (T, N, 1), final state.
        ``inference``: the LSTM records nothing for backward (see :class:`lstmkit.LSTM`)."""
        lstm_state, z_prev = self._split(state, np.shape(x)[1])
        y, state = self.lstm(x, lstm_state, inference=inference)  # (T, N, H)
        pred = self.head(self.drop(y))  # (T, N, 1)
        if not self.q:
            return pred, state
        lags = _lags(np.asarray(x, self.dtype)[..., 0], z_prev)  # (T, N, q)
        return pred + self.highway(lags), (*state, lags[-1])

    def backward(self, dpred: np.ndarray) -> None:
        """Accumulate every parameter's gradient from dpred (T, N, 1)."""
        if self.q:
            self.highway.backward(dpred)  # da = sum_t,n dpred_t,n lags_t,n (x needs no dx)
        dy = self.drop.backward(self.head.backward(dpred))
        self.lstm.backward(dy)

    def step(self, x_t: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """One step per sequence, for roll-outs: x_t (N, D) -> prediction (N, 1), new state."""
        lstm_state, z_prev = self._split(state, np.shape(x_t)[0])
        y, state = self.lstm.step(x_t, lstm_state)  # (N, H)
        pred = self.head(y)  # (N, 1)
        if not self.q:
            return pred, state
        lags = _lags(np.asarray(x_t, self.dtype)[None, :, 0], z_prev)[0]  # (N, q)
        return pred + self.highway(lags), (*state, lags)

    def _split(self, state: State | None, batch: int) -> tuple[State | None, np.ndarray]:
        """(the LSTM's part of the state, the highway's last q values z (N, q))."""
        if not self.q:
            return state, np.zeros((batch, 0), self.dtype)
        if state is None:
            return None, np.zeros((batch, self.q), self.dtype)
        return tuple(state[:-1]), state[-1]


def _lags(z: np.ndarray, z_prev: np.ndarray) -> np.ndarray:
    """z (T, N) after z_prev (N, q) -> (T, N, q): row t holds [z_{t-q+1}, ..., z_t]."""
    T, q = z.shape[0], z_prev.shape[1]
    both = np.concatenate([z_prev.T, z], axis=0)  # (q + T, N)
    return np.stack([both[1 + j : 1 + j + T] for j in range(q)], axis=-1)
