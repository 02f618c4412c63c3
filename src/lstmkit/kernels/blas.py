"""NumPy's own BLAS ``sgemm``, callable from numba-compiled loops, and the product built on it.

A loop over time that calls BLAS from Python pays ~5 us per call; a compiled loop that
calls ``cblas_sgemm`` directly pays nothing extra, so the whole time loop (products and
gates) can be one compiled call. The function is looked up in the BLAS library NumPy
loaded (found by threadpoolctl): ``scipy_cblas_sgemm64_`` in NumPy's wheels (OpenBLAS,
64-bit integers), or ``cblas_sgemm64_``. Without threadpoolctl or such a symbol, importing
this module raises ImportError and the callers keep their other paths.

``product`` cuts a product into blocks of at most 32 x 128 x 192 (rows x inner x columns)
when the right-hand matrix fits in L2-sized memory: OpenBLAS then runs its small-matrix
kernel, which skips packing the matrices. Measured here (one core, SkylakeX kernel on an
AMD EPYC): (32, 256) @ (256, 512) 80 -> 114 GFLOP/s, (64, 512) @ (512, 1024) 78 -> 108,
(64, 2048) @ (2048, 256) 92 -> 110; for an 8 MB right-hand matrix no consistent gain.

Compiled code calls the function by a fixed name bound at import (``llvmlite``'s symbol
table), not through a ctypes pointer, so numba can cache it and its callers on disk.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

ROW_MAJOR, NO_TRANS = 101, 111
BLOCK_ROWS, BLOCK_INNER, BLOCK_COLS = 32, 128, 192
BLOCKED_UP_TO = 4 * 2**20  # bytes of the right-hand matrix up to which blocks pay
SYMBOL = "lstmkit_cblas_sgemm"  # the name compiled code calls; bound at import


def _bind_sgemm() -> None:
    """Bind SYMBOL to the ``cblas_sgemm`` (64-bit integers) of the BLAS NumPy loaded."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError as e:
        raise ImportError("lstmkit.kernels.blas needs threadpoolctl") from e
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        lib = ctypes.CDLL(info["filepath"])
        for name in ("scipy_cblas_sgemm64_", "cblas_sgemm64_"):
            fn = getattr(lib, name, None)
            if fn is not None:
                llvm.add_symbol(SYMBOL, ctypes.cast(fn, ctypes.c_void_p).value)
                return
    raise ImportError("no cblas_sgemm with 64-bit integers in the BLAS library NumPy uses")


_bind_sgemm()


@intrinsic
def _sgemm(typingctx, M, C, K, alpha, a, lda, b, ldb, beta, out, ldo):
    """cblas_sgemm(row-major, no transposes, ...) on data addresses (ints): a call by name
    (SYMBOL), so the compiled callers can be cached on disk."""
    sig = types.void(M, C, K, alpha, a, lda, b, ldb, beta, out, ldo)

    def codegen(context, builder, signature, args):
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(
            ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64]
        )
        fn = cgutils.get_or_insert_function(builder.module, fnty, SYMBOL)
        i, f, p = types.int64, types.float32, types.uintp
        to = [i, i, i, f, p, i, p, i, f, p, i]
        vals = [context.cast(builder, v, t, u) for v, t, u in zip(args, signature.args, to)]
        for i in (4, 6, 9):  # the data addresses
            vals[i] = builder.inttoptr(vals[i], ptr)
        flags = [ir.Constant(i32, v) for v in (ROW_MAJOR, NO_TRANS, NO_TRANS)]
        builder.call(fn, flags + vals)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _leading(a):
    """BLAS's leading dimension of a 2-D float32 array with unit column stride. (NumPy
    gives a length-1 axis any stride, so only the strides of longer axes are checked.)"""
    rows, cols = a.shape
    if cols > 1 and a.strides[1] != 4:
        raise ValueError("product: expected float32 rows with unit column stride")
    return a.strides[0] // 4 if rows > 1 else max(cols, 1)


@numba.njit(nogil=True, cache=True)
def _call(a, b, out, beta):
    """out = a @ b + beta * out, one BLAS call; each array's rows may be strided views."""
    M, K = a.shape
    C = b.shape[1]
    _sgemm(M, C, K, 1.0, a.ctypes.data, _leading(a), b.ctypes.data, _leading(b), beta,
           out.ctypes.data, _leading(out))  # fmt: skip


@numba.njit(nogil=True, cache=True)
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
