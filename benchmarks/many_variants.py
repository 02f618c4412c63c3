"""Variants of the global (many-series) forecaster on a long CSV, at the backtest's origins.

    python benchmarks/synthetic_series.py many many.csv
    python benchmarks/many_variants.py many.csv default   # or three-seasons, val3, seeds4, ...
    python benchmarks/many_variants.py many.csv auto      # the automatic forecaster per series
    python benchmarks/many_variants.py many.csv combine --with runs/many-auto.json

The origins, the horizon (12), the season (12) and the MASE are those of ``lstmkit series
backtest --id-column unique_id --column y --time-column ds --horizon 12 --origins 5``
(:func:`lstmkit.series.many_backtest.panel_origins`, :func:`lstmkit.series.evaluate.scores`).
Each run writes ``runs/<csv>-<variant>.json`` (forecasts, MASE and 80 % coverage per series
and origin, the per-series validation error the global model or the automatic forecaster
saw) and prints the mean MASE over series, per origin and overall.

Variants (each changes one thing against the defaults):

* ``default``: the global model as shipped;
* ``three-seasons``: seasonal indices only from three seasons on (the automatic
  forecaster's rule; shorter series are not deseasoned while they validate);
* ``val3``: three validation horizons instead of two; ``seeds4``: 4 seeds per member;
* ``median``: candidates sized for the median series instead of the shortest (shorter
  series then contribute no windows to candidates they cannot hold);
* ``auto``: no global model: :func:`lstmkit.series.auto.fit_auto` on each series alone;
* ``combine``: the mean of a ``default`` run and an ``auto`` run (``--with``), and each
  series' choice between them by its validation error (printed, from the two files).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.series import many
from lstmkit.series.auto import AutoConfig, fit_auto
from lstmkit.series.evaluate import scores
from lstmkit.series.many import Panel, fit_global
from lstmkit.series.many_backtest import panel_origins
from lstmkit.series.panel_data import read_long
from lstmkit.series.transform import Transform

H = M = 12


class _ThreeSeasons(Transform):
    @classmethod
    def fit(cls, y: Any, m: int, deseason: bool, difference: bool, min_seasons: int = 3) -> Any:
        return Transform.fit(y, m, deseason, difference, 3)


def _config(variant: str, minutes: float) -> AutoConfig:
    config = AutoConfig(minutes=minutes)
    if variant == "three-seasons":
        many.Transform = _ThreeSeasons  # type: ignore[misc]
    elif variant == "val3":
        config = replace(config, val_horizons=3)
    elif variant == "seeds4":
        config = replace(config, seeds=4)
    elif variant == "median":
        many._pool_room = lambda lengths, h: int(np.median(lengths)) - h  # type: ignore
    return config


def _fit(panel: Panel, ends: list[int], variant: str, config: AutoConfig) -> tuple[Any, ...]:
    """(forecasts (K, h), lo, hi, each series' mean |validation error|) at one origin."""
    if variant == "auto":
        fc, lo, hi, val = [], [], [], []
        for y, o in zip(panel.y, ends):
            ens = fit_auto(y[:o], M, H, config)
            fc.append(ens.predict(H))
            a, b = ens.interval(H, 80)
            lo.append(a)
            hi.append(b)
            val.append(float(np.nanmean(np.abs(ens.errors))))
        return np.array(fc), np.array(lo), np.array(hi), val
    ens = fit_global(panel.cut(ends), M, H, config)
    lo, hi = ens.interval(H, 80)
    return ens.predict(H), lo, hi, [float(np.nanmean(np.abs(e))) for e in ens.errors]


def run(csv: str, variant: str, minutes: float, out: Path) -> None:
    d = read_long(csv, "unique_id", "y", "ds")
    panel = Panel(d.y, d.X, d.P, d.ids)
    origins = panel_origins([len(y) for y in panel.y], H, 5, H, max(M + 1, H + 5))
    config = _config(variant, minutes)
    K = len(panel.y)
    mase, cover = np.zeros((K, 5)), np.zeros((K, 5))
    res: dict[str, Any] = {"origins": origins, "forecast": [], "val": [], "seconds": []}
    for i, ends in enumerate(origins):
        start = time.time()
        fc, lo, hi, val = _fit(panel, ends, variant, config)
        res["seconds"].append(time.time() - start)
        res["forecast"].append(fc.tolist())
        res["val"].append(val)
        for j, (y, o) in enumerate(zip(panel.y, ends)):
            actual = y[o : o + H]
            mase[j, i] = scores(actual, fc[j], y[:o], M)["mase"]
            cover[j, i] = np.mean((lo[j] <= actual) & (actual <= hi[j]))
        print(f"origin {i + 1}: MASE {mase[:, i].mean():.3f}, {res['seconds'][-1]:.0f} s")
    res.update({"mase": mase.tolist(), "cover": cover.tolist(), "mean": mase.mean()})
    print(
        f"{variant}: mean MASE {mase.mean():.3f}, per origin {np.round(mase.mean(0), 3)}, "
        f"80 % coverage {100 * cover.mean():.1f}"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{Path(csv).stem}-{variant}.json").write_text(json.dumps(res), encoding="utf-8")


def combine(csv: str, global_run: Path, auto_run: Path) -> None:
    d = read_long(csv, "unique_id", "y", "ds")
    g, a = (json.loads(p.read_text(encoding="utf-8")) for p in (global_run, auto_run))
    Fg, Fa = np.array(g["forecast"]), np.array(a["forecast"])
    Vg, Va = np.array(g["val"]), np.array(a["val"])
    rows = {k: np.zeros((len(d.y), len(Fg))) for k in ("global", "auto", "mean", "choose")}
    for i, ends in enumerate(g["origins"]):
        for j, (y, o) in enumerate(zip(d.y, ends)):
            f = {"global": Fg[i, j], "auto": Fa[i, j], "mean": (Fg[i, j] + Fa[i, j]) / 2}
            f["choose"] = Fg[i, j] if Vg[i, j] <= Va[i, j] else Fa[i, j]
            for name, values in f.items():
                rows[name][j, i] = scores(y[o : o + H], values, y[:o], M)["mase"]
    for name, m in rows.items():
        print(f"{name:<8} mean MASE {m.mean():.3f}, per origin {np.round(m.mean(0), 3)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv")
    p.add_argument(
        "variant",
        choices=["default", "three-seasons", "val3", "seeds4", "median", "auto", "combine"],
    )
    p.add_argument("--minutes", type=float, default=1.0, help="time budget of each fit")
    p.add_argument("--out", default="runs", help="folder of the JSON results")
    p.add_argument("--with", dest="other", help="combine: the auto run's JSON")
    p.add_argument("--global-run", help="combine: the default run's JSON (default: runs/...)")
    args = p.parse_args()
    if args.variant == "combine":
        stem = Path(args.csv).stem
        own = Path(args.global_run or Path(args.out) / f"{stem}-default.json")
        combine(args.csv, own, Path(args.other or Path(args.out) / f"{stem}-auto.json"))
    else:
        run(args.csv, args.variant, args.minutes, Path(args.out))
