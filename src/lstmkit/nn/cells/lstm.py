"""The LSTM cell, in PyTorch's gate order (i, f, g, o).

Forward, for one step::

    i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     update (input) gate
    f  = sigmoid(W_if x + b_if + W_hf h + b_hf)     forget gate
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)        candidate cell
    o  = sigmoid(W_io x + b_io + W_ho h + b_ho)     output gate
    c' = f * c + i * g
    m  = o * tanh(c')
    h' = m                  (proj_size == 0)
    h' = W_hr m             (proj_size > 0)

With ``forget_gate=False`` f is fixed to 1: the original 1997 cell, whose memory
can only grow. The weights keep their 4H rows so state dicts stay torch's; the
forget rows then receive zero gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.nn.activations import dsigmoid, dtanh, sigmoid
from lstmkit.nn.cells.base import Params, State, recurrent_preactivation


class LSTMCache(NamedTuple):
    i: np.ndarray  # (N, H) gate activations, kept for the backward pass
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c_prev: np.ndarray
    tanh_c: np.ndarray
    m: np.ndarray  # o * tanh(c'), the projection's input


class LSTMCell:
    num_gates = 4
    state_names: tuple[str, ...] = ("h", "c")

    def __init__(self, forget_gate: bool = True):
        self.forget_gate = forget_gate

    def step(self, xw: np.ndarray, state: State, p: Params) -> tuple[np.ndarray, State, LSTMCache]:
        """xw: (N, 4H) input pre-activation; state: (h (N, P or H), c (N, H))."""
        h_prev, c_prev = state
        z = xw + recurrent_preactivation(h_prev, p)  # (N, 4H)
        zi, zf, zg, zo = np.split(z, 4, axis=1)
        i = sigmoid(zi)
        f = sigmoid(zf) if self.forget_gate else np.ones_like(zf)
        g = np.tanh(zg)
        o = sigmoid(zo)
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        m = o * tanh_c
        h = m @ p["W_hr"].T if "W_hr" in p else m
        return h, (h, c), LSTMCache(i, f, g, o, c_prev, tanh_c, m)

    def step_backward(
        self, dstate: State, cache: LSTMCache, p: Params, grads: Params
    ) -> tuple[np.ndarray, np.ndarray, State]:
        """dstate: (dh, dc) of this step's outputs. Returns (dz, dz, (0, dc_prev))."""
        dh, dc = dstate
        i, f, g, o, c_prev, tanh_c, m = cache
        if "W_hr" in p:  # h = W_hr m
            grads["W_hr"] += dh.T @ m
            dm = dh @ p["W_hr"]
        else:
            dm = dh
        do = dm * tanh_c
        dc = dc + dm * o * dtanh(tanh_c)
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        dc_prev = dc * f
        dz = np.concatenate(
            [
                di * dsigmoid(i),
                df * dsigmoid(f) if self.forget_gate else np.zeros_like(df),
                dg * dtanh(g),
                do * dsigmoid(o),
            ],
            axis=1,
        )  # (N, 4H)
        return dz, dz, (np.zeros_like(dh), dc_prev)
