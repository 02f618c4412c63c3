"""Coarse-grained threads: the fused path parallelises itself instead of asking BLAS to.

A multi-threaded BLAS call synchronises its threads at every call. On this kind of machine
(2 cores, shared) that costs more than the product for small matrices, and a call stalls
for a scheduler tick whenever another process holds a core: a (1600, 512) @ (512, 64)
product measured 1.1 ms on one thread and 6.8 ms on two. So the fused path splits its work
into as many independent parts as threads, runs them concurrently with BLAS on one thread
each, and synchronises once at the end:

* the time loop: each thread owns a block of the layer's cells and runs the whole loop
  for them, waiting for the others once per step (:mod:`lstmkit.kernels.cell_split`,
  :func:`cell_blocks`); where that does not apply, the sequences of a batch are
  independent, so each thread runs the whole loop on its own rows (:func:`parts`; so does
  the LSTM's split loops in training where ``W_hh`` fits in a core's cache, with no wait);
* the large products before and after the loop: each thread computes a block of rows;
* a bidirectional layer's two directions: each thread runs one whole direction on all the
  batch's rows (:func:`lstmkit.nn.strategy.forward_directions`), which keeps every per-step
  product twice as tall as splitting each direction's batch (measured 14% faster on a
  2-layer bidirectional (N, T, I, H) = (16, 100, 128, 256) training step).

The worker threads are kept from call to call (starting two threads per call measured
~0.15 ms idle and far more on a loaded machine: a (16, 100, 64, 128) inference went from
4.6 to 3.0 ms with kept threads). The compiled kernels release the GIL, and so does
NumPy's matmul. BLAS is limited to one thread per caller through threadpoolctl; without
threadpoolctl nothing that calls BLAS is split (it would start BLAS's threads on top of
ours). The thread count is numba's
(``numba.set_num_threads`` or ``NUMBA_NUM_THREADS``); 1 without numba.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lstmkit.kernels.execution import Execution

_T = TypeVar("_T")


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


def most_threads(ex: Execution) -> int:
    """The thread limit of ``ex`` (default: :func:`thread_count`)."""
    return thread_count() if ex.threads is None else ex.threads


def parts(
    n: int,
    work: float,
    ex: Execution,
    uses_blas: bool | Callable[[int], bool] = True,
) -> list[slice]:
    """``range(n)`` cut into one block of rows per thread, or a single block when splitting
    does not pay: ``work`` (multiply-adds) below ``ex.min_work``, fewer than ``ex.min_rows``
    rows per block, or BLAS inside (``uses_blas(rows per block)``) without threadpoolctl;
    at most :func:`most_threads` blocks."""
    threads = min(most_threads(ex), n // ex.min_rows) if work >= ex.min_work else 1
    blas = uses_blas(n // threads) if callable(uses_blas) and threads > 1 else uses_blas
    if threads > 1 and blas and _blas_controller() is None:
        threads = 1
    threads = max(threads, 1)
    return [block(n, threads, i) for i in range(threads)]


def cell_blocks(H: int, work: float, ex: Execution) -> list[slice]:
    """``range(H)`` (a layer's cells) cut into one block per thread, for threads that wait
    for each other at every step: so only where they surely run at once (not from inside a
    worker, which would run them in turn), with BLAS on one thread each, at least
    ``ex.min_cells`` cells and ``ex.min_work`` multiply-adds; else one block."""
    n = min(most_threads(ex), H // ex.min_cells) if work >= ex.min_work else 1
    if n > 1 and (_in_worker() or not can_split_blas(ex)):
        n = 1
    n = max(n, 1)
    return [block(H, n, i) for i in range(n)]


def can_split_blas(ex: Execution) -> bool:
    """Whether work that calls BLAS can run on several of our threads (more than one
    allowed, threadpoolctl present, so BLAS runs one thread per caller)."""
    return most_threads(ex) > 1 and _blas_controller() is not None


@functools.lru_cache(maxsize=1)
def _blas_thread_calls() -> tuple[tuple[Callable[[], int], Callable[[int], Any]], ...]:
    """(get, set) of each loaded BLAS library's thread count: OpenBLAS's own functions,
    called directly (~0.2 us each, where threadpoolctl's methods take ~2.5 us: they look
    the symbol up and check which Python thread controls the library); threadpoolctl's
    methods for other libraries or an OpenMP build."""
    controller = _blas_controller()
    out = []
    for lib in [] if controller is None else controller.lib_controllers:
        if lib.user_api != "blas":
            continue
        symbol = getattr(lib, "_get_symbol", None)  # threadpoolctl's, private: may go
        get = set_ = None
        if lib.internal_api == "openblas" and lib.threading_layer != "openmp" and symbol:
            get, set_ = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
        if get is None or set_ is None:
            get, set_ = lib.get_num_threads, lib.set_num_threads
        out.append((get, set_))
    return tuple(out)


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread until the block ends (for the whole process: the limit is the
    library's); a library already on one thread is left alone. ~1 us for the pair where
    threadpoolctl's ``limit`` context takes ~20 us (measured)."""
    before = [(get(), set_) for get, set_ in _blas_thread_calls()]
    for threads, set_ in before:
        if threads != 1:
            set_(1)
    try:
        yield
    finally:
        for threads, set_ in before:
            if threads != 1:
                set_(threads)


def split(
    fn: Callable[[slice], None],
    n: int,
    work: float,
    ex: Execution,
    uses_blas: bool | Callable[[int], bool] = True,
) -> None:
    """fn(rows) for each block of :func:`parts` ``(n, work, ex, uses_blas)``, one thread
    each; BLAS on one thread also when the work stays whole because it is too small to
    share (below ``ex.min_work``) or one thread is allowed. A small product on BLAS's own
    threads waits for them at every call, and for a scheduler tick whenever another
    process holds a core: a (1, 100, 32, 64) LSTM inference took 7.6 ms of CPU time per
    call with the other core busy, 0.27 ms with BLAS on one thread (measured); under
    ``threads=1`` a (64, 100, 256, 512) layer-normalised training step on the loops over
    rows took 4.2x the plain layer's with BLAS's own threads, 1.14x with one. A single
    block that calls no BLAS (``uses_blas(n)`` False: the compiled loops) runs as it is:
    setting BLAS's threads and back costs ~10 us a call (measured), a twentieth of a
    small inference."""
    blocks = parts(n, work, ex, uses_blas)
    if len(blocks) == 1 and callable(uses_blas) and not uses_blas(n):
        fn(blocks[0])
        return
    run(fn, blocks, one_blas_thread=small(work, ex))


def small(work: float, ex: Execution) -> bool:
    """Whether ``work`` multiply-adds should run BLAS on one thread (see :func:`split`)."""
    return work < ex.min_work or most_threads(ex) == 1


def block(n: int, parts: int, i: int) -> slice:
    """The i-th of ``parts`` near-equal blocks of ``range(n)``."""
    return slice(n * i // parts, n * (i + 1) // parts)


@functools.cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """Worker threads kept from call to call (per process: a forked child starts its own).

    Starting threads costs ~150 us a call, handing work to kept ones ~40 us (measured)."""
    return ThreadPoolExecutor(workers, thread_name_prefix=_WORKER)


_WORKER = "lstmkit-fast"


def _in_worker() -> bool:
    return threading.current_thread().name.startswith(_WORKER)


def run(fn: Callable[[_T], None], items: Sequence[_T], one_blas_thread: bool = False) -> None:
    """fn(item) for every item, the first in this thread, the others in kept worker threads
    (in turn in this thread when called from a worker, which must not wait on its pool).
    With several items, or ``one_blas_thread``, BLAS runs on one thread per caller."""
    if len(items) == 1 and one_blas_thread:
        with _single_threaded_blas():
            fn(items[0])
        return
    if len(items) == 1 or _in_worker():
        for item in items:
            fn(item)
        return
    with _single_threaded_blas():
        pool = _pool(len(items) - 1, os.getpid())
        futures = [pool.submit(fn, item) for item in items[1:]]
        fn(items[0])
        for future in futures:
            future.result()
