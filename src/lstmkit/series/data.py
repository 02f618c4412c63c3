"""A numeric column of a CSV file, its time stamps, the split, the scaler and the windows.

Reading (:func:`read_csv`) uses the standard library's ``csv`` module; the time column's
stamps are read by pandas (:mod:`lstmkit.series.times`). The first row is the header; rows
are numbered like a spreadsheet's (the header is row 1, the first value row 2). A
non-numeric value is an error naming the row and the column; a missing one (an empty cell,
or a stamp the frequency skips) too, unless ``missing`` chooses to fill or mask it
(:mod:`lstmkit.series.missing`) — never a silent NaN. Lines that are entirely empty are
skipped.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.series import times
from lstmkit.series.missing import (
    CHOICES,
    MissingError,
    check,
    check_mode,
    complete_grid,
    fill,
    is_missing_cell,
)
from lstmkit.series.times import future_times, infer_frequency

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
    values: np.ndarray  # (n,) float64; NaN where missing (only when missing != "error")
    times: list[str] | None  # the time column's cells, as written, or None
    column: str
    time_column: str | None
    source: str
    missing: str = "error"  # what to do with missing values (lstmkit.series.missing)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def history(self, end: int | None = None) -> np.ndarray:
        """The values before ``end`` (default: all) with the missing ones filled by the
        series' mode from those values alone (see :func:`lstmkit.series.missing.fill`)."""
        return fill(self.values[:end], self.missing)[0]


def read_csv(
    path: str | os.PathLike[str],
    column: str,
    time_column: str | None = None,
    missing: str = "error",
) -> Series:
    """The numeric column ``column`` of the CSV file ``path`` (and optionally its time stamps).

    Raises ``FileNotFoundError`` for a missing file and :class:`CSVError` for a file that is
    not UTF-8 text, a missing column, an empty file, a cell that is not a number, not finite
    or too large to scale (:data:`MAX_ABS`), or time stamps that are empty, unreadable,
    repeated, unsorted or at no regular frequency. Missing values (empty cells, stamps that
    a regular frequency skips) are an error for ``missing="error"``, else NaN in the values
    (see :mod:`lstmkit.series.missing`). A ``ModuleNotFoundError`` if a time column is given
    and pandas is missing.
    """
    check_mode(missing)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    try:
        return _read_csv(path, column, time_column, missing)
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


def _read_csv(path: Path, column: str, time_column: str | None, missing: str) -> Series:
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
        cells: list[str] = []
        rows: list[int] = []  # the CSV row of each value
        for row_number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            values.append(_number(path, row, row_number, index, column))
            rows.append(row_number)
            if t_index is not None:
                stamp = row[t_index].strip() if t_index < len(row) else ""
                if not stamp:
                    raise CSVError(
                        f"{path}: row {row_number}, column {time_column!r}: missing time stamp"
                    )
                cells.append(stamp)
    if not values:
        raise CSVError(f"{path}: no data rows under the header")
    v = np.array(values, np.float64)
    if t_index is None:
        _check_missing(path, v, missing, lambda k: f"row {rows[k]}, column {column!r}")
        return Series(v, None, column, None, str(path), missing)
    v, written = _on_time_grid(path, v, cells, rows, time_column, column, missing)
    return Series(v, written, column, time_column, str(path), missing)


def _on_time_grid(
    path: Path,
    v: np.ndarray,
    cells: list[str],
    rows: list[int],
    time_column: str | None,
    column: str,
    missing: str,
) -> tuple[np.ndarray, list[str]]:
    """The values and stamps with the stamps a regular frequency skips added (NaN values);
    a CSVError for unusable stamps, or for missing values under "error"."""
    where = f"{path}: column {time_column!r}"

    def row(k: int) -> str:
        return f"row {rows[k]}"

    try:
        stamps = times.parse(cells)
    except times.TimeError as e:
        located = e.located(lambda k: f"row {rows[k]}, column {time_column!r}", row)
        raise CSVError(f"{path}: {located}") from None
    freq = times.frequency(stamps)
    if freq is None and len(cells) > 2:
        raise CSVError(
            f"{where}: the time stamps follow no regular frequency (pandas infers none, e.g. "
            f"from {cells[0]!r}, {cells[1]!r}, {cells[2]!r}); resample the series or leave out "
            "--time-column"
        )
    if freq is None:
        _check_missing(path, v, missing, lambda k: f"row {rows[k]}, column {column!r}")
        return v, cells
    full, grid, inserted = complete_grid(v, stamps, freq)
    written = stamps.format(grid)
    at = grid.get_indexer(stamps.index)  # (n,) each row's place on the grid
    for k, g in enumerate(at):
        written[g] = cells[k]  # the stamps as the file writes them
    first = int(np.argmax(np.isnan(full))) if np.isnan(full).any() else -1
    if missing == "error" and first in inserted:  # the first missing value is a skipped stamp
        k, run = first, _run(inserted[inserted.index(first) :])
        raise CSVError(
            f"{where}: the time stamps skip from {written[k - 1]!r} to {written[k + run]!r} "
            f"(a gap of {run}; {len(inserted)} missing in all); add the rows or choose "
            f"--missing {CHOICES}"
        )
    row_at = {int(g): r for g, r in zip(at, rows)}
    _check_missing(path, full, missing, lambda k: f"row {row_at[k]}, column {column!r}")
    return full, written


def _run(positions: list[int]) -> int:
    """The length of the first run of consecutive positions."""
    k = 1
    while k < len(positions) and positions[k] == positions[0] + k:
        k += 1
    return k


def _check_missing(path: Path, v: np.ndarray, missing: str, where: Any) -> None:
    try:
        check(v, missing)
    except MissingError:
        gaps = np.flatnonzero(np.isnan(v))
        more = f" (and {gaps.size - 1} more)" if gaps.size > 1 else ""
        raise CSVError(
            f"{path}: {where(int(gaps[0]))}: missing value (empty or NaN cell){more}; fill it in, "
            f"remove the row, or choose --missing {CHOICES}"
        ) from None


def _column_index(path: Path, header: list[str], name: str, option: str) -> int:
    if name not in header:
        raise CSVError(
            f"{path}: no column {name!r} ({option}); the header has: "
            + ", ".join(repr(h) for h in header)
        )
    return header.index(name)


def _number(path: Path, row: list[str], row_number: int, index: int, column: str) -> float:
    """The cell's number; NaN for a missing value (see :func:`missing.is_missing_cell`)."""
    where = f"{path}: row {row_number}, column {column!r}"
    cell = row[index].strip() if index < len(row) else ""
    if is_missing_cell(cell):
        return math.nan
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
