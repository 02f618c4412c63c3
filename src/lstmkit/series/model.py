"""The forecaster: an LSTM over a scalar series, a linear head on every step.

At every time step t the model reads the (scaled) value z_t and predicts z_{t+1}, exactly
as the char-LM predicts the next character; training scores every step of a window, and a
forecast reads a context once and then feeds each prediction back with :meth:`step`.

Shapes, with H the hidden size and L the number of LSTM layers:

=========  ===========
x          (T, N, D)   scaled values z_t (D = ``inputs``: 1, or 2 with the level,
                       :mod:`lstmkit.series.level_input`)
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

State = tuple[np.ndarray, ...]  # (h, c), or (h, c, a) with gate_recurrence


@dataclass(frozen=True)
class ForecasterConfig:
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    dtype: str = "float32"  # "float64" for gradient checks
    # the LSTM's options away from torch's ({"peepholes": True}; see lstmkit.train.variant)
    variant: dict[str, Any] = field(default_factory=dict)

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

    def initial_state(self, batch: int) -> State:
        """Zeros: h and c (L, N, H), and a (L, N, 3H) with gate_recurrence."""
        state: State = self.lstm.zero_state(batch)
        return state

    def forward(
        self, x: np.ndarray, state: State | None = None, *, inference: bool = False
    ) -> tuple[np.ndarray, State]:
        """x (T, N, D) -> predictions of the next value (T, N, 1), final state.
        ``inference``: the LSTM records nothing for backward (see :class:`lstmkit.LSTM`)."""
        y, state = self.lstm(x, state, inference=inference)  # (T, N, H)
        return self.head(self.drop(y)), state  # (T, N, 1)

    def backward(self, dpred: np.ndarray) -> None:
        """Accumulate every parameter's gradient from dpred (T, N, 1)."""
        dy = self.drop.backward(self.head.backward(dpred))
        self.lstm.backward(dy)

    def step(self, x_t: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """One step per sequence, for roll-outs: x_t (N, D) -> prediction (N, 1), new state."""
        y, state = self.lstm.step(x_t, state)  # (N, H)
        return self.head(y), state
