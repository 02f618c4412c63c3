"""The LSTM's pointwise work for one time step, in place on preallocated arrays.

All four gates go through one ``tanh``: with ``sigmoid(z) = 0.5 * tanh(z / 2) + 0.5`` (the
formula of :func:`lstmkit.nn.activations.sigmoid`), every gate is

    a = alpha * tanh(scale * z) + beta          per column of the (N, 4H) pre-activation

with (scale, alpha, beta) = (1/2, 1/2, 1/2) for i, f, o and (1, 1, 0) for g; without a
forget gate f's alpha is 0 and its beta 1, so f = 1 exactly. ``scale`` is folded into the
weights and biases (a power of two, so the products round exactly as before), which
leaves one ``tanh`` and one multiply-add per element. The derivatives come from the
outputs, ``da/dz = a * (u - a) + v`` with (u, v) = (1, 0) for the sigmoid gates
(s (1 - s)) and (0, 1) for g (1 - g^2).

These are the NumPy versions; :mod:`lstmkit.kernels.compiled` compiles the same two functions
for float32. ``select`` returns the pair to use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class GateConstants(NamedTuple):
    """Per-column constants of the (N, 4H) gate block; see the module doc."""

    scale: np.ndarray  # (4H,) folded into W_ih, W_hh and the biases
    alpha: np.ndarray  # (4H,)
    beta: np.ndarray  # (4H,)
    u: np.ndarray  # (4H,)
    v: np.ndarray  # (4H,)


@functools.lru_cache(maxsize=64)
def gate_constants(H: int, forget_gate: bool, dtype: np.dtype) -> GateConstants:
    """The constants of an H-cell layer, read-only and kept from call to call (building
    them took ~10 us, a tenth of a whole small forward)."""

    def per_gate(i: float, f: float, g: float, o: float) -> np.ndarray:
        a = np.repeat(np.array([i, f, g, o], dtype=dtype), H)
        a.flags.writeable = False
        return a

    f_alpha, f_beta = (0.5, 0.5) if forget_gate else (0.0, 1.0)
    return GateConstants(
        scale=per_gate(0.5, 0.5, 1.0, 0.5),
        alpha=per_gate(0.5, f_alpha, 1.0, 0.5),
        beta=per_gate(0.5, f_beta, 0.0, 0.5),
        u=per_gate(1.0, 1.0, 0.0, 1.0),
        v=per_gate(0.0, 0.0, 1.0, 0.0),
    )


def split4(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The i, f, g, o column blocks of an (N, 4H) array, as views."""
    H = a.shape[1] // 4
    return a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]


def cell_forward(
    z: np.ndarray,
    hw: np.ndarray,
    k: GateConstants,
    c_prev: np.ndarray,
    c: np.ndarray,
    tanh_c: np.ndarray,
    m: np.ndarray,
) -> None:
    """One step. z (N, 4H): scaled x-projection in, gates (i, f, g, o) out; hw (N, 4H):
    scaled ``h_prev @ W_hh.T``; c_prev (N, H) in; c, tanh_c, m = o * tanh(c) (N, H) out."""
    z += hw
    np.tanh(z, out=z)
    z *= k.alpha
    z += k.beta
    i, f, g, o = split4(z)
    np.multiply(f, c_prev, out=c)  # c = f * c_prev + i * g
    np.multiply(i, g, out=tanh_c)
    c += tanh_c
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=m)


def cell_backward(
    dm: np.ndarray,
    dc: np.ndarray,
    gates: np.ndarray,
    c_prev: np.ndarray,
    tanh_c: np.ndarray,
    k: GateConstants,
    dz: np.ndarray,
    dc_prev: np.ndarray,
) -> None:
    """One step back. dm = dL/dm and dc = dL/dc from later steps (N, H) in; dz = dL/dz
    (N, 4H) and dc_prev (N, H) out. gates, c_prev, tanh_c: what the forward step stored."""
    i, f, g, o = split4(gates)
    d_i, d_f, d_g, d_o = split4(dz)
    np.multiply(dm, tanh_c, out=d_o)  # dL/do
    dc_total = dm * o  # dL/dc through m = o * tanh(c), plus the later steps' dc
    dc_total *= 1.0 - tanh_c * tanh_c
    dc_total += dc
    np.multiply(dc_total, g, out=d_i)  # dL/di
    np.multiply(dc_total, c_prev, out=d_f)  # dL/df
    np.multiply(dc_total, i, out=d_g)  # dL/dg
    np.multiply(dc_total, f, out=dc_prev)
    da_dz = k.u - gates
    da_dz *= gates
    da_dz += k.v
    dz *= da_dz  # through the nonlinearities, from their outputs


CellForward = Callable[..., None]
CellBackward = Callable[..., None]


def select(dtype: np.dtype) -> tuple[CellForward, CellBackward]:
    """(cell_forward, cell_backward): numba's for float32 when numba imports, else NumPy's.

    float64 stays on NumPy's exact ufuncs (the compiled tanh is accurate to float32 only).
    """
    compiled = compiled_kernels(dtype)
    if compiled is not None:
        return compiled.cell_forward, compiled.cell_backward
    return cell_forward, cell_backward


def split_loops(dtype: np.dtype) -> Any:
    """The module :mod:`lstmkit.kernels.cell_split` for float32 if numba imports and NumPy's BLAS
    has ``cblas_sgemm`` (see :mod:`lstmkit.kernels.blas`), else None."""
    if compiled_kernels(dtype) is None:
        return None
    try:
        from lstmkit.kernels import cell_split
    except ImportError:
        return None
    return cell_split


def compiled_kernels(dtype: np.dtype) -> Any:
    """The module :mod:`lstmkit.kernels.compiled` for float32 if numba imports, else None."""
    if np.dtype(dtype) != np.float32:
        return None
    try:
        from lstmkit.kernels import compiled
    except ImportError:
        return None
    return compiled
