"""Where a fused training step's time goes, phase by phase, against torch in the same process.

Run from the repository root, on one thread (CPU time is what a shared machine measures
reliably)::

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_train_phases.py \
        RNN 64,100,256,512
    python benchmarks/bench_train_phases.py LSTM 64,100,256,512 --also project_in_loop=8388608
    python benchmarks/bench_train_phases.py LSTM 16,100,128,256 --layers 2 --bidirectional

The cell (LSTM, GRU, RNN) and N,T,I,H. Three implementations run in rounds of blocks (lstmkit
fused, lstmkit reference, torch with ``torch.set_num_threads`` equal to numba's thread
count; each block a 0.2 s warm-up, then ``--calls`` timed calls), and the report gives each
one's median wall time and median CPU time (``time.process_time``: all of the process's
threads) per training step (forward, ``backward`` of the sum of the outputs, every
gradient). (Single calls in turn measured lstmkit 2x slower on two threads: torch's and
OpenBLAS's threads go on spinning after their call.)

Then the fused step alone, its kernel's phases timed by wrapping the kernel module's
functions (a few microseconds per wrapped call): for each phase and each thread that ran
it, the wall time and the thread's CPU time (``time.thread_time``) per step, the mean over
the steps. Phases: the input projection (``sequence.project``), the forward loop, the
backward loop, the products after it (weight gradients and dx); the compiled loops of the
GRU and RNN are timed in each thread of a split batch. "glue" is the step's wall time less
the calling thread's phases (validation, allocation, the layer's own work, waits). Like
``bench_lstm.py`` it re-runs itself without ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE``
(``--keep-blas-env`` keeps them).
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (the same BLAS environment handling and models)

# the functions of each kernel module timed as phases: (module, attribute, phase); the
# compiled loops (h_loop's _forward, _backward; cell_split's) run once in each thread
PHASES = {
    "h_loop": [
        ("sequence", "project", "projection"),
        ("h_loop", "_forward", "forward loop"),
        ("h_loop", "_backward", "backward loop"),
        ("h_loop", "_weight_grads", "products after"),
    ],
    "lstm": [
        ("sequence", "project", "projection"),
        ("lstm", "_forward_cells", "forward loop"),
        ("lstm", "_forward_rows", "forward loop"),
        ("lstm", "_backward_cells", "backward loop"),
        ("lstm", "_backward_rows", "backward loop"),
        ("lstm", "_products", "products after"),
        ("cell_split", "forward", "split loop"),
        ("cell_split", "backward", "split loop back"),
    ],
}
NESTED = ("split loop", "split loop back")  # inside the loop phases: not in the glue's sum


class Recorder:
    """The wall and CPU seconds of every call of each phase, by the thread that ran it."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[tuple[float, float]]] = collections.defaultdict(list)

    def wrap(self, fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                key = (phase, threading.current_thread().name)
                self.times[key].append((time.perf_counter() - wall, time.thread_time() - cpu))

        return timed


def instrument(kernel: str, recorder: Recorder) -> Callable[[], None]:
    """Wraps the phases' functions of ``kernel`` (module name); returns the undo."""
    import importlib

    undo = []
    for module_name, attr, phase in PHASES[kernel]:
        module = importlib.import_module(f"lstmkit.kernels.{module_name}")
        original = getattr(module, attr)
        setattr(module, attr, recorder.wrap(original, phase))
        undo.append((module, attr, original))

    def restore() -> None:
        for module, attr, original in undo:
            setattr(module, attr, original)

    return restore


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, calls: int, warmup_s: float = 0.2
) -> dict[str, dict[str, float]]:
    """Median wall and CPU ms per call of each fn: ``rounds`` rounds of one block per fn,
    each block a warm-up of ``warmup_s`` (which also outlasts the previous block's spinning
    threads: torch's OpenMP and OpenBLAS keep them busy-waiting after a call, which slows
    whatever runs next on two cores by up to 2x, measured) then ``calls`` timed calls."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            while time.perf_counter() - start < warmup_s:
                fn()
            for _ in range(calls):
                w, c = time.perf_counter(), time.process_time()
                fn()
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - w)
    med = statistics.median
    return {name: {"wall": 1e3 * med(wall[name]), "cpu": 1e3 * med(cpu[name])} for name in fns}


def _with_execution(layer: Any, x: Any, change: str) -> Callable[[], Any]:
    """The training step of ``layer`` on x with one field of its Execution changed
    ("FIELD=INT"), restored after each call."""
    import dataclasses

    name, value = change.split("=")
    step = bench_lstm._train_fn(layer, x)

    def run() -> None:
        kept = layer.execution
        layer.execution = dataclasses.replace(kept, **{name: int(value)})
        try:
            step()
        finally:
            layer.execution = kept

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell", choices=("LSTM", "GRU", "RNN"))
    parser.add_argument("shape", help="N,T,I,H")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of blocks (3)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per block (5)")
    parser.add_argument("--no-torch", action="store_true", help="skip the comparison")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="FIELD=INT",
        help="also time the fused step with this lk.Execution field changed (repeatable)",
    )
    args = bench_lstm.parse_args_without_blas_env(parser, argv)

    import numba
    import torch

    N, T, I, H = (int(v) for v in args.shape.split(","))
    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    print(f"BLAS environment: {bench_lstm.blas_env_note(args.keep_blas_env)}")
    print(f"threads: numba {threads}, torch {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    shape = (N, T, I, H, args.layers, args.bidirectional)
    m = bench_lstm.make_models(shape, cell=args.cell)
    fns = {"fused": bench_lstm._train_fn(m["lstmkit"], m["x"])}
    if not args.no_reference:
        fns["reference"] = bench_lstm._train_fn(m["reference"], m["x"])
    for change in args.also:
        fns[f"fused {change}"] = _with_execution(m["lstmkit"], m["x"], change)
    if not args.no_torch:
        fns["torch"] = bench_lstm._torch_train_fn(m["torch"], m["x"])
    print(f"\n{args.cell} {shape}: training step, {args.rounds} rounds of blocks (ms)")
    result = interleaved(fns, args.rounds, args.calls)
    for name, r in result.items():
        print(f"  {name:24s} wall {r['wall']:8.2f}   cpu {r['cpu']:8.2f}")
    if "torch" in result:
        ratio = {k: result["torch"][k] / result["fused"][k] for k in ("wall", "cpu")}
        print(f"  torch / fused: wall {ratio['wall']:.2f}, cpu {ratio['cpu']:.2f}")

    kernel = "lstm" if args.cell == "LSTM" else "h_loop"
    recorder = Recorder()
    restore = instrument(kernel, recorder)
    step = fns["fused"]
    step()
    recorder.times.clear()
    totals = []
    for _ in range(args.rounds * args.calls):
        w, c = time.perf_counter(), time.process_time()
        step()
        totals.append((time.perf_counter() - w, time.process_time() - c))
    restore()
    steps = args.rounds * args.calls
    print(f"\nfused step by phase, ms per step (mean of {steps} steps), by thread")
    for (phase, thread), times in recorder.times.items():
        wall, cpu = (1e3 * sum(t[i] for t in times) / steps for i in (0, 1))
        print(f"  {phase:15s} {thread:24s} wall {wall:8.2f}   cpu {cpu:8.2f}")
    wall_total = statistics.median(t[0] for t in totals) * 1e3
    cpu_total = statistics.median(t[1] for t in totals) * 1e3
    main = threading.main_thread().name
    phases = sum(
        sum(t[0] for t in ts)
        for (phase, thread), ts in recorder.times.items()
        if thread == main and phase not in NESTED
    )
    print(f"  {'glue':40s} wall {wall_total - 1e3 * phases / steps:8.2f}")
    print(f"  {'step (median)':40s} wall {wall_total:8.2f}   cpu {cpu_total:8.2f} (process)")


if __name__ == "__main__":
    main()
