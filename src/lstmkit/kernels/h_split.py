"""The GRU's and the plain RNN's inference loop with each thread owning a block of cells, the
products computed with the weights as the left matrix: the part of the lean
inference (:mod:`lstmkit.kernels.h_inference`) for large ``W_hh``.

Where ``W_hh`` is far larger than a core's L2 (from ``Execution.transposed_from`` bytes, 8 MB:
the GRU at H = 1024 has 12 MB), the loop over rows of :mod:`lstmkit.kernels.h_loop` is slow
twice over: split across two threads by rows, each thread multiplies its half of the batch
by all of ``W_hh`` every step, and ``h @ W_hh.T`` with the weights as the right matrix runs
slower than the same product transposed (measured, one core, CPU time, this machine:
(32, 1024) @ (1024, 3072), a thread's share split by rows, 47 GFLOP/s; (64, 1024) @
(1024, 3072) on one thread 66; (1536, 1024) @ (1024, 64), a thread's share split by cells
and transposed, 97 through :func:`lstmkit.kernels.blas.product`'s blocks). So, as the
LSTM's loops (:mod:`lstmkit.kernels.cell_split`), thread ``me`` of ``parts`` owns the cells
``c0:c1`` (C of them) and at every step, on the transposed layout (row j of its (C, G*N)
arrays holds cell c0 + j's gates, gate by gate, for the N sequences):

* computes its input pre-activations ``xw = W_ih[rows] @ x[t].T + b_ih`` (before waiting:
  they need no other thread), one product per gate on the live weights' contiguous rows
  ``q*H + c0 : q*H + c1`` (nothing is copied or kept between calls; no (T, N, G*H)
  projection array, no transpose of one);
* waits until every thread has written its part of h entering the step
  (:mod:`lstmkit.kernels.sync`), then ``hw = W_hh[rows] @ h.T + b_hh`` the same way;
* runs the cell on its rows (:func:`lstmkit.kernels.gru_cell.forward_row`,
  :func:`lstmkit.kernels.rnn_cell.forward_row`, the one copy of the equations, as they are:
  they are elementwise, so N stands in for H), writing h straight into ``h_rows`` (2, H, N),
  the ring of two steps the next products read, then its block of y (and of the final
  state), transposed; and publishes.

The products sum in another order than the general path's (``h @ W_hh.T`` on all of
``W_hh``; ``x @ W_ih.T`` over all T*N rows, then ``b_ih``), so the results equal it to
float32 rounding, not bit for bit (``tests/test_inference_h_split.py``).
"""

from __future__ import annotations

import numba
import numpy as np

from lstmkit.kernels import gru_cell, parallel, rnn_cell, sequence, sync
from lstmkit.kernels.cell_split import transpose
from lstmkit.kernels.execution import Execution
from lstmkit.kernels.h_loop import GRU, RNN_RELU, product

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


def applies(W_hh: np.ndarray, ex: Execution) -> bool:
    """Whether the lean inference runs this loop for ``W_hh`` (G*H, H): from
    ``ex.transposed_from`` bytes of it."""
    return W_hh.nbytes >= ex.transposed_from


def layer(
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    kind: int,
    x: np.ndarray,
    h0: np.ndarray,
    h_n: np.ndarray,
    space: sequence.Workspace,
    ex: Execution,
) -> np.ndarray:
    """One layer of the cell ``kind`` (:data:`lstmkit.kernels.h_loop.KINDS`) over x (T, N, I)
    from h0 (N, H): y (T, N, H), a new array; h_n (N, H) filled. W_ih (G*H, I), W_hh (G*H, H),
    b_ih (G*H,) or (0,) without biases, b_hh (G*H,); ``ex`` as the general path's
    (:func:`lstmkit.kernels.h_loop.inference_execution` already applied)."""
    T, N, _ = x.shape
    GH, H = W_hh.shape
    h_rows = sequence.empty(space, "h_rows", (2, H, N), _f32)  # h entering a step, transposed
    h_rows[0] = h0.T
    y = np.empty((T, N, H), _f32)
    blocks = parallel.cell_blocks(H, T * N * H * GH, ex)
    counters = sync.flags(len(blocks))
    weights = (W_ih, b_ih, W_hh, b_hh)

    def run(me: int) -> None:
        part = (me, len(blocks), blocks[me].start, blocks[me].stop, counters)
        _loop(part, x, weights, kind, h_rows, y, h_n)

    parallel.run(run, range(len(blocks)), one_blas_thread=True)
    return y


@_jit
def _loop(part, x, weights, kind, h_rows, y, h_n):
    """Thread ``part[0]``'s share of the loop (see the module doc): part = (me, parts, c0,
    c1, counters); weights = (W_ih, b_ih, W_hh, b_hh); h_rows (2, H, N) with h0.T in slot 0.
    The cell runs on the transposed layout: row j of xw and hw (C, G*N) holds cell c0 + j's
    gates, gate by gate, for the N sequences (the cell's equations are elementwise, so its
    row function serves as it is, with N in place of H)."""
    me, parts, c0, c1, counters = part
    W_ih, b_ih, W_hh, b_hh = weights
    T, N, I = x.shape
    H = h_rows.shape[1]
    G, C = W_hh.shape[0] // H, c1 - c0
    x_t = np.empty((I, N), _f32)  # x[s] transposed
    xw, hw = np.empty((C, G * N), _f32), np.empty((C, G * N), _f32)
    hw_n = np.empty((C, N), _f32)  # (the GRU's tape field: unused)
    act = rnn_cell.RELU if kind == RNN_RELU else rnn_cell.TANH
    for s in range(T):
        transpose(x[s], x_t)
        _biases(b_ih, xw, c0, H, N)
        _biases(b_hh, hw, c0, H, N)
        for q in range(G):  # xw (its cells, transposed) = W_ih[rows] @ x[s].T + b_ih
            product(W_ih[q * H + c0 : q * H + c1], x_t, xw[:, q * N : (q + 1) * N], 1.0)
        sync.wait_for(counters, me, parts, s)  # every part of h entering step s is written
        h_prev, h_new = h_rows[s % 2, c0:c1], h_rows[(s + 1) % 2, c0:c1]  # (C, N)
        for q in range(G):  # hw = W_hh[rows] @ h.T + b_hh
            product(W_hh[q * H + c0 : q * H + c1], h_rows[s % 2], hw[:, q * N : (q + 1) * N], 1.0)
        for j in range(C):
            if kind == GRU:
                gru_cell.forward_row(xw, hw, h_prev, hw_n, h_new, j)
            else:
                rnn_cell.forward_row(xw, hw, act, h_new, j)
        transpose(h_new, y[s, :, c0:c1])
        if s + 1 == T:
            transpose(h_new, h_n[:, c0:c1])
        sync.publish(counters, me, s + 1)


@_jit
def _biases(b, a, c0, H, N):
    """Row j of a (C, G*N), gate q's block of N: b[q*H + c0 + j] (zeros where b has
    length 0)."""
    C, G = a.shape[0], a.shape[1] // N
    for j in range(C):
        for q in range(G):
            v = b[q * H + c0 + j] if b.shape[0] > 0 else _f32(0.0)
            for n in range(N):
                a[j, q * N + n] = v
