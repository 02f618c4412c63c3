"""Streaming: one time step of an LSTM layer on a compiled kernel.

``layer.step(x_t, state)`` calls :func:`step` first; it returns None whenever it does not
apply (not float32, numba missing, inputs that are not float32 arrays of the expected
shapes, or not finite), and the layer then takes its reference path, which also does the
validation and raises the errors. On the fast path the per-call Python work is a few
attribute lookups and one compiled call per layer: the kernel reads the live weights, so
updating them in place is seen at the next step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmkit.fast import kernels


def _as_batch(state: Any, shape: tuple[int, ...], unbatched: bool) -> np.ndarray | None:
    ok = isinstance(state, np.ndarray) and state.dtype == np.float32 and state.shape == shape
    if not ok:
        return None
    return state[:, None, :] if unbatched else state


def step(layer: Any, x_t: Any, state: Any) -> tuple[np.ndarray, Any] | None:
    """One step of an LSTM ``layer`` (not bidirectional): (y_t, (h, c)), or None."""
    compiled = kernels.compiled_kernels(layer.dtype)
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
    if h0 is None or c0 is None:
        return None
    h_n, c_n = np.empty((L, N, P), np.float32), np.empty((L, N, H), np.float32)
    params = layer.parameters()
    k = kernels.gate_constants(H, layer.cell.forget_gate, np.dtype(np.float32))
    no_proj = np.empty((0, H), np.float32)
    for layer_index in range(L):
        s = f"_l{layer_index}"
        b = (
            params["bias_ih" + s] + params["bias_hh" + s]
            if layer.bias
            else np.zeros(4 * H, np.float32)
        )
        W_hr = params.get("weight_hr" + s, no_proj)
        W_ih, W_hh = params["weight_ih" + s], params["weight_hh" + s]
        if not compiled.step(
            x,
            h0[layer_index],
            c0[layer_index],
            W_ih,
            W_hh,
            b,
            W_hr,
            k,
            h_n[layer_index],
            c_n[layer_index],
        ):
            return None
        x = h_n[layer_index]
    y = x[0].copy() if unbatched else x.copy()
    if unbatched:
        return y, (h_n[:, 0, :], c_n[:, 0, :])
    return y, (h_n, c_n)
