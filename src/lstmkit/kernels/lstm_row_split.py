"""The plain LSTM's inference with the batch split across threads, each thread its rows for
all T steps (no wait per step): a part of the lean inference
(:mod:`lstmkit.kernels.lstm_inference`) at the sizes where the general path would run the
split loops of :mod:`lstmkit.kernels.cell_split` (each thread a block of cells, a wait for
the other threads' h at every step).

Thread ``me`` owns the rows ``n0:n1`` (n of them) and at every step t, on its own arrays
((n, 4H) pre-activations, rings of two steps of c and h):

* ``a = x[t, n0:n1] @ W_x + b`` (W_x (I, 4H) = (W_ih * scale).T, b = (b_ih + b_hh) * scale);
* ``a += h @ W_h`` (W_h (H, 4H) = (W_hh * scale).T), both by :func:`lstmkit.kernels.blas.
  product`;
* the cell, :func:`lstmkit.kernels.cell_split._cells_infer` on all H cells: i, f, g, o =
  gate(a), ``c = f * c_prev + i * g``, ``h = o * tanh(c)``; h copied into y[t, n0:n1].

These are the split loops' operations on one block of all cells (what they run on one
thread), and each product's size ``rows * K * 4C`` is theirs on as many threads (N/2 rows
and 4H columns against N rows and 2H columns on two), so :func:`lstmkit.kernels.blas.product`
makes the same calls on the same inner blocks: the results are the general path's bit for
bit, at one thread and at two (``tests/test_inference_row_split.py``).

Why: the cell split's threads meet at every step, and a step's work is small (~20 us a
thread at (16, 100, 64, 128)), so any delay of one thread (the scheduler, another process
on the core) stalls both; here the threads meet once per call, and the call's own work
outside the loop is less (one thread, (16, 1, 64, 128): 135 against 205 us). Each thread
reads all the weights every step instead of its half, so the split stays where they fit a
core's L2 (1 MB here: :data:`WEIGHTS_UP_TO`); at (32, 100, 128, 256), 1.5 MB, it measured
both faster and slower than the cell split on a loaded machine (docs/performance.md, "LSTM
inference, round 5").
"""

from __future__ import annotations

import numba
import numpy as np

from lstmkit.kernels import parallel, sequence
from lstmkit.kernels.blas import product
from lstmkit.kernels.cell_split import _cells_infer
from lstmkit.kernels.compiled import renew
from lstmkit.kernels.execution import Execution

WEIGHTS_UP_TO = 2**20  # bytes of W_ih and W_hh together up to which the rows split: L2

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


def applies(T: int, N: int, I: int, H: int, ex: Execution) -> bool:
    """Whether the lean inference runs this loop for x (T, N, I) and H cells: where the
    general path runs the split loops (``N * H * 4H`` from ``ex.split_from``) projecting x
    step by step (``W_ih`` within ``ex.project_in_loop_inference``), the weights within
    :data:`WEIGHTS_UP_TO`, and at least ``ex.min_rows`` rows for each of their blocks of
    cells."""
    GH = 4 * H
    if N * H * GH < ex.split_from or GH * (I + H) * 4 > WEIGHTS_UP_TO:
        return False
    return GH * I * 4 <= ex.project_in_loop_inference and len(_rows(T, N, H, ex)) > 0


def _rows(T: int, N: int, H: int, ex: Execution) -> list[slice]:
    """The threads' rows: as many blocks as the split loops have blocks of cells
    (:func:`lstmkit.kernels.parallel.cell_blocks`; so each thread's products have their
    sizes, rows x inner x columns, and make the same BLAS calls), or none where that leaves
    fewer than ``ex.min_rows`` rows to a block."""
    parts = len(parallel.cell_blocks(H, T * N * H * 4 * H, ex))
    if parts > 1 and N // parts < ex.min_rows:
        return []
    return [parallel.block(N, parts, i) for i in range(parts)]


def layer(
    weights: tuple[np.ndarray, ...],
    x: np.ndarray,
    state0: tuple[np.ndarray, ...],
    final: tuple[np.ndarray, ...],
    space: sequence.Workspace,
    ex: Execution,
) -> np.ndarray:
    """One layer over x (T, N, I) from (h0, c0) (N, H): y (T, N, H), a new array; ``final``,
    (h_n, c_n) (N, H), filled. ``weights``: (W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,) or
    (0,) without biases, scale, alpha, beta (4H,): the gate constants)."""
    W_ih, W_hh, b_ih, b_hh, scale, alpha, beta = weights
    T, N, I = x.shape
    GH, H = W_hh.shape
    (h0, c0), (h_n, c_n) = state0, final
    kept = _kept(space, W_ih, W_hh, scale)
    _prepare(W_ih, W_hh, b_ih, b_hh, scale, kept)  # once, before the threads read them
    W_x, W_h, b = kept[2:]
    y = np.empty((T, N, H), _f32)

    def run(rows: slice) -> None:
        _loop(x, W_x, W_h, b, alpha, beta, y, h0, c0, h_n, c_n, rows.start, rows.stop)

    parallel.run(run, _rows(T, N, H, ex), one_blas_thread=True)
    return y


def _kept(
    space: sequence.Workspace, W_ih: np.ndarray, W_hh: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(W_ih and W_hh as last seen, W_x (I, 4H), W_h (H, 4H), b (4H,)): the loop's weights
    kept in ``space`` from call to call, made here the first time (b by :func:`_prepare`,
    which makes the others again where the live weights changed)."""
    seen = space.get("rows_W_ih_seen")
    if seen is None or seen.shape != W_ih.shape or space["rows_W_hh_seen"].shape != W_hh.shape:
        space["rows_W_ih_seen"], space["rows_W_hh_seen"] = W_ih.copy(), W_hh.copy()
        for name, W in (("rows_W_x", W_ih), ("rows_W_h", W_hh)):  # (K, 4H), contiguous
            space[name] = np.multiply(W.T, scale, out=np.empty(W.shape[::-1], _f32))
        space["rows_b"] = np.empty(W_hh.shape[0], _f32)
    names = ("rows_W_ih_seen", "rows_W_hh_seen", "rows_W_x", "rows_W_h", "rows_b")
    return tuple(space[name] for name in names)


def _prepare(
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    scale: np.ndarray,
    kept: tuple[np.ndarray, ...],
) -> None:
    """The kept (W_ih_seen, W_hh_seen, W_x, W_h, b) made from the live weights: W_x (I, 4H)
    = (W_ih * scale).T where W_ih changed, W_h (H, 4H) = (W_hh * scale).T where W_hh changed
    (:func:`lstmkit.kernels.compiled.renew`), b = (b_ih + b_hh) * scale (zeros without
    biases); as the general path makes them (its scale is a power of two: exact)."""
    W_ih_seen, W_hh_seen, W_x, W_h, b = kept
    if renew(W_ih, W_ih_seen):
        np.multiply(W_ih.T, scale, out=W_x)
    if renew(W_hh, W_hh_seen):
        np.multiply(W_hh.T, scale, out=W_h)
    if b_ih.shape[0] > 0:
        np.multiply(b_ih + b_hh, scale, out=b)
    else:
        b[:] = 0.0


@_jit
def _loop(x, W_x, W_h, b, alpha, beta, y, h0, c0, h_n, c_n, n0, n1):
    """Rows n0:n1 of the layer (see the module doc): x (T, N, I), y (T, N, H) out, from
    (h0, c0) (N, H) to (h_n, c_n) (N, H); W_x (I, 4H), W_h (H, 4H), b (4H,) made by
    :func:`_prepare`; alpha, beta (4H,) the gate constants."""
    T, I = x.shape[0], x.shape[2]
    H = W_h.shape[0]
    n = n1 - n0
    a = np.empty((n, 4 * H), _f32)  # the step's pre-activations
    c_ring, h_ring = np.empty((2, n, H), _f32), np.empty((2, n, H), _f32)
    x_t = np.empty((n, I), _f32)  # (a contiguous copy: the split loops' compiled product
    # serves, where a strided view would compile another)
    valid = np.ones(n, np.uint8)
    first = np.int64(0)  # all cells from 0 (not a literal 0: the split loops' compiled cell)
    for r in range(n):
        for j in range(H):
            c_ring[0, r, j], h_ring[0, r, j] = c0[n0 + r, j], h0[n0 + r, j]
    for t in range(T):
        for r in range(n):
            for k in range(I):
                x_t[r, k] = x[t, n0 + r, k]
        product(x_t, W_x, a, 0.0)
        for r in range(n):
            for j in range(b.shape[0]):
                a[r, j] += b[j]
        h, h_new = h_ring[t & 1], h_ring[(t + 1) & 1]
        product(h, W_h, a, 1.0)
        _cells_infer(a, alpha, beta, c_ring[t & 1], h, valid, c_ring[(t + 1) & 1], h_new, first,
                     H)  # fmt: skip
        for r in range(n):
            for j in range(H):
                y[t, n0 + r, j] = h_new[r, j]
    for r in range(n):
        for j in range(H):
            h_n[n0 + r, j], c_n[n0 + r, j] = h_ring[T & 1, r, j], c_ring[T & 1, r, j]
