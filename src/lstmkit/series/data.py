"""A numeric column of a CSV file, its time stamps, the split, the scaler and the windows.

Reading (:func:`read_csv`) uses the standard library's ``csv`` module. The first row is the
header; rows are numbered like a spreadsheet's (the header is row 1, the first value row 2).
A missing or non-numeric value is an error naming the row and the column — never a silent
NaN. Lines that are entirely empty are skipped.

The series is split in time order into three parts::

    | train (fit)                      | val      | holdout  |
    0                              n_fit    n_fit+n_val     n

The model and the :class:`Scaler` see only the training part; the validation part picks the
best checkpoint; the held-out tail is left for ``lstmkit series eval``.

Model space: with ``difference=False`` the model reads z_t = (v_t - mean) / scale; with
``difference=True`` it reads the scaled changes z_t = (v_t - v_{t-1} - mean) / scale
(useful for trending series such as CO2), so z has one entry fewer than the values.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Scaler",
    "Series",
    "Split",
    "decode",
    "encode",
    "fingerprint",
    "future_times",
    "infer_frequency",
    "make_windows",
    "read_csv",
]


class CSVError(ValueError):
    """A CSV file that cannot be read as a series; the message names the file, row, column."""


@dataclass(frozen=True)
class Series:
    values: np.ndarray  # (n,) float64
    times: list[str] | None  # the time column's cells, as written, or None
    column: str
    time_column: str | None
    source: str

    def __len__(self) -> int:
        return int(self.values.shape[0])


def read_csv(path: str | os.PathLike[str], column: str, time_column: str | None = None) -> Series:
    """The numeric column ``column`` of the CSV file ``path`` (and optionally its time stamps).

    Raises ``FileNotFoundError`` for a missing file and :class:`CSVError` for a file that is
    not UTF-8 text, a missing column, an empty file, a cell that is empty, not a number, not
    finite or too large to scale (:data:`MAX_ABS`), or a time stamp that is missing, repeats
    an earlier one or skips steps of the series' frequency (a gap).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    try:
        return _read_csv(path, column, time_column)
    except UnicodeDecodeError as e:
        bad = e.object[e.start : e.start + 1].hex()
        raise CSVError(
            f"{path}: not UTF-8 text (byte 0x{bad} cannot be decoded); save it as UTF-8"
        ) from None
    except csv.Error as e:
        raise CSVError(f"{path}: not a readable CSV file: {e}") from None


# Values whose magnitude passes this cannot be scaled: the mean and standard deviation of a
# few hundred of them (sums of values and of their squares) overflow float64.
MAX_ABS = 1e150


def _read_csv(path: Path, column: str, time_column: str | None) -> Series:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise CSVError(f"{path}: empty file; expected a header row with column names")
        header = [h.strip() for h in header]
        index = _column_index(path, header, column, "--column")
        t_index = (
            None
            if time_column is None
            else _column_index(path, header, time_column, "--time-column")
        )
        values: list[float] = []
        times: list[str] = []
        seen: dict[Any, int] = {}  # time stamp (parsed if it parses) -> its row
        for row_number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            values.append(_number(path, row, row_number, index, column))
            if t_index is not None:
                stamp = row[t_index].strip() if t_index < len(row) else ""
                if not stamp:
                    raise CSVError(
                        f"{path}: row {row_number}, column {time_column!r}: missing time stamp"
                    )
                parsed = _parse(stamp)
                key = stamp if parsed is None else parsed[0]
                if key in seen:
                    raise CSVError(
                        f"{path}: row {row_number}, column {time_column!r}: time stamp "
                        f"{stamp!r} repeats row {seen[key]}; a series has one value per time"
                    )
                seen[key] = row_number
                times.append(stamp)
    if not values:
        raise CSVError(f"{path}: no data rows under the header")
    if t_index is not None:
        _check_no_gaps(path, times, time_column)
    return Series(
        np.array(values, np.float64),
        times if t_index is not None else None,
        column,
        time_column,
        str(path),
    )


def _check_no_gaps(path: Path, times: list[str], column: str | None) -> None:
    """Refuse time stamps that skip steps of their own frequency (a missing month in a
    monthly series): the model's windows would silently join across the gap. Stamps in
    time order at a recognised frequency only; others are left as they are."""
    frequency = infer_frequency(times)
    parsed = _parse_all(times)
    if frequency is None or parsed is None:
        return
    days = dict((name, d) for name, d, _ in _FREQUENCIES)[frequency[0]]
    stamps = parsed[0]
    for k in range(1, len(stamps)):
        gap = (stamps[k] - stamps[k - 1]).total_seconds() / 86400.0
        if gap > 1.5 * days:
            raise CSVError(
                f"{path}: column {column!r}: the {frequency[0]} time stamps skip from "
                f"{times[k - 1]!r} to {times[k]!r} (a gap); add the missing rows"
            )


def _column_index(path: Path, header: list[str], name: str, option: str) -> int:
    if name not in header:
        raise CSVError(
            f"{path}: no column {name!r} ({option}); the header has: "
            + ", ".join(repr(h) for h in header)
        )
    return header.index(name)


def _number(path: Path, row: list[str], row_number: int, index: int, column: str) -> float:
    where = f"{path}: row {row_number}, column {column!r}"
    cell = row[index].strip() if index < len(row) else ""
    if not cell:
        raise CSVError(f"{where}: missing value (empty cell); fill it in or remove the row")
    try:
        value = float(cell)
    except ValueError:
        raise CSVError(f"{where}: expected a number, got {cell!r}") from None
    if not math.isfinite(value):
        raise CSVError(f"{where}: expected a finite number, got {cell!r}")
    if abs(value) > MAX_ABS:
        raise CSVError(
            f"{where}: {cell} is too large to scale (at most {MAX_ABS:g} in magnitude); "
            "divide the column by a power of ten"
        )
    return value


def fingerprint(values: np.ndarray) -> str:
    """A short hash of the values (to check that a resumed run trains on the same data)."""
    return hashlib.sha256(np.ascontiguousarray(values, np.float64).tobytes()).hexdigest()[:16]


# ---- time stamps ------------------------------------------------------------------------

# (name, typical step in days, the season it implies)
_FREQUENCIES = (
    ("hourly", 1 / 24, 24),
    ("daily", 1.0, 7),
    ("weekly", 7.0, 52),
    ("monthly", 30.44, 12),
    ("quarterly", 91.31, 4),
    ("yearly", 365.25, 1),
)
_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}
_YEAR = re.compile(r"^\d{1,4}(\.0*)?$")
_YEAR_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")


def _parse(stamp: str) -> tuple[datetime, str] | None:
    """A time stamp and its style ("year", "month", "date", "datetime"), or None."""
    s = stamp.strip()
    if _YEAR.match(s):
        year = int(float(s))
        return (datetime(year, 1, 1), "year") if year >= 1 else None
    m = _YEAR_MONTH.match(s)
    if m:
        year, month = int(m.group(1)), int(m.group(2))
        return (datetime(year, month, 1), "month") if 1 <= month <= 12 else None
    try:
        t = datetime.fromisoformat(s.replace("/", "-"))
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.replace(tzinfo=None)
    has_clock = len(s) > 10
    return t, "datetime" if has_clock else "date"


def _parse_all(times: list[str]) -> tuple[list[datetime], str] | None:
    parsed = [_parse(t) for t in times]
    if any(p is None for p in parsed):
        return None
    stamps = [p[0] for p in parsed if p is not None]
    styles = {p[1] for p in parsed if p is not None}
    return stamps, styles.pop() if len(styles) == 1 else "datetime"


def infer_frequency(times: list[str] | None) -> tuple[str, int] | None:
    """("monthly", 12), ("yearly", 1)... from the median gap between time stamps, or None.

    Recognised: hourly (season 24), daily (7), weekly (52), monthly (12), quarterly (4),
    yearly (1). Stamps may be years (``1750``, ``1750.0``), ``YYYY-MM``, ISO dates or date
    times; unparsable or irregular stamps give None.
    """
    if not times or len(times) < 2:
        return None
    parsed = _parse_all(times)
    if parsed is None:
        return None
    stamps, _ = parsed
    gaps = np.diff([t.timestamp() for t in stamps]) / 86400.0  # days
    if np.any(gaps <= 0):
        return None
    step = float(np.median(gaps))
    for name, days, season in _FREQUENCIES:
        if abs(step - days) <= 0.08 * days:
            return name, season
    return None


def future_times(times: list[str] | None, horizon: int) -> list[str]:
    """Time stamps of the ``horizon`` steps after the last one, in the input's style.

    Without a recognised frequency the steps are labelled ``+1, +2, ...``. A ValueError if
    they would run past the year 9999 (the last one Python's dates hold).
    """
    frequency = infer_frequency(times)
    parsed = _parse_all(times) if times else None
    if frequency is None or parsed is None:
        return [f"+{h}" for h in range(1, horizon + 1)]
    stamps, style = parsed
    last, name = stamps[-1], frequency[0]
    out = []
    for h in range(1, horizon + 1):
        try:
            if name in _MONTHS:
                t = _add_months(last, h * _MONTHS[name])
            else:
                t = last + h * timedelta(days=dict((n, d) for n, d, _ in _FREQUENCIES)[name])
        except (OverflowError, ValueError):
            raise ValueError(
                f"--horizon {horizon}: the {name} time stamps after {_format(last, style)!r} "
                f"would run past the year 9999 at step {h}; forecast at most {h - 1} steps"
            ) from None
        out.append(_format(t, style))
    return out


def _add_months(t: datetime, months: int) -> datetime:
    year, month = divmod(t.month - 1 + months, 12)
    year, month = t.year + year, month + 1
    next_first = datetime(year + month // 12, month % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return t.replace(year=year, month=month, day=min(t.day, last_day))


def _format(t: datetime, style: str) -> str:
    if style == "year":
        return f"{t.year}"
    if style == "month":
        return f"{t.year:04d}-{t.month:02d}"
    if style == "date":
        return t.date().isoformat()
    return t.isoformat(sep=" ")


# ---- split, scaling and windows -----------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Lengths of the three parts, in time order: train (fit), val, holdout."""

    n_fit: int
    n_val: int
    n_holdout: int

    @classmethod
    def make(cls, n: int, val: int, holdout: int, lookback: int, difference: bool) -> Split:
        if val < 0 or holdout < 0:
            raise ValueError(f"--val and --holdout: expected >= 0, got {val} and {holdout}")
        n_fit = n - val - holdout
        need = lookback + 2 + int(difference)  # at least two training windows
        if n_fit < need:
            raise ValueError(
                f"the series has {n} values; after the validation part ({val}) and the "
                f"held-out tail ({holdout}) {n_fit} remain for training, and --lookback "
                f"{lookback} needs at least {need}; use a smaller --lookback, --val or --holdout"
            )
        return cls(n_fit, val, holdout)


@dataclass(frozen=True)
class Scaler:
    """z = (v - mean) / scale with the mean and standard deviation of the training part."""

    mean: float
    scale: float

    @classmethod
    def fit(cls, train: np.ndarray) -> Scaler:
        train = np.asarray(train, np.float64)
        if train.size == 0:
            raise ValueError("Scaler.fit: expected at least one value, got none")
        with np.errstate(over="ignore", invalid="ignore"):
            mean, scale = float(train.mean()), float(train.std())
            scaler = cls(mean, scale if scale > 0 else 1.0)
            finite = math.isfinite(mean) and math.isfinite(scale)
            finite = finite and bool(np.all(np.isfinite(scaler.transform(train))))
        if not finite:
            raise ValueError(
                f"Scaler.fit: the values cannot be scaled in float64 (mean {mean:g}, standard "
                f"deviation {scale:g}); rescale them (e.g. divide by a power of ten)"
            )
        return scaler

    def transform(self, v: np.ndarray) -> np.ndarray:
        return (np.asarray(v, np.float64) - self.mean) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, np.float64) * self.scale + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        return cls(float(d["mean"]), float(d["scale"]))


def encode(values: np.ndarray, scaler: Scaler, difference: bool) -> np.ndarray:
    """Values (n,) -> model space z: (n,), or (n - 1,) scaled changes with ``difference``."""
    values = np.asarray(values, np.float64)
    return scaler.transform(np.diff(values) if difference else values)


def decode(z: np.ndarray, scaler: Scaler, difference: bool, last_value: float) -> np.ndarray:
    """Model-space predictions (h,) following ``last_value`` -> values (h,)."""
    v = scaler.inverse(z)
    return last_value + np.cumsum(v) if difference else v


def make_windows(z: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``lookback`` inputs with its next-step targets.

    z (m,) -> inputs (lookback, M, 1) = z[s : s+lookback] and targets (lookback, M, 1) =
    z[s+1 : s+lookback+1] for the M = m - lookback starts s = 0 .. M - 1.
    """
    z = np.asarray(z)
    if z.ndim != 1:
        raise ValueError(f"z: expected a 1-D array, got shape {z.shape}")
    if lookback < 1 or z.shape[0] < lookback + 1:
        raise ValueError(
            f"expected a lookback >= 1 and at least lookback + 1 = {lookback + 1} values, "
            f"got lookback {lookback} and {z.shape[0]} values"
        )
    M = z.shape[0] - lookback
    idx = np.arange(lookback)[:, None] + np.arange(M)[None, :]  # (lookback, M)
    return z[idx][..., None], z[idx + 1][..., None]
