"""Reading covariate columns and long-format CSVs (one row per series id and time).

Numeric columns are read by :func:`lstmkit.series.data.read_csv`, so a missing or non-numeric
cell is the same one-line error naming the row and column; the id and time columns are read
here as text. Lines that are entirely empty are skipped by both, so rows stay aligned.

Long format: the rows of each id are in time order (ids may interleave); a repeated time stamp
within one id, an empty id and an id column that does not exist are errors.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.series.data import CSVError, read_csv

__all__ = ["LongData", "check_columns", "read_columns", "read_long"]


def _header(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise CSVError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except csv.Error as e:
        raise CSVError(f"{path}: not a readable CSV file: {e}") from None
    if not header:
        raise CSVError(f"{path}: empty file; expected a header row with column names")
    return [h.strip() for h in header]


def check_columns(path: str | Path, columns: Sequence[str], option: str) -> None:
    """A CSVError naming ``option`` if a column is not in the file's header."""
    header = _header(path)
    for c in columns:
        if c not in header:
            raise CSVError(
                f"{path}: no column {c!r} ({option}); the header has: "
                + ", ".join(repr(h) for h in header)
            )


def read_columns(path: str | Path, columns: Sequence[str], option: str) -> np.ndarray:
    """The numeric ``columns`` of a CSV -> (n, len(columns)) float64 ((n, 0) for none)."""
    check_columns(path, columns, option)
    if not columns:
        return np.zeros((len(_text_column(path, None)), 0))
    return np.stack([read_csv(path, c).values for c in columns], axis=1)


def _text_column(path: str | Path, column: str | None) -> list[tuple[int, str]]:
    """(row number, stripped cell) of one column (None: empty cells), the header being row
    1; empty lines skipped as :func:`read_csv` skips them."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        j = None if column is None else header.index(column)
        return [
            (r, row[j].strip() if j is not None and j < len(row) else "")
            for r, row in enumerate(reader, start=2)
            if any(cell.strip() for cell in row)
        ]


@dataclass(frozen=True)
class LongData:
    """Series by id in order of first appearance: values (n_i,), covariates (n_i, C) and time
    stamps (or None) of each."""

    ids: list[str]
    y: list[np.ndarray]
    X: list[np.ndarray]
    P: list[np.ndarray]
    times: list[list[str]] | None


def read_long(
    path: str | Path,
    id_column: str,
    column: str,
    time_column: str | None = None,
    future: Sequence[str] = (),
    past: Sequence[str] = (),
) -> LongData:
    """A long-format CSV (see the module docstring) split by ``id_column``."""
    check_columns(path, [id_column], "--id-column")
    check_columns(path, [column], "--column")
    if time_column is not None:
        check_columns(path, [time_column], "--time-column")
    values = read_csv(path, column).values
    X = read_columns(path, future, "--future-covariates")
    Pc = read_columns(path, past, "--past-covariates")
    ids = _text_column(path, id_column)
    times = _text_column(path, time_column) if time_column is not None else None
    rows: dict[str, list[int]] = {}
    for k, (r, name) in enumerate(ids):
        if not name:
            raise CSVError(f"{path}: row {r}, column {id_column!r}: missing series id")
        rows.setdefault(name, []).append(k)
    if times is not None:
        _check_times(path, ids, times, time_column or "")
    order = list(rows)
    return LongData(
        order,
        [values[rows[k]] for k in order],
        [X[rows[k]] for k in order],
        [Pc[rows[k]] for k in order],
        None if times is None else [[times[r][1] for r in rows[k]] for k in order],
    )


def _check_times(
    path: str | Path, ids: list[tuple[int, str]], times: list[tuple[int, str]], column: str
) -> None:
    seen: dict[tuple[str, str], int] = {}
    for (r, name), (_, t) in zip(ids, times):
        if not t:
            raise CSVError(f"{path}: row {r}, column {column!r}: missing time stamp")
        if (name, t) in seen:
            raise CSVError(
                f"{path}: row {r}, column {column!r}: time stamp {t!r} of series {name!r} "
                f"repeats row {seen[name, t]}"
            )
        seen[name, t] = r
