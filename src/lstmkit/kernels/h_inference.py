"""The GRU's and the plain RNN's part of the lean whole-sequence inference
(:mod:`lstmkit.kernels.inference`, which has the entry, the checks and the interface of a
part).

Where :func:`lstmkit.kernels.h_loop.forward` would run its compiled loop over rows in one
block, :func:`layer` does the same arithmetic without its per-call preparation: the input
projection (the same GEMM and bias), then one compiled call (:func:`_run`) that transposes
``W_hh`` into reused memory (only when its bits changed: :func:`lstmkit.kernels.compiled.renew`;
the general path transposes it on every call, ~9 us at (192, 64)) and runs the general
path's loop, ``h_loop._forward``, on the same arrays. So the results are the general
path's bit for bit (``tests/test_inference_cache.py``); the cells' equations stay in
:mod:`lstmkit.kernels.gru_cell` and :mod:`lstmkit.kernels.rnn_cell`.

From ``Execution.transposed_from`` bytes of ``W_hh`` (8 MB: the GRU at H = 1024) the layer
runs instead the loop of :mod:`lstmkit.kernels.h_split`, each thread on a block of cells
with the weights as the products' left matrix, on one thread or two (where the general path
would split the batch across threads): equal to the general path to float32 rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np

from lstmkit.kernels import compiled, h_loop, h_split, kept, parallel, sequence
from lstmkit.kernels.execution import Execution

Params = dict[str, np.ndarray]
STATES = 1  # (h,)

_f32 = np.float32
_NONE = np.empty(0, _f32)
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


class Layer(NamedTuple):
    """One layer's live weights and its cell, as :func:`layer` takes them."""

    W_ih: np.ndarray  # (G*H, I)
    W_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray  # (G*H,), or (0,) without biases
    b_hh: np.ndarray  # (G*H,), zeros without biases (kept: the general path makes them)
    kind: int  # the cell's code, h_loop.KINDS


def layers(params: list[Params], kind: str = "gru") -> tuple[Layer, ...]:
    """Each layer's live weights, ``params[k]`` the k-th layer's ``{"W_ih", "W_hh", "b_ih",
    "b_hh"}`` (the biases optional), for the cell ``kind`` ("gru", "tanh", "relu")."""
    return tuple(
        Layer(p["W_ih"], p["W_hh"], p.get("b_ih", _NONE),
              p["b_hh"] if "b_hh" in p else np.zeros(p["W_hh"].shape[0], _f32), h_loop.KINDS[kind])
        for p in params
    )  # fmt: skip


def one_block(w: Layer, T: int, N: int, ex: Execution) -> bool:
    """Whether this part runs this size: where :func:`lstmkit.kernels.h_loop.forward` runs
    it in one block (not split across threads: :func:`lstmkit.kernels.parallel.parts`), and
    wherever :mod:`lstmkit.kernels.h_split` applies."""
    if h_split.applies(w.W_hh, ex):
        return True
    GH, H = w.W_hh.shape
    ex = h_loop.inference_execution(w.kind, ex, T * N * H * GH)
    return len(parallel.parts(N, T * N * H * GH, ex, lambda rows: rows * H * GH > ex.small_h)) == 1


def layer(
    w: Layer,
    x: np.ndarray,
    state0: tuple[np.ndarray, ...],
    final: tuple[np.ndarray, ...],
    space: sequence.Workspace,
    ex: Execution,
) -> np.ndarray:
    """One layer over x (T, N, I) from (h0,) (N, H): y (T, N, H), a new array; ``final``,
    (h_n,) (N, H), filled."""
    T, N, I = x.shape
    GH, H = w.W_hh.shape
    ex = h_loop.inference_execution(w.kind, ex, T * N * H * GH)  # as the general path's
    if h_split.applies(w.W_hh, ex):
        return h_split.layer(*w, x, state0[0], final[0], space, ex)
    seq, steps, (W_hh_seen, W_hh_t) = _arrays(w, space, T, N)
    compiled_projection = kept.projects_compiled(x, GH, ex)
    if compiled_projection:
        W_ih_kept = kept.kept_transpose(space, "W_ih", w.W_ih)
    else:
        sequence.project(x, w.W_ih, w.b_ih if w.b_ih.size else None, seq[0], ex)
        W_ih_kept = (kept.NONE, kept.NONE)  # (unused)
    projection = (x.reshape(T * N, I), w.W_ih, *W_ih_kept, w.b_ih)
    seq[1][0] = state0[0]  # h_prev
    y = np.empty((T, N, H), _f32)

    def run(rows: slice) -> None:
        _run(projection, compiled_projection, seq, y, w.W_hh, w.b_hh, w.kind, W_hh_seen, W_hh_t,
             steps, final[0], ex.small_h)  # fmt: skip

    blas_in_loop = N * H * GH > ex.small_h
    if (compiled_projection and not kept.single_threaded(T * N, I, GH)) or (
        blas_in_loop and parallel.small(T * N * H * GH, ex)
    ):  # BLAS on one thread, as the general path's
        parallel.run(run, [slice(0, N)], one_blas_thread=True)
    else:
        run(slice(0, N))
    return y


def _arrays(w: Layer, space: sequence.Workspace, T: int, N: int) -> tuple[Any, ...]:
    """The loop's arrays for T steps of N rows, kept in ``space`` while the size is the
    same (looked up once: ~2 us a call where five lookups took ~4): (gates (T, N, G*H),
    h_prev (T, N, H), hw_n (T or 0, N, H)); the steps, in order and all valid ((T,), (T,
    N)); the kept transpose of W_hh (:func:`kept.kept_transpose`)."""
    arrays: Any = space.get("lean_arrays")  # (a tuple kept among the workspace's arrays)
    if arrays is None or arrays[0] != (T, N):
        GH, H = w.W_hh.shape
        seq = (
            sequence.empty(space, "gates", (T, N, GH), _f32),
            sequence.empty(space, "h_prev", (T, N, H), _f32),
            sequence.empty(space, "hw_n", (T if w.kind == h_loop.GRU else 0, N, H), _f32),
        )
        steps = (np.arange(T), np.ones((T, N), np.uint8))
        arrays = ((T, N), seq, steps, kept.kept_transpose(space, "W_hh", w.W_hh))
        space["lean_arrays"] = arrays
    return arrays[1:]


@_jit
def _run(projection, project, seq, y, W_hh, b_hh, kind, W_hh_seen, W_hh_t, steps, h_n, small):
    """One layer's loop, as ``h_loop.forward``'s on all rows in one block: with ``project``,
    the input projection first (``projection``: :func:`kept.project_compiled`'s arguments
    but the gates), then W_hh_t made again from the live W_hh where it changed."""
    gates = seq[0]
    if project:
        x, W_ih, W_ih_seen, W_ih_t, b_ih = projection
        T, N, GH = gates.shape
        kept.project_compiled(x, W_ih, W_ih_seen, W_ih_t, b_ih, gates.reshape(T * N, GH))
    if compiled.renew(W_hh, W_hh_seen):
        for j in range(W_hh.shape[0]):
            for k in range(W_hh.shape[1]):
                W_hh_t[k, j] = W_hh[j, k]
    h_loop._forward(seq, y, (W_hh, W_hh_t, b_hh), steps, h_n, kind, small, 0, y.shape[1])
