"""A recurrent product with its sums in registers, for the LSTM's lean inference at few
rows (:mod:`lstmkit.kernels.lstm_inference`): ``W_hh`` packed in panels, kept from call
to call.

The loops of :mod:`lstmkit.kernels.compiled` compute ``z += h @ W_hh^T`` row by row
(:func:`lstmkit.kernels.compiled.matmul_add`): each pass over four rows of ``W_hh^T``
loads and stores all 4H sums again. Here the PANEL sums of one panel (the four gates of
CELLS cells) stay in registers over the whole inner dimension (an array on the stack of
a constant size, :func:`sums`, which LLVM promotes to four 512-bit registers), and the
weights are read from ``W_panels`` (H / CELLS, K, PANEL), each panel contiguous; two rows
share each weight loaded (:func:`add_panel_pair`). Measured alone, 20000 steps of
(1, H) @ (H, 4H), one thread, CPU time: H = 32 0.20 -> 0.09 us a step (16 KB of weights,
in L1), H = 64 0.82 -> 0.60-0.70 (64 KB, streamed from L2 at ~100 B/ns, the bound here:
reading the panels in alternating order to keep half in L1 measured slower).

Each sum is the same expression as :func:`lstmkit.kernels.compiled.matmul_add`'s (four
products of k, k+1, k+2, k+3 added to the sum, then single products for K's remainder),
so the bits are the same (``tests/test_inference_cache.py`` compares the lean entry with
the general path)."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from lstmkit.kernels.compiled import renew

CELLS = 16  # cells per panel
PANEL = 4 * CELLS  # columns per panel (i, f, g, o of CELLS cells): four 512-bit registers

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy", inline="always")


def fits(H: int) -> bool:
    """Whether H cells split into whole panels."""
    return H % CELLS == 0


@intrinsic
def _stack_floats(typingctx, count):  # (numba offers no stack arrays on the CPU)
    """A pointer to ``count`` (a literal) float32 on the stack of the compiled caller."""
    if not isinstance(count, types.IntegerLiteral):
        return None
    n = count.literal_value

    def codegen(context, builder, signature, args):
        f32 = context.get_value_type(types.float32)
        block = cgutils.alloca_once(builder, ir.ArrayType(f32, n))
        return builder.bitcast(block, f32.as_pointer())

    return types.CPointer(types.float32)(count), codegen


@_inline
def sums():
    """PANEL float32 on the caller's stack (in registers where LLVM can keep them)."""
    return numba.carray(_stack_floats(PANEL), (PANEL,))


@_jit
def columns(H):
    """(4H,) int64, compiled: :func:`order`."""
    out = np.empty(4 * H, np.int64)
    for b in range(H // CELLS):
        for q in range(4):
            for c in range(CELLS):
                out[b * PANEL + q * CELLS + c] = q * H + b * CELLS + c
    return out


@_jit
def pack(W, seen, W_panels):
    """Where W (4H, K) differs from ``seen`` (its copy when W_panels was last made: see
    :func:`lstmkit.kernels.compiled.renew`): W_panels (H / CELLS, K, PANEL), panel b's
    column q * CELLS + c = gate q of cell b * CELLS + c, i.e. (W * scale[:, None]).T with
    its columns regrouped by cells, scale the plain LSTM's (:func:`gate_scale`)."""
    if not renew(W, seen):
        return
    H = W.shape[0] // 4
    for b in range(H // CELLS):
        for k in range(W.shape[1]):
            for q in range(4):
                for c in range(CELLS):
                    W_panels[b, k, q * CELLS + c] = W[q * H + b * CELLS + c, k] * gate_scale(q)


@_inline
def gate_scale(q):
    """The plain LSTM's scale of gate q (i, f, g, o): 1/2, 1/2, 1, 1/2
    (:func:`lstmkit.kernels.lstm_cell.gate_constants`)."""
    return _f32(1.0) if q == 2 else _f32(0.5)


def regroup(v: np.ndarray) -> np.ndarray:
    """A per-column vector (4H,) of the gates' order (i, f, g, o blocks) as (H / CELLS,
    PANEL): the panels' order of :func:`pack`."""
    H = v.shape[0] // 4
    return np.ascontiguousarray(v.reshape(4, H // CELLS, CELLS).transpose(1, 0, 2)).reshape(
        H // CELLS, PANEL
    )


def order(H: int) -> np.ndarray:
    """(4H,) int64: the gates' columns (i, f, g, o blocks) in the panels' order of
    :func:`pack`, ``regroup(v) == v[order(H)].reshape(H / CELLS, PANEL)``."""
    return regroup(np.arange(4 * H)).reshape(4 * H)


@_inline
def add_panel(h, W_panels, n, b, s):
    """s (PANEL,) += h[n] @ W^T's panel b (the four gates of cells b*CELLS ... in turn)."""
    K = W_panels.shape[1]
    for k4 in range(K // 4):
        k = 4 * k4
        a0, a1, a2, a3 = h[n, k], h[n, k + 1], h[n, k + 2], h[n, k + 3]
        for q in range(PANEL):
            s[q] += (
                a0 * W_panels[b, k, q]
                + a1 * W_panels[b, k + 1, q]
                + a2 * W_panels[b, k + 2, q]
                + a3 * W_panels[b, k + 3, q]
            )
    for k in range(K - K % 4, K):
        a0 = h[n, k]
        for q in range(PANEL):
            s[q] += a0 * W_panels[b, k, q]


@_inline
def add_panel_pair(h, W_panels, n, b, s, u):
    """:func:`add_panel` of rows n (into s) and n + 1 (into u), each weight loaded once."""
    K = W_panels.shape[1]
    m = n + 1
    for k4 in range(K // 4):
        k = 4 * k4
        a0, a1, a2, a3 = h[n, k], h[n, k + 1], h[n, k + 2], h[n, k + 3]
        e0, e1, e2, e3 = h[m, k], h[m, k + 1], h[m, k + 2], h[m, k + 3]
        for q in range(PANEL):
            w0, w1 = W_panels[b, k, q], W_panels[b, k + 1, q]
            w2, w3 = W_panels[b, k + 2, q], W_panels[b, k + 3, q]
            s[q] += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3
            u[q] += e0 * w0 + e1 * w1 + e2 * w2 + e3 * w3
    for k in range(K - K % 4, K):
        a0, e0 = h[n, k], h[m, k]
        for q in range(PANEL):
            s[q] += a0 * W_panels[b, k, q]
            u[q] += e0 * W_panels[b, k, q]
