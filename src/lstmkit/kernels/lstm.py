"""The LSTM's loop over time for one layer and one direction, fused (float32, numba).

Same math, inputs and outputs as the reference loop (``lstmkit.nn.time_loop`` over
``lstmkit.nn.cells.LSTMCell``); the layer chooses between the two (``lstmkit.nn.strategy``).
What differs is how the work is laid out (the crossovers are fields of
:class:`lstmkit.kernels.execution.Execution`, written ``ex.`` below):

* every array is allocated once per call (or reused from the caller's workspace), as a
  (T, N, ·) block; the loop writes into views of it (no per-step allocation, and the tape
  is those blocks, not T caches);
* the gates' pointwise work is the compiled cell of :mod:`lstmkit.kernels.lstm_cell`;
* from ``N * P * 4H >= ex.split_from`` and without projection: the loops of
  :mod:`lstmkit.kernels.cell_split`, one compiled call per thread, each thread owning a
  block of cells and calling BLAS for its columns of every step's products (the input
  projection too, while ``W_ih`` stays small enough to stay in cache);
* otherwise the input projection ``x @ W_ih.T + b_ih + b_hh`` is one GEMM over all T*N
  rows, and the loop adds the recurrent product into it in place: the whole loop is one
  compiled call with its own matrix products (small sizes, where Python's ~5 us per step
  would dominate); beyond (``rows * P * 4H > ex.small``, ``ex.small_backward`` backward)
  the loop calls BLAS per step; large batches are split across threads, each running the
  whole loop on its own sequences (:mod:`lstmkit.kernels.parallel`);
* after the backward loop, ``dW_ih``, ``dW_hh``, ``dW_hr``, the biases and ``dx`` are
  single GEMMs (or sums) over all T*N rows; only ``dz @ W_hh`` (and ``dh @ W_hr``) stay in
  the loop.

Variable lengths follow the reference: on padded steps (``mask`` False) the state is
carried unchanged and the output is zero.

The recurrent regularisers come as in the reference, masks drawn by the layer in ``p``
(``x_mask``, ``h_mask``, ``zoneout_h``, ``zoneout_c``: see :mod:`lstmkit.nn.time_loop`):
x times ``x_mask`` before the projection (the tape keeps the masked x, ``dx`` is multiplied
back), and the rest inside the loops, as loop bits of their flags (H_DROPOUT, ZONEOUT_H,
ZONEOUT_C of :mod:`lstmkit.kernels.lstm_cell`; the cells never see them): the h entering
``W_hh`` times ``h_mask`` (the tape keeps h unmasked; ``dW_hh`` uses it masked), and the
zoned states. Every layout runs them (the loops split by cells: recurrent dropout without
the transposed forward product).

Layer norm (``layer_norm``, the cell bit LAYER_NORM) runs on the loops over rows only (each
row's 4H gates in one place), never on the loops split by cells: the input's norm after the
projection, the recurrent product's and c's in the loops, their backward and the gains'
gradients are :mod:`lstmkit.kernels.layer_norm`'s; the tape keeps the norms (``norms``).
From ``ex.split_from`` (where the plain cell would take the loops split by cells, which
call BLAS) the compiled loop over rows calls BLAS for its recurrent products too (the loop
bit BLAS_PRODUCTS; never for the other cells, whose results stay bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from lstmkit.kernels import compiled, layer_norm, parallel, sequence
from lstmkit.kernels.execution import DEFAULT, Execution
from lstmkit.kernels.layer_norm import Gains, Norms
from lstmkit.kernels.lstm_cell import (
    BLAS_PRODUCTS,
    H_DROPOUT,
    LAYER_NORM,
    ZONEOUT_C,
    ZONEOUT_H,
    GateConstants,
    gate_constants,
    peepholes_of,
)
from lstmkit.kernels.structs import (
    HC,
    GateColumns,
    Part,
    Recurrent,
    Regularisers,
    Sequence,
    Steps,
)

Params = dict[
    str, np.ndarray
]  # {"W_ih": (4H, I), "W_hh": (4H, P), "b_ih", "b_hh": (4H,), "W_hr": (P, H)}
State = tuple[np.ndarray, ...]  # (h (N, P), c (N, H))


def split4(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The i, f, g, o column blocks of a (..., 4H) array, as views."""
    H = a.shape[-1] // 4
    return a[..., :H], a[..., H : 2 * H], a[..., 2 * H : 3 * H], a[..., 3 * H :]


def _split_loops() -> Any:
    """The module :mod:`lstmkit.kernels.cell_split`, or None where NumPy's BLAS has no
    ``cblas_sgemm`` (see :mod:`lstmkit.kernels.blas`)."""
    try:
        from lstmkit.kernels import cell_split
    except ImportError:
        return None
    return cell_split


class FusedTape(NamedTuple):
    """What the backward pass needs from the forward pass of one direction."""

    x: np.ndarray  # (T, N, I) the layer's input
    h_prev: np.ndarray  # (T, N, P) the hidden state entering each step
    c_prev: np.ndarray  # (T, N, H) the cell state entering each step
    gates: np.ndarray  # (T, N, 4H) the gate activations i, f, g, o
    tanh_c: np.ndarray  # (T, N, H) tanh of the step's new cell state
    m: np.ndarray  # (T, N, H) o * tanh_c (the projection's input; y itself without one)
    mask: np.ndarray | None  # (T, N, 1) bool, True on valid steps
    reverse: bool
    flags: int  # the cell's option bits (lstm_cell.GateConstants.flags)
    noise: dict[str, np.ndarray] | None = None  # the regularisers' masks of ``p``, as given
    norms: Norms | None = None  # with layer_norm: the norms' a_hat and rstd

    def sequence(self) -> Sequence:
        """The arrays over time, as the compiled loops take them."""
        return Sequence(self.gates, self.h_prev, self.c_prev, self.tanh_c, self.m)

    def fields(self) -> dict[str, np.ndarray]:
        """The reference cell's cache fields stacked over time, (T, N, ·) views (for
        ``layer.activations()``): i, f, g, o, c_prev, tanh_c, m; and with recurrent dropout
        h_prev, the h W_hh saw (masked, as the reference's tape keeps it)."""
        i, f, g, o = split4(self.gates)
        out = {"i": i, "f": f, "g": g, "o": o, "c_prev": self.c_prev, "tanh_c": self.tanh_c,
               "m": self.m}  # fmt: skip
        if self.noise is not None and "zoneout_h" in self.noise:  # self.m may be the zoned h
            out["m"] = o * self.tanh_c  # the cell's product, the same rounding
        if self.noise is not None and "h_mask" in self.noise:
            out["h_prev"] = self.h_prev * self.noise["h_mask"]
        if self.norms is not None:
            out.update(self.norms.fields())
        return out


NOISE = ("x_mask", "h_mask", "zoneout_h", "zoneout_c")  # the masks a ``p`` may carry


_NO_REGULARISERS = Regularisers(
    np.empty((0, 0), np.float32), np.empty((0, 0, 0), np.float32), np.empty((0, 0, 0), np.float32)
)


def regularisers(noise: dict[str, np.ndarray] | None, P: int, H: int) -> tuple[Regularisers, int]:
    """The masks of ``noise`` as the compiled loops read them, and the loop bits that are on:
    zoneout's keep masks (T, N, .) in training, one (1, 1, .) row of the rate in evaluation
    (P for h, H for c)."""
    if not noise:
        return _NO_REGULARISERS, 0
    h_mask = noise.get("h_mask")
    bits = 0 if h_mask is None else H_DROPOUT
    keep: list[np.ndarray] = []
    for name, bit, size in (("zoneout_h", ZONEOUT_H, P), ("zoneout_c", ZONEOUT_C, H)):
        k = noise.get(name)
        if k is None:
            keep.append(np.empty((0, 0, 0), np.float32))
            continue
        bits |= bit
        k = np.asarray(k, np.float32)
        keep.append(np.ascontiguousarray(k) if k.ndim == 3 else np.full((1, 1, size), k))
    mask = np.empty((0, 0), np.float32) if h_mask is None else np.ascontiguousarray(h_mask)
    return Regularisers(mask, keep[0], keep[1]), bits


def _blas_bit(rows: int, P: int, GH: int, ex: Execution, norms: Norms | None) -> int:
    """BLAS_PRODUCTS if the compiled loop over ``rows`` sequences calls BLAS for its matrix
    products (else 0): with layer norm, from ``ex.split_from``, where the plain cell's loops
    split by cells do (they cannot hold a row's norm); never for the other cells (their
    results stay those of the loops' own products)."""
    on = norms is not None and compiled.HAS_BLAS and rows * P * GH >= ex.split_from
    return BLAS_PRODUCTS if on else 0


def _run_parts(part: Callable[[int], None], n: int, flags: np.ndarray) -> None:
    """part(q) for q < n, one thread each, threads that wait for each other's step counters
    in ``flags``. If one raises, the others stop waiting (setting every counter past the
    end) instead of hanging; the error propagates."""

    def guarded(q: int) -> None:
        try:
            part(q)
        except BaseException:
            flags[:] = np.iinfo(np.int64).max
            raise

    parallel.run(guarded, range(n), one_blas_thread=True)


def forward(
    p: Params,
    x: np.ndarray,
    state: State,
    mask: np.ndarray | None = None,
    reverse: bool = False,
    ex: Execution = DEFAULT,
    workspace: sequence.Workspace | None = None,
    keep_tape: bool = True,
    out: np.ndarray | None = None,
    **options: bool,
) -> tuple[np.ndarray, State, FusedTape | None]:
    """Run the LSTM over x (T, N, I) from state (h (N, P), c (N, H)).

    ``options``: the cell's, as :func:`lstmkit.kernels.lstm_cell.gate_constants` takes them
    (``forget_gate``, ``peepholes``, ...); with peepholes, ``p`` holds ``w_ci``, ``w_cf``,
    ``w_co`` (H,). The regularisers' rates (``recurrent_dropout``, ``zoneout_c``,
    ``zoneout_h``) may be among them; their masks are in ``p`` (see the module doc). With
    ``layer_norm``, ``p`` holds the norms' gains and shifts (``ln_ih_g``, ``ln_ih_b``, ...,
    :mod:`lstmkit.kernels.layer_norm`) instead of ``b_ih``, ``b_hh``, and the loops over
    rows run (each row of 4H gates in one place).

    Returns y (T, N, P), the final (h, c) and the tape. ``ex``: the crossovers and thread
    limit (see :class:`lstmkit.kernels.execution.Execution`). ``workspace``: a dict kept by
    the caller from call to call, whose arrays the tape reuses (so a tape is valid until the
    next call with the same workspace; y and the states are always new arrays, y a view of
    ``out`` when given).
    ``keep_tape=False`` (inference): the tape is None, and the split loops keep only two
    steps of gates and cell states, in arrays private to each thread (less memory and
    memory traffic, and threads writing neighbouring columns of one array slow each other
    down; measured per thread at (32, ., 128, 256), the pointwise part of a step: 27 us
    writing the tape, 20 on shared two-step rings, 12 on private ones). ``out``: a
    (T + 2, N, P) view that y is written into, as :func:`sequence.outputs_and_inputs`
    lays it out (a bidirectional layer's output without a concatenation).
    """
    T, N, I = x.shape
    W_hh = p["W_hh"]  # (4H, P)
    GH, P = W_hh.shape
    H = GH // 4
    dtype = x.dtype
    k = gate_constants(H, **options)
    peep = peepholes_of(p, k.scale)
    noise = {name: p[name] for name in NOISE if name in p} or None
    if noise is not None and "x_mask" in noise:  # the tape keeps the x W_ih saw
        x = np.multiply(x, noise["x_mask"], out=sequence.empty(workspace, "x_seen", x.shape, dtype))

    b = (p["b_ih"] + p["b_hh"]) * k.scale if "b_ih" in p else None  # scaled: see kernels
    W_hr_t = np.ascontiguousarray(p["W_hr"].T) if "W_hr" in p else None  # (H, P)

    norms = layer_norm.empty_norms(T, N, H, workspace) if k.flags & LAYER_NORM else None
    split = _split_loops() if W_hr_t is None and N * P * GH >= ex.split_from else None
    split = None if norms is not None else split  # the norms need each row's 4H gates
    # (with recurrent dropout, not transposed: the h W_hh sees is masked)
    transposed = split is not None and W_hh.nbytes > ex.transposed_from
    transposed = transposed and (noise is None or "h_mask" not in noise)
    # the split loops project x step by step (not with transposed products)
    in_loop = p["W_ih"].nbytes <= ex.project_in_loop and not transposed
    ring = 2 if split is not None and not keep_tape else T  # steps kept of the tape's arrays
    # inference: each thread projects x for its cells before its loop, into its own array
    own = ring < T and (transposed or p["W_ih"].nbytes > ex.project_in_loop_inference)
    in_loop = in_loop and not own
    gates = sequence.empty(workspace, "gates", (ring if in_loop or own else T, N, GH), dtype)
    y, h_prev = sequence.outputs_and_inputs(workspace, T, N, P, dtype, reverse, mask is None, out)
    c_prev = sequence.empty(workspace, "c_prev", (ring, N, H), dtype)
    tanh_c = sequence.empty(workspace, "tanh_c", (ring, N, H), dtype)
    # m is y, unless h is W_hr m, or y is zero on padded steps (with zoneout on h, the loops
    # zone y in place: m, needed by the projection only, is then o * tanh_c in the tape's
    # fields; measured at (32, 100, 128, 256), the forward 1 ms faster than with m apart)
    separate_m = W_hr_t is not None or mask is not None
    m = sequence.empty(workspace, "m", (ring, N, H), dtype) if separate_m else y
    h_n = np.empty((N, P), dtype)
    c_n = np.empty((N, H), dtype)
    order = sequence.time_order(T, reverse)
    h_prev[order[0]] = state[0]
    c_prev[order[0] % ring] = state[1]
    tape = FusedTape(x, h_prev, c_prev, gates, tanh_c, m, mask, reverse, k.flags, noise, norms)
    gains = None
    if norms is not None:  # the scale folded into the norms' gains and shifts
        sequence.project(x, p["W_ih"], None, gates, ex)
        gains = layer_norm.project_input(gates, p, k.scale, norms)
    elif split is None or not (in_loop or own):
        # (not kept in the workspace: needed for this product only, and a (4H, I) array
        # kept per layer-direction is 2 MB each of a bidirectional layer of 256 at I = 512)
        W_ih_s = np.multiply(p["W_ih"], k.scale[:, None])
        sequence.project(x, W_ih_s, b, gates, ex)
    if split is not None:
        W_ih_in_loop = p["W_ih"] if in_loop or own else None
        args = (split, tape, W_ih_in_loop, W_hh, b, k, peep, order, y, (h_n, c_n), ex)
        _forward_cells(*args, transposed, own, workspace, None if keep_tape else workspace)
    else:
        scale = k.scale if norms is None else None
        _forward_rows(tape, W_hh, scale, W_hr_t, k, peep, order, y, (h_n, c_n), ex, gains,
                      workspace)  # fmt: skip
    return y, (h_n, c_n), tape if keep_tape else None


def _forward_cells(
    split: Any,
    tape: FusedTape,
    W_ih: np.ndarray | None,
    W_hh: np.ndarray,
    b: np.ndarray | None,
    k: GateConstants,
    peep: tuple[np.ndarray, ...],
    order: list[int],
    y: np.ndarray,
    final: State,
    ex: Execution,
    transposed: bool = False,
    own: bool = False,
    workspace: sequence.Workspace | None = None,
    kept: sequence.Workspace | None = None,
) -> None:
    """The loop of :mod:`lstmkit.kernels.cell_split`, each thread owning a block of cells; with
    ``W_ih`` (4H, I) it projects x step by step (``own``: each thread projects all steps for
    its cells before its loop, one GEMM, into its own array, reused from ``workspace``),
    without it ``tape.gates`` holds the scaled projection; ``b`` scaled. Each thread copies
    its gates' columns of the weights, scaled (see kernels), in its own thread
    (``transposed``: its gates' rows of W_hh, for the transposed recurrent product). Fills
    the tape, y (T, N, P) and the final state; a tape whose ``c_prev`` keeps two steps
    (``keep_tape=False``) is only a template: each thread runs on its own rings of two
    steps, zeros but its cells' initial c. ``kept`` (inference): a workspace where the
    threads' weight columns stay from call to call, made again only where ``W_ih`` or
    ``W_hh`` changed (:func:`_kept_columns`; making them took ~100 us of a ~4 ms
    (16, 100, 64, 128) call)."""
    x, h_prev, c_prev, gates, tanh_c, m, mask = tape[:7]
    T, N, _ = x.shape
    GH, P = W_hh.shape
    H = GH // 4
    flags = split.flags(max(parallel.most_threads(ex), 1))
    training = c_prev.shape[0] == T and kept is None and not own
    parts = _forward_parts(N, H, W_hh.nbytes, T * N * P * GH, ex, flags, transposed, training)
    reg, bits = regularisers(tape.noise, P, H)
    b_s = np.zeros(GH, x.dtype) if b is None else b
    x_c = np.ascontiguousarray(x)
    h_n, c_n = final
    valid = sequence.valid_steps(mask, T, N)
    h_rows = np.empty((2, P, N) if transposed else (0, 0, 0), x.dtype)  # h transposed
    if transposed:
        h_rows[0] = h_prev[order[0]].T
    layout = np.array([c for w in parts for c in (w.c0, w.c1)] + [transposed, W_ih is None])
    reuse = _kept_columns(kept, (W_ih, W_hh), layout, len(parts))

    def part(q: int) -> None:  # the loop over time for the cells and rows of parts[q]
        c0, c1 = parts[q].c0, parts[q].c1
        rows = np.r_[c0:c1, H + c0 : H + c1, 2 * H + c0 : 2 * H + c1, 3 * H + c0 : 3 * H + c1]
        if reuse and kept is not None:
            W_x, W_h = kept[f"split_W_x{q}"], kept[f"split_W_h{q}"]
        else:
            W_x, W_h = _gate_weights(split, W_ih, W_hh, k.scale, c0, c1, rows, transposed)
            if kept is not None:
                kept[f"split_W_x{q}"], kept[f"split_W_h{q}"] = W_x, W_h
        pre = None
        if own:  # (T, N, 4 * (c1 - c0)), the biases added step by step in the loop
            pre = sequence.empty(workspace, f"pre{q}", (T, N, rows.size), x.dtype)
            np.matmul(x_c.reshape(T * N, -1), W_x, out=pre.reshape(T * N, rows.size))
            W_x = W_x[:0]
        gates_q, c_prev_q, tanh_c_q, m_q = _rings(tape, T, len(parts), W_ih is not None)
        split.forward(
            parts[q],
            x_c,
            GateColumns(W_x, W_h, b_s[rows], k.alpha[rows], k.beta[rows], k.flags, peep),
            Steps(sequence.order_array(order), valid),
            Sequence(gates_q, h_prev, c_prev_q, tanh_c_q, m_q),
            y,
            HC(h_n, c_n),
            h_rows,
            reg,
            bits,
            pre,
        )

    _run_parts(part, len(parts), flags)


def _forward_parts(
    N: int,
    H: int,
    W_hh_bytes: int,
    work: int,
    ex: Execution,
    flags: np.ndarray,
    transposed: bool,
    training: bool,
) -> list[Part]:
    """The threads' shares of the split loop: in training (the tape's arrays written
    whole), where a thread's whole ``W_hh`` stays in its cache (up to
    ``ex.rows_forward_up_to`` bytes), blocks of rows, every cell (no wait per step, each
    thread copying all of the scaled weights; the products row by row the same bits as by
    cells); else blocks of cells, every row, waiting for each other's h at every step
    (``flags``, the counters). Inference keeps the cells (its rings, own projections and
    kept weights are per cell block)."""
    cells = parallel.cell_blocks(H, work, ex)
    if training and len(cells) > 1 and W_hh_bytes <= ex.rows_forward_up_to and not transposed:
        rows = parallel.parts(N, work, ex)
        if len(rows) > 1:  # (one part each: the counters are not used)
            return [Part(0, 1, 0, H, flags, r.start, r.stop) for r in rows]
    return [Part(q, len(cells), b.start, b.stop, flags, 0, N) for q, b in enumerate(cells)]


def _gate_weights(
    split: Any,
    W_ih: np.ndarray | None,
    W_hh: np.ndarray,
    scale: np.ndarray,
    c0: int,
    c1: int,
    rows: np.ndarray,
    transposed: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The weights of cells c0:c1 (their gates' ``rows``) as a thread of the split loops reads
    them, scaled (see kernels): W_x (I, 4C) of W_ih.T, or (0, 4C) without ``W_ih``; W_h
    (P, 4C) of W_hh.T, or (4C, P) rows of W_hh for the transposed product."""
    W_x = np.empty((0 if W_ih is None else W_ih.shape[1], rows.size), W_hh.dtype)
    if W_ih is not None:
        split.gate_columns(W_ih, scale, c0, c1, W_x)
    if transposed:
        return W_x, W_hh[rows] * scale[rows, None]
    W_h = np.empty((W_hh.shape[1], rows.size), W_hh.dtype)
    split.gate_columns(W_hh, scale, c0, c1, W_h)
    return W_x, W_h


def _kept_columns(
    kept: sequence.Workspace | None,
    weights: tuple[np.ndarray | None, ...],
    layout: np.ndarray,
    parts: int,
) -> bool:
    """Whether ``kept`` holds the split loops' weight columns (``split_W_x{q}``,
    ``split_W_h{q}`` for each of the ``parts``) made from these very ``weights`` (W_ih or
    None, W_hh; compared bit for bit with copies kept beside them, as the parameters are
    updated in place) in this ``layout`` (the cell blocks, transposed, no W_ih). If not,
    the copies and layout are renewed and the columns dropped, for the parts to make again."""
    if kept is None:
        return False
    same = True
    for i, w in enumerate(weights):
        if w is None:
            continue
        seen = kept.get(f"split_seen{i}")
        if seen is None or seen.shape != w.shape:
            kept[f"split_seen{i}"] = w.copy()
            same = False
        elif compiled.renew(w, seen):
            same = False
    old = kept.get("split_layout")
    if old is None or not np.array_equal(old, layout):
        kept["split_layout"] = layout
        same = False
    if not same:
        for q in range(parts):
            kept.pop(f"split_W_x{q}", None)
            kept.pop(f"split_W_h{q}", None)
    return same and all(f"split_W_h{q}" in kept for q in range(parts))


def _rings(
    tape: FusedTape, T: int, parts: int, in_loop: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (gates, c_prev, tanh_c, m) one thread of the split loops writes: the tape's own
    arrays, or (tape without all T steps, one part of several) private copies of its rings
    (gates projected before the loop stay shared: they hold every step's input)."""
    _, _, c_prev, gates, tanh_c, m = tape[:6]
    if c_prev.shape[0] == T or parts == 1:
        return gates, c_prev, tanh_c, m
    m_own = m if m.shape[0] == T else np.empty_like(m)  # m is y without padding
    return (np.empty_like(gates) if in_loop else gates), c_prev.copy(), np.empty_like(tanh_c), m_own


def _keep_at(keep: np.ndarray, t: int, rows: slice) -> np.ndarray:
    """Step t's rows of a zoneout keep mask (T, N, .), or its one row (1, 1, .) in eval."""
    return keep[0, 0] if keep.shape[0] == 1 and keep.shape[1] == 1 else keep[t, rows]


def _forward_rows(
    tape: FusedTape,
    W_hh: np.ndarray,
    scale: np.ndarray | None,
    W_hr_t: np.ndarray | None,
    k: GateConstants,
    peep: tuple[np.ndarray, ...],
    order: list[int],
    y: np.ndarray,
    final: State,
    ex: Execution,
    gains: Gains | None = None,
    workspace: sequence.Workspace | None = None,
) -> None:
    """The loop adding the recurrent product into the projected ``tape.gates``: compiled
    (:mod:`lstmkit.kernels.compiled`) or per step, the batch split across threads. Fills the
    tape, y (T, N, P) and the final state (h_n, c_n). The loops multiply by W_hh (4H, P)
    times ``scale`` (4H,) (see kernels); with layer norm (``gains``, ``scale`` None) by
    W_hh itself, and the product is normalised (:mod:`lstmkit.kernels.layer_norm`)."""
    x, h_prev, c_prev, gates, tanh_c, m, mask = tape[:7]
    T, N, _ = x.shape
    GH, P = W_hh.shape
    dtype = x.dtype
    # W_hh_t (P, 4H) scaled in one pass into reused memory (a product by a power of two:
    # the same bits as scaling first); W_hh_s (4H, P) only where the loops read it (the
    # register-sum product, 256 <= P <= 1024: compiled.matmul_into)
    W_hh_t = sequence.empty(workspace, "W_hh_t", (P, GH), dtype)
    W_hh_s = W_hh
    if scale is None:
        np.copyto(W_hh_t, W_hh.T)
    else:
        np.multiply(W_hh.T, scale, out=W_hh_t)
        W_hh_s = W_hh * scale[:, None] if 256 <= P <= 1024 else np.empty((0, P), dtype)
    valid = sequence.valid_steps(mask, T, N)
    h_n, c_n = final
    reg, bits = regularisers(tape.noise, P, GH // 4)
    norms = tape.norms
    ln = None if norms is None or gains is None else (*norms, *gains)

    def run(rows: slice) -> None:
        """The loop over time for the sequences ``rows``."""
        n = rows.stop - rows.start
        if n * P * GH <= ex.small:
            H = GH // 4
            no_proj = np.empty((0, P), dtype)
            w = Recurrent(W_hh_s, W_hh_t, np.empty((0, H), dtype),
                          no_proj if W_hr_t is None else W_hr_t)  # fmt: skip
            steps = Steps(sequence.order_array(order), valid)
            seq = tape.sequence()
            final_rows = HC(h_n, c_n)
            loop_bits = bits | _blas_bit(n, P, GH, ex, norms)
            compiled.forward_sequence(seq, y, w, k, peep, steps, final_rows, rows, reg, loop_bits,
                                      ln)  # fmt: skip
            return
        hw = np.empty((n, GH), dtype)
        h_seen = np.empty((n, P), dtype) if bits & H_DROPOUT else None
        for s, t in enumerate(order):
            last = s == T - 1
            h_out = h_n[rows] if last else h_prev[order[s + 1], rows]  # the next step's state
            c_out = c_n[rows] if last else c_prev[order[s + 1], rows]
            h_t, c_t, m_t, y_t = h_prev[t, rows], c_prev[t, rows], m[t, rows], y[t, rows]
            if h_seen is not None:  # W_hh sees h_t * h_mask
                np.matmul(np.multiply(h_t, reg.h_mask[rows], out=h_seen), W_hh_t, out=hw)
            else:
                np.matmul(h_t, W_hh_t, out=hw)
            if norms is not None and gains is not None:  # hw = g_hh LN(W_hh h) + b_hh
                layer_norm.affine_rows(hw, gains.g_h, gains.b_h, norms.h_hat[t, rows],
                                       norms.rstd_h[t, rows])  # fmt: skip
            args = (gates[t, rows], hw, k, peep, c_t, c_out, tanh_c[t, rows], m_t)
            compiled.pointwise_forward(*args)
            if norms is not None and gains is not None:  # tanh_c, m from c normalised
                layer_norm.cell_rows(c_out, gates[t, rows], gains.g_c, gains.b_c, k.flags,
                                     norms.c_hat[t, rows], norms.rstd_c[t, rows],
                                     tanh_c[t, rows], m_t)  # fmt: skip
            if bits & ZONEOUT_C:  # c = k c_prev + (1 - k) c
                kc = _keep_at(reg.keep_c, t, rows)
                c_out[...] = kc * c_t + (1.0 - kc) * c_out
            h_new = m_t if W_hr_t is None else np.matmul(m_t, W_hr_t, out=y_t)  # h = W_hr m
            if bits & ZONEOUT_H:  # h = k h_prev + (1 - k) h, in y_t (m_t may be y_t)
                kh = _keep_at(reg.keep_h, t, rows)
                np.add(kh * h_t, (1.0 - kh) * h_new, out=y_t)
                h_new = y_t
            if mask is None:
                h_out[...] = h_new
            else:  # padded steps carry the state and output zeros
                valid_t = mask[t, rows]
                np.copyto(h_out, h_t)
                np.copyto(h_out, h_new, where=valid_t)
                np.copyto(c_out, c_t, where=~valid_t)
                np.multiply(h_new, valid_t, out=y_t)

    def uses_blas(rows: int) -> bool:
        return rows * P * GH > ex.small or _blas_bit(rows, P, GH, ex, norms) > 0

    parallel.split(run, N, T * N * P * GH, ex, uses_blas)


def backward(
    p: Params,
    tape: FusedTape,
    dy: np.ndarray,
    dstate: State,
    grads: Params,
    record: list[np.ndarray] | None = None,
    ex: Execution = DEFAULT,
    workspace: sequence.Workspace | None = None,
) -> tuple[np.ndarray, State]:
    """Backpropagate dy (T, N, P) and the final state's gradient (dh (N, P), dc (N, H)).

    Adds every parameter's gradient into ``grads`` and returns (dx (T, N, I), (dh0, dc0)).
    ``record``: as in :func:`lstmkit.nn.time_loop.backward`; ``ex``, ``workspace`` as in
    :func:`forward`.
    """
    x, mask = tape.x, tape.mask
    T, N, _ = x.shape
    W_hh = p["W_hh"]  # (4H, P)
    GH, P = W_hh.shape
    dtype = x.dtype
    W_hr = p.get("W_hr")  # (P, H)

    dz = sequence.empty(workspace, "dz", (T, N, GH), dtype)  # dL/dz, the pre-activations' gradient
    dh_cell = sequence.empty(
        workspace, "dh_cell", (T if W_hr is not None else 0, N, P), dtype
    )  # for dW_hr
    dh0 = np.array(dstate[0], dtype, order="C")  # in: the final state's gradient, out: h0's
    dc0 = np.array(dstate[1], dtype, order="C")
    order = sequence.time_order(T, tape.reverse)
    peep = peepholes_of(p, gate_constants(GH // 4).scale)
    split = _split_loops() if W_hr is None and record is None and tape.norms is None else None
    if mask is not None:
        dy = dy * mask
    elif split is None:  # (the split loops read dy as it is: one direction's columns of a
        dy = np.ascontiguousarray(dy)  # bidirectional layer's, with no copy)
    ln = None  # with layer norm: (d_c, dz_h), dL/d of c's norm's output and of W_hh h
    if tape.norms is not None:
        ln = (sequence.empty(workspace, "d_c", (T, N, GH // 4), dtype),
              sequence.empty(workspace, "dz_h", (T, N, GH), dtype))  # fmt: skip
    if split is not None:
        _backward_cells(split, tape, dy, W_hh, peep, order, dz, (dh0, dc0), ex)
    else:
        args = (tape, dy, W_hh, W_hr, peep, order, dz, dh_cell, (dh0, dc0), record, ex, p, ln)
        _backward_rows(*args)
    if "w_ci" in p:
        _peephole_grads(tape, dz, grads)
    if tape.norms is not None and ln is not None:  # dz becomes dL/d(W_ih x)
        layer_norm.backward_after_loop(p, tape.norms, dz, ln[0], grads)
    dx = _products(p, tape, dz, dh_cell, grads, ex, workspace, None if ln is None else ln[1])
    if tape.noise is not None and "x_mask" in tape.noise:
        dx *= tape.noise["x_mask"]  # W_ih saw x * x_mask
    return dx, (dh0, dc0)


def _peephole_grads(tape: FusedTape, dz: np.ndarray, grads: Params) -> None:
    """The peephole weights' gradients, sums over steps and rows: i and f saw c_prev, o saw
    the new c (recomputed from the stored gates, c = f c_prev + i g)."""
    i, f, g, _ = split4(tape.gates)
    dz_i, dz_f, _, dz_o = split4(dz)
    c = f * tape.c_prev + i * g
    grads["w_ci"] += np.einsum("tnh,tnh->h", dz_i, tape.c_prev)
    grads["w_cf"] += np.einsum("tnh,tnh->h", dz_f, tape.c_prev)
    grads["w_co"] += np.einsum("tnh,tnh->h", dz_o, c)


def _backward_cells(
    split: Any,
    tape: FusedTape,
    dy: np.ndarray,
    W_hh: np.ndarray,
    peep: tuple[np.ndarray, ...],
    order: list[int],
    dz: np.ndarray,
    dstate: State,
    ex: Execution,
) -> None:
    """The loop back of :mod:`lstmkit.kernels.cell_split`, each thread owning a block of cells:
    fills dz (T, N, 4H); dstate (dh, dc) holds the final state's gradient in, h0's and
    c0's out."""
    x, _, c_prev, gates, tanh_c, _, mask = tape[:7]
    T, N, _ = x.shape
    GH, P = W_hh.shape
    transposed = W_hh.nbytes > ex.transposed_from  # dz passes between threads transposed
    flags = split.flags(max(parallel.most_threads(ex), 1))
    parts = _backward_parts(N, GH // 4, W_hh.nbytes, T * N * P * GH, ex, flags, transposed)
    valid = sequence.valid_steps(mask, T, N)
    dz_rows = np.empty((2, GH, N) if transposed else (0, 0, 0), dz.dtype)

    steps, seq, d0 = Steps(sequence.order_array(order), valid), tape.sequence(), HC(*dstate)
    reg, bits = regularisers(tape.noise, P, GH // 4)
    options = tape.flags | bits

    def part(q: int) -> None:  # the loop back over time for the cells and rows of parts[q]
        split.backward(parts[q], seq, W_hh, steps, dy, dz, d0, dz_rows, options, peep, reg)

    _run_parts(part, len(parts), flags)


def _backward_parts(
    N: int, H: int, W_hh_bytes: int, work: int, ex: Execution, flags: np.ndarray, transposed: bool
) -> list[Part]:
    """The threads' shares of the split loop back: blocks of rows, every cell, where a
    thread's whole ``W_hh`` stays in its cache (up to ``ex.rows_backward_up_to`` bytes: no
    wait per step, the products row by row the same bits as by cells); else (and with the
    ``transposed`` products, which pass dz between the threads) blocks of cells, every row,
    waiting for each other's dz at every step (``flags``, the counters)."""
    cells = parallel.cell_blocks(H, work, ex)
    if len(cells) > 1 and W_hh_bytes <= ex.rows_backward_up_to and not transposed:
        rows = parallel.parts(N, work, ex)
        if len(rows) > 1:  # (one part each: the counters are not used)
            return [Part(0, 1, 0, H, flags, r.start, r.stop) for r in rows]
    return [Part(q, len(cells), b.start, b.stop, flags, 0, N) for q, b in enumerate(cells)]


def _backward_rows(
    tape: FusedTape,
    dy: np.ndarray,
    W_hh: np.ndarray,
    W_hr: np.ndarray | None,
    peep: tuple[np.ndarray, ...],
    order: list[int],
    dz: np.ndarray,
    dh_cell: np.ndarray,
    dstate: State,
    record: list[np.ndarray] | None,
    ex: Execution,
    p: Params | None = None,
    ln: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """The loop back, compiled (:mod:`lstmkit.kernels.compiled`) or per step, the batch split
    across threads: fills dz, dh_cell (with a projection) and ``record``; dstate as in
    :func:`_backward_cells`. With layer norm (``tape.norms``), the gains of ``p`` and
    ``ln`` = (d_c (T, N, H), dz_h (T, N, 4H)) filled: see :func:`backward`."""
    x, _, c_prev, gates, tanh_c, _, mask = tape[:7]
    T, N, _ = x.shape
    GH, P = W_hh.shape
    H = GH // 4
    dtype = x.dtype
    valid = sequence.valid_steps(mask, T, N)
    dh0, dc0 = dstate
    reg, bits = regularisers(tape.noise, P, H)
    norms = tape.norms
    gains = layer_norm.backward_gains(p) if norms is not None and p is not None else None
    ln_all = None if norms is None or gains is None or ln is None else (*norms, *gains, *ln)

    def run(rows: slice) -> None:
        """The loop back over time for the sequences ``rows``."""
        n = rows.stop - rows.start
        if n * P * GH <= ex.small_backward and record is None:
            no_proj = np.empty((0, H), dtype)
            w = Recurrent(W_hh, np.ascontiguousarray(W_hh.T),
                          no_proj if W_hr is None else W_hr, np.empty((0, P), dtype))  # fmt: skip
            steps = Steps(sequence.order_array(order), valid)
            d0 = HC(dh0, dc0)
            flags = tape.flags | bits | _blas_bit(n, P, GH, ex, norms)
            args = (tape.sequence(), w, steps, dy, dz, dh_cell, d0, flags, peep, rows, reg)
            compiled.backward_sequence(*args, ln_all)
            return
        dm_buf = np.empty((n, H), dtype)
        dh, dc = dh0[rows].copy(), dc0[rows].copy()
        dh_prev, dc_prev = np.empty_like(dh), np.empty_like(dc)
        for t in reversed(order):
            dh += dy[t, rows]  # dy is already masked
            if record is not None:
                record[0][t, rows] = dh
                record[1][t, rows] = dc
            dh_t = dh if mask is None else dh * mask[t, rows]
            valid_t = valid[t, rows][:, None]  # 1 on a valid step (uint8)
            if bits & ZONEOUT_H:  # the cell's h had the share 1 - k of the zoned one
                kh = _keep_at(reg.keep_h, t, rows)
                dh_t = dh_t * (1.0 - kh)
            if W_hr is None:  # h = m
                dm = dh_t
            else:  # h = W_hr m
                dh_cell[t, rows] = dh_t
                dm = np.matmul(dh_t, W_hr, out=dm_buf)
            dc_in = dc
            if bits & ZONEOUT_C:  # on valid steps: the cell's c gets (1 - k) dc, c_prev k dc
                kc = _keep_at(reg.keep_c, t, rows) * valid_t
                dc_in = dc * (1.0 - kc)
            if norms is not None and gains is not None and ln is not None:  # m's share of dc
                layer_norm.cell_backward_rows(dm, valid[t, rows], gates[t, rows],
                                              tanh_c[t, rows], gains.g_c, norms.c_hat[t, rows],
                                              norms.rstd_c[t, rows], tape.flags, ln[0][t, rows],
                                              dc_in)  # fmt: skip
            stored = (gates[t, rows], c_prev[t, rows], tanh_c[t, rows])
            compiled.pointwise_backward(dm, dc_in, valid[t, rows], *stored, dz[t, rows],
                                        dc_prev, tape.flags, peep)  # fmt: skip
            if bits & ZONEOUT_C:
                dc_prev += kc * dc
            dz_h = dz[t, rows]  # W_hh h's gradient (back through its norm with layer norm)
            if norms is not None and gains is not None and ln is not None:
                dz_h = ln[1][t, rows]
                layer_norm.normalise_backward_rows(dz[t, rows], gains.g_h, norms.h_hat[t, rows],
                                                   norms.rstd_h[t, rows], dz_h)  # fmt: skip
            np.matmul(dz_h, W_hh, out=dh_prev)
            if bits & H_DROPOUT:  # W_hh saw h_prev * h_mask
                dh_prev *= reg.h_mask[rows]
            if bits & ZONEOUT_H:  # and h_prev's share k of the zoned h
                dh_prev += (kh * valid_t) * dh
            if mask is not None:  # padded steps pass dh through unchanged (dc: the cell)
                dh_prev += dh * ~mask[t, rows]
            dh, dh_prev = dh_prev, dh
            dc, dc_prev = dc_prev, dc
        dh0[rows] = dh
        dc0[rows] = dc

    def uses_blas(rows: int) -> bool:
        big = rows * P * GH > ex.small_backward
        return record is not None or big or _blas_bit(rows, P, GH, ex, norms) > 0

    parallel.split(run, N, T * N * P * GH, ex, uses_blas)


def _products(
    p: Params,
    tape: FusedTape,
    dz: np.ndarray,
    dh_cell: np.ndarray,
    grads: Params,
    ex: Execution,
    workspace: sequence.Workspace | None = None,
    dz_h: np.ndarray | None = None,
) -> np.ndarray:
    """After the loop back: adds dW_ih, dW_hh, the biases' and dW_hr's gradients into
    ``grads`` and returns dx (T, N, I), as GEMMs over all T*N rows, each thread on a block
    of every result's rows. ``dz_h``: W_hh h's gradient where it is not dz's (layer norm)."""
    x, h_prev, _, _, _, m = tape[:6]
    T, N, I = x.shape
    GH, P = p["W_hh"].shape
    H = GH // 4
    W_hr = p.get("W_hr")
    if tape.noise is not None and "h_mask" in tape.noise:  # W_hh saw h_prev * h_mask
        h_seen = sequence.empty(workspace, "h_seen", h_prev.shape, h_prev.dtype)
        h_prev = np.multiply(h_prev, tape.noise["h_mask"], out=h_seen)
    dz_rows, x_rows = dz.reshape(T * N, GH), x.reshape(T * N, I)
    dz_h_rows = dz_rows if dz_h is None else dz_h.reshape(T * N, GH)
    h_rows, dh_rows, m_rows = h_prev.reshape(T * N, P), dh_cell.reshape(-1, P), m.reshape(T * N, H)
    dx = np.empty((T, N, I), x.dtype)
    dx_rows = dx.reshape(T * N, I)
    work = T * N * GH * (2 * I + P)
    n_parts = len(parallel.parts(min(T * N, GH), work, ex))
    # rows of a gradient computed at once: a gate's, or 512, on one thread (a bidirectional
    # layer's direction, or one thread allowed); threads sharing the products each make a
    # temporary of their share only, in one product (blocks cost time: add_product_t)
    grad_rows = max(GRADIENT_ROWS, H) if n_parts == 1 else GH

    def products(i: int) -> None:
        rows, g = parallel.block(T * N, n_parts, i), parallel.block(GH, n_parts, i)
        np.matmul(dz_rows[rows], p["W_ih"], out=dx_rows[rows])  # dx = dz @ W_ih
        add_product_t(grads["W_ih"][g], dz_rows[:, g], x_rows, grad_rows)  # += dz.T @ x
        add_product_t(grads["W_hh"][g], dz_h_rows[:, g], h_rows, grad_rows)
        if "b_ih" in grads:
            db = dz_rows[:, g].sum(axis=0)
            grads["b_ih"][g] += db
            grads["b_hh"][g] += db
        if W_hr is not None:
            r = parallel.block(P, n_parts, i)
            add_product_t(grads["W_hr"][r], dh_rows[:, r], m_rows, grad_rows)

    parallel.run(products, range(n_parts), one_blas_thread=parallel.small(work, ex))
    return dx


GRADIENT_ROWS = 512  # fewest rows of a weight gradient computed in one product


def add_product_t(acc: np.ndarray, a: np.ndarray, b: np.ndarray, rows: int) -> None:
    """acc (G, C) += a.T @ b for a (K, G), b (K, C): a weight's gradient summed over all
    K = T*N rows, ``rows`` of ``acc``'s rows at a time. The same sums in the same order (a
    product's row does not depend on the others: the threads already split these products
    by rows), but the temporary product is a block, not a second copy of the weight (2 MB
    at 4H = 1024, I = 512, one per direction of a bidirectional layer at once, at the
    step's peak of memory). Blocks of fewer than ~512 rows cost time (measured one thread,
    (K, G, C) = (1600, 1024, 512): 18.2 ms whole, 19.0 in blocks of 512 rows, 19.7 of 256,
    21.4 of 128; (3200, 4096, 1024): 293, 302 of 1024, 311 of 512, 329 of 256)."""
    for r in range(0, acc.shape[0], rows):
        acc[r : r + rows] += a[:, r : r + rows].T @ b
