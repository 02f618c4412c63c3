"""A bidirectional layer's two directions at once (one thread each) or in turn (each on
all threads): the training step's wall and process CPU time, the two alternating.

Run from the repository root::

    python benchmarks/bench_directions.py 16,100,128,256 --layers 2 --rounds 5 --calls 4

Each round times a block of each way (a 0.3 s warm-up, then ``--calls`` steps); the report
gives medians and minima over the rounds' steps. "In turn" replaces
``lstmkit.nn.strategy._concurrent`` for the block, so both run the same layer and kernels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lstm  # noqa: E402  (the same models and training step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", help="N,T,I,H")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4)
    args = parser.parse_args()

    from lstmkit.nn import strategy

    N, T, I, H = (int(v) for v in args.shape.split(","))
    m = bench_lstm.make_models((N, T, I, H, args.layers, True))
    step = bench_lstm._train_fn(m["lstmkit"], m["x"])
    at_once = strategy._concurrent
    ways = {"at once": at_once, "in turn": lambda *_: False}
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    print(f"load average {os.getloadavg()[0]:.2f}")
    try:
        for _ in range(args.rounds):
            for name, concurrent in ways.items():
                strategy._concurrent = concurrent  # type: ignore[assignment]
                start = time.perf_counter()
                while time.perf_counter() - start < 0.3:
                    step()
                for _ in range(args.calls):
                    w, c = time.perf_counter(), time.process_time()
                    step()
                    cpu[name].append(1e3 * (time.process_time() - c))
                    wall[name].append(1e3 * (time.perf_counter() - w))
    finally:
        strategy._concurrent = at_once
    for name in ways:
        print(
            f"{name:8s} wall median {statistics.median(wall[name]):7.1f} ms "
            f"(min {min(wall[name]):7.1f}), process CPU median "
            f"{statistics.median(cpu[name]):7.1f} ms (min {min(cpu[name]):7.1f})"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
