"""The interface every cell offers (see :mod:`lstmkit.nn.cells`)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

State = tuple[np.ndarray, ...]
Params = dict[str, np.ndarray]


class Cell(Protocol):
    num_gates: int  # G: rows of W_ih are G * hidden_size
    state_names: tuple[str, ...]  # ("h", "c") for the LSTM, ("h",) otherwise

    def step(self, xw: np.ndarray, state: State, p: Params) -> tuple[np.ndarray, State, Any]: ...

    def step_backward(
        self, dstate: State, cache: Any, p: Params, grads: Params
    ) -> tuple[np.ndarray, np.ndarray, State]: ...


def recurrent_preactivation(h_prev: np.ndarray, p: Params) -> np.ndarray:
    """h_prev @ W_hh.T + b_hh, shape (N, G*H)."""
    hw = h_prev @ p["W_hh"].T
    if "b_hh" in p:
        hw += p["b_hh"]
    return hw
