"""Pinned results: bit for bit on the machine that wrote them, to rounding elsewhere.

Which bits a float computation gives depends on the machine as well as the code: NumPy's
OpenBLAS picks its kernels by the CPU (``SkylakeX`` with AVX-512, ``Haswell`` without,
and so sums in another order), and numba compiles for the host CPU. So a pin file records
the machine that wrote it (:func:`machine`). On that machine every array must come out
bit for bit the same, which catches a refactoring that changes one rounding anywhere; on
another machine it must agree to the dtype's rounding (relative to the array's largest
value: 1e-5 in float32, 1e-12 in float64, exact for integers), which still catches any
change of the maths.
Seen between machines: float32 up to 4.8e-7 relative, float64 up to 2e-16.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

MACHINE_KEY = "__machine__"
ROUNDING = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def machine() -> str:
    """What decides the bits besides the code: the CPU as OpenBLAS and LLVM see it, and
    the versions of NumPy and numba, e.g. ``x86_64 SkylakeX znver4 numpy 2.4.6 numba 0.63.1``."""
    from threadpoolctl import threadpool_info

    blas = ",".join(sorted(str(i.get("architecture")) for i in threadpool_info()
                           if i.get("user_api") == "blas"))  # fmt: skip
    try:
        import llvmlite.binding as llvm
        import numba

        jit = f"{llvm.get_host_cpu_name()} numba {numba.__version__}"
    except ImportError:
        jit = "no numba"
    return f"{platform.machine()} {blas} {jit} numpy {np.__version__}"


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and this machine's fingerprint to ``path``."""
    path.parent.mkdir(exist_ok=True)
    np.savez_compressed(path, **arrays, **{MACHINE_KEY: np.array(machine())})


def load(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """The pinned arrays and the machine that wrote them."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, str(arrays.pop(MACHINE_KEY))


def differences(now: dict[str, np.ndarray], path: Path) -> list[str]:
    """The arrays of ``now`` that differ from the pins at ``path`` (bit for bit if this is
    the machine that wrote them, else beyond :data:`ROUNDING`), one line each."""
    pinned, written_on = load(path)
    assert sorted(now) == sorted(pinned), "the pinned arrays' names changed"
    exact = written_on == machine()
    out = []
    for k in sorted(pinned):
        a, b = now[k], pinned[k]
        if a.dtype != b.dtype or a.shape != b.shape:
            out.append(f"{k}: {a.dtype}{a.shape} vs pinned {b.dtype}{b.shape}")
            continue
        diff = float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
        scale = float(np.max(np.abs(b), initial=0.0)) or 1.0
        if (not np.array_equal(a, b)) if exact else diff > ROUNDING.get(b.dtype, 0.0) * scale:
            out.append(f"{k}: max |diff| {diff:.3g} (relative {diff / scale:.3g})")
    if out:
        where = "this machine wrote them" if exact else f"written on {written_on!r}"
        out.insert(0, f"({where}; this is {machine()!r})")
    return out
