"""numba-compiled float32 versions of :mod:`lstmkit.fast.kernels` (same signatures, same
math: read that module first).

Each kernel makes one pass over the step's rows instead of NumPy's ten. numba's scalar
``tanh`` calls libm and does not vectorise (about 10x slower than NumPy's SIMD ufunc), so
``_tanh`` is a rational approximation built from multiply, add, divide and clamp only,
which LLVM vectorises: Eigen's ``ptanh_float``, accurate to a few float32 ulp.
Importing this module compiles nothing; the first call of each kernel does (cached on disk).
"""

from __future__ import annotations

import numba
import numpy as np

_f32 = np.float32
# Eigen's generic_fast_tanh_float: tanh(x) = x * P(x^2) / Q(x^2) on |x| <= 7.905..., where
# float32's tanh rounds to +-1.
_CLAMP = _f32(7.90531110763549805)
_A1, _A3, _A5 = _f32(4.89352455891786e-03), _f32(6.37261928875436e-04), _f32(1.48572235717979e-05)
_A7, _A9 = _f32(5.12229709037114e-08), _f32(-8.60467152213735e-11)
_A11, _A13 = _f32(2.00018790482477e-13), _f32(-2.76076847742355e-16)
_B0, _B2 = _f32(4.89352518554385e-03), _f32(2.26843463243900e-03)
_B4, _B6 = _f32(1.18534705686654e-04), _f32(1.19825839466702e-06)

_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


@_jit
def _tanh(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * (x2 * (x2 * (x2 * (x2 * (x2 * _A13 + _A11) + _A9) + _A7) + _A5) + _A3) + _A1
    q = x2 * (x2 * (x2 * _B6 + _B4) + _B2) + _B0
    return x * p / q


@_jit
def _cell_forward(z, hw, alpha, beta, c_prev, c, tanh_c, m):
    N, H = c.shape
    for n in range(N):
        for j in range(4 * H):
            z[n, j] = alpha[j] * _tanh(z[n, j] + hw[n, j]) + beta[j]
        for j in range(H):
            i, f, g, o = z[n, j], z[n, H + j], z[n, 2 * H + j], z[n, 3 * H + j]
            c_nj = f * c_prev[n, j] + i * g
            c[n, j] = c_nj
            t = _tanh(c_nj)
            tanh_c[n, j] = t
            m[n, j] = o * t


@_jit
def _cell_backward(dm, dc, gates, c_prev, tanh_c, u, v, dz, dc_prev):
    N, H = dc.shape
    for n in range(N):
        for j in range(H):
            i, f, g, o = gates[n, j], gates[n, H + j], gates[n, 2 * H + j], gates[n, 3 * H + j]
            t = tanh_c[n, j]
            dc_total = dm[n, j] * o * (_f32(1.0) - t * t) + dc[n, j]
            dz[n, j] = dc_total * g
            dz[n, H + j] = dc_total * c_prev[n, j]
            dz[n, 2 * H + j] = dc_total * i
            dz[n, 3 * H + j] = dm[n, j] * t
            dc_prev[n, j] = dc_total * f
        for j in range(4 * H):
            a = gates[n, j]
            dz[n, j] *= a * (u[j] - a) + v[j]


def cell_forward(z, hw, k, c_prev, c, tanh_c, m) -> None:
    """:func:`lstmkit.fast.kernels.cell_forward`, compiled."""
    _cell_forward(z, hw, k.alpha, k.beta, c_prev, c, tanh_c, m)


def cell_backward(dm, dc, gates, c_prev, tanh_c, k, dz, dc_prev) -> None:
    """:func:`lstmkit.fast.kernels.cell_backward`, compiled."""
    _cell_backward(dm, dc, gates, c_prev, tanh_c, k.u, k.v, dz, dc_prev)
