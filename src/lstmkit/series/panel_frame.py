"""Many series in a long pandas DataFrame (one row per series id and time) <-> a Panel.

The frame holds an id column, a value column, optionally a time column and covariate columns
(Nixtla's names by default: ``unique_id``, ``ds``, ``y``). :func:`frame_panel` splits it by id
(in the frame's order of first appearance), sorts each id's rows by time, and checks it: every named
column exists, the values and covariates are finite numbers, no id repeats a time stamp.
:func:`long_frame` builds the long answer of a forecast: id, time, then the value columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmkit.series.many import Panel

__all__ = ["FramePanel", "frame_panel", "future_rows", "long_frame"]


@dataclass(frozen=True)
class FramePanel:
    """A long frame as a :class:`Panel`, with each series' time index (None without a time
    column) and the column names it was read with."""

    panel: Panel
    index: list[Any] | None
    id_column: str
    time_column: str | None
    column: str


def _check_frame(df: Any, columns: Sequence[str], what: str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"{what}: expected a pandas DataFrame in long format, got {type(df).__name__}"
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: expected the columns {list(columns)}, missing {missing} (the frame has "
            f"{[str(c) for c in df.columns]}); name them with id_column=, time_column=, column="
        )


def _numbers(df: Any, columns: Sequence[str], what: str) -> np.ndarray:
    """(rows, len(columns)) float64 of numeric, finite columns; ValueError naming the first
    bad column and id."""
    import pandas as pd

    for c in columns:
        if not pd.api.types.is_numeric_dtype(df[c].dtype) or pd.api.types.is_bool_dtype(df[c]):
            raise TypeError(f"{what}: expected numbers in column {c!r}, got dtype {df[c].dtype}")
    values = df[list(columns)].to_numpy(np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{what}: column {columns[c]!r} has {int(bad[:, c].sum())} missing or infinite "
            f"values (first at row {df.index[r]!r}); the global forecaster needs complete series"
        )
    return values


def frame_panel(
    df: Any,
    id_column: str,
    time_column: str | None,
    column: str,
    future: Sequence[str] = (),
    past: Sequence[str] = (),
) -> FramePanel:
    """The series of a long frame; see the module docstring. ``time_column`` None: each
    id's rows in the frame's order."""
    import pandas as pd

    what = "df"
    named = [id_column, column, *([time_column] if time_column else []), *future, *past]
    _check_frame(df, named, what)
    if len(set(named)) != len(named):
        raise ValueError(f"{what}: expected each column in one role, got {named}")
    if len(df) == 0:
        raise ValueError(f"{what}: expected rows, got an empty frame")
    if df[id_column].isna().any():
        raise ValueError(f"{what}: column {id_column!r} has missing series ids")
    first_seen = pd.unique(df[id_column].astype(str).to_numpy())  # the frame's order of ids
    if time_column:
        if df[time_column].isna().any():
            raise ValueError(f"{what}: column {time_column!r} has missing time stamps")
        repeats = df.duplicated([id_column, time_column])
        if repeats.any():
            row = df[repeats].iloc[0]
            raise ValueError(
                f"{what}: series {str(row[id_column])!r} repeats the time stamp "
                f"{row[time_column]!r}"
            )
        df = df.sort_values(time_column, kind="stable")
    y = _numbers(df, [column], what)[:, 0]
    X = _numbers(df, list(future), what) if future else np.zeros((len(df), 0))
    Pc = _numbers(df, list(past), what) if past else np.zeros((len(df), 0))
    keys = df[id_column].astype(str).to_numpy()
    positions = pd.Series(np.arange(len(df))).groupby(keys).indices  # id -> rows, time order
    ids = [str(k) for k in first_seen]
    rows = [positions[k] for k in ids]
    order = df.reset_index(drop=True)
    index = None
    if time_column:
        index = [_time_index(order[time_column].iloc[r]) for r in rows]
    panel = Panel([y[r] for r in rows], [X[r] for r in rows], [Pc[r] for r in rows], ids)
    return FramePanel(panel, index, id_column, time_column, column)


def _time_index(times: Any) -> Any:
    """A series' time stamps as a pandas index (a DatetimeIndex for datetimes)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(times.dtype):
        return pd.DatetimeIndex(times.to_numpy())
    return pd.Index(times.to_numpy())


def future_rows(
    df: Any, fp: FramePanel, names: Sequence[str], h: int, what: str = "X_future"
) -> list[np.ndarray]:
    """Each series' known-future covariates (h, F) from a long frame: its first h rows (in
    time order) of every id of ``fp``; a ValueError naming a series with fewer."""
    time_column = fp.time_column if fp.time_column in getattr(df, "columns", ()) else None
    _check_frame(df, [fp.id_column, *names], what)
    if time_column:
        df = df.sort_values(time_column, kind="stable")
    values = _numbers(df, list(names), what)
    ids = df[fp.id_column].astype(str).to_numpy()
    out = []
    for name in fp.panel.ids:
        rows = values[ids == name][:h]
        if rows.shape[0] < h:
            raise ValueError(
                f"{what}: expected {h} rows of {list(names)} for series {name!r}, got "
                f"{rows.shape[0]}"
            )
        out.append(rows)
    return out


def long_frame(fp: FramePanel, times: list[Any], columns: dict[str, np.ndarray]) -> Any:
    """A long DataFrame: the id column, the time column (``time_column`` or ``step``) of
    each series' h labels ``times[i]``, then each of ``columns`` (name -> (K, h))."""
    import pandas as pd

    K = len(fp.panel.ids)
    h = next(iter(columns.values())).shape[1]
    frame = {
        fp.id_column: np.repeat(np.array(fp.panel.ids, dtype=object), h),
        fp.time_column or "step": np.concatenate([np.asarray(t) for t in times])
        if K
        else np.empty(0),
    }
    for name, values in columns.items():
        frame[name] = np.asarray(values, np.float64).reshape(K * h)
    out = pd.DataFrame(frame)
    if fp.index is not None and isinstance(fp.index[0], pd.DatetimeIndex):
        out[fp.time_column] = pd.to_datetime(out[fp.time_column])
    return out
