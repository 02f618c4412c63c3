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
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from lstmkit.kernels import compiled, kept, parallel, sequence
from lstmkit.kernels.execution import Execution
from lstmkit.kernels.lstm_cell import gate_constants

Params = dict[str, np.ndarray]
STATES = 2  # (h, c)

_f32 = np.float32
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


class Layer(NamedTuple):
    """One layer's live weights and gate constants, as :func:`_run` takes them."""

    W_ih: np.ndarray  # (4H, I)
    W_hh: np.ndarray  # (4H, H)
    b_ih: np.ndarray  # (4H,), or (0,) without biases
    b_hh: np.ndarray
    scale: np.ndarray  # (4H,) the gate constants (lstm_cell.gate_constants)
    alpha: np.ndarray
    beta: np.ndarray


def layers(params: list[Params], kind: str = "lstm") -> tuple[Layer, ...]:
    """Each layer's live weights, ``params[k]`` the k-th layer's ``{"W_ih", "W_hh", "b_ih",
    "b_hh"}`` (the biases optional), with the gate constants of its size."""
    k = gate_constants(params[0]["W_hh"].shape[1])
    none = np.empty(0, _f32)
    return tuple(
        Layer(p["W_ih"], p["W_hh"], p.get("b_ih", none), p.get("b_hh", none), *k[:3])
        for p in params
    )


def one_block(w: Layer, T: int, N: int, ex: Execution) -> bool:
    """Whether :func:`lstmkit.kernels.lstm.forward` runs this size on its compiled loop over
    rows in one block (below ``ex.split_from``, not split across threads: see
    :func:`lstmkit.kernels.parallel.parts`)."""
    H = w.W_hh.shape[1]
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
    gates = sequence.empty(space, "gates", (T, N, GH), _f32)
    project = kept.projects_compiled(x, GH, ex)  # else NumPy's GEMM, here
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
    args = (projection, project, gates, hy[:-1], hy[1:], c_prev, tanh_c, w, c0, h_n, c_n, seen,
            W_hh_t, W_hh_s)  # fmt: skip
    if project and not kept.single_threaded(T * N, x.shape[2], GH):
        parallel.run(lambda _: _run(*args), [0], one_blas_thread=True)
    else:
        _run(*args)
    return hy[1:]


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
def _run(projection, project, gates, h_prev, y, c_prev, tanh_c, w, c0, h_n, c_n, W_hh_seen,
         W_hh_t, W_hh_s):  # fmt: skip
    """One layer's loop, as :func:`lstmkit.kernels.compiled.forward_sequence` with the
    plain cell on all rows: with ``project`` the (unscaled) input projection first
    (``projection``: x (T*N, I) and the kept W_ih, W_ih.T of
    :func:`lstmkit.kernels.kept.project_compiled`), the weights prepared from ``w``'s live
    arrays."""
    W_ih, W_hh, b_ih, b_hh, scale, alpha, beta = w
    T, N = gates.shape[0], gates.shape[1]
    H = W_hh.shape[1]
    if project:
        x, W_ih_seen, W_ih_t = projection
        kept.project_compiled(x, W_ih, W_ih_seen, W_ih_t, b_ih[:0], gates.reshape(T * N, -1))
    _refresh(W_hh, scale, W_hh_seen, W_hh_t, W_hh_s)
    _scale_projection(gates, b_ih, b_hh, scale)
    c_prev[0] = c0
    seq = (gates, h_prev, c_prev, tanh_c, y)
    no = np.empty((0, H), _f32)
    k = (scale, alpha, beta, 0)
    steps = (np.arange(T), np.ones((T, N), np.uint8))
    e = np.empty(0, _f32)
    peep = (e, e, e, e, e, e)
    compiled._forward_sequence_plain(seq, y, (W_hh_s, W_hh_t, no, no), k, peep, steps,
                                    (h_n, c_n), 0, N)  # fmt: skip
