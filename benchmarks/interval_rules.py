"""Coverage and width of calibration rules for the automatic forecaster's intervals, offline.

    python benchmarks/interval_rules.py REPORT.json [REPORT.json ...] [--level 80]

Each REPORT is a ``series backtest --json`` report of the automatic forecaster; every run
folder it names holds ``calibration.npz`` (written by the backtest: each search row's
validation errors, the chosen forms' errors at earlier cuts). Each rule below turns that
material into per-step half-widths q (h,) around the *same* point forecast (the report's),
so the rules differ in the interval only; the table gives, per report, the coverage of the
actuals (percent) and the mean width (hi - lo) over all origins and steps.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lstmkit.series import conformal


def _cut_singles(cal: dict[str, np.ndarray], k: int, h: int) -> list[np.ndarray]:
    return [cal[f"cut{i}"].reshape(-1, h) for i in range(1, k + 1) if f"cut{i}" in cal]


def _cut_medians(cal: dict[str, np.ndarray], k: int) -> list[np.ndarray]:
    return [np.median(cal[f"cut{i}"], axis=0) for i in range(1, k + 1) if f"cut{i}" in cal]


def _crossfit(cal: dict[str, np.ndarray]) -> np.ndarray:
    rows = [cal[k] for k in sorted(cal) if k.startswith("candidate")]
    return conformal.cross_fit(rows, 3)


def _aci(errors_in_time: list[np.ndarray], level: float, gamma: float = 0.05) -> np.ndarray:
    """Adaptive conformal inference (Gibbs and Candes 2021) over origins in time order:
    pooled sqrt(j) scores; the level moves by gamma (miss - (1 - alpha)) after each origin;
    the final level calibrates the pooled quantile of all scores."""
    e = np.concatenate(errors_in_time)  # (R, h), oldest origin first
    h = e.shape[1]
    root = np.sqrt(np.arange(1, h + 1))
    s = np.abs(e) / root
    alpha = a = level / 100
    for r in range(h, e.shape[0]):  # origins whose past holds h origins' scores
        past = s[: r - h + 1]  # only origins whose whole window ended before r
        Q = np.quantile(past[np.isfinite(past)], min(max(a, 0.0), 1.0))
        row = s[r][np.isfinite(s[r])]
        if row.size:
            miss = float(np.mean(row > Q))
            a = a + gamma * (miss - (1 - alpha))
    a = min(max(a, 0.01), 0.999)
    return conformal.conformal_quantile(s, 100 * a) * root


def rules(level: float) -> dict[str, Callable[[dict[str, np.ndarray], int], np.ndarray]]:
    pooled = conformal.pooled_quantiles
    step = conformal.step_quantiles

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)

    return {
        "A cross-fitted top 3, pooled (current)": lambda c, h: pooled(_crossfit(c), level),
        "B A + cut singles (2 cuts), pooled": lambda c, h: pooled(
            cat([_crossfit(c), *_cut_singles(c, 2, h)]), level
        ),
        "C A + cut singles (1 cut), pooled": lambda c, h: pooled(
            cat([_crossfit(c), *_cut_singles(c, 1, h)]), level
        ),
        "D A + cut medians (2 cuts), pooled": lambda c, h: pooled(
            cat([_crossfit(c), *_cut_medians(c, 2)]), level
        ),
        "E cut singles only (2 cuts), pooled": lambda c, h: pooled(
            cat(_cut_singles(c, 2, h) or [_crossfit(c)]), level
        ),
        "F A + cut singles (2 cuts), per step": lambda c, h: step(
            cat([_crossfit(c), *_cut_singles(c, 2, h)]), level
        ),
        "G A per step": lambda c, h: step(_crossfit(c), level),
        "H ACI over cut medians then val medians": lambda c, h: _aci(
            [*reversed(_cut_medians(c, 2)), _val_median(c)], level
        ),
        "J B at the level corrected for the distinct origins": lambda c, h: pooled(
            cat([_crossfit(c), *_cut_singles(c, 2, h)]), _per_origin_level(c, level)
        ),
        "K D at the level corrected for the distinct origins": lambda c, h: pooled(
            cat([_crossfit(c), *_cut_medians(c, 2)]), _per_origin_level(c, level)
        ),
        "I A + cut singles, pooled, max with per step": lambda c, h: np.maximum(
            pooled(cat([_crossfit(c), *_cut_singles(c, 2, h)]), level),
            step(cat([_crossfit(c), *_cut_singles(c, 2, h)]), level),
        ),
    }


def _per_origin_level(cal: dict[str, np.ndarray], level: float) -> float:
    """The level whose pooled rank equals the conformal rank of one score per distinct
    origin: ceil((n + 1) alpha) / n with n the validation origins plus the cuts' origins."""
    n = max(len(cal[k]) for k in cal if k.startswith("candidate"))
    n += sum(cal[k].shape[1] for k in cal if k.startswith("cut"))
    return min(99.999, 100 * np.ceil((n + 1) * level / 100) / n)


def _val_median(cal: dict[str, np.ndarray]) -> np.ndarray:
    """The median error over the three best search rows (by validation MAE), time order."""
    rows = [cal[k] for k in sorted(cal, key=_index) if k.startswith("candidate")]
    R = max(len(r) for r in rows)
    full = [r for r in rows if len(r) == R and np.isfinite(r).any()]
    best = sorted(full, key=lambda r: float(np.nanmean(np.abs(r))))[:3]
    return np.median(np.stack(best), axis=0)


def _index(key: str) -> int:
    digits = "".join(ch for ch in key if ch.isdigit())
    return int(digits) if digits else -1


def evaluate(report_path: Path, level: float) -> dict[str, tuple[float, float]]:
    report = json.loads(report_path.read_text())
    model = report["models"]["lstmkit"]
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run, f, actual in zip(report["runs"], model["forecast"], report["actual"]):
        with np.load(Path(run) / "calibration.npz") as z:
            cal = {k: z[k] for k in z.files}
        f, actual = np.asarray(f), np.asarray(actual, np.float64)
        h = f.shape[0]
        for name, rule in rules(level).items():
            q = rule(cal, h)
            lo, hi = conformal.interval(f, q)
            inside = (lo <= actual) & (actual <= hi)
            out.setdefault(name, []).append((inside, hi - lo))
    return {
        name: (
            100 * float(np.mean(np.concatenate([i for i, _ in v]))),
            float(np.mean(np.concatenate([w for _, w in v]))),
        )
        for name, v in out.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--level", type=float, default=80.0)
    args = parser.parse_args()
    results = {p.stem: evaluate(p, args.level) for p in args.reports}
    names = list(next(iter(results.values())))
    print("| rule | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = [f"{r[name][0]:.1f} ({r[name][1]:.3g})" for r in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
