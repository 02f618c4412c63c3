"""Weights kept from call to call by the lean inference (:mod:`lstmkit.kernels.inference`),
and its input projection from compiled code.

A part of the lean entry keeps the layouts its loop reads (``W.T`` contiguous, for
``W_ih`` and ``W_hh``) in the layer's workspace, beside a copy of the weights they were
made from; its compiled call makes them again only where the live weights' bits changed
(:func:`lstmkit.kernels.compiled.renew`: parameters are updated in place by optimisers,
``load_state_dict`` and users, so no counter can tell).
"""

from __future__ import annotations

import numba
import numpy as np

from lstmkit.kernels import parallel, sequence
from lstmkit.kernels.compiled import renew
from lstmkit.kernels.execution import Execution

try:  # the projection from compiled code, where NumPy's BLAS offers its sgemm
    from lstmkit.kernels.blas import BLOCK_INNER, product
except ImportError:
    BLOCK_INNER, product = 0, None  # type: ignore[assignment]  # never compiled: NumPy's GEMM


NONE = np.empty((0, 0), np.float32)  # in place of kept weights that are not used
SMALL_PRODUCT = 100**3  # M * K * C up to which blas.product makes one call


def single_threaded(M: int, K: int, C: int) -> bool:
    """Whether :func:`project_compiled`'s product (M, K) @ (K, C) runs on one thread without
    BLAS's thread limit: up to SMALL_PRODUCT multiply-adds it is one ``sgemm`` call without
    transposes, for which OpenBLAS takes its small-matrix kernel (measured here: the same
    CPU time with and without the limit at (100, 32) @ (32, 192), ~13 us, where NumPy's
    call on a transposed W took 150 us of CPU on two threads); setting the limit and back
    costs ~3 us a call."""
    return M * K * C <= SMALL_PRODUCT


def projects_compiled(x: np.ndarray, GH: int, ex: Execution) -> bool:
    """Whether :func:`project_compiled` may stand in for :func:`sequence.project` of x
    (T, N, I) onto G*H columns: where it gives the same bits (BLAS's ``sgemm`` on the whole
    inner dimension, ``I <= blas.BLOCK_INNER``: measured equal to NumPy's GEMM, and held to
    it by ``tests/test_inference_cache.py``) and :func:`sequence.project` would run in one
    block with BLAS on one thread (the caller then holds BLAS on one thread where
    :func:`single_threaded` says it is needed: :func:`lstmkit.kernels.parallel.run`)."""
    T, N, I = x.shape
    work = T * N * I * GH
    return (
        I <= BLOCK_INNER and len(parallel.parts(T * N, work, ex)) == 1 and parallel.small(work, ex)
    )


@numba.njit(cache=True, nogil=True)
def project_compiled(x, W, W_seen, W_t, b, gates):
    """gates (T*N, G*H) = x (T*N, I) @ W.T + b (b of length 0: none), as
    :func:`lstmkit.kernels.sequence.project` but from compiled code (~12 us of a (100, 32)
    @ (32, 192) projection where NumPy's call with BLAS's thread limit took ~24). W_t
    (I, G*H), W (G*H, I) transposed, kept by the caller and made again where W differs
    from W_seen, its copy (see :func:`lstmkit.kernels.compiled.renew`)."""
    if renew(W, W_seen):
        for j in range(W.shape[0]):
            for k in range(W.shape[1]):
                W_t[k, j] = W[j, k]
    product(x, W_t, gates, 0.0)
    if b.shape[0] > 0:
        for r in range(gates.shape[0]):
            for j in range(gates.shape[1]):
                gates[r, j] += b[j]


@numba.njit(cache=True, nogil=True)
def project_in_order(x, W, order, W_seen, W_t, gates):
    """gates (T*N, C) = x (T*N, I) @ W[order].T: :func:`project_compiled` (no bias) with the
    columns in the order ``order`` (C,) int64; W_t (I, C) kept as there, made again where
    W differs from W_seen. (Each column is the same product as in W's own order.)"""
    if renew(W, W_seen):
        for j in range(order.shape[0]):
            for k in range(W.shape[1]):
                W_t[k, j] = W[order[j], k]
    product(x, W_t, gates, 0.0)


def kept_transpose(
    space: sequence.Workspace, name: str, W: np.ndarray, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(a copy of W, W.T contiguous, or W[order].T), kept in ``space`` under ``name`` from
    call to call (the compiled callers make the second again when W changed:
    :func:`project_compiled`, :func:`project_in_order`)."""
    kept = space.get(name + "_seen")
    if kept is None or kept.shape != W.shape:
        space[name + "_seen"] = W.copy()
        space[name + "_t_kept"] = np.ascontiguousarray((W if order is None else W[order]).T)
    return space[name + "_seen"], space[name + "_t_kept"]
