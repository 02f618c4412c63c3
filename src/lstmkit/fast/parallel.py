"""Splitting the batch across threads for a whole sequence.

The sequences of a batch are independent, so each thread can run the whole time loop on
its own rows, with no synchronisation between steps (a multi-threaded BLAS call per step
synchronises its threads at every step, which costs more than the product itself for
small matrices and stalls whenever another process holds a core). The compiled kernels
release the GIL, and so does NumPy's matmul; during the split BLAS runs one thread per
caller (through threadpoolctl, when it is installed).

The thread count is numba's (``numba.set_num_threads`` or ``NUMBA_NUM_THREADS``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MIN_ROWS = 4  # fewest sequences per thread
MIN_WORK = 2**22  # fewest multiply-adds (T * N * P * 4H) worth starting threads for


def batch_parts(N: int, work: int, uses_blas: Callable[[int], bool]) -> list[slice]:
    """Row ranges of the batch, one per thread (a single one when splitting does not pay).

    ``work``: multiply-adds of the whole loop; ``uses_blas(rows)``: whether the loop over
    that many rows calls BLAS (then splitting needs threadpoolctl, or each call would start
    BLAS's own threads on top of ours).
    """
    threads = min(thread_count(), N // MIN_ROWS) if work >= MIN_WORK else 1
    if threads > 1 and uses_blas(N // threads) and _blas_controller() is None:
        threads = 1
    bounds = [N * k // max(threads, 1) for k in range(max(threads, 1) + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def thread_count() -> int:
    """numba's thread count (1 without numba)."""
    try:
        import numba
    except ImportError:
        return 1
    return int(numba.get_num_threads())


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """threadpoolctl's handle on the loaded BLAS libraries, or None without threadpoolctl.

    Cached: finding the libraries takes ~1 ms, limiting them through the handle ~10 us.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    controller = _blas_controller()
    if controller is None:
        yield
    else:
        with controller.limit(limits=1, user_api="blas"):
            yield


def run(fn: Callable[[slice], None], parts: list[slice]) -> None:
    """fn(part) for every part, the first in this thread, the others in their own."""
    if len(parts) == 1:
        fn(parts[0])
        return
    with _single_threaded_blas(), ThreadPoolExecutor(len(parts) - 1) as pool:
        futures = [pool.submit(fn, part) for part in parts[1:]]
        fn(parts[0])
        for future in futures:
            future.result()
