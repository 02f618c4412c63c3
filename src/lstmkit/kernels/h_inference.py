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
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from lstmkit.kernels import compiled, h_loop, parallel, sequence
from lstmkit.kernels.execution import Execution

Params = dict[str, np.ndarray]
STATES = 1  # (h,)

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


class Layer(NamedTuple):
    """One layer's live weights and its cell, as :func:`layer` takes them."""

    W_ih: np.ndarray  # (G*H, I)
    W_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray | None  # (G*H,), or None without biases
    b_hh: np.ndarray  # (G*H,), zeros without biases (kept: the general path makes them)
    kind: int  # the cell's code, h_loop.KINDS


def layers(params: list[Params], kind: str = "gru") -> tuple[Layer, ...]:
    """Each layer's live weights, ``params[k]`` the k-th layer's ``{"W_ih", "W_hh", "b_ih",
    "b_hh"}`` (the biases optional), for the cell ``kind`` ("gru", "tanh", "relu")."""
    return tuple(
        Layer(p["W_ih"], p["W_hh"], p.get("b_ih"),
              p["b_hh"] if "b_hh" in p else np.zeros(p["W_hh"].shape[0], _f32), h_loop.KINDS[kind])
        for p in params
    )  # fmt: skip


def one_block(w: Layer, T: int, N: int, ex: Execution) -> bool:
    """Whether :func:`lstmkit.kernels.h_loop.forward` runs this size in one block (not
    split across threads: :func:`lstmkit.kernels.parallel.parts`)."""
    GH, H = w.W_hh.shape
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
    T, N, _ = x.shape
    GH, H = w.W_hh.shape
    gates = sequence.empty(space, "gates", (T, N, GH), _f32)
    sequence.project(x, w.W_ih, w.b_ih, gates, ex)
    h_prev = sequence.empty(space, "h_prev", (T, N, H), _f32)
    h_prev[0] = state0[0]
    hw_n = sequence.empty(space, "hw_n", (T if w.kind == h_loop.GRU else 0, N, H), _f32)
    y = np.empty((T, N, H), _f32)
    seen, W_hh_t = _prepared(w, space)
    steps = _steps(space, T, N)

    def run(rows: slice) -> None:
        _run((gates, h_prev, hw_n), y, w.W_hh, w.b_hh, w.kind, seen, W_hh_t, steps, final[0],
             ex.small_h)  # fmt: skip

    if N * H * GH > ex.small_h:  # BLAS in the loop: on one thread, as the general path's
        parallel.run(run, [slice(0, N)], one_blas_thread=parallel.small(T * N * H * GH, ex))
    else:
        run(slice(0, N))
    return y


def _prepared(w: Layer, space: sequence.Workspace) -> tuple[np.ndarray, np.ndarray]:
    """(seen, the W_hh it was made from; W_hh_t (H, G*H), W_hh.T), kept in ``space`` from
    call to call: made here the first time, again by :func:`_run` whenever W_hh changed."""
    seen = space.get("W_hh_seen")
    if seen is None or seen.shape != w.W_hh.shape:
        space["W_hh_seen"] = w.W_hh.copy()
        space["W_hh_t_kept"] = np.ascontiguousarray(w.W_hh.T)
    return space["W_hh_seen"], space["W_hh_t_kept"]


def _steps(space: sequence.Workspace, T: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """The loop's steps in order and every step valid, (T,) and (T, N) (kept)."""
    valid = space.get("valid_all")
    if valid is None or valid.shape != (T, N):
        space["order_forward"] = np.arange(T)
        space["valid_all"] = valid = np.ones((T, N), np.uint8)
    return space["order_forward"], valid


@_jit
def _run(seq, y, W_hh, b_hh, kind, seen, W_hh_t, steps, h_n, small):
    """One layer's loop, as ``h_loop.forward``'s on all rows in one block, W_hh_t made again
    from the live W_hh first where it changed."""
    if compiled.renew(W_hh, seen):
        GH, H = W_hh.shape
        for j in range(GH):
            for k in range(H):
                W_hh_t[k, j] = W_hh[j, k]
    h_loop._forward(seq, y, (W_hh, W_hh_t, b_hh), steps, h_n, kind, small, 0, y.shape[1])
