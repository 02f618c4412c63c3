"""Synthetic CSVs for the covariate and many-series measurements in the README.

    python benchmarks/synthetic_series.py promo promo.csv     # one series with a promotion flag
    python benchmarks/synthetic_series.py many many.csv       # 12 series in long format
    python benchmarks/synthetic_series.py many many2.csv --seed 2   # another draw of them

``promo``: 180 months, y_t = 20 + 0.03 t + 3 sin(2 pi t / 12) + 4 promo_t + 0.25 noise_t,
with promo_t a random 0/1 flag (probability 0.25, known in advance: a known-future covariate)
and ``traffic`` = 0.8 y_{t-1} + noise (observed with the series: a past covariate).
``many``: 12 monthly series of 96..144 values, each its own level, trend, seasonal amplitude
and phase, noise (columns unique_id, ds, y). ``--seed`` draws another set (default: promo 0,
many 1, the sets the README's numbers come from).
"""

from __future__ import annotations

import argparse

import numpy as np


def promo(n: int = 180, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    flag = (rng.random(n) < 0.25).astype(float)
    y = 20 + 0.03 * t + 3 * np.sin(2 * np.pi * t / 12) + 4 * flag + 0.25 * rng.standard_normal(n)
    traffic = 0.8 * np.r_[y[0], y[:-1]] + rng.standard_normal(n)
    rows = [f"{2000 + k // 12}-{k % 12 + 1:02d},{y[k]:.4f},{int(flag[k])},{traffic[k]:.4f}"
            for k in range(n)]  # fmt: skip
    return "month,y,promo,traffic\n" + "\n".join(rows) + "\n"


def many(K: int = 12, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    lines = ["unique_id,ds,y"]
    for k in range(K):
        n = int(rng.integers(96, 145))
        t = np.arange(n)
        level, trend = rng.uniform(10, 100), rng.uniform(-0.05, 0.2)
        amp, phase = rng.uniform(1, 10), rng.uniform(0, 2 * np.pi)
        y = level + trend * t + amp * np.sin(2 * np.pi * t / 12 + phase)
        y = y + rng.uniform(0.3, 2) * rng.standard_normal(n)
        lines += [f"s{k:02d},{2010 + j // 12}-{j % 12 + 1:02d},{y[j]:.4f}" for j in range(n)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["promo", "many"])
    parser.add_argument("path")
    parser.add_argument("--seed", type=int, help="random seed (default: promo 0, many 1)")
    args = parser.parse_args()
    make = {"promo": promo, "many": many}[args.kind]
    text = make() if args.seed is None else make(seed=args.seed)
    with open(args.path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.path}")
