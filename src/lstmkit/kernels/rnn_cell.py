"""The plain (Elman) RNN cell compiled for float32: the fused kernel's one copy of its
equations (the reference: :mod:`lstmkit.nn.cells.rnn`). For row ``n``, with
``xw = W_ih x + b_ih`` and ``hw = W_hh h + b_hh``::

    h' = tanh(xw + hw)        (relu: max(xw + hw, 0))

and back, from the output: tanh' = 1 - h'^2, relu' = [h' > 0].
"""

from __future__ import annotations

import numba
import numpy as np

from lstmkit.kernels.lstm_cell import tanh

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")

TANH, RELU = 0, 1  # the nonlinearity, as the loops pass it


@_jit
def forward_row(xw, hw, act, h_new, n):
    """Row n: h_new (N, H) = act(xw + hw), xw and hw (N, H); h_new may be xw itself."""
    a, b, h = xw[n], hw[n], h_new[n]
    if act == RELU:
        for j in range(h.shape[0]):
            h[j] = max(a[j] + b[j], _f32(0.0))
    else:
        for j in range(h.shape[0]):
            h[j] = tanh(a[j] + b[j])


@_jit
def backward_row(dh, keep, h, act, dxw, n):
    """Row n: dxw (N, H) = keep * dh * act'(h), from the step's output h (N, H); keep 0 on
    a padded step. (The recurrent pre-activation's gradient is the same array.)"""
    g, o, d = dh[n], h[n], dxw[n]
    if act == RELU:
        for j in range(d.shape[0]):
            d[j] = keep * g[j] if o[j] > _f32(0.0) else _f32(0.0)
    else:
        for j in range(d.shape[0]):
            d[j] = keep * g[j] * (_f32(1.0) - o[j] * o[j])
