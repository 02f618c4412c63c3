"""Write the held-out series of branch fc20 (docs/forecasting.md) to CSV, one file each.

    python benchmarks/heldout_series.py DIR

Quarterly US macro series from statsmodels' ``macrodata`` (1959Q1-2009Q3, 203 values;
embedded in the package, no download): ``realgdp``, ``cpi`` (trending), ``unemp``, ``infl``
(mean-reverting), and German quarterly inflation ``Dp`` of ``interest_inflation``
(1972Q2-1998Q4, 107 values). Each CSV has the columns ``quarter`` (the first day of the
quarter, YYYY-MM-01: the season, 4, is inferred) and ``value``. ``infl`` starts at 1959Q2:
its 1959Q1 value is a placeholder 0 (a rate of change needs the quarter before).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

# name -> (statsmodels dataset, column, first row kept)
SERIES = {
    "realgdp": ("macrodata", "realgdp", 0),
    "cpi": ("macrodata", "cpi", 0),
    "unemp": ("macrodata", "unemp", 0),
    "infl": ("macrodata", "infl", 1),
    "dp": ("interest_inflation", "Dp", 0),
}


def rows(name: str) -> list[tuple[str, float]]:
    """(first day of the quarter, value) of one held-out series."""
    import statsmodels.api as sm

    dataset, column, first = SERIES[name]
    df = getattr(sm.datasets, dataset).load_pandas().data.iloc[first:]
    return [
        (f"{int(y):04d}-{3 * int(q) - 2:02d}-01", float(v))
        for y, q, v in zip(df["year"], df["quarter"], df[column])
    ]


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in SERIES:
        with open(out / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["quarter", "value"])
            w.writerows(rows(name))
        print(out / f"{name}.csv")


if __name__ == "__main__":
    main()
