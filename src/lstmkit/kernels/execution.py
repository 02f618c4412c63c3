"""How a layer runs: one small object of choices, with defaults measured on this machine.

A layer holds an :class:`Execution` (``layer.execution``) and passes it down to whatever
runs it; a call can override it (``layer(x, execution=...)``). Nothing here changes what is
computed, only how: every choice gives the same results (to float32 rounding between the
reference and the fused kernel, exactly between the fused kernel's own paths).

The thresholds are sizes of work (multiply-adds of a step's products, ``rows * P * 4H``) or
of weights (bytes); each was measured as the crossover between two ways of running, on an
AMD Zen 4 with 2 cores (the measurements are in docs/performance.md). Change them to tune a
different machine, or set one to 0 (always) or a huge value (never) to force a path, as the
tests do.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

IMPLS = ("auto", "reference", "fused")


@dataclass(frozen=True)
class Execution:
    """The choices of how a layer runs.

    impl: "reference" (the NumPy time loop over the cell's equations), "fused" (the
        compiled kernel; raises where it does not apply: float32 with numba, LSTM cells),
        or "auto" (fused where it applies, else the reference).
    threads: at most this many threads (None: numba's thread count).

    The fused kernel's crossovers:
    split_from: ``N * P * 4H`` from which each thread owns a block of cells
        (:mod:`lstmkit.kernels.cell_split`) rather than of sequences; for layer norm,
        which keeps the loops over rows, ``rows * P * 4H`` from which the compiled loop
        calls BLAS for its recurrent products (measured (32, 100, 128, 256) training
        at one thread: x1.44 of the plain layer's CPU time with its own products,
        x1.16 with BLAS; docs/performance.md).
    project_in_loop: bytes of ``W_ih`` up to which the cell-split loops project x step by
        step (the weights stay in cache) instead of in one GEMM before the loop (measured
        training, 2 MB of ``W_ih``, where ``W_ih`` and ``W_hh`` no longer fit a core's
        L2: the 2-layer bidirectional (16, 100, 128, 256) on two threads, CPU time, 339-341
        ms in the loop against 327-329 before it, at one thread level; (64, 100, 256, 512)
        at one thread 753-818 against 756-829 over seven pairs: near the noise).
    project_in_loop_inference: the same for inference (no tape); above it each thread
        projects x for its own cells before its loop, into its own array, so that the
        loop streams only ``W_hh`` (measured at one thread, CPU time: (64, 100, 256, 512)
        283 -> 263 and 247 -> 242 ms, 2-layer bidirectional (16, 100, 128, 256) 109 -> 103,
        94 -> 102, 103 -> 99, 100 -> 96: a few percent, near the noise of a shared
        machine; (32, 100, 128, 256), 512 KB of ``W_ih``, 31.2 in the loop against 32.7).
    small: ``rows * P * 4H`` up to which the compiled whole-sequence loop, with its own
        matrix products, beats calling BLAS per step.
    small_backward: the same for the backward loop.
    small_h: the same, ``rows * H * G*H``, for the GRU and RNN loops
        (:mod:`lstmkit.kernels.h_loop`); measured training (64, 100, 256, 512) GRU 450 ms
        at 2**25 -> 306 at 2**16, RNN (16, 100, 64, 128) 5.2 -> 4.3 ms.
    transposed_from: bytes of ``W_hh`` from which the cell-split loops compute the
        recurrent product with the weights as the left matrix.
    rows_backward_up_to: bytes of ``W_hh`` up to which the split backward loop gives each
        thread a block of rows (every cell, the whole of ``W_hh``, no wait per step)
        rather than a block of cells (every row, waiting for the others' dz at every
        step); the same results either way (docs/performance.md, "Training, round 5").
    rows_forward_up_to: the same for the split forward loop in training (each thread
        every cell of its rows, no wait for the others' h; inference keeps the cells);
        docs/performance.md, "Training forward by rows".
    min_work: fewest multiply-adds worth starting threads for.
    min_rows: fewest rows (sequences, or rows of a product) per thread.
    min_cells: fewest cells per thread when threads share a layer's cells.
    parallel_weights: weights (floats) from which a streaming step splits its rows across
        threads.
    """

    impl: str = "auto"
    threads: int | None = None
    split_from: int = 2**18
    project_in_loop: int = 2**20
    project_in_loop_inference: int = 2**20
    small: int = 2**25
    small_backward: int = 2**24
    small_h: int = 2**16
    transposed_from: int = 2**23
    rows_backward_up_to: int = 2**20
    rows_forward_up_to: int = 2**20
    min_work: int = 2**22
    min_rows: int = 4
    min_cells: int = 16
    parallel_weights: int = 2**18

    def __post_init__(self) -> None:
        if self.impl not in IMPLS:
            raise ValueError(f"impl: expected one of {IMPLS}, got {self.impl!r}")
        if self.threads is not None and not _is_int(self.threads, 1):
            raise ValueError(f"threads: expected None or an integer >= 1, got {self.threads!r}")
        for f in fields(self)[2:]:
            value = getattr(self, f.name)
            if not _is_int(value, 0):
                raise ValueError(f"{f.name}: expected an integer >= 0, got {value!r}")

    def with_threads(self, threads: int | None) -> Execution:
        """A copy with another thread limit."""
        return replace(self, threads=threads)


def _is_int(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


DEFAULT = Execution()
