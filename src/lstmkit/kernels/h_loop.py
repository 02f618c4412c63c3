"""The fused loop over time of the cells whose state is h alone: the GRU and the plain RNN.

Same math, inputs and outputs as the reference (``lstmkit.nn.time_loop`` over
``lstmkit.nn.cells.GRUCell`` / ``RNNCell``); the cells' equations are those of
:mod:`lstmkit.kernels.gru_cell` and :mod:`lstmkit.kernels.rnn_cell`. How the work is laid
out (float32, numba):

* the input projection ``xw = x @ W_ih.T + b_ih`` is one GEMM over all T*N rows, into the
  tape's ``gates`` array, which the loop then overwrites with the gates (GRU: r, z, n) or
  the output (RNN: h); without padding, y and the tape's h_prev are views of one
  (T + 1, N, H) array (as the LSTM's), and the RNN's ``gates`` is y itself;
* the whole loop over time is one compiled call per block of sequences: each step adds
  ``h @ W_hh.T + b_hh`` (with the compiled products of :mod:`lstmkit.kernels.compiled`
  while ``rows * H * G*H <= ex.small_h``, else with BLAS called from the compiled code,
  :mod:`lstmkit.kernels.blas`), then the cell on every row; large batches are split
  across threads, each on its own sequences;
* backward mirrors it; the weight gradients and dx are GEMMs over all T*N rows after it,
  each thread on a block.

Variable lengths as the reference: padded steps carry h and output zero.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numba
import numpy as np

from lstmkit.kernels import gru_cell, parallel, rnn_cell, sequence
from lstmkit.kernels.compiled import all_finite, matmul_add, matmul_into
from lstmkit.kernels.execution import DEFAULT, Execution

try:
    from lstmkit.kernels.blas import product
except ImportError:  # no cblas_sgemm in NumPy's BLAS: the compiled products at every size

    @numba.njit(cache=True, fastmath=True, nogil=True)
    def product(a, b, out, beta):  # out = a @ b + beta * out, beta 0 or 1
        if beta == 0.0:
            out[:] = 0.0
        matmul_add(a, b, out)


Params = dict[str, np.ndarray]  # {"W_ih": (G*H, I), "W_hh": (G*H, H), "b_ih", "b_hh": (G*H,)}
State = tuple[np.ndarray, ...]  # (h (N, H),)

GRU, RNN_TANH, RNN_RELU = 0, 1, 2  # the cell, as the compiled loops take it
KINDS = {"gru": GRU, "tanh": RNN_TANH, "relu": RNN_RELU}
_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


class HTape(NamedTuple):
    """What the backward pass needs from the forward pass of one direction."""

    x: np.ndarray  # (T, N, I) the layer's input
    h_prev: np.ndarray  # (T, N, H) h entering each step
    gates: np.ndarray  # (T, N, G*H): the GRU's r, z, n; the RNN's output h
    hw_n: np.ndarray  # (T, N, H): the GRU's W_hn h + b_hn; (0, N, H) for the RNN
    mask: np.ndarray | None  # (T, N, 1) bool, True on valid steps
    reverse: bool
    kind: int

    def fields(self) -> dict[str, np.ndarray]:
        """The reference cell's cache fields stacked over time, (T, N, H) views (for
        ``layer.activations()``): GRU r, z, n, hw_n, h_prev; RNN h."""
        if self.kind != GRU:
            return {"h": self.gates}
        H = self.h_prev.shape[2]
        r, z, n = self.gates[..., :H], self.gates[..., H : 2 * H], self.gates[..., 2 * H :]
        return {"r": r, "z": z, "n": n, "hw_n": self.hw_n, "h_prev": self.h_prev}


def forward(
    p: Params,
    x: np.ndarray,
    state: State,
    mask: np.ndarray | None = None,
    reverse: bool = False,
    kind: str = "gru",
    ex: Execution = DEFAULT,
    workspace: sequence.Workspace | None = None,
    keep_tape: bool = True,
) -> tuple[np.ndarray, State, HTape | None]:
    """Run the cell ``kind`` ("gru", or the RNN's "tanh" / "relu") over x (T, N, I) from
    state (h (N, H),). Returns y (T, N, H), (h_n,) and the tape (None without
    ``keep_tape``); ``ex``, ``workspace``: as :func:`lstmkit.kernels.lstm.forward`."""
    T, N, _ = x.shape
    W_hh = p["W_hh"]  # (G*H, H)
    GH, H = W_hh.shape
    code = KINDS[kind]
    y, h_prev = sequence.outputs_and_inputs(workspace, T, N, H, x.dtype, reverse, mask is None)
    if not keep_tape:
        ex = inference_execution(code, ex, T * N * H * GH)
    # the RNN's tape keeps each step's output h where the projection was: y itself unless
    # padded steps output zeros (one array written once instead of three)
    own_gates = code == GRU or mask is not None
    gates = sequence.empty(workspace, "gates", (T, N, GH), x.dtype) if own_gates else y
    sequence.project(x, p["W_ih"], p.get("b_ih"), gates, ex)
    hw_n = sequence.empty(workspace, "hw_n", (T if code == GRU else 0, N, H), x.dtype)
    h_n = np.empty((N, H), x.dtype)
    order = sequence.time_order(T, reverse)
    h_prev[order[0]] = state[0]
    b_hh = p["b_hh"] if "b_hh" in p else np.zeros(GH, x.dtype)
    weights = (W_hh, np.ascontiguousarray(W_hh.T), b_hh)
    steps = (sequence.order_array(order), sequence.valid_steps(mask, T, N))
    seq = (gates, h_prev, hw_n)

    def run(rows: slice) -> None:
        _forward(seq, y, weights, steps, h_n, code, ex.small_h, rows.start, rows.stop)

    uses_blas = lambda rows: rows * H * GH > ex.small_h  # noqa: E731
    parallel.split(run, N, T * N * H * GH, ex, uses_blas)
    tape = HTape(x, h_prev, gates, hw_n, mask, reverse, code) if keep_tape else None
    return y, (h_n,), tape


ONE_THREAD_WORK = 2**28  # (32, 100, 128, 256): 2.1e8 multiply-adds; (64, 100, 256, 512): 1.7e9


def inference_execution(code: int, ex: Execution, work: int) -> Execution:
    """``ex`` for the inference of the cell ``code`` over ``work`` multiply-adds of
    recurrent products: the RNN's on one thread (its rows split across two measured no
    faster up to ONE_THREAD_WORK: wall time, two threads / one, 1.31 and 1.31 at
    (16, 100, 64, 128), 1.17 and 1.12 at (32, 100, 128, 256), docs/performance.md; above
    it, one thread lost: (64, 100, 256, 512) 0.71 of torch in the quiet benchmark, against
    ahead on two), the GRU's as it is. Below ``ex.min_work`` nothing is split anyway, and
    ``ex`` is returned as it is."""
    if code == GRU or not ex.min_work <= work <= ONE_THREAD_WORK or ex.threads == 1:
        return ex
    return ex.with_threads(1)


@_jit
def _forward(seq, y, weights, steps, h_n, kind, small, r0, r1):
    """The forward loop for the sequences r0:r1 (see :func:`forward`); ``small``: the
    ``rows * H * G*H`` up to which the products are compiled loops rather than BLAS."""
    gates, h_prev, hw_n = seq
    W_hh, W_hh_t, b_hh = weights
    order, valid = steps
    T, rows = gates.shape[0], r1 - r0
    GH, H = W_hh.shape
    hw = np.empty((rows, GH), _f32)  # h @ W_hh.T + b_hh
    h_new = np.empty((rows, H), _f32)
    act = rnn_cell.RELU if kind == RNN_RELU else rnn_cell.TANH
    blas = rows * H * GH > small
    for s in range(T):
        t = order[s]
        h_t, z_t, y_t = h_prev[t, r0:r1], gates[t, r0:r1], y[t, r0:r1]
        h_out = h_n[r0:r1] if s + 1 == T else h_prev[order[s + 1], r0:r1]
        # (element loops for the copies: a row assigned as ``a[n] = b[n]`` checks the two
        # arrays for overlap first; at (1, 100, 32, 64) the GRU's loop took 106 us with the
        # row assignments, 88-93 with these, the same bits)
        for n in range(rows):
            for j in range(GH):
                hw[n, j] = b_hh[j]
        if blas:
            product(h_t, W_hh_t, hw, 1.0)
        else:
            matmul_into(h_t, W_hh_t, W_hh, hw)
        for n in range(rows):
            if kind == GRU:
                gru_cell.forward_row(z_t, hw, h_t, hw_n[t, r0:r1], h_new, n)
            else:
                rnn_cell.forward_row(z_t, hw, act, h_new, n)  # into h_new: it vectorises
                for j in range(H):  # (the RNN's tape; without padding z_t is y_t and h_out)
                    z_t[n, j] = h_new[n, j]
        for n in range(rows):
            if valid[t, r0 + n]:
                for j in range(H):
                    h_out[n, j] = h_new[n, j]
                for j in range(H):
                    y_t[n, j] = h_new[n, j]
            else:  # padded step: carry the state, output zero
                h_out[n] = h_t[n]
                y_t[n] = 0.0


def backward(
    p: Params,
    tape: HTape,
    dy: np.ndarray,
    dstate: State,
    grads: Params,
    record: list[np.ndarray] | None = None,
    ex: Execution = DEFAULT,
    workspace: sequence.Workspace | None = None,
) -> tuple[np.ndarray, State]:
    """Backpropagate dy (T, N, H) and the final state's gradient (dh (N, H),) through the
    tape; adds every parameter's gradient into ``grads`` and returns (dx (T, N, I), (dh0,)).
    ``record``: as :func:`lstmkit.nn.time_loop.backward` (dL/dh leaving each step)."""
    x, h_prev, gates, hw_n, mask, reverse, kind = tape
    T, N, _ = x.shape
    W_hh = p["W_hh"]
    GH, H = W_hh.shape
    dxw = sequence.empty(workspace, "dxw", (T, N, GH), x.dtype)
    dhw = sequence.empty(workspace, "dhw", (T, N, GH), x.dtype) if kind == GRU else dxw
    rec = record[0] if record is not None else np.empty((0, N, H), x.dtype)
    dh0 = np.array(dstate[0], x.dtype, order="C")  # in: the final state's gradient; out: h0's
    dy = np.ascontiguousarray(dy if mask is None else dy * mask)
    weights = (W_hh, np.ascontiguousarray(W_hh.T), W_hh[:0, 0])
    steps = (sequence.order_array(sequence.time_order(T, reverse)),
             sequence.valid_steps(mask, T, N))  # fmt: skip
    seq = (gates, h_prev, hw_n)

    def run(rows: slice) -> None:
        _backward(seq, weights, steps, dy, dxw, dhw, dh0, rec, kind, ex.small_h, rows.start,
                  rows.stop)  # fmt: skip

    uses_blas = lambda rows: rows * H * GH > ex.small_h  # noqa: E731
    parallel.split(run, N, T * N * H * GH, ex, uses_blas)
    return _weight_grads(p, x, h_prev, dxw, dhw, grads, ex), (dh0,)


@_jit
def _backward(seq, weights, steps, dy, dxw, dhw, dh0, rec, kind, small, r0, r1):
    """The backward loop for the sequences r0:r1 (see :func:`backward`); dy already masked;
    dh0 (N, H) holds the final state's gradient in and the initial state's out; ``rec``
    (T, N, H) or empty: dL/dh leaving each step."""
    gates, h_prev, hw_n = seq
    W_hh, W_hh_t, _ = weights
    order, valid = steps
    T, rows = gates.shape[0], r1 - r0
    GH, H = W_hh.shape
    dh = dh0[r0:r1]
    dh_prev = np.empty((rows, H), _f32)
    act = rnn_cell.RELU if kind == RNN_RELU else rnn_cell.TANH
    blas = rows * H * GH > small
    for s in range(T - 1, -1, -1):
        t = order[s]
        dh += dy[t, r0:r1]
        if rec.shape[0] > 0:
            rec[t, r0:r1] = dh
        g_t, dx_t, dw_t = gates[t, r0:r1], dxw[t, r0:r1], dhw[t, r0:r1]
        for n in range(rows):
            keep = _f32(valid[t, r0 + n])
            if kind == GRU:
                gru_cell.backward_row(dh, keep, g_t, hw_n[t, r0:r1], h_prev[t, r0:r1], dx_t,
                                      dw_t, dh_prev, n)  # fmt: skip
            else:
                rnn_cell.backward_row(dh, keep, g_t, act, dx_t, n)
                dh_prev[n] = 0.0
        if blas:  # dh_prev += dhw_t @ W_hh
            product(dw_t, W_hh, dh_prev, 1.0)
        else:
            matmul_into(dw_t, W_hh, W_hh_t, dh_prev)
        for n in range(rows):
            if not valid[t, r0 + n]:  # padded steps pass the gradient through unchanged
                for j in range(dh.shape[1]):  # (elements: no copy of the row)
                    dh_prev[n, j] += dh[n, j]
        dh[:] = dh_prev


def _weight_grads(
    p: Params,
    x: np.ndarray,
    h_prev: np.ndarray,
    dxw: np.ndarray,
    dhw: np.ndarray,
    grads: Params,
    ex: Execution = DEFAULT,
) -> np.ndarray:
    """After the loop back: adds dW_ih, dW_hh and the biases' gradients into ``grads`` and
    returns dx (T, N, I), as GEMMs over all T*N rows, each thread on a block of every
    result's rows with BLAS on one thread (as :func:`lstmkit.kernels.lstm._products`: BLAS's
    own threads measured slower, and they spin after each call on a busy machine)."""
    T, N, I = x.shape
    GH, H = p["W_hh"].shape
    dxw_rows, dhw_rows = dxw.reshape(T * N, GH), dhw.reshape(T * N, GH)
    x_rows, h_rows = x.reshape(T * N, I), h_prev.reshape(T * N, H)
    dx = np.empty((T, N, I), x.dtype)
    dx_rows = dx.reshape(T * N, I)
    work = T * N * GH * (2 * I + H)
    n_parts = len(parallel.parts(min(T * N, GH), work, ex))

    def products(i: int) -> None:
        rows, g = parallel.block(T * N, n_parts, i), parallel.block(GH, n_parts, i)
        np.matmul(dxw_rows[rows], p["W_ih"], out=dx_rows[rows])  # dx = dxw @ W_ih
        grads["W_ih"][g] += dxw_rows[:, g].T @ x_rows
        grads["W_hh"][g] += dhw_rows[:, g].T @ h_rows
        if "b_ih" in grads:
            db = dxw_rows[:, g].sum(axis=0)
            grads["b_ih"][g] += db
            grads["b_hh"][g] += db if dhw is dxw else dhw_rows[:, g].sum(axis=0)

    parallel.run(products, range(n_parts), one_blas_thread=parallel.small(work, ex))
    return dx


def prepare(params: list[Params], ex: Execution = DEFAULT, kind: str = "gru") -> Any:
    """:func:`step` for these layers: a function (x_t, state) -> (y_t, h) or None. Each
    layer's live weights are looked up once, here (the arrays are updated in place, never
    replaced); ``ex`` unused: one thread."""
    no_bias = np.empty(0, np.float32)
    layers = tuple((p["W_ih"], p["W_hh"], p.get("b_ih", no_bias), p.get("b_hh", no_bias))
                   for p in params)  # fmt: skip
    I, H = params[0]["W_ih"].shape[1], params[0]["W_hh"].shape[1]
    return functools.partial(step, layers, I, H, KINDS[kind])


def step(
    layers: tuple[tuple[np.ndarray, ...], ...], I: int, H: int, kind: int, x_t: Any, state: Any
) -> tuple[np.ndarray, Any] | None:
    """One step of L stacked layers (one direction), ``layers`` each one's (W_ih, W_hh,
    b_ih, b_hh) (biases of length 0 without them), ``kind`` the cell's code (:data:`KINDS`):
    x_t (N, I) or (I,), state h (L, N, H) or (L, H) or None -> (y_t, h), or None where it
    does not apply (inputs that are not float32 arrays of the expected shapes, or not
    finite: the layer's reference step then validates and raises). Per call, a few checks
    and one compiled call per layer (~1 us of Python where NumPy's checks took ~5)."""
    if type(x_t) is not np.ndarray or x_t.dtype != np.float32:
        return None
    if x_t.ndim not in (1, 2) or x_t.shape[-1] != I:
        return None
    unbatched = x_t.ndim == 1
    x = x_t[None, :] if unbatched else x_t
    L, N = len(layers), x.shape[0]
    if state is None:
        h0 = np.zeros((L, N, H), np.float32)
    elif type(state) is np.ndarray and state.dtype == np.float32:
        if state.shape != ((L, H) if unbatched else (L, N, H)):
            return None
        h0 = state[:, None, :] if unbatched else state
    else:
        return None
    if N == 0 or not all_finite(x, h0, h0):
        return None
    h_n = np.empty((L, N, H), np.float32)
    for k, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers):
        _step(x, h0[k], W_ih, W_hh, b_ih, b_hh, kind, h_n[k])
        x = h_n[k]
    y = x[0].copy() if unbatched else x.copy()
    return y, (h_n[:, 0, :] if unbatched else h_n)


@_jit
def _step(x, h, W_ih, W_hh, b_ih, b_hh, kind, h_out):
    """One step of one layer: x (N, I), h (N, H) in, h_out (N, H) out; without biases
    ``b_ih``, ``b_hh`` have length 0. The products as row dot products."""
    N, H = h.shape
    GH = W_hh.shape[0]
    xw, hw = np.empty((N, GH), _f32), np.empty((N, GH), _f32)
    hw_n = np.empty((N, H), _f32)
    act = rnn_cell.RELU if kind == RNN_RELU else rnn_cell.TANH
    for n in range(N):
        for j in range(GH):
            a = b_ih[j] if b_ih.shape[0] > 0 else _f32(0.0)
            for q in range(x.shape[1]):
                a += W_ih[j, q] * x[n, q]
            b = b_hh[j] if b_hh.shape[0] > 0 else _f32(0.0)
            for q in range(H):
                b += W_hh[j, q] * h[n, q]
            xw[n, j], hw[n, j] = a, b
        if kind == GRU:
            gru_cell.forward_row(xw, hw, h, hw_n, h_out, n)
        else:
            rnn_cell.forward_row(xw, hw, act, h_out, n)
