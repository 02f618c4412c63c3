"""The plain LSTM's part of the lean whole-sequence inference (:mod:`lstmkit.kernels.inference`,
which has the entry, the checks and the interface of a part).

Where :func:`lstmkit.kernels.lstm.forward` would run its compiled loop over rows in one
block, :func:`layer` does the same arithmetic in one compiled call (:func:`_run`): the
input projection on the unscaled ``W_ih`` (one GEMM, as the general path's: from compiled
code where :func:`lstmkit.kernels.kept.projects_compiled`), then it scales and transposes
``W_hh`` from the live weights into reused memory (only when its bits
changed), scales the projection and adds the biases, and runs the loop of
:mod:`lstmkit.kernels.compiled`. The same bits as the general path: the projection scaled
afterwards is a product by a power of two, exact (see :mod:`lstmkit.kernels.lstm_cell`),
and the loop is the same (``tests/test_inference_cache.py`` compares the two).

At up to PANEL_ROWS rows, where H is a multiple of :data:`lstmkit.kernels.panels.CELLS`
and the projection is the compiled call's, :func:`_layer_panels` runs a loop of its own
(:func:`_loop_panels`): ``W_hh`` packed in panels of the four gates of 16 cells (kept
like the other prepared weights), each panel's pre-activations summed in registers
(:mod:`lstmkit.kernels.panels`) and its cells computed from them at once; the projection
writes its columns in the panels' order (``W_ih`` kept in that order), so each step reads
its gates contiguously. Each sum and each cell is the general path's expression, so the
bits are the same (the tests compare them at H = 16 with one, two, three and five rows).
(1, 100, 32, 64): 155 -> 104 us a call, one thread, best of an A/B in one process
(``benchmarks/bench_lstm_panels.py``; docs/performance.md, "LSTM inference, round 4").

Where the general path would run the split loops (:mod:`lstmkit.kernels.cell_split`, each
thread a block of cells and a wait per step) on weights within a core's L2,
:mod:`lstmkit.kernels.lstm_row_split` runs the same operations with each thread on its rows
instead (no wait per step; the same bits).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from lstmkit.kernels import compiled, kept, lstm_row_split, panels, parallel, sequence
from lstmkit.kernels.execution import Execution
from lstmkit.kernels.lstm_cell import gate, gate_constants, tanh

Params = dict[str, np.ndarray]
STATES = 2  # (h, c)
PANEL_ROWS = 64  # rows (sequences) up to which the lean entry runs _loop_panels

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy", inline="always")


class Layer(NamedTuple):
    """One layer's live weights and gate constants, as :func:`_run` takes them."""

    W_ih: np.ndarray  # (4H, I)
    W_hh: np.ndarray  # (4H, H)
    b_ih: np.ndarray  # (4H,), or (0,) without biases
    b_hh: np.ndarray
    scale: np.ndarray  # (4H,) the gate constants (lstm_cell.gate_constants)
    alpha: np.ndarray
    beta: np.ndarray
    order: np.ndarray  # (4H,) the panels' order of the columns (panels.order), or (0,)
    alpha_p: np.ndarray  # (H / CELLS, PANEL) alpha and beta in that order, or (0, 0)
    beta_p: np.ndarray


def layers(params: list[Params], kind: str = "lstm") -> tuple[Layer, ...]:
    """Each layer's live weights, ``params[k]`` the k-th layer's ``{"W_ih", "W_hh", "b_ih",
    "b_hh"}`` (the biases optional), with the gate constants of its size."""
    H = params[0]["W_hh"].shape[1]
    k = gate_constants(H)
    fits = panels.fits(H)
    order = panels.order(H) if fits else np.empty(0, np.int64)
    in_panels = tuple(panels.regroup(v) if fits else np.empty((0, 0), _f32) for v in k[1:3])
    none = np.empty(0, _f32)
    biases = [(p.get("b_ih", none), p.get("b_hh", none)) for p in params]
    return tuple(
        Layer(p["W_ih"], p["W_hh"], *b, *k[:3], order, *in_panels)
        for p, b in zip(params, biases, strict=True)
    )


def one_block(w: Layer, T: int, N: int, ex: Execution) -> bool:
    """Whether this part runs this size: where :func:`lstmkit.kernels.lstm.forward` runs it
    on its compiled loop over rows in one block (below ``ex.split_from``, not split across
    threads: see :func:`lstmkit.kernels.parallel.parts`), and where
    :mod:`lstmkit.kernels.lstm_row_split` applies to every layer of the stack (the first
    layer's input size I, the others' H: checked at the larger)."""
    H, I = w.W_hh.shape[1], w.W_ih.shape[1]
    if lstm_row_split.applies(T, N, max(I, H), H, ex):
        return True
    if N * H * 4 * H >= ex.split_from or N * H * 4 * H > ex.small:
        return False
    work = T * N * H * 4 * H
    return work < ex.min_work or N // ex.min_rows < 2 or parallel.most_threads(ex) == 1


def layer(
    w: Layer,
    x: np.ndarray,
    state0: tuple[np.ndarray, ...],
    final: tuple[np.ndarray, ...],
    space: sequence.Workspace,
    ex: Execution,
) -> np.ndarray:
    """One layer over x (T, N, I) from (h0, c0) (N, H): y (T, N, H), a new array; ``final``,
    (h_n, c_n) (N, H), filled."""
    (h0, c0), (h_n, c_n) = state0, final
    T, N, _ = x.shape
    GH, H = w.W_hh.shape
    if lstm_row_split.applies(T, N, x.shape[2], H, ex):
        weights = (w.W_ih, w.W_hh, w.b_ih, w.b_hh, w.scale, w.alpha, w.beta)
        return lstm_row_split.layer(weights, x, state0, final, space, ex)
    project = kept.projects_compiled(x, GH, ex)  # else NumPy's GEMM, here
    if project and N <= PANEL_ROWS and panels.fits(H):
        return _layer_panels(w, x, h0, c0, h_n, c_n, space)
    gates = sequence.empty(space, "gates", (T, N, GH), _f32)
    if not project:
        sequence.project(x, w.W_ih, None, gates, ex)  # unscaled: _run scales it
    W_ih_kept = kept.kept_transpose(space, "W_ih", w.W_ih) if project else (kept.NONE,) * 2
    projection = (x.reshape(T * N, x.shape[2]), *W_ih_kept)
    hy = np.empty((T + 1, N, H), _f32)  # h0, then y: the loop's h_prev and y, as lstm.py's
    hy[0] = h0
    seen, W_hh_t, W_hh_s = _prepared(w, space)
    c_prev = sequence.empty(space, "c_prev", (T, N, H), _f32)
    tanh_c = sequence.empty(space, "tanh_c", (T, N, H), _f32)
    # (views made here, not in _run: numba types a slice made in compiled code as
    # non-contiguous, and the loop would not vectorise)
    args = (projection, project, gates, hy[:-1], hy[1:], c_prev, tanh_c, w, c0, h_n, c_n,
            seen, W_hh_t, W_hh_s)  # fmt: skip
    if project and not kept.single_threaded(T * N, x.shape[2], GH):
        parallel.run(lambda _: _run(*args), [0], one_blas_thread=True)
    else:
        _run(*args)
    return hy[1:]


def _layer_panels(
    w: Layer,
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    h_n: np.ndarray,
    c_n: np.ndarray,
    space: sequence.Workspace,
) -> np.ndarray:
    """:func:`layer` by :func:`_run_panels`, its arrays passed one by one (numba types a
    tuple argument in Python: the Layer's ten arrays as one took ~4.7 us a call, the same
    arrays as arguments ~2)."""
    T, N, I = x.shape
    GH, H = w.W_hh.shape
    gates = sequence.empty(space, "gates", (T, N, GH), _f32)
    hy = np.empty((T + 1, N, H), _f32)  # h0, then y
    hy[0] = h0
    W_ih_seen, W_ih_t = kept.kept_transpose(space, "W_ih_panels", w.W_ih, w.order)
    W_hh_seen, W_panels = _packed(w, space)
    args = (x.reshape(T * N, I), w.W_ih, w.W_hh, w.b_ih, w.b_hh, w.alpha_p, w.beta_p, W_ih_seen,
            W_ih_t, W_hh_seen, W_panels, gates, hy, c0, h_n, c_n)  # fmt: skip
    if kept.single_threaded(T * N, I, GH):
        _run_panels(*args)
    else:
        parallel.run(lambda _: _run_panels(*args), [0], one_blas_thread=True)
    return hy[1:]


def _packed(w: Layer, space: sequence.Workspace) -> tuple[np.ndarray, np.ndarray]:
    """(seen, the W_hh they were made from; W_panels, :func:`lstmkit.kernels.panels.pack`'s
    layout), kept in ``space`` from call to call: made here the first time, by ``pack``
    whenever W_hh changed."""
    seen = space.get("W_hh_panels_seen")
    if seen is None or seen.shape != w.W_hh.shape:
        GH, H = w.W_hh.shape
        C = panels.CELLS
        W_s = (w.W_hh * w.scale[:, None]).reshape(4, H // C, C, H)  # (gate, panel, cell, k)
        space["W_hh_panels_seen"] = w.W_hh.copy()
        space["W_hh_panels"] = np.ascontiguousarray(
            W_s.transpose(1, 3, 0, 2).reshape(H // C, H, panels.PANEL)
        )
    return space["W_hh_panels_seen"], space["W_hh_panels"]


def _prepared(w: Layer, space: sequence.Workspace) -> tuple[np.ndarray, ...]:
    """The recurrent weights as the loop reads them, kept in ``space`` from call to call:
    (seen, the W_hh they were made from; W_hh_t (H, 4H), W_hh.T scaled; W_hh_s (4H, H),
    W_hh scaled, or no rows: see :func:`lstmkit.kernels.compiled.matmul_into`), made here
    the first time and again by :func:`_refresh` whenever W_hh changed."""
    seen = space.get("W_hh_seen")
    if seen is None or seen.shape != w.W_hh.shape:
        GH, H = w.W_hh.shape
        space["W_hh_seen"] = w.W_hh.copy()
        space["W_hh_t_kept"] = np.multiply(w.W_hh.T, w.scale, out=np.empty((H, GH), _f32))
        W_hh_s = w.W_hh * w.scale[:, None] if 256 <= H <= 1024 else np.empty((0, H), _f32)
        space["W_hh_s_kept"] = W_hh_s
    return space["W_hh_seen"], space["W_hh_t_kept"], space["W_hh_s_kept"]


@_jit
def _refresh(W, scale, seen, W_t, W_s):
    """Where W (4H, K) differs from ``seen`` (its copy when W_t was last made: see
    :func:`lstmkit.kernels.compiled.renew`): W_t (K, 4H) = (W * scale[:, None]).T, and
    W_s (4H, K) = W * scale[:, None] where it has rows (the loops' register-sum product
    reads it). (Made again on every call, this took ~16 us at (256, 64), a tenth of it.)"""
    if not compiled.renew(W, seen):
        return
    GH, K = W.shape
    for j in range(GH):
        for k in range(K):
            W_t[k, j] = W[j, k] * scale[j]
    if W_s.shape[0] > 0:
        for j in range(GH):
            for k in range(K):
                W_s[j, k] = W[j, k] * scale[j]


@_jit
def _scale_projection(gates, b_ih, b_hh, scale):
    """gates (T, N, 4H) = scale * (gates + b_ih + b_hh): the projection as the loop takes it
    (the general path's ``x @ (W_ih * scale).T + (b_ih + b_hh) * scale``, the same bits:
    scale is a power of two)."""
    T, N, GH = gates.shape
    b = np.zeros(GH, _f32)
    if b_ih.shape[0] > 0:
        for j in range(GH):
            b[j] = (b_ih[j] + b_hh[j]) * scale[j]
    for t in range(T):
        for n in range(N):
            g = gates[t, n]
            for j in range(GH):
                g[j] = g[j] * scale[j] + b[j]


@_jit
def _project(projection, project, gates, w):
    """With ``project``, the (unscaled) input projection into gates (T, N, 4H) from
    ``projection``: x (T*N, I) and the kept W_ih, W_ih.T of
    :func:`lstmkit.kernels.kept.project_compiled`; then scaled, the biases added."""
    T, N = gates.shape[0], gates.shape[1]
    if project:
        x, W_ih_seen, W_ih_t = projection
        kept.project_compiled(x, w.W_ih, W_ih_seen, W_ih_t, w.b_ih[:0], gates.reshape(T * N, -1))
    _scale_projection(gates, w.b_ih, w.b_hh, w.scale)


@_jit
def _run_panels(x, W_ih, W_hh, b_ih, b_hh, alpha, beta, W_ih_seen, W_ih_t, W_hh_seen, W_panels,
                gates, hy, c0, h_n, c_n):  # fmt: skip
    """:func:`_run` with the loop of :func:`_loop_panels`: x (T*N, I) projected into gates
    (T, N, 4H) with the columns in the panels' order (W_ih_t, W_ih[order].T kept as
    :func:`lstmkit.kernels.kept.project_in_order` keeps it; W_panels of
    :func:`lstmkit.kernels.panels.pack`); hy (T + 1, N, H): h0 in, then y."""
    T, N, GH = gates.shape
    H = GH // 4
    order = panels.columns(H)
    kept.project_in_order(x, W_ih, order, W_ih_seen, W_ih_t, gates.reshape(T * N, GH))
    scale, bias = _scale_in_order(b_ih, b_hh, order)
    panels.pack(W_hh, W_hh_seen, W_panels)
    c_ring = np.empty((2, N, H), _f32)
    c_ring[0] = c0
    z = gates.reshape(T, N, GH // panels.PANEL, panels.PANEL)
    _loop_panels(z, hy, c_ring, W_panels, (scale, bias, alpha, beta), h_n, c_n)


@_jit
def _scale_in_order(b_ih, b_hh, order):
    """(scale, bias), (H / CELLS, PANEL) each, in the order ``order`` of the gates' columns
    (:func:`lstmkit.kernels.panels.columns`): the scale s of each column's gate and
    (b_ih + b_hh) * s (zeros without biases), as :func:`_scale_projection` makes them."""
    GH = order.shape[0]
    H = GH // 4
    s = np.empty(GH, _f32)
    b = np.zeros(GH, _f32)
    for j in range(GH):
        o = order[j]
        s[j] = panels.gate_scale(o // H)
        if b_ih.shape[0] > 0:
            b[j] = (b_ih[o] + b_hh[o]) * s[j]
    shape = (GH // panels.PANEL, panels.PANEL)
    return s.reshape(shape), b.reshape(shape)


@_jit
def _run(projection, project, gates, h_prev, y, c_prev, tanh_c, w, c0, h_n, c_n, W_hh_seen,
         W_hh_t, W_hh_s):  # fmt: skip
    """One layer's loop, as :func:`lstmkit.kernels.compiled.forward_sequence` with the
    plain cell on all rows: with ``project`` the (unscaled) input projection first
    (``projection``: x (T*N, I) and the kept W_ih, W_ih.T of
    :func:`lstmkit.kernels.kept.project_compiled`), the weights prepared from ``w``'s live
    arrays."""
    T, N = gates.shape[0], gates.shape[1]
    H = w.W_hh.shape[1]
    _project(projection, project, gates, w)
    _refresh(w.W_hh, w.scale, W_hh_seen, W_hh_t, W_hh_s)
    c_prev[0] = c0
    seq = (gates, h_prev, c_prev, tanh_c, y)
    no = np.empty((0, H), _f32)
    k = (w.scale, w.alpha, w.beta, 0)
    steps = (np.arange(T), np.ones((T, N), np.uint8))
    e = np.empty(0, _f32)
    peep = (e, e, e, e, e, e)
    compiled._forward_sequence_plain(seq, y, (W_hh_s, W_hh_t, no, no), k, peep, steps,
                                    (h_n, c_n), 0, N)  # fmt: skip


@_inline
def _cells(s, alpha, beta, c_prev, c_out, tanh_c, m, n, b):
    """Row n, the cells of panel b from their sums s (:func:`lstmkit.kernels.panels.
    panel_sums`): the plain cell of :func:`lstmkit.kernels.lstm_cell.cell_forward`,
    i, f, g, o = gate(s) and c = f * c_prev + i * g, m = o * tanh(c) (alpha, beta in the
    panels' order, loaded: as constants, LLVM folds them otherwise than the general path's
    loop and the bits differ; tanh_c (N, H) is written as the general path's tape: without
    that store, LLVM reassociates ``o * tanh(c)`` and rounds otherwise)."""
    C = panels.CELLS
    for c in range(C):
        j = b * C + c
        i = gate(s[c], alpha[b, c], beta[b, c])
        f = gate(s[C + c], alpha[b, C + c], beta[b, C + c])
        g = gate(s[2 * C + c], alpha[b, 2 * C + c], beta[b, 2 * C + c])
        o = gate(s[3 * C + c], alpha[b, 3 * C + c], beta[b, 3 * C + c])
        c_j = f * c_prev[n, j] + i * g
        t = tanh(c_j)
        c_out[n, j] = c_j
        tanh_c[n, j] = t
        m[n, j] = o * t


@_jit
def _loop_panels(z_all, hy, c_ring, W_panels, constants, h_n, c_n):
    """The loop of :func:`lstmkit.kernels.compiled._forward_sequence_plain` (no padding, all
    rows) with the recurrent product of :mod:`lstmkit.kernels.panels` and each panel's
    cells computed from its sums in registers: z_all (T, N, H / CELLS, PANEL) the unscaled
    projection in the panels' order, scaled as the sums start; ``constants``: (scale,
    bias, alpha, beta), (H / CELLS, PANEL) each in that order; hy (T + 1, N, H) h0 in, then
    y out; c_ring (2, N, H), c0 in c_ring[0]; (h_n, c_n) (N, H) out."""
    scale, bias, alpha, beta = constants
    T = z_all.shape[0]
    N, H = h_n.shape
    s, u = panels.sums(), panels.sums()
    tanh_c = np.empty((N, H), _f32)
    for t in range(T):
        z, h, m = z_all[t], hy[t], hy[t + 1]
        c_in = c_ring[t & 1]
        c_out = c_ring[(t + 1) & 1] if t + 1 < T else c_n
        for p in range(N // 2):
            n = 2 * p
            for b in range(H // panels.CELLS):
                _start(z, scale, bias, n, b, s)
                _start(z, scale, bias, n + 1, b, u)
                panels.add_panel_pair(h, W_panels, n, b, s, u)
                _cells(s, alpha, beta, c_in, c_out, tanh_c, m, n, b)
                _cells(u, alpha, beta, c_in, c_out, tanh_c, m, n + 1, b)
        if N % 2:
            for b in range(H // panels.CELLS):
                _start(z, scale, bias, N - 1, b, s)
                panels.add_panel(h, W_panels, N - 1, b, s)
                _cells(s, alpha, beta, c_in, c_out, tanh_c, m, N - 1, b)
    for n in range(N):
        for j in range(H):
            h_n[n, j] = hy[T, n, j]


@_inline
def _start(z, scale, bias, n, b, s):
    """s = panel b's projection of row n scaled and the biases added, as
    :func:`_scale_projection` does (``g * scale + bias``: the same bits)."""
    for q in range(panels.PANEL):
        s[q] = z[n, b, q] * scale[b, q] + bias[b, q]
