"""The loop over time for one layer and one direction, forward and backward.

The non-recurrent work is done as large matrix products over all T*N rows:
the input projection ``xw = x @ W_ih.T + b_ih`` before the forward loop, and
``dx``, ``dW_ih``, ``dW_hh`` and the biases' gradients after the backward loop.
Only the cell step and the recurrent product stay inside the loop.

Variable lengths follow ``pack_padded_sequence``: a ``mask`` of shape (T, N, 1)
marks the valid steps. On padded steps the state is carried unchanged and the
output is zero, so the forward direction ends with the state at each sequence's
own last step, and the reverse direction starts there.

Two regularisers of recurrent layers live here too, because they act on the loop's
states rather than inside a cell; the layer draws their masks and passes them in ``p``
beside the parameters (absent keys: off):

* ``p["x_mask"]`` (N, I) and ``p["h_mask"]`` (N, P): variational dropout (Gal & Ghahramani
  2016), one mask per sequence multiplying the input before ``W_ih`` and the h entering
  the cell (for the LSTM: the h entering ``W_hh``), the same at every step;
* ``p["zoneout_h"]``, ``p["zoneout_c"]``: zoneout (Krueger et al. 2017). The state leaving
  step t is ``k * s_prev + (1 - k) * s_new`` where k is (T, N, ·) 0/1 (training: each unit
  keeps its previous value where k = 1) or a scalar probability (evaluation: the
  expectation). The output is the zoned h.
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

    noise: dict[str, np.ndarray] | None = None  # the masks of ``p`` (see the module doc)

    def fields(self) -> dict[str, np.ndarray]:
        """The caches' fields stacked over time: {name: (T, N, ·)} (None fields left out)."""
        return {
            name: np.stack([getattr(c, name) for c in self.caches])
            for name in self.caches[0]._fields
            if getattr(self.caches[0], name) is not None
        }


NOISE = ("x_mask", "h_mask", "zoneout_h", "zoneout_c")  # the masks a ``p`` may carry


def zoneout_keep(noise: dict[str, np.ndarray], t: int, n: int) -> tuple[np.ndarray | None, ...]:
    """Step t's keep factors for the n state parts (h, c, ...) from the zoneout masks, None
    where absent (zoneout acts on h and c only)."""
    out: list[np.ndarray | None] = [None] * n
    for j, name in enumerate(("zoneout_h", "zoneout_c")[:n]):
        k = noise.get(name)
        out[j] = None if k is None else (k[t] if k.ndim == 3 else k)
    return tuple(out)


def zone(prev: State, new: State, keep: tuple[np.ndarray | None, ...]) -> State:
    """k * prev + (1 - k) * new for each state part with a keep factor k."""
    return tuple(n if k is None else k * s + (1.0 - k) * n for s, n, k in zip(prev, new, keep))


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
    noise = {k: p[k] for k in NOISE if k in p}
    if "x_mask" in noise:
        x = x * noise["x_mask"]
    xw = _project(x, p["W_ih"], p.get("b_ih"))  # (T, N, G*H)
    h0 = state[0]
    y = np.empty((T, N, h0.shape[1]), dtype=x.dtype)
    h_prev = np.empty_like(y)
    caches: list[Any] = [None] * T
    h_mask = noise.get("h_mask")
    for t in _time_order(T, reverse):
        if noise:
            seen = state if h_mask is None else (state[0] * h_mask,) + state[1:]
            h_prev[t] = seen[0]
            _, new_state, caches[t] = cell.step(xw[t], seen, p)
            new_state = zone(state, new_state, zoneout_keep(noise, t, len(state)))
            y_t = new_state[0]
        else:
            h_prev[t] = state[0]
            y_t, new_state, caches[t] = cell.step(xw[t], state, p)
        if mask is not None:
            m = mask[t]
            new_state = tuple(np.where(m, s_new, s) for s_new, s in zip(new_state, state))
            y_t = np.where(m, y_t, 0.0)
        y[t] = y_t
        state = new_state
    return y, state, Tape(x, h_prev, caches, mask, reverse, noise or None)


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
    x, h_prev, caches, mask, reverse, noise = tape
    noise = noise or {}
    T, N, I = x.shape
    GH = p["W_hh"].shape[0]
    dxw = np.empty((T, N, GH), dtype=x.dtype)
    # the gradient of the recurrent pre-activation: the same as dxw, except in the GRU's n
    # rows and with a layer-normalised LSTM (a separate array, made at the first difference)
    dhw = dxw if cell.num_gates != 3 else np.empty_like(dxw)
    h_mask = noise.get("h_mask")
    for t in reversed(_time_order(T, reverse)):
        d = (dstate[0] + (dy[t] if mask is None else dy[t] * mask[t]),) + dstate[1:]
        if record is not None:
            for rec, dd in zip(record, d):
                rec[t] = dd
        d_cell = d if mask is None else tuple(dd * mask[t] for dd in d)
        keep = zoneout_keep(noise, t, len(d)) if noise else ()
        if any(k is not None for k in keep):  # zoned: the new state is k*prev + (1-k)*new
            d_zoned = d_cell
            d_cell = tuple(dd if k is None else dd * (1.0 - k) for dd, k in zip(d_zoned, keep))
        dxw_t, dhw_t, d_prev = cell.step_backward(d_cell, caches[t], p, grads)
        dxw[t] = dxw_t
        if dhw is dxw and dhw_t is not dxw_t:
            dhw = dxw.copy()  # the steps so far had dhw == dxw
        if dhw is not dxw:
            dhw[t] = dhw_t
        dh_prev = d_prev[0] + dhw_t @ p["W_hh"]
        if h_mask is not None:  # the cell saw h_prev * h_mask
            dh_prev = dh_prev * h_mask
        dstate = (dh_prev,) + d_prev[1:]
        if any(k is not None for k in keep):
            dstate = tuple(
                ds if k is None else ds + dd * k for ds, dd, k in zip(dstate, d_zoned, keep)
            )
        if mask is not None:  # padded steps pass the gradient through unchanged
            pad = ~mask[t]
            dstate = tuple(ds + dd * pad for ds, dd in zip(dstate, d))

    rows_x = x.reshape(T * N, I)
    rows_dxw = dxw.reshape(T * N, GH)
    rows_dhw = dhw.reshape(T * N, GH)
    grads["W_ih"] += rows_dxw.T @ rows_x
    grads["W_hh"] += rows_dhw.T @ h_prev.reshape(T * N, -1)
    if "b_ih" in grads:
        grads["b_ih"] += rows_dxw.sum(axis=0)
        grads["b_hh"] += rows_dhw.sum(axis=0)
    dx = (rows_dxw @ p["W_ih"]).reshape(T, N, I)
    if "x_mask" in noise:
        dx *= noise["x_mask"]
    return dx, dstate
