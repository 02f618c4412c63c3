"""The LSTM's loops over time as compiled float32 code, each thread owning a block of cells.

Same arrays and math as :mod:`lstmkit.kernels.lstm` and :mod:`lstmkit.kernels.compiled` (read
those first); what differs is how the work of each step is divided between threads. With
``parts`` threads, thread ``me`` owns the cells ``c0:c1`` of the layer and, at every step,

* forward: computes the four gates of its cells, ``x_t @ W_x + b + h_prev @ W_h`` with the
  matching 4 * (c1 - c0) columns of the scaled ``W_ih.T`` and ``W_hh.T`` (BLAS calls on
  every row of the batch; the first before waiting, as it needs no other thread), then
  their ``c``, ``tanh(c)`` and ``h = m = o * tanh(c)``, and publishes the step; before the
  next step's ``h_prev`` product it waits for the other threads' parts of ``h``;
* backward: computes ``dz`` of its cells' gates and their ``dc_prev``, publishes, waits
  for the other threads' ``dz``, then ``dh_prev`` of its cells, ``dz @ W_hh[:, c0:c1]``;
* or, where ``W_hh`` fits in a core's cache (``Execution.rows_forward_up_to`` in training,
  ``rows_backward_up_to``), each thread runs the whole loop for its block of rows r0:r1,
  every cell, with no wait (the same products row by row, so the same bits: a
  :class:`~lstmkit.kernels.structs.Part` with ``parts`` 1).

So each product keeps the batch's full height and each thread reads only its share of
the weights (splitting the batch instead halves the height and has every thread read all
of them); the price is one wait per step (:mod:`lstmkit.kernels.sync`). One part (``parts``
= 1) is the same loop on one thread, without waiting. Layers with a projection
(``proj_size``) keep the loops of :mod:`lstmkit.kernels.compiled`: their ``h`` needs every cell.

Inference (no tape: the loops' arrays are two-step rings) runs the plain cell in registers,
writing c and h only (:func:`_cells_infer`), and from 1 MB of ``W_ih`` each thread projects
x for its cells before its loop into its own (T, N, 4C) array, into which each step adds
the biases and the recurrent product (``forward``'s ``pre``; see
``Execution.project_in_loop_inference``).

Where a thread's weights are far larger than its L2 (from 8 MB of ``W_hh``), both loops
compute the recurrent product transposed, the weights as the left matrix
(``W_hh[gate rows] @ h_prev.T``, ``W_hh[:, c0:c1].T @ dz.T``), which streams them faster;
the small right-hand matrices then pass between the threads transposed, through two-step
rings in which each thread writes its own rows.
"""

from __future__ import annotations

import numba
import numpy as np

from lstmkit.kernels.blas import product
from lstmkit.kernels.lstm_cell import (
    CELL_BITS,
    H_DROPOUT,
    PEEPHOLES,
    ZONEOUT_C,
    ZONEOUT_H,
    cell_backward,
    cell_forward,
    gate,
    gates_packed,
    peep_into_i_f,
    tanh,
)
from lstmkit.kernels.structs import HC, GateColumns, Part, Regularisers, Sequence, Steps
from lstmkit.kernels.sync import flags, publish, wait_for

__all__ = ["backward", "flags", "forward", "gate_columns"]

_f32 = np.float32
_jit = numba.njit(fastmath=True, nogil=True, error_model="numpy", cache=True)
# the cells of a step, and the loops, are compiled twice, plain (option bits 0) and with
# options: see :mod:`lstmkit.kernels.compiled`
_inline = numba.njit(fastmath=True, nogil=True, error_model="numpy", cache=True, inline="always")


@_jit
def gate_columns(W, scale, c0, c1, out):
    """out (K, 4 * (c1 - c0)) = (W[rows] * scale[rows]).T for W (4H, K): the rows of cells
    c0:c1's gates, i, f, g, o blocks, scaled and transposed in one pass, in 16 x 16 tiles
    written a row at a time (an 8 MB block: 4.0 ms, against 12.8 for NumPy's gather,
    scale and transposed copy; 9.3 for tiles read a row at a time)."""
    K, H, n_cells = W.shape[1], W.shape[0] // 4, c1 - c0
    for q in range(4):
        for j0 in range(0, n_cells, 16):
            j1 = min(j0 + 16, n_cells)
            for k0 in range(0, K, 16):
                for k in range(k0, min(k0 + 16, K)):
                    row = out[k, q * n_cells + j0 : q * n_cells + j1]
                    for j in range(j1 - j0):
                        r = q * H + c0 + j0 + j
                        row[j] = W[r, k] * scale[r]


@_jit
def _own_columns(z, a, c0, c1):
    """a (N, 4 * (c1 - c0)) = the columns of cells c0:c1 of z (N, 4H), gate by gate."""
    N, H, n_cells = z.shape[0], z.shape[1] // 4, c1 - c0
    for n in range(N):
        for q in range(4):
            a[n, q * n_cells : (q + 1) * n_cells] = z[n, q * H + c0 : q * H + c1]


@_inline
def _cells_forward(a, cols, options, z, c_t, h_t, valid_t, c_out, h_out, tanh_c_t, m_t, y_t, c0,
                   c1):  # fmt: skip
    """One step of cells c0:c1 on every row: the gates into z (N, 4H) from a (N, 4 (c1 - c0)),
    their scaled pre-activations packed gate by gate, and the cell
    (:mod:`lstmkit.kernels.lstm_cell`); then h = y = m, or on padded rows (valid_t (N,) 0)
    the state carried and y = 0."""
    for n in range(c_t.shape[0]):
        alpha, beta, peep = cols[3], cols[4], cols[6]
        C = c1 - c0
        if options & PEEPHOLES:
            peep_into_i_f(a, C, peep, c_t, n, c0, c1)
        gates_packed(a, alpha, beta, options, z, n, c0, c1)
        cell_forward(z, c_t, c_out, tanh_c_t, m_t, options, peep, alpha[3 * C], beta[3 * C], n,
                     c0, c1)  # fmt: skip
        m, h, y = m_t[n, c0:c1], h_out[n, c0:c1], y_t[n, c0:c1]
        if valid_t[n]:
            for j in range(c1 - c0):
                h[j] = m[j]
            for j in range(c1 - c0):
                y[j] = m[j]
        else:
            c, cp = c_out[n, c0:c1], c_t[n, c0:c1]
            for j in range(c1 - c0):
                h[j] = h_t[n, c0 + j]
            for j in range(c1 - c0):
                c[j] = cp[j]
            for j in range(c1 - c0):
                y[j] = 0.0


@_inline
def _cells_forward_reg(a, cols, options, keep_h, keep_c, z, c_t, h_t, valid_t, c_out, h_out,
                       tanh_c_t, m_t, y_t, c0, c1):  # fmt: skip
    """:func:`_cells_forward` with the loop's bits in ``options`` too (the cells get
    ``options & CELL_BITS``): with ZONEOUT_C, ZONEOUT_H the step's keep masks (N, H) (or a
    (1, H) row in eval) zone c and h (m_t may be y_t: then in place). (A copy, not one
    function with the bits 0 for the plain cells: that measured the plain backward 22%
    slower at (4, 50, 32, 64), 8% at (16, 100, 64, 128).)"""
    one = _f32(1.0)
    for n in range(c_t.shape[0]):
        alpha, beta, peep = cols[3], cols[4], cols[6]
        C = c1 - c0
        cell_bits = options & CELL_BITS
        if cell_bits & PEEPHOLES:
            peep_into_i_f(a, C, peep, c_t, n, c0, c1)
        gates_packed(a, alpha, beta, cell_bits, z, n, c0, c1)
        cell_forward(z, c_t, c_out, tanh_c_t, m_t, cell_bits, peep, alpha[3 * C], beta[3 * C], n,
                     c0, c1)  # fmt: skip
        m, h, y = m_t[n, c0:c1], h_out[n, c0:c1], y_t[n, c0:c1]
        if valid_t[n] and options & ZONEOUT_C:  # c = k c_prev + (1 - k) c
            kc, c, cp = (
                keep_c[n if keep_c.shape[0] > 1 else 0, c0:c1],
                c_out[n, c0:c1],
                c_t[n, c0:c1],
            )
            for j in range(c1 - c0):
                c[j] = kc[j] * cp[j] + (one - kc[j]) * c[j]
        if valid_t[n] and options & ZONEOUT_H:  # h = k h_prev + (1 - k) m
            kh, hp = keep_h[n if keep_h.shape[0] > 1 else 0, c0:c1], h_t[n, c0:c1]
            for j in range(c1 - c0):
                h[j] = kh[j] * hp[j] + (one - kh[j]) * m[j]
            for j in range(c1 - c0):
                y[j] = h[j]
        elif valid_t[n]:
            for j in range(c1 - c0):
                h[j] = m[j]
            for j in range(c1 - c0):
                y[j] = m[j]
        else:
            c, cp = c_out[n, c0:c1], c_t[n, c0:c1]
            for j in range(c1 - c0):
                h[j] = h_t[n, c0 + j]
            for j in range(c1 - c0):
                c[j] = cp[j]
            for j in range(c1 - c0):
                y[j] = 0.0


@_jit
def _cells_infer(a, alpha, beta, c_t, h_t, valid_t, c_out, y_t, c0, c1):
    """:func:`_cells_forward` of the plain cell for inference (no tape): the gates, c and
    h = o * tanh(c) in registers from a (N, 4 (c1 - c0)), c into c_out, h into y_t (the
    loop copies it to h_out where that is another array); on padded rows c carried and
    y = 0 (h carried by the loop). The same operations as the gates and
    :func:`lstmkit.kernels.lstm_cell.cell_forward` (the same results), without writing the
    gates, tanh(c) and m: a fifth to a half less time per step (measured: (64, 512) 200 ->
    110 us, (32, 256) 43 -> 15 us, the pointwise part alone)."""
    C = c1 - c0
    for n in range(c_t.shape[0]):
        a_i, a_f, a_g, a_o = a[n, :C], a[n, C : 2 * C], a[n, 2 * C : 3 * C], a[n, 3 * C :]
        al_i, al_f, al_g, al_o = alpha[:C], alpha[C : 2 * C], alpha[2 * C : 3 * C], alpha[3 * C :]
        be_i, be_f, be_g, be_o = beta[:C], beta[C : 2 * C], beta[2 * C : 3 * C], beta[3 * C :]
        cp, c, y = c_t[n, c0:c1], c_out[n, c0:c1], y_t[n, c0:c1]
        if valid_t[n]:
            for j in range(C):
                i = gate(a_i[j], al_i[j], be_i[j])
                f = gate(a_f[j], al_f[j], be_f[j])
                g = gate(a_g[j], al_g[j], be_g[j])
                o = gate(a_o[j], al_o[j], be_o[j])
                c_j = f * cp[j] + i * g
                c[j] = c_j
                y[j] = o * tanh(c_j)
        else:
            for j in range(C):
                c[j] = cp[j]
            for j in range(C):
                y[j] = 0.0


@_jit
def _cells_forward_plain(a, cols, z, c_t, h_t, valid_t, c_out, h_out, tanh_c_t, m_t, y_t, c0, c1):
    _cells_forward(a, cols, 0, z, c_t, h_t, valid_t, c_out, h_out, tanh_c_t, m_t, y_t, c0, c1)


@_jit
def _cells_forward_options(a, cols, options, keep_h, keep_c, z, c_t, h_t, valid_t, c_out, h_out,
                           tanh_c_t, m_t, y_t, c0, c1):  # fmt: skip
    _cells_forward_reg(a, cols, options, keep_h, keep_c, z, c_t, h_t, valid_t, c_out, h_out,
                       tanh_c_t, m_t, y_t, c0, c1)  # fmt: skip


@_inline
def _keep_at(keep, t, dummy):
    """Step t's keep mask (N, .) of a zoneout mask (T, N, .), its one row (1, .) in eval, or
    ``dummy`` where off."""
    if keep.shape[0] == 0:
        return dummy
    return keep[t if keep.shape[0] > 1 else 0]


@_jit
def _add_transposed(z, a_t, a, c0, c1):
    """a (N, 4 * (c1 - c0)) = the columns of cells c0:c1 of z (N, 4H), gate by gate, plus
    a_t (4 * (c1 - c0), N) transposed; in 16 x 16 tiles."""
    N, H, n_cells = z.shape[0], z.shape[1] // 4, c1 - c0
    for q in range(4):
        for j0 in range(0, n_cells, 16):
            j1 = min(j0 + 16, n_cells)
            for n0 in range(0, N, 16):
                for n in range(n0, min(n0 + 16, N)):
                    for j in range(j0, j1):
                        a[n, q * n_cells + j] = z[n, q * H + c0 + j] + a_t[q * n_cells + j, n]


@_jit
def _add_transposed_in_place(a_t, a):
    """a (N, K) += a_t (K, N) transposed, in 16 x 16 tiles."""
    K, N = a_t.shape
    for k0 in range(0, K, 16):
        for n0 in range(0, N, 16):
            for n in range(n0, min(n0 + 16, N)):
                for k in range(k0, min(k0 + 16, K)):
                    a[n, k] += a_t[k, n]


@_jit
def transpose(a, out):
    """out (N, C) = a (C, N) transposed, in 16 x 16 tiles (either may be a strided view)."""
    C, N = a.shape
    for j0 in range(0, C, 16):
        for n0 in range(0, N, 16):
            for n in range(n0, min(n0 + 16, N)):
                for j in range(j0, min(j0 + 16, C)):
                    out[n, j] = a[j, n]


@_inline
def _forward(part, x, cols, steps, seq, y, final, h_rows, reg, options, pre):
    """:func:`forward` on plain tuples, ``options`` the cell's option bits and the loop's
    (``reg`` their masks)."""
    me, parts, c0, c1, counters, r0, r1 = part
    h_mask, keep_h, keep_c = reg
    W_x, W_h, b = cols[0], cols[1], cols[2]
    order, valid = steps
    gates, h_prev, c_prev, tanh_c, m = seq
    h_n, c_n = final
    T, N = y.shape[0], r1 - r0
    Rz, Rc, Rt, Rm = gates.shape[0], c_prev.shape[0], tanh_c.shape[0], m.shape[0]
    transposed = h_rows.shape[0] > 0  # (every row)
    no_tape = Rc < T  # inference on rings: the plain cell writes c and h only
    n_gates = W_h.shape[0] if transposed else W_h.shape[1]
    own = pre.shape[0] > 0  # the thread's projection, packed: each step adds into it
    a_own = np.empty((0 if own else N, n_gates), _f32)  # the step's scaled pre-activations
    a_t = np.empty((n_gates if transposed else 0, N), _f32)
    h_seen = np.empty((N if options & H_DROPOUT else 0, h_prev.shape[2]), _f32)  # h_t * h_mask
    for s in range(T):
        t = order[s]
        z, h_t, c_t = gates[t % Rz, r0:r1], h_prev[t, r0:r1], c_prev[t % Rc, r0:r1]
        h_out = h_n[r0:r1] if s + 1 == T else h_prev[order[s + 1], r0:r1]
        c_out = c_n[r0:r1] if s + 1 == T else c_prev[order[s + 1] % Rc, r0:r1]
        y_t, valid_t = y[t, r0:r1], valid[t, r0:r1]
        a = pre[t, r0:r1] if own else a_own
        if own:
            for n in range(N):
                a[n] += b
        elif W_x.shape[0] > 0:
            product(x[t, r0:r1], W_x, a, 0.0)
            for n in range(N):  # (elements: ``a[n] += b`` copies the row first, an
                for j in range(b.shape[0]):  # allocation per row and step in numba)
                    a[n, j] += b[j]
        elif not transposed:  # projected before the loop, into gates
            _own_columns(z, a, c0, c1)
        if parts > 1:  # (a block of rows has every cell of h_t: nothing to wait for)
            wait_for(counters, me, parts, s)  # every part of h_t is written
        if transposed:
            product(W_h, h_rows[s % 2], a_t, 0.0)
            if own:
                _add_transposed_in_place(a_t, a)
            else:
                _add_transposed(z, a_t, a, c0, c1)
        elif options & H_DROPOUT:  # W_hh sees h_t * h_mask (not transposed: see lstm.py)
            for n in range(N):
                for j in range(h_seen.shape[1]):
                    h_seen[n, j] = h_t[n, j] * h_mask[r0 + n, j]
            product(h_seen, W_h, a, 1.0)
        else:
            product(h_t, W_h, a, 1.0)
        tc, m_t = tanh_c[t % Rt, r0:r1], m[t % Rm, r0:r1]
        if options:
            kh = _rows_of(_keep_at(keep_h, t, c_t), r0, r1)
            kc = _rows_of(_keep_at(keep_c, t, c_t), r0, r1)
            _cells_forward_options(a, cols, options, kh, kc, z, c_t, h_t, valid_t, c_out, h_out,
                                   tc, m_t, y_t, c0, c1)  # fmt: skip
        elif no_tape:
            _cells_infer(a, cols[3], cols[4], c_t, h_t, valid_t, c_out, y_t, c0, c1)
            if h_out.ctypes.data != y_t.ctypes.data:  # h_n, or h apart from y (padding)
                for n in range(N):
                    if valid_t[n]:
                        h_out[n, c0:c1] = y_t[n, c0:c1]
                    else:
                        h_out[n, c0:c1] = h_t[n, c0:c1]
        else:
            _cells_forward_plain(a, cols, z, c_t, h_t, valid_t, c_out, h_out, tc, m_t, y_t, c0,
                                 c1)  # fmt: skip
        if transposed and s + 1 < T:  # the next step's h; the others read this slot at
            # step s - 1, which they finished before publishing s (awaited above)
            transpose(h_out[:, c0:c1], h_rows[(s + 1) % 2, c0:c1])
        if parts > 1:
            publish(counters, me, s + 1)


@_inline
def _cells_backward_reg(dh, dc, dy_t, valid_t, gates_t, c_t, tanh_c_t, dz_t, dc_prev, dc_total,
                        flags, keep_h, keep_c, dh_kept, dc_kept, peep, c0, c1):  # fmt: skip
    """:func:`_cells_backward` with the loop's bits in ``flags`` too (a copy: see
    :func:`_cells_forward_reg`): with ZONEOUT_H (ZONEOUT_C), on valid rows the cell gets
    (1 - k) of dh (dc) and ``dh_kept`` (``dc_kept``) (N, c1 - c0) the share k that goes to
    the previous state (keep masks as in :func:`_cells_forward_reg`)."""
    one = _f32(1.0)
    for n in range(c_t.shape[0]):
        dh_n, dy = dh[n], dy_t[n, c0:c1]
        for j in range(c1 - c0):
            dh_n[j] += dy[j]
        keep = _f32(valid_t[n])
        if flags & ZONEOUT_H:
            kh, kept = keep_h[n if keep_h.shape[0] > 1 else 0, c0:c1], dh_kept[n]
            for j in range(c1 - c0):
                kept[j] = keep * kh[j] * dh_n[j]
                dh_n[j] = dh_n[j] * (one - keep * kh[j])
        if flags & ZONEOUT_C:
            kc, kept, dc_n = keep_c[n if keep_c.shape[0] > 1 else 0, c0:c1], dc_kept[n], dc[n]
            for j in range(c1 - c0):
                kept[j] = keep * kc[j] * dc_n[j]
                dc_n[j] = dc_n[j] * (one - keep * kc[j])
        cell_backward(dh, dc, keep, gates_t, c_t, tanh_c_t, dz_t, dc_prev, dc_total,
                      flags & CELL_BITS, peep, n, c0, c1)  # fmt: skip


@_inline
def _cells_backward(dh, dc, dy_t, valid_t, gates_t, c_t, tanh_c_t, dz_t, dc_prev, dc_total, flags,
                    peep, c0, c1):  # fmt: skip
    for n in range(c_t.shape[0]):
        dh_n, dy = dh[n], dy_t[n, c0:c1]
        for j in range(c1 - c0):
            dh_n[j] += dy[j]
        keep = _f32(valid_t[n])
        cell_backward(dh, dc, keep, gates_t, c_t, tanh_c_t, dz_t, dc_prev, dc_total, flags,
                      peep, n, c0, c1)  # fmt: skip


@_jit
def _cells_backward_plain(dh, dc, dy_t, valid_t, gates_t, c_t, tanh_c_t, dz_t, dc_prev, dc_total,
                          peep, c0, c1):  # fmt: skip
    _cells_backward(dh, dc, dy_t, valid_t, gates_t, c_t, tanh_c_t, dz_t, dc_prev, dc_total, 0,
                    peep, c0, c1)  # fmt: skip


@_jit
def _cells_backward_options(dh, dc, dy_t, valid_t, gates_t, c_t, tanh_c_t, dz_t, dc_prev,
                            dc_total, options, keep_h, keep_c, dh_kept, dc_kept, peep, c0,
                            c1):  # fmt: skip
    _cells_backward_reg(dh, dc, dy_t, valid_t, gates_t, c_t, tanh_c_t, dz_t, dc_prev, dc_total,
                        options, keep_h, keep_c, dh_kept, dc_kept, peep, c0, c1)  # fmt: skip


@_inline
def _no_regularisers():
    return np.empty((0, 0), _f32), np.empty((0, 0, 0), _f32), np.empty((0, 0, 0), _f32)


@_jit
def _forward_plain(part, x, cols, steps, seq, y, final, h_rows, pre):
    _forward(part, x, cols, steps, seq, y, final, h_rows, _no_regularisers(), 0, pre)


@_jit
def _forward_options(part, x, cols, steps, seq, y, final, h_rows, reg, options, pre):
    _forward(part, x, cols, steps, seq, y, final, h_rows, reg, options, pre)


@_inline
def _rows_of(keep, r0, r1):
    """Rows r0:r1 of a step's keep mask (N, .), or its one row (1, .) in eval as it is."""
    return keep[r0:r1] if keep.shape[0] > 1 else keep


@_inline
def _backward(part, seq, W_hh, steps, dy, dz, d0, dz_rows, options, peep, reg):
    """:func:`backward` on plain tuples; ``options`` and ``reg`` as in :func:`_forward`."""
    me, parts, c0, c1, counters, r0, r1 = part
    h_mask, keep_h, keep_c = reg
    gates, _, c_prev, tanh_c, _ = seq
    order, valid = steps
    dh0, dc0 = d0
    T, N, H = gates.shape[0], r1 - r0, dc0.shape[1]
    dh, dc = dh0[r0:r1, c0:c1].copy(), dc0[r0:r1, c0:c1].copy()
    dh_prev, dc_prev = np.empty_like(dh), np.empty_like(dc)
    dc_total = np.empty(c1 - c0, _f32)
    W = W_hh[:, c0:c1]
    transposed = dz_rows.shape[0] > 0
    W_t = np.ascontiguousarray(W.T) if transposed else np.empty((0, 0), _f32)  # (c1 - c0, 4H)
    dh_t = np.empty((c1 - c0, N), _f32)  # dh_prev transposed
    dh_kept = np.empty((N if options & ZONEOUT_H else 0, c1 - c0), _f32)  # to h_prev, c_prev
    dc_kept = np.empty((N if options & ZONEOUT_C else 0, c1 - c0), _f32)
    for s in range(T - 1, -1, -1):
        t = order[s]
        dz_t, c_t, valid_t = dz[t, r0:r1], c_prev[t, r0:r1], valid[t, r0:r1]
        args = (dh, dc, dy[t, r0:r1], valid_t, gates[t, r0:r1], c_t, tanh_c[t, r0:r1], dz_t,
                dc_prev, dc_total)  # fmt: skip
        if options:
            kh = _rows_of(_keep_at(keep_h, t, c_t), r0, r1)
            kc = _rows_of(_keep_at(keep_c, t, c_t), r0, r1)
            _cells_backward_options(*args, options, kh, kc, dh_kept, dc_kept, peep, c0, c1)
        else:
            _cells_backward_plain(*args, peep, c0, c1)
        for q in range(4 if transposed else 0):  # its columns of dz_t, transposed (slot
            cols = slice(q * H + c0, q * H + c1)  # s % 2 is rewritten at step s - 2, after
            transpose(dz_t[:, cols], dz_rows[s % 2][cols])  # every thread has read it)
        if parts > 1:  # (a block of rows has every cell of dz_t: nothing to wait for)
            publish(counters, me, T - s)
            wait_for(counters, me, parts, T - s)  # every part of dz[t] is written
        if transposed:
            product(W_t, dz_rows[s % 2], dh_t, 0.0)
            transpose(dh_t, dh_prev)
        else:
            product(dz_t, W, dh_prev, 0.0)
        if options & H_DROPOUT:  # W_hh saw h_prev * h_mask
            for n in range(N):
                for j in range(c1 - c0):
                    dh_prev[n, j] *= h_mask[r0 + n, c0 + j]
        if options & ZONEOUT_H:  # h_prev's and c_prev's shares k of the zoned states
            dh_prev += dh_kept
        if options & ZONEOUT_C:
            dc_prev += dc_kept
        for n in range(N):
            if not valid_t[n]:  # padded steps pass the gradient through unchanged
                for j in range(dh.shape[1]):  # (elements: no copy of the row)
                    dh_prev[n, j] += dh[n, j]
        dh, dh_prev = dh_prev, dh
        dc, dc_prev = dc_prev, dc
    dh0[r0:r1, c0:c1] = dh
    dc0[r0:r1, c0:c1] = dc


@_jit
def _backward_plain(part, seq, W_hh, steps, dy, dz, d0, dz_rows, peep):
    _backward(part, seq, W_hh, steps, dy, dz, d0, dz_rows, 0, peep, _no_regularisers())


@_jit
def _backward_options(part, seq, W_hh, steps, dy, dz, d0, dz_rows, options, peep, reg):
    _backward(part, seq, W_hh, steps, dy, dz, d0, dz_rows, options, peep, reg)


def forward(
    part: Part,
    x: np.ndarray,
    cols: GateColumns,
    steps: Steps,
    seq: Sequence,
    y: np.ndarray,
    final: HC,
    h_rows: np.ndarray,
    reg: Regularisers | None = None,
    loop_flags: int = 0,
    pre: np.ndarray | None = None,
) -> None:
    """Thread ``part.me``'s share of :func:`lstmkit.kernels.lstm.forward`'s loop, input
    projection included: its cells c0:c1, whose 4 * (c1 - c0) gate columns (i, f, g, o
    blocks) are those of ``cols`` (:class:`lstmkit.kernels.structs.GateColumns`: W_x (I, .)
    and W_h (P, .), the scaled ``W_ih.T`` and ``W_hh.T``, b, alpha, beta); x (T, N, I), the
    :class:`~lstmkit.kernels.structs.Sequence` ``seq`` (gates out), y (T, N, P) and
    ``final`` (h, c) whole, as there (``seq.m`` may be ``y``). A W_x with no rows: gates
    holds the scaled input projection with the biases already. Its rows ``part.r0:r1``
    (every row with several parts; a block of rows with ``part.parts`` 1 and every cell:
    training only, the tape's arrays whole, not transposed).

    ``seq.gates``, ``c_prev``, ``tanh_c`` and ``m`` may instead be rings of two steps (R = 2
    along time, step t at t % R) that only this thread writes: inference without a tape.

    ``h_rows`` (2, P, N), shared by the threads, or empty: then (with the projection
    before the loop) the recurrent product is computed transposed, ``W_h @ h_prev.T``,
    with ``W_h`` given as (4 * (c1 - c0), P), the gate rows of the scaled ``W_hh``; each
    thread writes its cells' h into ``h_rows`` transposed (steps in turn; the slot of
    step 0 holds h0). See :func:`backward` for why and when. Not with H_DROPOUT.

    ``reg``, ``loop_flags``: the recurrent regularisers' masks and bits, as in
    :func:`lstmkit.kernels.compiled.forward_sequence`.

    ``pre`` (T, N, 4 * (c1 - c0)), this thread's own array, or None: the input projection
    of its cells, scaled, packed gate by gate (computed before the loop, one GEMM over all
    T*N rows); each step adds the biases and the recurrent product into it in place, so
    with rings (inference) the loop writes no gates; x and W_x are then not read."""
    pre_ = _NO_PRE if pre is None else pre
    args = (tuple(part), x, tuple(cols), tuple(steps), tuple(seq), y, tuple(final), h_rows)
    if cols.flags or loop_flags:
        reg_t = _NO_REG if reg is None else tuple(reg)
        _forward_options(*args, reg_t, cols.flags | loop_flags, pre_)
    else:
        _forward_plain(*args, pre_)


def backward(
    part: Part,
    seq: Sequence,
    W_hh: np.ndarray,
    steps: Steps,
    dy: np.ndarray,
    dz: np.ndarray,
    d0: HC,
    dz_rows: np.ndarray,
    options: int,
    peep: tuple[np.ndarray, ...],
    reg: Regularisers | None = None,
) -> None:
    """Thread ``part.me``'s share of :func:`lstmkit.kernels.lstm.backward`'s loop, through the
    forward's ``seq``: its cells c0:c1 and rows r0:r1 of ``d0`` (dh (N, P), dc (N, H)), which
    holds the final state's gradient in and the initial state's out; dy (T, N, P) already
    masked; dz (T, N, 4H) out; ``W_hh`` (4H, P) unscaled. Threads share either the cells
    (every row: they wait for each other's dz at every step) or the rows (one part each,
    ``part.parts`` 1, every cell: no wait; each thread reads all of ``W_hh``).

    ``dz_rows`` (2, 4H, N), shared by the threads, or empty: then each step computes
    ``dh_prev.T = W_hh[:, c0:c1].T @ dz_t.T`` (each thread writing its columns of dz_t
    there transposed, two steps in turn) instead of ``dz_t @ W_hh[:, c0:c1]``: faster where
    a thread's block of W_hh leaves L2, as a product's left matrix streams better than its
    right (measured, one core: (64, 4096) @ (4096, 512) at 67 GFLOP/s, transposed 111;
    forward's (64, 1024) @ (1024, 2048) 84, transposed 102; where it applies:
    ``Execution.transposed_from``). ``options``: the cell's bits and the loop's, ``reg``
    their masks (see :func:`forward`)."""
    args = (tuple(part), tuple(seq), W_hh, tuple(steps), dy, dz, tuple(d0), dz_rows)
    if options:
        _backward_options(*args, options, peep, _NO_REG if reg is None else tuple(reg))
    else:
        _backward_plain(*args, peep)


_NO_REG = (np.empty((0, 0), _f32), np.empty((0, 0, 0), _f32), np.empty((0, 0, 0), _f32))
_NO_PRE = np.empty((0, 0, 0), _f32)
