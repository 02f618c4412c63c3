"""numba-compiled float32 loops of the fused LSTM: the pointwise step, whole-sequence loops
for small matrices, and the streaming step, all built on the cell of
:mod:`lstmkit.kernels.lstm_cell` (read that first: the equations and the gate constants).

* ``pointwise_forward`` / ``pointwise_backward``: one step's pointwise work on every row, for
  the loop of :mod:`lstmkit.kernels.lstm` that calls BLAS per step.
* ``forward_sequence`` / ``backward_sequence``: the whole time loop of
  :mod:`lstmkit.kernels.lstm` in one call, with the recurrent products written as loops. For
  small matrices (a few sequences, small H) the per-step cost is then a few hundred
  nanoseconds instead of the ~5 microseconds of calling BLAS and a kernel from Python.
* ``step`` / ``step_parallel``: one time step of one layer from the live weights
  (``W_ih x + W_hh h`` as row dot products), for :mod:`lstmkit.kernels.streaming`.

Importing this module compiles nothing; the first call of each kernel does (cached on disk).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from lstmkit.kernels import layer_norm
from lstmkit.kernels.lstm_cell import (
    BLAS_PRODUCTS,
    CELL_BITS,
    H_DROPOUT,
    LAYER_NORM,
    PEEPHOLES,
    ZONEOUT_C,
    ZONEOUT_H,
    cell_backward,
    cell_forward,
    gates_in_place,
    peep_into_i_f,
)
from lstmkit.kernels.structs import HC, Recurrent, Regularisers, Sequence, Steps

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy", inline="always")


@_jit
def matmul_add(a, b, out):
    """out += a @ b for a (M, K), b (K, C), out (M, C).

    Blocked by two rows of a and four rows of b, so that each pass over a row of ``out``
    does eight multiply-adds per element loaded (LLVM vectorises the loops over j).
    """
    M, K = a.shape
    C = b.shape[1]
    r = 0
    while r < M:
        two = r + 1 < M
        s = r + 1 if two else r  # the second row (a repeat of the first on an odd last row)
        k = 0
        while k + 4 <= K:
            a0, a1, a2, a3 = a[r, k], a[r, k + 1], a[r, k + 2], a[r, k + 3]
            e0, e1, e2, e3 = a[s, k], a[s, k + 1], a[s, k + 2], a[s, k + 3]
            if two:
                for j in range(C):
                    b0, b1, b2, b3 = b[k, j], b[k + 1, j], b[k + 2, j], b[k + 3, j]
                    out[r, j] += a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3
                    out[s, j] += e0 * b0 + e1 * b1 + e2 * b2 + e3 * b3
            else:
                for j in range(C):
                    out[r, j] += (
                        a0 * b[k, j] + a1 * b[k + 1, j] + a2 * b[k + 2, j] + a3 * b[k + 3, j]
                    )
            k += 4
        while k < K:
            a0, e0 = a[r, k], a[s, k]
            for j in range(C):
                out[r, j] += a0 * b[k, j]
            if two:
                for j in range(C):
                    out[s, j] += e0 * b[k, j]
            k += 1
        r += 2


@_jit
def _matmul_dot_add(a, w, out):
    """out += a @ w.T for a (M, K), w (C, K): dot products, two rows of w by four rows of a
    at a time, eight sums kept in registers along K (LLVM vectorises the loop over k)."""
    M, K = a.shape
    C = w.shape[0]
    for j in range(0, C, 2):
        j1 = min(j + 1, C - 1)  # the second row of w (a repeat of the first on an odd last)
        for r in range(0, M, 4):
            r1, r2, r3 = min(r + 1, M - 1), min(r + 2, M - 1), min(r + 3, M - 1)
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = _f32(0.0)
            for k in range(K):
                w0, w1 = w[j, k], w[j1, k]
                h0, h1, h2, h3 = a[r, k], a[r1, k], a[r2, k], a[r3, k]
                s00 += w0 * h0
                s01 += w0 * h1
                s02 += w0 * h2
                s03 += w0 * h3
                s10 += w1 * h0
                s11 += w1 * h1
                s12 += w1 * h2
                s13 += w1 * h3
            for rr, s0, s1 in (
                (r, s00, s10),
                (r + 1, s01, s11),
                (r + 2, s02, s12),
                (r + 3, s03, s13),
            ):
                if rr < M:
                    out[rr, j] += s0
                    if j + 1 < C:
                        out[rr, j + 1] += s1


@_jit
def matmul_into(a, b, b_t, out):
    """out += a @ b, with b_t = b.T (contiguous) too: register sums along K where a's rows
    fit in L1 (256 <= K <= 1024, measured), else row updates."""
    if 256 <= a.shape[1] <= 1024:
        _matmul_dot_add(a, b_t, out)
    else:
        matmul_add(a, b, out)


try:  # BLAS called from the loops (the bit BLAS_PRODUCTS), where NumPy's BLAS offers it
    from lstmkit.kernels.blas import product as _blas_product

    HAS_BLAS = True
except ImportError:  # the bit is then never set; a stand-in so that the loops compile

    @_jit
    def _blas_product(a, b, out, beta):
        if beta == 0.0:
            out[:] = 0.0
        matmul_add(a, b, out)

    HAS_BLAS = False


@_inline
def _product(a, b, b_t, out, beta, flags):
    """out = a @ b + beta * out, beta 0 or 1, b_t = b.T (contiguous): by BLAS with the loop
    bit BLAS_PRODUCTS, else the loops' own (:func:`matmul_into`)."""
    if flags & BLAS_PRODUCTS:
        _blas_product(a, b, out, beta)
        return
    if beta == 0.0:
        out[:] = 0.0
    matmul_into(a, b, b_t, out)


@_inline
def _cells_forward(z, alpha, beta, flags, peep, c_prev, c, tanh_c, m):
    """Every row and cell of one step: z (N, 4H) the scaled pre-activations in, the gates
    out; c_prev (N, H) in; c, tanh_c, m (N, H) out."""
    for n in range(z.shape[0]):
        H = c.shape[1]
        if flags & PEEPHOLES:
            peep_into_i_f(z, H, peep, c_prev, n, 0, H)
        gates_in_place(z, alpha, beta, flags, n)
        cell_forward(z, c_prev, c, tanh_c, m, flags, peep, alpha[3 * H], beta[3 * H], n, 0, H)


@_inline
def _cells_backward(dm, dc, valid, gates, c_prev, tanh_c, dz, dc_prev, flags, peep):
    """Every row and cell of one step back (see :func:`lstmkit.kernels.lstm_cell.cell_backward`);
    valid (N,) uint8, 1 on a valid step."""
    N, H = dc.shape
    dc_total = np.empty(H, _f32)
    for n in range(N):
        keep = _f32(valid[n])
        cell_backward(dm, dc, keep, gates, c_prev, tanh_c, dz, dc_prev, dc_total, flags, peep,
                      n, 0, H)  # fmt: skip


# The options cost the plain cell nothing: the step's cells are compiled twice, "_plain"
# with the option bits fixed at 0 (a constant, so LLVM drops the options' branches) and
# "_options" with the bits as an argument, and so is each loop over time, whose plain
# version then calls the plain cells directly. Measured in one process against the loop
# before the options (1, 100, 32, 64): the cells inlined into the loop, bits a variable,
# +17%; the loop calling either cells at each step, +20%; this, level (docs/performance.md).


@_jit
def _cells_forward_plain(z, alpha, beta, peep, c_prev, c, tanh_c, m):
    _cells_forward(z, alpha, beta, 0, peep, c_prev, c, tanh_c, m)


@_jit
def _cells_forward_options(z, alpha, beta, flags, peep, c_prev, c, tanh_c, m):
    _cells_forward(z, alpha, beta, flags, peep, c_prev, c, tanh_c, m)


@_jit
def _cells_backward_plain(dm, dc, valid, gates, c_prev, tanh_c, dz, dc_prev, peep):
    _cells_backward(dm, dc, valid, gates, c_prev, tanh_c, dz, dc_prev, 0, peep)


@_jit
def _cells_backward_options(dm, dc, valid, gates, c_prev, tanh_c, dz, dc_prev, flags, peep):
    _cells_backward(dm, dc, valid, gates, c_prev, tanh_c, dz, dc_prev, flags, peep)


@_jit
def _pointwise_forward(z, hw, alpha, beta, flags, peep, c_prev, c, tanh_c, m):
    z += hw
    if flags:
        _cells_forward_options(z, alpha, beta, flags, peep, c_prev, c, tanh_c, m)
    else:
        _cells_forward_plain(z, alpha, beta, peep, c_prev, c, tanh_c, m)


def pointwise_forward(z, hw, k, peep, c_prev, c, tanh_c, m) -> None:
    """One step. z (N, 4H): scaled x-projection in, gates (i, f, g, o) out; hw (N, 4H):
    scaled ``h_prev @ W_hh.T``; k: :class:`lstmkit.kernels.lstm.GateConstants`; c_prev
    (N, H) in; c, tanh_c, m = o * tanh(c) (N, H) out."""
    _pointwise_forward(z, hw, k.alpha, k.beta, k.flags, peep, c_prev, c, tanh_c, m)


def pointwise_backward(dm, dc, valid, gates, c_prev, tanh_c, dz, dc_prev, flags, peep) -> None:
    """One step back. dm = dL/dm and dc = dL/dc from later steps (N, H), valid (N,) uint8
    in; dz = dL/dz (N, 4H) and dc_prev (N, H) out (dc itself on padded rows). gates,
    c_prev, tanh_c: what the forward step stored."""
    args = (dm, dc, valid, gates, c_prev, tanh_c, dz, dc_prev)
    if flags:
        _cells_backward_options(*args, flags, peep)
    else:
        _cells_backward_plain(*args, peep)


@_inline
def _keep_row(keep, t, n):
    """Row n of step t of a zoneout keep mask (T, N, .), or its one row (1, 1, .) in eval."""
    return keep[t if keep.shape[0] > 1 else 0, n if keep.shape[1] > 1 else 0]


@_inline
def _recurrent_product(h, W_hh_t, W_hh_s, z, hw, norm_h, t, r0, r1, flags):
    """z += the recurrent product of h (N, P) (rows r0:r1 of step t): W_hh h, or with
    LAYER_NORM its norm g_h LN(W_hh h) + b_h (through hw (N, 4H); norm_h = (h_hat, rstd_h,
    g_h, b_h), the first two (T, N, .) kept)."""
    if flags & LAYER_NORM:
        h_hat, rstd_h, g_h, b_h = norm_h
        h_hat_t, rstd_h_t = h_hat[t, r0:r1], rstd_h[t, r0:r1]
        _product(h, W_hh_t, W_hh_s, hw, 0.0, flags)
        for n in range(hw.shape[0]):
            layer_norm.affine_row(hw, g_h, b_h, h_hat_t, rstd_h_t, n)
        z += hw
    else:
        matmul_into(h, W_hh_t, W_hh_s, z)


@_inline
def _forward_sequence(seq, y, w, k, peep, steps, final, reg, ln, r0, r1, flags):
    """:func:`forward_sequence` on plain tuples, for the rows r0:r1, ``flags`` the cell's
    option bits and the loop's (H_DROPOUT, ZONEOUT_H, ZONEOUT_C; ``reg`` their masks; ``ln``
    the tape's :class:`lstmkit.kernels.layer_norm.Norms` and the forward's ``Gains``, with
    LAYER_NORM). (Slicing the rows inside keeps every (n, .) block C-contiguous for numba,
    so the inner loops vectorise.)"""
    gates, h_prev, c_prev, tanh_c, m = seq
    W_hh_s, W_hh_t, _, W_hr_t = w
    alpha, beta = k[1], k[2]
    order, valid = steps
    h_n, c_n = final
    h_mask, keep_h, keep_c = reg
    _, _, h_hat, rstd_h, c_hat, rstd_c, g_h, b_h, g_c, b_c = ln
    norm_h = (h_hat, rstd_h, g_h, b_h)
    T = gates.shape[0]
    proj = W_hr_t.shape[0] > 0
    cell_flags = flags & CELL_BITS
    P, H = h_prev.shape[2], c_prev.shape[2]
    one = _f32(1.0)
    h_seen = np.empty((r1 - r0 if flags & H_DROPOUT else 0, P), _f32)  # h_t * h_mask
    hw = np.empty((r1 - r0 if flags & LAYER_NORM else 0, 4 * H), _f32)  # W_hh h
    for s in range(T):
        t = order[s]
        if s + 1 < T:
            h_out, c_out = h_prev[order[s + 1], r0:r1], c_prev[order[s + 1], r0:r1]
        else:
            h_out, c_out = h_n[r0:r1], c_n[r0:r1]
        z, h_t, c_t, m_t, y_t = (
            gates[t, r0:r1],
            h_prev[t, r0:r1],
            c_prev[t, r0:r1],
            m[t, r0:r1],
            y[t, r0:r1],
        )
        if flags & H_DROPOUT:  # W_hh sees h_t * h_mask
            for n in range(r1 - r0):
                for j in range(P):
                    h_seen[n, j] = h_t[n, j] * h_mask[r0 + n, j]
            _recurrent_product(h_seen, W_hh_t, W_hh_s, z, hw, norm_h, t, r0, r1, flags)
        else:
            _recurrent_product(h_t, W_hh_t, W_hh_s, z, hw, norm_h, t, r0, r1, flags)
        if cell_flags:
            args = (z, alpha, beta, cell_flags, peep, c_t, c_out, tanh_c[t, r0:r1], m_t)
            _cells_forward_options(*args)
        else:
            _cells_forward_plain(z, alpha, beta, peep, c_t, c_out, tanh_c[t, r0:r1], m_t)
        if flags & LAYER_NORM:  # tanh_c and m from the cell's c, normalised
            c_hat_t, rstd_c_t, tanh_c_t = c_hat[t, r0:r1], rstd_c[t, r0:r1], tanh_c[t, r0:r1]
            for n in range(r1 - r0):
                layer_norm.cell_row(c_out, z, g_c, b_c, cell_flags, c_hat_t, rstd_c_t, tanh_c_t,
                                    m_t, n)  # fmt: skip
        if flags & ZONEOUT_C:  # c_out = k c_prev + (1 - k) c
            for n in range(r1 - r0):
                kc = _keep_row(keep_c, t, r0 + n)
                for j in range(H):
                    c_out[n, j] = kc[j] * c_t[n, j] + (one - kc[j]) * c_out[n, j]
        if proj:  # h = W_hr m
            y_t[:] = 0.0
            matmul_add(m_t, W_hr_t, y_t)
        h_new = y_t if proj else m_t
        if flags & ZONEOUT_H:  # y_t = k h_prev + (1 - k) h (m_t may be y_t: in place)
            for n in range(r1 - r0):
                kh = _keep_row(keep_h, t, r0 + n)
                for j in range(P):
                    y_t[n, j] = kh[j] * h_t[n, j] + (one - kh[j]) * h_new[n, j]
            h_new = y_t
        for n in range(r1 - r0):
            if valid[t, r0 + n]:  # (element loops: without padding h_out, y_t and h_new are
                # one array, and numba copies an overlapping slice's source first, a heap
                # allocation per row and step)
                for j in range(P):
                    h_out[n, j] = h_new[n, j]
                for j in range(P):
                    y_t[n, j] = h_new[n, j]
            else:  # padded step: carry the state, output zero
                h_out[n] = h_t[n]
                c_out[n] = c_t[n]
                y_t[n] = 0.0


@_inline
def _no_regularisers():
    return np.empty((0, 0), _f32), np.empty((0, 0, 0), _f32), np.empty((0, 0, 0), _f32)


@_inline
def _no_layer_norm():
    e3, e2, e1 = np.empty((0, 0, 0), _f32), np.empty((0, 0), _f32), np.empty(0, _f32)
    return e3, e2, e3, e2, e3, e2, e1, e1, e1, e1


@_jit
def _forward_sequence_plain(seq, y, w, k, peep, steps, final, r0, r1):
    reg, ln = _no_regularisers(), _no_layer_norm()
    _forward_sequence(seq, y, w, k, peep, steps, final, reg, ln, r0, r1, 0)


@_jit
def _forward_sequence_options(seq, y, w, k, peep, steps, final, reg, ln, r0, r1, flags):
    _forward_sequence(seq, y, w, k, peep, steps, final, reg, ln, r0, r1, flags)


@_inline
def _backward_sequence(seq, w, steps, dy, dz, dh_cell, d0, flags, peep, reg, ln, r0, r1):
    """:func:`backward_sequence` on plain tuples, for the rows r0:r1; ``flags`` and ``reg`` as
    in :func:`_forward_sequence`; ``ln``: with LAYER_NORM, the tape's ``Norms``, the
    backward's ``Gains`` and (d_c (T, N, H), dz_h (T, N, 4H)) out (dL/d of c's norm's output
    and of W_hh h)."""
    gates, _, c_prev, tanh_c, _ = seq
    W_hh, W_hh_t, W_hr, _ = w
    order, valid = steps
    dh0, dc0 = d0
    h_mask, keep_h, keep_c = reg
    _, _, h_hat, rstd_h, c_hat, rstd_c, g_h, _, g_c, _, d_c, dz_h = ln
    T = gates.shape[0]
    dh, dc = dh0[r0:r1], dc0[r0:r1]
    n_rows, P = r1 - r0, dh.shape[1]
    H = dc.shape[1]
    proj = W_hr.shape[0] > 0
    cell_flags = flags & CELL_BITS
    one = _f32(1.0)
    dc_kept = np.empty((n_rows if flags & ZONEOUT_C else 0, H), _f32)  # k dc: to c_prev
    dh_t = np.empty_like(dh)
    dm = np.empty_like(dc) if proj else dh_t
    dh_prev, dc_prev = np.empty_like(dh), np.empty_like(dc)
    for s in range(T - 1, -1, -1):
        t = order[s]
        dh += dy[t, r0:r1]
        if flags & ZONEOUT_H:  # the cell's h had the share 1 - k of the zoned one
            for n in range(n_rows):
                keep = _f32(valid[t, r0 + n])
                kh = _keep_row(keep_h, t, r0 + n)
                for j in range(P):
                    dh_t[n, j] = dh[n, j] * keep * (one - kh[j])
        else:
            for n in range(n_rows):
                keep = _f32(valid[t, r0 + n])
                for j in range(P):
                    dh_t[n, j] = dh[n, j] * keep
        if flags & ZONEOUT_C:  # on valid steps: the cell's c gets (1 - k) dc, c_prev k dc
            for n in range(n_rows):
                keep = _f32(valid[t, r0 + n])
                kc = _keep_row(keep_c, t, r0 + n)
                for j in range(H):
                    dc_kept[n, j] = keep * kc[j] * dc[n, j]
                    dc[n, j] = dc[n, j] * (one - keep * kc[j])
        if proj:  # h = W_hr m
            dh_cell[t, r0:r1] = dh_t
            dm[:] = 0.0
            matmul_add(dh_t, W_hr, dm)
        if flags & LAYER_NORM:  # m's share of dc, through the norm of c
            for n in range(n_rows):
                keep = _f32(valid[t, r0 + n])
                layer_norm.cell_backward_row(dm, keep, gates[t, r0:r1], tanh_c[t, r0:r1], g_c,
                                             c_hat[t, r0:r1], rstd_c[t, r0:r1], cell_flags,
                                             d_c[t, r0:r1], dc, n)  # fmt: skip
        dz_t = dz[t, r0:r1]
        args = (
            dm,
            dc,
            valid[t, r0:r1],
            gates[t, r0:r1],
            c_prev[t, r0:r1],
            tanh_c[t, r0:r1],
            dz_t,
            dc_prev,
        )
        if cell_flags:
            _cells_backward_options(*args, cell_flags, peep)
        else:
            _cells_backward_plain(*args, peep)
        if flags & ZONEOUT_C:
            dc_prev += dc_kept
        if flags & LAYER_NORM:  # W_hh h's gradient, back through its norm
            dz_h_t = dz_h[t, r0:r1]
            for n in range(n_rows):
                layer_norm.normalise_backward_row(dz_t, g_h, h_hat[t, r0:r1], rstd_h[t, r0:r1],
                                                  dz_h_t, n)  # fmt: skip
            _product(dz_h_t, W_hh, W_hh_t, dh_prev, 0.0, flags)
        else:
            dh_prev[:] = 0.0
            matmul_into(dz_t, W_hh, W_hh_t, dh_prev)
        if flags & H_DROPOUT:  # W_hh saw h_prev * h_mask
            for n in range(n_rows):
                for j in range(P):
                    dh_prev[n, j] *= h_mask[r0 + n, j]
        if flags & ZONEOUT_H:  # and h_prev's share k of the zoned h
            for n in range(n_rows):
                keep = _f32(valid[t, r0 + n])
                kh = _keep_row(keep_h, t, r0 + n)
                for j in range(P):
                    dh_prev[n, j] += keep * kh[j] * dh[n, j]
        for n in range(n_rows):
            if not valid[t, r0 + n]:  # padded steps pass dh through unchanged (dc: the cell)
                for j in range(dh.shape[1]):  # (elements: no copy of the row)
                    dh_prev[n, j] += dh[n, j]
        dh[:] = dh_prev
        dc[:] = dc_prev


@_jit
def _backward_sequence_plain(seq, w, steps, dy, dz, dh_cell, d0, peep, r0, r1):
    reg = _no_regularisers()
    ln = (*_no_layer_norm(), np.empty((0, 0, 0), _f32), np.empty((0, 0, 0), _f32))
    _backward_sequence(seq, w, steps, dy, dz, dh_cell, d0, 0, peep, reg, ln, r0, r1)


@_jit
def _backward_sequence_options(seq, w, steps, dy, dz, dh_cell, d0, flags, peep, reg, ln, r0,
                               r1):  # fmt: skip
    _backward_sequence(seq, w, steps, dy, dz, dh_cell, d0, flags, peep, reg, ln, r0, r1)


def forward_sequence(
    seq: Sequence,
    y: np.ndarray,
    w: Recurrent,
    k: Any,
    peep: tuple[np.ndarray, ...],
    steps: Steps,
    final: HC,
    rows: slice,
    reg: Regularisers | None = None,
    loop_flags: int = 0,
    ln: tuple[np.ndarray, ...] | None = None,
) -> None:
    """The forward loop of :func:`lstmkit.kernels.lstm.forward` for the sequences ``rows``:
    ``seq`` (whole, C-contiguous; ``gates`` holding the scaled input projection, ``h_prev``
    and ``c_prev`` at ``order[0]`` the initial state) and y (T, N, P) filled in; ``w`` the
    scaled recurrent weights; ``k`` the gate constants; ``peep`` the peephole weights
    (:func:`lstmkit.kernels.lstm_cell.peepholes_of`); ``final`` the (h, c) out; ``reg``
    the regularisers' masks, ``loop_flags`` which are on (H_DROPOUT, ZONEOUT_H, ZONEOUT_C);
    ``ln`` with LAYER_NORM: the tape's ``Norms`` and the ``Gains``
    (:mod:`lstmkit.kernels.layer_norm`), as one tuple (``w`` then unscaled)."""
    args = (tuple(seq), y, tuple(w), tuple(k), peep, tuple(steps), tuple(final))
    if k.flags or loop_flags:
        reg_t = tuple(reg) if reg is not None else _NO_REG
        ln_t = layer_norm.NO_NORMS + layer_norm.NO_GAINS if ln is None else ln
        _forward_sequence_options(*args, reg_t, ln_t, rows.start, rows.stop, k.flags | loop_flags)
    else:
        _forward_sequence_plain(*args, rows.start, rows.stop)


def backward_sequence(
    seq: Sequence,
    w: Recurrent,
    steps: Steps,
    dy: np.ndarray,
    dz: np.ndarray,
    dh_cell: np.ndarray,
    d0: HC,
    flags: int,
    peep: tuple[np.ndarray, ...],
    rows: slice,
    reg: Regularisers | None = None,
    ln: tuple[np.ndarray, ...] | None = None,
) -> None:
    """The backward loop of :func:`lstmkit.kernels.lstm.backward` for the sequences ``rows``,
    through the forward's ``seq``, with the unscaled ``w`` (``W_hr`` (P, H)); dy (T, N, P)
    already masked; dz (T, N, 4H) and, with a projection, dh_cell (T, N, P) out; ``d0``
    (dh (N, P), dc (N, H)) holds the final state's gradient in and the initial state's out;
    ``flags`` the cell's option bits and the loop's, ``reg`` as in :func:`forward_sequence`;
    ``ln`` with LAYER_NORM: the tape's ``Norms``, the backward's ``Gains`` and the arrays
    (d_c (T, N, H), dz_h (T, N, 4H)) out, dL/d of c's norm's output and of W_hh h."""
    args = (tuple(seq), tuple(w), tuple(steps), dy, dz, dh_cell, tuple(d0))
    if flags:
        reg_t = tuple(reg) if reg is not None else _NO_REG
        ln_t = _NO_LN_BACKWARD if ln is None else ln
        _backward_sequence_options(*args, flags, peep, reg_t, ln_t, rows.start, rows.stop)
    else:
        _backward_sequence_plain(*args, peep, rows.start, rows.stop)


_NO_REG = (np.empty((0, 0), _f32), np.empty((0, 0, 0), _f32), np.empty((0, 0, 0), _f32))
_NO_LN_BACKWARD = layer_norm.NO_NORMS + layer_norm.NO_GAINS + (np.empty((0, 0, 0), _f32),) * 2


@numba.njit(cache=True, nogil=True)
def _finite(a):
    for v in a.ravel():
        if not np.isfinite(v):
            return False
    return True


@numba.njit(cache=True, nogil=True)
def all_finite(x, h, c):
    """Whether three arrays hold only finite values. Without fastmath, which may assume
    away inf and nan: call it from Python, not from a fastmath kernel (numba compiles a
    callee with its caller's flags)."""
    return _finite(x) and _finite(h) and _finite(c)


@_jit
def renew(w, seen):
    """Whether ``w`` differs from ``seen`` (same shape, C-contiguous) in any bit; if so,
    ``seen`` becomes a copy of it. For weights prepared from the live parameters and kept
    from call to call: the parameters are updated in place, by optimisers and users alike,
    so no counter can tell; comparing reads both arrays once, vectorised (~2 us for 64 KB,
    where scaling and transposing them again took 5-16 us)."""
    a, b = w.reshape(w.size).view(np.int32), seen.reshape(seen.size).view(np.int32)
    differ = 0
    for q in range(a.shape[0]):
        differ |= a[q] ^ b[q]
    if differ == 0:
        return False
    for q in range(a.shape[0]):
        b[q] = a[q]
    return True


@_jit
def _preactivation_rows(x, h, W_ih, W_hh, b_ih, b_hh, scale, n, rows, z):
    """z[j] = scale[j] * (W_ih x + b_ih + W_hh h + b_hh)[j] for row n of x and h, j in
    ``rows`` (scale: a power of two, so this equals the products of scaled weights)."""
    for j in rows:
        acc = b_ih[j] + b_hh[j] if b_ih.shape[0] > 0 else _f32(0.0)
        for q in range(x.shape[1]):
            acc += W_ih[j, q] * x[n, q]
        for q in range(h.shape[1]):
            acc += W_hh[j, q] * h[n, q]
        z[j] = acc * scale[j]


@_jit
def _project_row(W_hr, m, n, h_out):
    """h_out[n] = W_hr m (m itself without a projection: W_hr with zero rows)."""
    if W_hr.shape[0] == 0:
        h_out[n] = m
        return
    for r in range(W_hr.shape[0]):
        acc = _f32(0.0)
        for q in range(m.shape[0]):
            acc += W_hr[r, q] * m[q]
        h_out[n, r] = acc


@_inline
def _step_rows(x, h, c, h_out, c_out, W_ih, W_hh, b_ih, b_hh, W_hr, scale, alpha, beta, flags,
               w_ci, w_cf, w_co, blocks):  # fmt: skip
    """:func:`step`'s work, the weight rows in ``blocks`` across numba's threads inside
    :func:`step_parallel` (a plain loop elsewhere)."""
    N, H = c.shape
    if flags & PEEPHOLES:  # the forward adds them to scaled pre-activations
        s = scale[0]  # the sigmoid's 1/2: exact
        peep = (w_ci * s, w_cf * s, w_co * s, w_ci, w_cf, w_co)
    else:
        peep = (w_ci, w_cf, w_co, w_ci, w_cf, w_co)
    z = np.empty((N, 4 * H), _f32)  # the scaled W_ih x + b_ih + W_hh h + b_hh
    tanh_c, m = np.empty((N, H), _f32), np.empty((N, H), _f32)
    for n in range(N):
        for block in numba.prange(blocks):
            rows = range(block * 4 * H // blocks, (block + 1) * 4 * H // blocks)
            _preactivation_rows(x, h, W_ih, W_hh, b_ih, b_hh, scale, n, rows, z[n])
        if flags & PEEPHOLES:
            peep_into_i_f(z, H, peep, c, n, 0, H)
        gates_in_place(z, alpha, beta, flags, n)
        cell_forward(z, c, c_out, tanh_c, m, flags, peep, alpha[3 * H], beta[3 * H], n, 0, H)
        _project_row(W_hr, m[n], n, h_out)


@_jit
def step_plain(x, h, c, h_out, c_out, W_ih, W_hh, b_ih, b_hh, W_hr, scale, alpha, beta):
    """:func:`step` for the plain cell (no option bits, no peepholes)."""
    none = np.empty(0, _f32)
    _step_rows(x, h, c, h_out, c_out, W_ih, W_hh, b_ih, b_hh, W_hr, scale, alpha, beta, 0, none,
               none, none, 1)  # fmt: skip


@_jit
def step(x, h, c, h_out, c_out, W_ih, W_hh, b_ih, b_hh, W_hr, scale, alpha, beta, flags, w_ci,
         w_cf, w_co):  # fmt: skip
    """One step of one layer from the live weights: x (N, I), h (N, P), c (N, H) in,
    h_out (N, P), c_out (N, H) out. Without biases ``b_ih``, ``b_hh`` have length 0, without
    a projection ``W_hr`` has zero rows; scale, alpha, beta, flags: the gate constants;
    w_ci, w_cf, w_co: the peephole weights as they are (or empty).

    Flat arguments, unlike the loops' named structures: this is called once per time step,
    and numba types a struct or tuple argument in Python, ~0.7 us each (measured), a quarter
    of a small step's latency."""
    _step_rows(x, h, c, h_out, c_out, W_ih, W_hh, b_ih, b_hh, W_hr, scale, alpha, beta, flags,
               w_ci, w_cf, w_co, 1)  # fmt: skip


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy", parallel=True)
def step_parallel(x, h, c, h_out, c_out, W_ih, W_hh, b_ih, b_hh, W_hr, scale, alpha, beta, flags,
                  w_ci, w_cf, w_co, blocks):  # fmt: skip
    """:func:`step` with the weight rows split into ``blocks`` across numba's threads, for
    large H, where one step reads megabytes of weights and one core's bandwidth is the
    limit."""
    _step_rows(x, h, c, h_out, c_out, W_ih, W_hh, b_ih, b_hh, W_hr, scale, alpha, beta, flags,
               w_ci, w_cf, w_co, blocks)  # fmt: skip
