"""The plain (Elman) RNN cell: h' = tanh(W_ih x + b_ih + W_hh h + b_hh), or relu."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from lstmkit.nn.activations import drelu, dtanh, relu
from lstmkit.nn.cells.base import Params, State, recurrent_preactivation

_Fn = Callable[[np.ndarray], np.ndarray]
_NONLINEARITIES: dict[str, tuple[_Fn, _Fn]] = {"tanh": (np.tanh, dtanh), "relu": (relu, drelu)}


class RNNCache(NamedTuple):
    h: np.ndarray  # (N, H) the step's output, from which the derivative is taken


class RNNCell:
    num_gates = 1
    state_names: tuple[str, ...] = ("h",)

    def __init__(self, nonlinearity: str = "tanh"):
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._act, self._dact = _NONLINEARITIES[nonlinearity]

    def step(self, xw: np.ndarray, state: State, p: Params) -> tuple[np.ndarray, State, RNNCache]:
        (h_prev,) = state
        h = self._act(xw + recurrent_preactivation(h_prev, p))
        return h, (h,), RNNCache(h)

    def step_backward(
        self, dstate: State, cache: RNNCache, p: Params, grads: Params
    ) -> tuple[np.ndarray, np.ndarray, State]:
        (dh,) = dstate
        dz = dh * self._dact(cache.h)
        return dz, dz, (np.zeros_like(dh),)
