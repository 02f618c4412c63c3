"""Whole-sequence inference with little per-call work: the lean entry of the plain LSTM, the
GRU and the plain RNN.

``layer(x, inference=True)`` on a small layer spends a large share of a call outside its
time steps: at (N, T, I, H) = (1, 100, 32, 64) the LSTM's generic preparation (input and
state checks, strategy, per-call constants, weights scaled and transposed by NumPy, BLAS's
thread limit set and reset) took ~60 us of ~235, the GRU's ~70 us of ~210. Where the
general path would run its compiled loop over rows in one block, this entry does the same
arithmetic with only:

* what does not change between calls kept by the layer (:func:`prepare`: each layer's live
  parameter arrays, never copies, and the cell's constants: a module's parameters are
  updated in place, so every call reads the current weights);
* per call, a few checks of x and the state, then per layer one compiled call that
  projects x (the general path's GEMM: :mod:`lstmkit.kernels.kept`; NumPy's call before
  it where that does not apply), prepares ``W_ih`` and ``W_hh`` as the loop reads them
  (kept in the workspace, made again only when the weights' bits changed:
  :func:`lstmkit.kernels.compiled.renew`) and runs the general path's loop.

What differs between the cells is one part per loop, the same interface in each: the
LSTM's (:mod:`lstmkit.kernels.lstm_inference`: scaled gates, state (h, c)) and the cells
whose state is h alone (:mod:`lstmkit.kernels.h_inference`: GRU, RNN). Each part has
``STATES`` (how many state arrays), ``layers(params, kind)`` (the layers' live arrays as its
loop takes them), ``one_block(w, T, N, ex)`` (whether the part runs this size: where the
general path runs its compiled loop in one block, and where the part's own loops for larger
sizes apply, :mod:`lstmkit.kernels.h_split`, :mod:`lstmkit.kernels.lstm_row_split`) and
``layer(w, x, state0, final, space, ex)`` (one layer: y, the final state written into ``final``).

The results are the general path's bit for bit (``tests/test_inference_cache.py``). Where
the entry does not apply (another dtype or shape, lengths, options, a state of the wrong
kind, values that are not finite), :func:`infer` returns None and the layer takes its
general path, which also validates and raises.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from lstmkit.kernels import compiled, h_inference, lstm_inference, sequence
from lstmkit.kernels.execution import Execution

Params = dict[str, np.ndarray]
Inferrer = Callable[..., "tuple[np.ndarray, Any] | None"]

_f32 = np.float32
PARTS: dict[str, ModuleType] = {
    "lstm": lstm_inference,
    "gru": h_inference,
    "tanh": h_inference,
    "relu": h_inference,
}


def prepare(params: list[Params], ex: Execution, kind: str = "lstm") -> Inferrer | None:
    """The lean inference of L stacked one-direction layers of the cell ``kind`` ("lstm"
    for the plain LSTM, "gru", or the RNN's "tanh" / "relu"), ``params[k]`` the k-th
    layer's ``{"W_ih", "W_hh", "b_ih", "b_hh"}`` (float32, live; the biases optional), or
    None where it does not apply (other parameters, such as a projection ``W_hr``)."""
    if any(name not in ("W_ih", "W_hh", "b_ih", "b_hh") for p in params for name in p):
        return None
    part = PARTS[kind]
    return functools.partial(infer, part, part.layers(params, kind), ex)


def infer(
    part: ModuleType,
    layers: tuple[Any, ...],
    ex: Execution,
    x: Any,
    state: Any,
    workspaces: list[sequence.Workspace],
) -> tuple[np.ndarray, Any] | None:
    """y (T, N, H) and the final state (L, N, H) ((h, c) for the LSTM) of the stack over x
    (T, N, I) from ``state`` (as the final state, float32, or None: zeros), or None where
    the lean entry does not apply (see the module doc). ``workspaces``: one dict per
    layer, kept by the caller (arrays reused from call to call)."""
    first = layers[0]
    H, I = first.W_hh.shape[1], first.W_ih.shape[1]
    if type(x) is not np.ndarray or x.dtype != _f32 or x.ndim != 3 or x.shape[2] != I:
        return None
    T, N, _ = x.shape
    L = len(layers)
    if T == 0 or N == 0 or not part.one_block(first, T, N, ex):
        return None
    state0 = _state(state, part.STATES, (L, N, H))
    if state0 is None or not compiled.all_finite(x, state0[0], state0[-1]):
        return None
    final = tuple(np.empty((L, N, H), _f32) for _ in state0)
    for k, (w, space) in enumerate(zip(layers, workspaces)):
        x = part.layer(w, np.ascontiguousarray(x), tuple(s[k] for s in state0),
                       tuple(s[k] for s in final), space, ex)  # fmt: skip
    return x, final if len(final) > 1 else final[0]


def _state(state: Any, count: int, shape: tuple[int, ...]) -> tuple[np.ndarray, ...] | None:
    """The state as a tuple of ``count`` float32 arrays of ``shape`` (zeros for None), or
    None where it is not one (``count`` 1: an array; 2: a pair of arrays)."""
    if state is None:
        return (np.zeros(shape, _f32),) * count
    parts = (state,) if count == 1 else state
    if count > 1 and (not isinstance(state, tuple | list) or len(state) != count):
        return None
    if all(type(s) is np.ndarray and s.dtype == _f32 and s.shape == shape for s in parts):
        return tuple(parts)
    return None
