"""The GRU cell, in PyTorch's gate order (r, z, n).

Forward, for one step::

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)       reset gate
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)       update gate
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))    candidate
    h' = (1 - z) * n + z * h

The reset gate multiplies the recurrent term *after* the matrix product
(ONNX's ``linear_before_reset=1``), so the input and recurrent pre-activations
get different gradients for the n rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.nn.activations import dsigmoid, dtanh, sigmoid
from lstmkit.nn.cells.base import Params, State, recurrent_preactivation


class GRUCache(NamedTuple):
    r: np.ndarray  # (N, H)
    z: np.ndarray
    n: np.ndarray
    hw_n: np.ndarray  # W_hn h + b_hn
    h_prev: np.ndarray


class GRUCell:
    num_gates = 3
    state_names: tuple[str, ...] = ("h",)

    def step(self, xw: np.ndarray, state: State, p: Params) -> tuple[np.ndarray, State, GRUCache]:
        """xw: (N, 3H) input pre-activation; state: (h (N, H),)."""
        (h_prev,) = state
        hw = recurrent_preactivation(h_prev, p)  # (N, 3H)
        xr, xz, xn = np.split(xw, 3, axis=1)
        hr, hz, hn = np.split(hw, 3, axis=1)
        r = sigmoid(xr + hr)
        z = sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        h = (1.0 - z) * n + z * h_prev
        return h, (h,), GRUCache(r, z, n, hn, h_prev)

    def step_backward(
        self, dstate: State, cache: GRUCache, p: Params, grads: Params
    ) -> tuple[np.ndarray, np.ndarray, State]:
        (dh,) = dstate
        r, z, n, hn, h_prev = cache
        dn = dh * (1.0 - z) * dtanh(n)  # gradient of n's pre-activation
        dz = dh * (h_prev - n) * dsigmoid(z)
        dr = dn * hn * dsigmoid(r)
        dxw = np.concatenate([dr, dz, dn], axis=1)  # (N, 3H)
        dhw = np.concatenate([dr, dz, dn * r], axis=1)
        return dxw, dhw, (dh * z,)
