"""Real series bundled with statsmodels (``pip install 'lstmkit[datasets]'``), as CSV.

=========  ======================================================  ===========  ======
name       what                                                    time column  values
=========  ======================================================  ===========  ======
sunspots   yearly mean sunspot number, 1700-2008                   year         309
co2        Mauna Loa CO2 (ppm), monthly means of the weekly data,  month        526
           1958-03 .. 2001-12; the 5 months without any weekly
           reading are linearly interpolated
elnino     sea-surface temperature (deg C) of the El Nino region,  month        732
           monthly, 1950-2010
nile       yearly flow of the Nile at Aswan, 1871-1970             year         100
=========  ======================================================  ===========  ======

Each CSV has two columns: the time stamp and the value (``value``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["DATASETS", "load", "write_csv"]


def _sunspots() -> tuple[list[str], list[float]]:
    from statsmodels.datasets import sunspots

    df = sunspots.load_pandas().data
    return [str(int(y)) for y in df["YEAR"]], [float(v) for v in df["SUNACTIVITY"]]


def _co2() -> tuple[list[str], list[float]]:
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate("linear")
    return [f"{t.year:04d}-{t.month:02d}" for t in monthly.index], [float(v) for v in monthly]


def _elnino() -> tuple[list[str], list[float]]:
    from statsmodels.datasets import elnino

    df = elnino.load_pandas().data
    months = [c for c in df.columns if c != "YEAR"]
    times, values = [], []
    for _, row in df.iterrows():
        for k, name in enumerate(months):
            times.append(f"{int(row['YEAR']):04d}-{k + 1:02d}")
            values.append(float(row[name]))
    return times, values


def _nile() -> tuple[list[str], list[float]]:
    from statsmodels.datasets import nile

    df = nile.load_pandas().data
    return [str(int(y)) for y in df["year"]], [float(v) for v in df["volume"]]


# name -> (loader, time column name, one-line description)
DATASETS: dict[str, tuple[Callable[[], tuple[list[str], list[float]]], str, str]] = {
    "sunspots": (_sunspots, "year", "yearly sunspot number 1700-2008 (309 values)"),
    "co2": (_co2, "month", "Mauna Loa CO2 ppm, monthly 1958-2001 (526 values)"),
    "elnino": (_elnino, "month", "El Nino sea-surface temperature, monthly 1950-2010 (732)"),
    "nile": (_nile, "year", "Nile flow at Aswan, yearly 1871-1970 (100 values)"),
}


def load(name: str) -> tuple[str, list[str], list[float]]:
    """(time column name, time stamps, values) of a bundled dataset.

    Raises ``ValueError`` for an unknown name and ``ModuleNotFoundError`` (with the install
    command) when statsmodels is missing.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {name!r}")
    try:
        import statsmodels  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "the bundled datasets come from statsmodels: pip install 'lstmkit[datasets]' "
            "(or pip install statsmodels)",
            name="statsmodels",
        ) from None
    loader, time_column, _ = DATASETS[name]
    times, values = loader()
    return time_column, times, values


def write_csv(name: str, path: str | os.PathLike[str]) -> tuple[Path, int]:
    """Write the dataset ``name`` to ``path`` as CSV (time column, ``value``)."""
    time_column, times, values = load(name)
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([time_column, "value"])
        writer.writerows(zip(times, (repr(v) for v in values)))
    return path, len(values)
