"""The loop over time for one layer and one direction, forward and backward.

The non-recurrent work is done as large matrix products over all T*N rows:
the input projection ``xw = x @ W_ih.T + b_ih`` before the forward loop, and
``dx``, ``dW_ih``, ``dW_hh`` and the biases' gradients after the backward loop.
Only the cell step and the recurrent product stay inside the loop.

Variable lengths follow ``pack_padded_sequence``: a ``mask`` of shape (T, N, 1)
marks the valid steps. On padded steps the state is carried unchanged and the
output is zero, so the forward direction ends with the state at each sequence's
own last step, and the reverse direction starts there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lstmkit.nn.cells.base import Cell, Params, State


class Tape(NamedTuple):
    """What the backward pass needs from the forward pass of one direction."""

    x: np.ndarray  # (T, N, I) the layer's input
    h_prev: np.ndarray  # (T, N, P) the hidden state entering each step
    caches: list[Any]  # per step, the cell's cache (gate activations, ...)
    mask: np.ndarray | None  # (T, N, 1) bool, True on valid steps
    reverse: bool

    def fields(self) -> dict[str, np.ndarray]:
        """The caches' fields stacked over time: {name: (T, N, ·)}."""
        return {
            name: np.stack([getattr(c, name) for c in self.caches])
            for name in self.caches[0]._fields
        }


def _time_order(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _project(x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x @ W.T + b over all leading dims: (T, N, I) -> (T, N, rows of W)."""
    T, N, I = x.shape
    out = x.reshape(T * N, I) @ W.T
    if b is not None:
        out += b
    return out.reshape(T, N, -1)


def forward(
    cell: Cell,
    p: Params,
    x: np.ndarray,
    state: State,
    mask: np.ndarray | None = None,
    reverse: bool = False,
) -> tuple[np.ndarray, State, Tape]:
    """Run ``cell`` over x (T, N, I) from ``state``. Returns y (T, N, P), final state, tape."""
    T, N, _ = x.shape
    xw = _project(x, p["W_ih"], p.get("b_ih"))  # (T, N, G*H)
    h0 = state[0]
    y = np.empty((T, N, h0.shape[1]), dtype=x.dtype)
    h_prev = np.empty_like(y)
    caches: list[Any] = [None] * T
    for t in _time_order(T, reverse):
        h_prev[t] = state[0]
        y_t, new_state, caches[t] = cell.step(xw[t], state, p)
        if mask is not None:
            m = mask[t]
            new_state = tuple(np.where(m, s_new, s) for s_new, s in zip(new_state, state))
            y_t = np.where(m, y_t, 0.0)
        y[t] = y_t
        state = new_state
    return y, state, Tape(x, h_prev, caches, mask, reverse)


def backward(
    cell: Cell,
    p: Params,
    tape: Tape,
    dy: np.ndarray,
    dstate: State,
    grads: Params,
    record: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, State]:
    """Backpropagate dy (T, N, P) and the final state's gradient through the tape.

    Adds every parameter's gradient into ``grads`` and returns (dx (T, N, I), dstate_0).
    With ``record`` (a list of arrays shaped like the states with a leading T), the
    total gradient of each state leaving step t, dL/dh_t (and dL/dc_t), is stored there.
    """
    x, h_prev, caches, mask, reverse = tape
    T, N, I = x.shape
    GH = p["W_hh"].shape[0]
    dxw = np.empty((T, N, GH), dtype=x.dtype)
    dhw = dxw if cell.num_gates != 3 else np.empty_like(dxw)  # the GRU's n rows differ
    for t in reversed(_time_order(T, reverse)):
        d = (dstate[0] + (dy[t] if mask is None else dy[t] * mask[t]),) + dstate[1:]
        if record is not None:
            for rec, dd in zip(record, d):
                rec[t] = dd
        d_cell = d if mask is None else tuple(dd * mask[t] for dd in d)
        dxw[t], dhw_t, d_prev = cell.step_backward(d_cell, caches[t], p, grads)
        if dhw is not dxw:
            dhw[t] = dhw_t
        dh_prev = d_prev[0] + dhw_t @ p["W_hh"]
        dstate = (dh_prev,) + d_prev[1:]
        if mask is not None:  # padded steps pass the gradient through unchanged
            keep = ~mask[t]
            dstate = tuple(ds + dd * keep for ds, dd in zip(dstate, d))

    rows_x = x.reshape(T * N, I)
    rows_dxw = dxw.reshape(T * N, GH)
    rows_dhw = dhw.reshape(T * N, GH)
    grads["W_ih"] += rows_dxw.T @ rows_x
    grads["W_hh"] += rows_dhw.T @ h_prev.reshape(T * N, -1)
    if "b_ih" in grads:
        grads["b_ih"] += rows_dxw.sum(axis=0)
        grads["b_hh"] += rows_dhw.sum(axis=0)
    dx = (rows_dxw @ p["W_ih"]).reshape(T, N, I)
    return dx, dstate
