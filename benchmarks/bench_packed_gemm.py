"""One core's float32 GFLOP/s of a time loop's per-step product: NumPy's OpenBLAS against
MKL, unpacked and with the weights packed once (MKL's ``cblas_sgemm_pack``/``_compute``).

Run from the repository root, with MKL unpacked somewhere outside the project's venv::

    pip download --no-deps mkl -d /tmp/mklwhl && unzip -q /tmp/mklwhl/mkl-*.whl -d /tmp/mklwhl/x
    python benchmarks/bench_packed_gemm.py --mkl /tmp/mklwhl/x/mkl-*.data/data/lib/libmkl_rt.so.3

Each product is a step's ``h @ W_hh^T``: (N, H) @ (H, 4H) for the whole layer, and
(N, H) @ (H, 2H) for one of two threads that each own half the gate columns (the split
loops, :mod:`lstmkit.kernels.cell_split`). Every variant runs inside a numba-compiled loop
(no Python between the calls), on one thread (OpenBLAS limited by threadpoolctl, MKL on
its sequential layer), timed in CPU time; the variants are interleaved round by round and
the median round is reported:

* ``openblas``: :func:`lstmkit.kernels.blas.product` (blocked where it blocks), as the
  loops call it;
* ``openblas_t``: the same product as its transpose, the weights as the left matrix
  (``W @ h^T``), as the split loops run it from 8 MB of ``W_hh`` (``Execution.transposed_from``;
  the column ``lstmkit's`` names the way the loops take for the layer's ``W_hh``, and the
  last column compares the faster packed MKL variant with it);
* ``mkl``: MKL's ``cblas_sgemm``, one call;
* ``mkl_packed``: MKL's ``cblas_sgemm_compute`` with ``W`` packed once by
  ``cblas_sgemm_pack`` (outside the timing): the way oneDNN and MLAS reuse their weights;
* ``mkl_packed_t``: the same with the weights as the packed left matrix (``W @ h^T``).
* ``mkl_jit``: MKL's JIT small-matrix kernel (``mkl_cblas_jit_create_sgemm``), where MKL makes one.

Like ``bench_lstm.py`` it re-runs itself without ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE``
(``--keep-blas-env`` keeps them). MKL's own environment (``MKL_ENABLE_INSTRUCTIONS``,
``MKL_CBWR``) passes through; the library MKL chose for its kernels is printed.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (the same BLAS environment handling)

# (N, H) of the loops' products; the rows below 1.0 have H = 256, 512 and 1024
SHAPES = [(16, 128), (32, 256), (64, 512), (16, 256), (64, 1024)]
ROW_MAJOR, NO_TRANS, TRANS, PACKED, A_MATRIX, B_MATRIX = 101, 111, 112, 151, 161, 162
SEQUENTIAL = 1  # mkl_set_threading_layer's MKL_THREADING_SEQUENTIAL


def load_mkl(path: str) -> ctypes.CDLL:
    """MKL's single dynamic library on its sequential threading layer, with the argument
    types of the functions used here (addresses as size_t, so numba passes ints)."""
    lib = ctypes.CDLL(path)
    lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
    lib.MKL_Set_Threading_Layer(SEQUENTIAL)
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_size_t
    lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    lib.cblas_sgemm.restype = None
    lib.cblas_sgemm_pack_get_size.argtypes = [i, i, i, i]
    lib.cblas_sgemm_pack_get_size.restype = p
    lib.cblas_sgemm_pack.argtypes = [i, i, i, i, i, i, f, p, i, p]
    lib.cblas_sgemm_pack.restype = None
    lib.cblas_sgemm_compute.argtypes = [i, i, i, i, i, i, p, i, p, i, f, p, i]
    lib.cblas_sgemm_compute.restype = None
    lib.mkl_cblas_jit_create_sgemm.argtypes = [ctypes.POINTER(ctypes.c_void_p), i, i, i, i, i, i, f,
                                         i, i, f, i]  # fmt: skip
    lib.mkl_cblas_jit_create_sgemm.restype = ctypes.c_int
    lib.mkl_jit_get_sgemm_ptr.argtypes = [ctypes.c_void_p]
    lib.mkl_jit_get_sgemm_ptr.restype = ctypes.c_void_p
    return lib


def mkl_note(lib: ctypes.CDLL) -> str:
    """MKL's version and the kernel library it loaded (``libmkl_def`` is its generic path)."""
    buf = ctypes.create_string_buffer(256)
    lib.mkl_get_version_string(buf, 256)
    version = buf.value.decode().split("Library")[-1].strip()
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "libmkl_" in line}
    kernels = sorted(os.path.basename(x) for x in libs if "_rt." not in x and "_core." not in x)
    env = {k: os.environ[k] for k in ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR") if k in os.environ}
    return f"MKL {version}; libraries {kernels}; environment {env or 'none'}"


def aligned(nbytes: int) -> Any:
    """A float32 array of ``nbytes`` bytes (rounded up) starting on a 64-byte boundary."""
    import numpy as np

    raw = np.empty(nbytes // 4 + 32, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip : skip + -(-nbytes // 4)]


def compile_loops(lib: ctypes.CDLL) -> dict[str, Any]:
    """One compiled loop per variant: ``loop(a, b, out, extra, reps)``."""
    import numba

    from lstmkit.kernels.blas import product

    sgemm, compute = lib.cblas_sgemm, lib.cblas_sgemm_compute
    jit = numba.njit(nogil=True)

    @jit
    def openblas(a, b, out, extra, reps):
        for _ in range(reps):
            product(a, b, out, 0.0)

    @jit
    def mkl(a, b, out, extra, reps):
        M, K = a.shape
        C = b.shape[1]
        for _ in range(reps):
            sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, M, C, K, 1.0, a.ctypes.data, K,
                  b.ctypes.data, C, 0.0, out.ctypes.data, C)  # fmt: skip

    @jit
    def mkl_packed(a, b, out, packed, reps):  # b only for its shape; packed holds it
        M, K = a.shape
        C = b.shape[1]
        for _ in range(reps):
            compute(ROW_MAJOR, NO_TRANS, PACKED, M, C, K, a.ctypes.data, K, packed.ctypes.data,
                    C, 0.0, out.ctypes.data, C)  # fmt: skip

    @jit
    def mkl_packed_t(a, b, out, packed, reps):  # a (C, K) packed, b = h^T (K, M)
        C, K = a.shape
        M = b.shape[1]
        for _ in range(reps):
            compute(ROW_MAJOR, PACKED, NO_TRANS, C, M, K, packed.ctypes.data, K, b.ctypes.data,
                    M, 0.0, out.ctypes.data, M)  # fmt: skip

    return {"openblas": openblas, "mkl": mkl, "mkl_packed": mkl_packed,
            "mkl_packed_t": mkl_packed_t}  # fmt: skip


def jit_create(lib: ctypes.CDLL, M: int, K: int, C: int) -> tuple[int, ctypes.c_void_p]:
    """MKL's status (0 success, 1 MKL_NO_JIT: it would run its standard sgemm, 2 error)
    and its jitter for a JIT kernel of h (M, K) @ W (K, C)."""
    jitter = ctypes.c_void_p()
    status = lib.mkl_cblas_jit_create_sgemm(ctypes.byref(jitter), ROW_MAJOR, NO_TRANS, NO_TRANS,
                                            M, C, K, 1.0, K, C, 0.0, C)  # fmt: skip
    return status, jitter


def jit_loop(lib: ctypes.CDLL, M: int, K: int, C: int) -> Any:
    """A compiled loop over MKL's JIT kernel for this shape, or None where MKL makes none."""
    import numba

    status, jitter = jit_create(lib, M, K, C)
    if status != 0:
        return None
    p = ctypes.c_size_t
    kernel = ctypes.CFUNCTYPE(None, p, p, p, p)(lib.mkl_jit_get_sgemm_ptr(jitter))
    handle = jitter.value

    @numba.njit(nogil=True)
    def loop(a, b, out, extra, reps):
        for _ in range(reps):
            kernel(handle, a.ctypes.data, b.ctypes.data, out.ctypes.data)

    return loop


def cases(lib: ctypes.CDLL, loops: dict[str, Any], M: int, K: int, C: int) -> dict[str, tuple]:
    """Each variant's (loop, arguments, reference result) for h (M, K) @ W (K, C)."""
    import numpy as np

    rng = np.random.default_rng(0)
    h = rng.standard_normal((M, K)).astype(np.float32)
    W = (rng.standard_normal((K, C)) / np.sqrt(K)).astype(np.float32)
    W_t, h_t = np.ascontiguousarray(W.T), np.ascontiguousarray(h.T)
    out, out_t = np.zeros((M, C), np.float32), np.zeros((C, M), np.float32)
    packed_b = aligned(lib.cblas_sgemm_pack_get_size(B_MATRIX, M, C, K))
    lib.cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, NO_TRANS, M, C, K, 1.0, W.ctypes.data, C,
                         packed_b.ctypes.data)  # fmt: skip
    packed_a = aligned(lib.cblas_sgemm_pack_get_size(A_MATRIX, C, M, K))
    lib.cblas_sgemm_pack(ROW_MAJOR, A_MATRIX, NO_TRANS, C, M, K, 1.0, W_t.ctypes.data, K,
                         packed_a.ctypes.data)  # fmt: skip
    none = np.empty(0, np.float32)
    result = {
        "openblas": (loops["openblas"], (h, W, out, none)),
        "openblas_t": (loops["openblas"], (W_t, h_t, out_t, none)),
        "mkl": (loops["mkl"], (h, W, out.copy(), none)),
        "mkl_packed": (loops["mkl_packed"], (h, W, out.copy(), packed_b)),
        "mkl_packed_t": (loops["mkl_packed_t"], (W_t, h_t, out_t.copy(), packed_a)),
    }
    jit = jit_loop(lib, M, K, C)
    if jit is not None:
        result["mkl_jit"] = (jit, (h, W, out.copy(), none))
    expected = h.astype(np.float64) @ W.astype(np.float64)
    for name, (loop, args) in result.items():  # each variant computes the product
        loop(*args, 1)
        got = args[2].T if name.endswith("_t") else args[2]
        if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
            raise SystemExit(f"{name} computed a wrong product at ({M}, {K}) @ ({K}, {C})")
    return result


def reps_for(loop: Any, args: tuple, seconds: float) -> int:
    """Calls of ``loop`` that take about ``seconds`` of CPU time."""
    reps = 1
    while True:
        start = time.process_time()
        loop(*args, reps)
        elapsed = time.process_time() - start
        if elapsed >= seconds / 4:
            return max(1, int(reps * seconds / elapsed))
        reps *= 4


def measure(variants: dict[str, tuple], flops: float, rounds: int, seconds: float) -> dict:
    """Median GFLOP/s of each variant over ``rounds`` interleaved rounds (CPU time)."""
    reps = {name: reps_for(loop, args, seconds) for name, (loop, args) in variants.items()}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            loop, args = variants[name]
            start = time.process_time()
            loop(*args, reps[name])
            rates[name].append(flops * reps[name] / (time.process_time() - start) / 1e9)
    return {name: statistics.median(r) for name, r in rates.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mkl", required=True, help="path of MKL's libmkl_rt.so.*")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.15, help="CPU time per measurement")
    parser.add_argument("--shape", type=int, nargs=2, action="append", metavar=("N", "H"),
                        help="only this (N, H) (repeatable; default: all of SHAPES)")  # fmt: skip
    args = bench_lstm.parse_args_without_blas_env(parser, argv)

    import threadpoolctl

    from lstmkit.kernels.execution import DEFAULT

    lib = load_mkl(args.mkl)
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")
    loops = compile_loops(lib)
    print(f"BLAS environment: {bench_lstm.blas_env_note(args.keep_blas_env)}; one thread")
    print(f"load average {os.getloadavg()[0]:.2f}; CPU time; median of {args.rounds} rounds")
    names = ["openblas", "openblas_t", "mkl", "mkl_packed", "mkl_packed_t", "mkl_jit"]
    print("| product | W MiB | " + " | ".join(names) + " | lstmkit's | packed / lstmkit's |")
    print("|---" * (len(names) + 4) + "|")
    shapes = [tuple(s) for s in args.shape] if args.shape else SHAPES
    for N, H in shapes:
        for C in (4 * H, 2 * H):
            variants = cases(lib, loops, N, H, C)
            rate = measure(variants, 2.0 * N * H * C, args.rounds, args.seconds)
            way = "openblas_t" if 4 * H * H * 4 > DEFAULT.transposed_from else "openblas"
            best_packed = max(rate["mkl_packed"], rate["mkl_packed_t"])
            cells = " | ".join(f"{rate[n]:.0f}" if n in rate else "-" for n in names)
            mib = H * C * 4 / 2**20
            print(f"| ({N}, {H}) @ ({H}, {C}) | {mib:.2f} | {cells} | "
                  f"{way} | {best_packed / rate[way]:.2f} |", flush=True)  # fmt: skip
    print(mkl_note(lib))
    statuses = {
        f"({N}, {H}, {C})": jit_create(lib, N, H, C)[0] for N, H in shapes for C in (2 * H,)
    }
    print(f"mkl_cblas_jit_create_sgemm status (0 = a JIT kernel, 1 = none): {statuses}")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
