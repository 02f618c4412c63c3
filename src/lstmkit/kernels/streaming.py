"""Streaming: one time step of a stack of LSTM layers on a compiled kernel.

``layer.step(x_t, state)`` calls :func:`step` first; it returns None whenever it does not
apply (inputs that are not float32 arrays of the expected shapes, or not finite), and the
layer then takes its reference path, which also does the validation and raises the errors.
On the fast path the per-call Python work is a few lookups and one compiled call per
layer: the kernel reads the live weights, so updating them in place is seen at the next
step. Large layers (from ``ex.parallel_weights`` floats: beyond ~1 MB, a core's L2, a step
is bound by one core's bandwidth) split the weight rows across numba's threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmkit.kernels import compiled, parallel
from lstmkit.kernels.execution import Execution
from lstmkit.kernels.lstm_cell import gate_constants, peepholes_of


def _as_batch(state: Any, shape: tuple[int, ...], unbatched: bool) -> np.ndarray | None:
    ok = isinstance(state, np.ndarray) and state.dtype == np.float32 and state.shape == shape
    if not ok:
        return None
    return state[:, None, :] if unbatched else state


def step(
    params: list[dict[str, np.ndarray]],
    x_t: Any,
    state: Any,
    ex: Execution,
    **options: bool,
) -> tuple[np.ndarray, Any] | None:
    """One step of L stacked layers (one direction), ``params[k]`` the k-th layer's
    ``{"W_ih", "W_hh", "b_ih", "b_hh", "W_hr"}`` (float32; biases and ``W_hr`` optional):
    x_t (N, I) or (I,), state (h (L, N, P), c (L, N, H)) or None -> (y_t, (h, c)), or None."""
    if not isinstance(x_t, np.ndarray) or x_t.dtype != np.float32:
        return None
    if x_t.ndim not in (1, 2) or x_t.shape[-1] != params[0]["W_ih"].shape[1]:
        return None
    if x_t.ndim == 2 and x_t.shape[0] == 0:  # no sequence: the layer's check refuses it
        return None
    unbatched = x_t.ndim == 1
    x = x_t[None, :] if unbatched else x_t
    P, H = params[0]["W_hh"].shape[1], params[0]["W_hh"].shape[0] // 4
    N, L = x.shape[0], len(params)
    lead = (L,) if unbatched else (L, N)
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None
    if state is None:
        h0, c0 = np.zeros((L, N, P), np.float32), np.zeros((L, N, H), np.float32)
    elif isinstance(state, tuple | list) and len(state) == 2:
        h0 = _as_batch(state[0], (*lead, P), unbatched)
        c0 = _as_batch(state[1], (*lead, H), unbatched)
    if h0 is None or c0 is None or not compiled.all_finite(x, h0, c0):
        return None
    h_n, c_n = np.empty((L, N, P), np.float32), np.empty((L, N, H), np.float32)
    no_bias, no_proj = np.empty(0, np.float32), np.empty((0, H), np.float32)
    g = gate_constants(H, **options)  # options: gate_constants' keywords
    for k, p in enumerate(params):
        W_ih, W_hh = p["W_ih"], p["W_hh"]
        b_ih, b_hh = p.get("b_ih", no_bias), p.get("b_hh", no_bias)
        W_hr = p.get("W_hr", no_proj)
        w_ci, w_cf, w_co = peepholes_of(p, g.scale)[:3]  # scaled: all a forward step reads
        weights = (W_ih, W_hh, b_ih, b_hh, W_hr, g.scale, g.alpha, g.beta, g.flags)
        args = (x, h0[k], c0[k], *weights, w_ci, w_cf, w_co, h_n[k], c_n[k])
        big = W_ih.size + W_hh.size >= ex.parallel_weights
        n_threads = parallel.most_threads(ex) if big else 1
        if n_threads > 1:
            compiled.step_parallel(*args, n_threads)
        else:
            compiled.step(*args)
        x = h_n[k]
    y = x[0].copy() if unbatched else x.copy()
    if unbatched:
        return y, (h_n[:, 0, :], c_n[:, 0, :])
    return y, (h_n, c_n)
