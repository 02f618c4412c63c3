"""Backtest the automatic forecaster with settings the CLI does not expose (variants).

    python benchmarks/auto_variants.py --dataset co2 --horizon 12 --origins 5 --out DIR \
        --json r.json [--seed 1] [--step N] [--minutes 10] [score_every_origin=true seeds=3 ...]
    python benchmarks/auto_variants.py --csv F.csv [--column value] --horizon 8 ...

``--csv`` reads a file whose first column holds the time stamps (the season is inferred
from them) instead of a bundled ``--dataset``.

Each ``name=value`` overrides one field of :class:`lstmkit.series.auto.AutoConfig`
(integers, floats, true/false). The origins, histories and scores are those of
``lstmkit series backtest`` (:func:`lstmkit.series.backtest.backtest`), with lstmkit alone
and the 80 % interval.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from lstmkit.series import backtest as bt
from lstmkit.series.auto import AutoConfig
from lstmkit.series.data import read_csv
from lstmkit.series.datasets import write_csv
from lstmkit.series.evaluate import resolve_season


def _value(text: str, kind: object) -> object:
    if text in ("true", "false"):
        return text == "true"
    return int(text) if "int" in str(kind) and "." not in text else float(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--dataset")
    where.add_argument("--csv", type=Path)
    p.add_argument("--column", default="value")
    p.add_argument("--horizon", type=int, required=True)
    p.add_argument("--origins", type=int, default=5)
    p.add_argument("--step", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--json", required=True, type=Path)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    kinds = {f.name: f.type for f in fields(AutoConfig)}
    changes = {}
    for item in a.overrides:
        name, text = item.split("=", 1)
        changes[name] = _value(text, kinds[name])
    config = replace(AutoConfig(seed=a.seed, minutes=a.minutes), **changes)
    a.out.mkdir(parents=True, exist_ok=False)
    csv_path = a.csv or a.out / f"{a.dataset}.csv"
    if a.csv is None:
        write_csv(a.dataset, csv_path)
    time_column = csv_path.read_text().splitlines()[0].split(",")[0]
    series = read_csv(str(csv_path), a.column, time_column)
    name = a.dataset or f"{csv_path.stem}:{a.column}"
    season, _ = resolve_season(series, None)
    step = a.step or a.horizon
    origins = bt.origins(len(series), a.horizon, a.origins, step, a.horizon + 5)
    lstm = bt.auto_forecaster(config, season, a.out, print, 80)
    report = bt.backtest(series, a.horizon, origins, season, {"lstmkit": lstm})
    report.update(
        level=80,
        config=asdict(config),
        runs=[str(a.out / f"origin-{o}") for o in origins],
    )
    a.json.write_text(json.dumps(report, indent=1, default=float))
    m = report["models"]["lstmkit"]
    per = " ".join(f"{p['mase']:.3f}" for p in m["per_origin"])
    print(
        f"{name} seed {a.seed} {changes}: MASE {m['mean']['mase']:.3f} ({per}), "
        f"coverage {100 * m['mean']['coverage']:.1f}, {m['seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
