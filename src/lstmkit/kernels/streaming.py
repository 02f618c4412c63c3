"""Streaming: one time step of an LSTM layer on a compiled kernel.

``layer.step(x_t, state)`` calls :func:`step` first; it returns None whenever it does not
apply (not float32, numba missing, inputs that are not float32 arrays of the expected
shapes, or not finite), and the layer then takes its reference path, which also does the
validation and raises the errors. On the fast path the per-call Python work is a few
attribute lookups and one compiled call per layer: the kernel reads the live weights, so
updating them in place is seen at the next step. Large layers split the weight rows across
numba's threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmkit.kernels import parallel, pointwise

# Weights (floats) from which a step splits its rows across threads: beyond ~1 MB (a core's
# L2) a step is bound by one core's bandwidth; below, starting the threads costs more.
PARALLEL_WEIGHTS = 2**18


def _as_batch(state: Any, shape: tuple[int, ...], unbatched: bool) -> np.ndarray | None:
    ok = isinstance(state, np.ndarray) and state.dtype == np.float32 and state.shape == shape
    if not ok:
        return None
    return state[:, None, :] if unbatched else state


def step(layer: Any, x_t: Any, state: Any) -> tuple[np.ndarray, Any] | None:
    """One step of an LSTM ``layer`` (not bidirectional): (y_t, (h, c)), or None."""
    compiled = pointwise.compiled_kernels(layer.dtype)
    if compiled is None or not isinstance(x_t, np.ndarray) or x_t.dtype != np.float32:
        return None
    if x_t.ndim not in (1, 2) or x_t.shape[-1] != layer.input_size:
        return None
    unbatched = x_t.ndim == 1
    x = x_t[None, :] if unbatched else x_t
    N, L, P, H = x.shape[0], layer.num_layers, layer.output_size, layer.hidden_size
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
    params = layer.parameters()
    no_bias, no_proj = np.empty(0, np.float32), np.empty((0, H), np.float32)
    for k in range(L):
        s = f"_l{k}"
        W_ih, W_hh = params["weight_ih" + s], params["weight_hh" + s]
        b_ih, b_hh = params.get("bias_ih" + s, no_bias), params.get("bias_hh" + s, no_bias)
        W_hr = params.get("weight_hr" + s, no_proj)
        args = (x, h0[k], c0[k], W_ih, W_hh, b_ih, b_hh, W_hr, layer.cell.forget_gate, h_n[k])
        n_threads = parallel.thread_count() if W_ih.size + W_hh.size >= PARALLEL_WEIGHTS else 1
        if n_threads > 1:
            compiled.step_parallel(*args, c_n[k], n_threads)
        else:
            compiled.step(*args, c_n[k])
        x = h_n[k]
    y = x[0].copy() if unbatched else x.copy()
    if unbatched:
        return y, (h_n[:, 0, :], c_n[:, 0, :])
    return y, (h_n, c_n)
