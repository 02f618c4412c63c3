"""The GRU cell compiled for float32: the fused kernel's one copy of its equations.

The reference is :mod:`lstmkit.nn.cells.gru` (torch's gate order r, z, n, the reset gate
applied after the recurrent product, as ONNX's ``linear_before_reset=1``). For row ``n`` of
(N, ·) arrays, with ``xw = W_ih x + b_ih`` and ``hw = W_hh h + b_hh`` split into the r, z, n
blocks of H columns::

    r  = sigmoid(xw_r + hw_r)
    z  = sigmoid(xw_z + hw_z)
    n  = tanh(xw_n + r * hw_n)
    h' = (1 - z) * n + z * h

``sigmoid(v) = tanh(v / 2) / 2 + 1 / 2`` on the float32 ``tanh`` of
:mod:`lstmkit.kernels.lstm_cell` (a few ulp). Each loop writes one array (so that LLVM can
check that the arrays do not overlap and vectorise it).
"""

from __future__ import annotations

import numba
import numpy as np

from lstmkit.kernels.lstm_cell import tanh

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


@_jit
def sigmoid(v):
    return _f32(0.5) * tanh(_f32(0.5) * v) + _f32(0.5)


@_jit
def forward_row(g, hw, h_prev, hw_n, h_new, n):
    """Row n. g (N, 3H): xw in, the gates r, z, n out; hw (N, 3H) in; hw_n (N, H) out:
    hw's n block, for the backward; h_new (N, H) out. Each loop reads and writes g at the
    same index, or distinct blocks of it: LLVM vectorises it (it did not when g came as two
    arrays, xw and the gates, that overlap: its run-time overlap check sent every call to
    the scalar loops, 6x the time at (16, ., ., 128), docs/performance.md)."""
    H = h_prev.shape[1]
    h_r, h_z, h_n = hw[n, :H], hw[n, H : 2 * H], hw[n, 2 * H :]
    r, z, c = g[n, :H], g[n, H : 2 * H], g[n, 2 * H :]
    hp, hn, h = h_prev[n], hw_n[n], h_new[n]
    for j in range(H):
        hn[j] = h_n[j]
    for j in range(H):
        r[j] = sigmoid(r[j] + h_r[j])
    for j in range(H):
        z[j] = sigmoid(z[j] + h_z[j])
    for j in range(H):
        c[j] = tanh(c[j] + r[j] * hn[j])
    for j in range(H):
        h[j] = (_f32(1.0) - z[j]) * c[j] + z[j] * hp[j]


@_jit
def backward_row(dh, keep, gates, hw_n, h_prev, dxw, dhw, dh_prev, n):
    """Row n, back through :func:`forward_row`. dh (N, H): dL/dh' (the later steps' and
    this step's output's); keep: 1 on a valid step, 0 on a padded one (nothing flows into
    the step; the caller passes dh through). Out: dxw (N, 3H), the gradient of ``xw``; dhw
    (N, 3H), of ``hw`` (equal but for the n block, times r); dh_prev (N, H), the part of
    dL/dh that does not go through ``W_hh`` (z * dh')."""
    H = h_prev.shape[1]
    one = _f32(1.0)
    r, z, c = gates[n, :H], gates[n, H : 2 * H], gates[n, 2 * H :]
    d_r, d_z, d_n = dxw[n, :H], dxw[n, H : 2 * H], dxw[n, 2 * H :]
    e_r, e_z, e_n = dhw[n, :H], dhw[n, H : 2 * H], dhw[n, 2 * H :]
    g, hn, hp, dp = dh[n], hw_n[n], h_prev[n], dh_prev[n]
    for j in range(H):  # through n = tanh(.)
        d_n[j] = keep * g[j] * (one - z[j]) * (one - c[j] * c[j])
    for j in range(H):
        d_z[j] = keep * g[j] * (hp[j] - c[j]) * z[j] * (one - z[j])
    for j in range(H):
        d_r[j] = d_n[j] * hn[j] * r[j] * (one - r[j])
    for j in range(H):
        e_n[j] = d_n[j] * r[j]
    for j in range(H):
        e_z[j] = d_z[j]
    for j in range(H):
        e_r[j] = d_r[j]
    for j in range(H):
        dp[j] = keep * g[j] * z[j]
