"""NumPy's own BLAS ``sgemm``, callable from numba-compiled loops, and the product built on it.

A loop over time that calls BLAS from Python pays ~5 us per call; a compiled loop that
calls ``cblas_sgemm`` directly pays nothing extra, so the whole time loop (products and
gates) can be one compiled call. The function is looked up in the BLAS library NumPy
loaded (found by threadpoolctl): ``scipy_cblas_sgemm64_`` in NumPy's wheels (OpenBLAS,
64-bit integers), ``cblas_sgemm64_`` or ``cblas_sgemm`` elsewhere. Without threadpoolctl or
such a symbol, importing this module raises ImportError and the callers keep their other
paths.

``product`` cuts a product into blocks of at most 32 x 128 x 192 (rows x inner x columns)
when the right-hand matrix fits in L2-sized memory: OpenBLAS then runs its small-matrix
kernel, which skips packing the matrices. Measured here (one core, SkylakeX kernel on an
AMD EPYC): (32, 256) @ (256, 512) 80 -> 114 GFLOP/s, (64, 512) @ (512, 1024) 78 -> 108,
(64, 2048) @ (2048, 256) 92 -> 110; for a 8 MB right-hand matrix blocks gained nothing.

Numba cannot cache a function that holds a ctypes pointer, so these compile at their
first call in each process (about a second).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numba

ROW_MAJOR, NO_TRANS = 101, 111
BLOCK_ROWS, BLOCK_INNER, BLOCK_COLS = 32, 128, 192
BLOCKED_UP_TO = 4 * 2**20  # bytes of the right-hand matrix up to which blocks pay


def _find_sgemm() -> Any:
    try:
        from threadpoolctl import threadpool_info
    except ImportError as e:
        raise ImportError("lstmkit.fast._blas needs threadpoolctl") from e
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        lib = ctypes.CDLL(info["filepath"])
        for name, int_t in [
            ("scipy_cblas_sgemm64_", ctypes.c_int64),
            ("cblas_sgemm64_", ctypes.c_int64),
            ("cblas_sgemm", ctypes.c_int32),
        ]:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            pointer, real, enum = ctypes.c_size_t, ctypes.c_float, ctypes.c_int
            fn.argtypes = [enum, enum, enum, int_t, int_t, int_t, real, pointer, int_t]
            fn.argtypes += [pointer, int_t, real, pointer, int_t]
            fn.restype = None
            return fn
    raise ImportError("no cblas_sgemm in the BLAS library NumPy uses")


_sgemm = _find_sgemm()


@numba.njit(nogil=True)
def _leading(a):
    """BLAS's leading dimension of a 2-D float32 array with unit column stride. (NumPy
    gives a length-1 axis any stride, so only the strides of longer axes are checked.)"""
    rows, cols = a.shape
    if cols > 1 and a.strides[1] != 4:
        raise ValueError("product: expected float32 rows with unit column stride")
    return a.strides[0] // 4 if rows > 1 else max(cols, 1)


@numba.njit(nogil=True)
def _call(a, b, out, beta):
    """out = a @ b + beta * out, one BLAS call; each array's rows may be strided views."""
    M, K = a.shape
    C = b.shape[1]
    _sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, M, C, K, 1.0, a.ctypes.data, _leading(a),
           b.ctypes.data, _leading(b), beta, out.ctypes.data, _leading(out))  # fmt: skip


@numba.njit(nogil=True)
def product(a, b, out, beta):
    """out = a @ b + beta * out for float32 a (M, K), b (K, C), out (M, C) with unit column
    strides; in blocks where that runs faster (see the module doc)."""
    M, K = a.shape
    C = b.shape[1]
    if M * K * C <= 100**3 or K * C * 4 > BLOCKED_UP_TO:  # one call: small, or too large
        _call(a, b, out, beta)
        return
    for j in range(0, C, BLOCK_COLS):
        j1 = min(j + BLOCK_COLS, C)
        for r in range(0, M, BLOCK_ROWS):
            r1 = min(r + BLOCK_ROWS, M)
            for k in range(0, K, BLOCK_INNER):
                k1 = min(k + BLOCK_INNER, K)
                _call(a[r:r1, k:k1], b[k:k1, j:j1], out[r:r1, j:j1], beta if k == 0 else 1.0)
