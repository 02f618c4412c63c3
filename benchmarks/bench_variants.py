"""The LSTM variants' training cost, side by side: each option against the plain LSTM in
lstmkit, and the peephole and layer-norm cells against what a torch user writes today (a
Python loop over a hand-written cell, as in torch's own benchmarks/fastrnns).

Run from the repository root::

    python benchmarks/bench_variants.py            # (32, 100, 128, 256) and (64, 100, 256, 512)
    python benchmarks/bench_variants.py --quick    # a small shape, few repeats
    python benchmarks/bench_variants.py --only "recurrent dropout,zoneout"   # some rows

One process, float32, the same threads for every implementation (``--threads``, 2 by
default); each row times forward + backward of a single layer (loss = sum of the outputs),
medians (``--stat min``: minima) of interleaved rounds (lstmkit plain, the variant, torch,
plain, ...; ``--clock cpu``: CPU time, not wall time). Columns: ms,
the variant's cost relative to the plain LSTM (the issue's targets: <= 1.15, layer norm
<= 1.5), and for peepholes and layer norm torch's loop time / lstmkit's (target >= 3).
Which options run on the compiled kernel and which on the NumPy reference: README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

VARIANTS: dict[str, dict[str, Any]] = {
    "peepholes": {"peepholes": True},
    "CIFG": {"coupled_gates": True},
    "NIG": {"input_gate": False},
    "NFG": {"forget_gate": False},
    "NOG": {"output_gate": False},
    "NIAF": {"input_activation": False},
    "NOAF": {"output_activation": False},
    "FGR": {"gate_recurrence": True},
    "layer norm": {"layer_norm": True},
    "recurrent dropout": {"recurrent_dropout": 0.25},
    "zoneout": {"zoneout": (0.1, 0.05)},
}
SHAPES = [(32, 100, 128, 256), (64, 100, 256, 512)]


def _median_ms(
    fns: dict[str, Callable[[], Any]],
    rounds: int,
    per_round: int,
    stat: str = "median",
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # compile and warm up
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                start = clock()
                fn()
                times[name].append(clock() - start)
    pick = min if stat == "min" else statistics.median
    return {name: 1e3 * pick(ts) for name, ts in times.items()}


def _lstmkit_step(layer: Any, x: np.ndarray) -> Callable[[], None]:
    def run() -> None:
        layer.zero_grad()
        y, _ = layer(x)
        layer.backward(np.ones_like(y))

    return run


def _torch_loop_step(cell: str, I: int, H: int, x: np.ndarray) -> Callable[[], None]:
    """A Python loop over a hand-written peephole or layer-norm LSTM cell in torch."""
    import torch

    T, N, _ = x.shape
    xt = torch.from_numpy(x)
    w_ih = torch.nn.Parameter(torch.randn(4 * H, I) * 0.05)
    w_hh = torch.nn.Parameter(torch.randn(4 * H, H) * 0.05)
    b = torch.nn.Parameter(torch.zeros(4 * H))
    w_c = torch.nn.Parameter(torch.randn(3, H) * 0.05)
    norms = [torch.nn.LayerNorm(4 * H), torch.nn.LayerNorm(4 * H), torch.nn.LayerNorm(H)]
    params = [w_ih, w_hh, b, w_c] + [p for n in norms for p in n.parameters()]

    def run() -> None:
        for p in params:
            p.grad = None
        h = torch.zeros(N, H)
        c = torch.zeros(N, H)
        outs = []
        for t in range(T):
            if cell == "peepholes":
                z = xt[t] @ w_ih.T + h @ w_hh.T + b
                zi, zf, zg, zo = z.chunk(4, 1)
                i = torch.sigmoid(zi + w_c[0] * c)
                f = torch.sigmoid(zf + w_c[1] * c)
                c = f * c + i * torch.tanh(zg)
                h = torch.sigmoid(zo + w_c[2] * c) * torch.tanh(c)
            else:
                z = norms[0](xt[t] @ w_ih.T) + norms[1](h @ w_hh.T) + b
                zi, zf, zg, zo = z.chunk(4, 1)
                c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
                h = torch.sigmoid(zo) * torch.tanh(norms[2](c))
            outs.append(h)
        torch.stack(outs).sum().backward()

    return run


def run(
    shapes: list[tuple[int, int, int, int]],
    rounds: int,
    threads: int,
    only: list[str] | None = None,
    stat: str = "median",
    clock: str = "wall",
) -> list[str]:
    import torch

    import lstmkit as lk

    variants = {name: VARIANTS[name] for name in only or VARIANTS}

    torch.set_num_threads(threads)
    lines = []
    for N, T, I, H in shapes:
        x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
        ex = lk.Execution(threads=threads)
        plain = lk.LSTM(I, H, seed=0)
        plain.execution = ex
        per_round = 2 if H < 512 else 1
        for name, options in variants.items():
            layer = lk.LSTM(I, H, seed=0, **options)
            layer.execution = ex
            fns = {"plain": _lstmkit_step(plain, x), "variant": _lstmkit_step(layer, x)}
            if name in ("peepholes", "layer norm"):
                fns["torch"] = _torch_loop_step(name, I, H, x)
            timer = time.process_time if clock == "cpu" else time.perf_counter
            ms = _median_ms(fns, rounds, per_round, stat, timer)
            kernel = "compiled" if not layer.cell.variants else "reference"
            line = (
                f"N={N} T={T} I={I} H={H}  {name:18s} ({kernel:9s}) {ms['variant']:8.2f} ms"
                f"  x{ms['variant'] / ms['plain']:.2f} of plain ({ms['plain']:.2f} ms)"
            )
            if "torch" in ms:
                line += f"  torch loop {ms['torch']:.1f} ms (x{ms['torch'] / ms['variant']:.2f})"
            lines.append(line)
            print(line, flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small shape, 2 rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only", help=f"comma-separated rows to run (of: {', '.join(VARIANTS)}); default all"
    )
    parser.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="of the rounds' times (min: the least disturbed on a shared machine)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: the process's CPU time (steadier on a loaded machine; with --threads 1 and "
        "NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1, one thread's work)",
    )
    args = parser.parse_args(argv)
    only = None if args.only is None else [name.strip() for name in args.only.split(",")]
    unknown = [name for name in only or [] if name not in VARIANTS]
    if unknown:
        parser.error(
            f"--only: unknown rows {', '.join(unknown)}; expected some of {list(VARIANTS)}"
        )
    shapes = [(8, 20, 16, 32)] if args.quick else SHAPES
    run(shapes, 2 if args.quick else args.rounds, args.threads, only, args.stat, args.clock)


if __name__ == "__main__":
    main(sys.argv[1:])
