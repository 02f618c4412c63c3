"""Time stamps: read with pandas, their frequency (``pd.infer_freq``), the stamps after them.

A time column's cells are read in one of four styles, and stamps made here keep it:

=========  =======================================  ===============================
style      cells                                    parsed as
=========  =======================================  ===============================
year       ``1750``, ``1750.0``                     1 January of that year
month      ``1958-03``, ``1958/3``                  the first of that month
date       ISO dates, ``2020-01-31``, ``2020/1/31``  ``pd.to_datetime(format="ISO8601")``
datetime   ISO date times, ``2020-01-01 10:00``     the same; a UTC offset is dropped
=========  =======================================  ===============================

Stamps are held at a resolution of seconds (years 1 to 9999). The frequency is pandas'
(``pd.infer_freq``: ``MS``, ``ME``, ``W-WED``, ``QS-OCT``, ``YS-JAN``, ``D``, ``h``...);
stamps with a gap are still recognised when every one of them lies on the grid of one
frequency (:func:`frequency`): the missing ones are then known (see
:mod:`lstmkit.series.missing`). Seasons: hourly 24, daily 7, business-daily 5, weekly 52,
monthly 12, quarterly 4, yearly 1.

pandas is an optional extra (``pip install 'lstmkit[series]'``), imported only here, when a
time column is read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "INSTALL_HINT",
    "Stamps",
    "TimeError",
    "frequency",
    "future_times",
    "infer_frequency",
    "parse",
    "season_of",
]

INSTALL_HINT = (
    "time stamps are read with pandas: pip install 'lstmkit[series]' (or pip install 'pandas>=2')"
)

# pandas frequency (its base, without the anchor after '-') -> (name, season)
_SEASONS = {
    "h": ("hourly", 24), "H": ("hourly", 24), "D": ("daily", 7), "B": ("business-daily", 5),
    "W": ("weekly", 52), "MS": ("monthly", 12), "ME": ("monthly", 12), "M": ("monthly", 12),
    "QS": ("quarterly", 4), "QE": ("quarterly", 4), "Q": ("quarterly", 4),
    "YS": ("yearly", 1), "YE": ("yearly", 1), "Y": ("yearly", 1), "AS": ("yearly", 1),
    "A": ("yearly", 1),
}  # fmt: skip
_YEAR = re.compile(r"^(\d{1,4})(\.0*)?$")
_YEAR_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")


class TimeError(ValueError):
    """Time stamps that cannot be used; ``position`` is the first offending stamp (0-based),
    ``other`` the earlier one it clashes with (or None). ``text`` says what is wrong."""

    def __init__(self, position: int, text: str, other: int | None = None) -> None:
        self.position, self.text, self.other = position, text, other
        super().__init__(self.located(lambda k: f"stamp {k}"))

    def located(self, where: Callable[[int], str], name: Callable[[int], str] | None = None) -> str:
        """The message with the offending position named by ``where`` (e.g. its CSV row and
        column) and the earlier one by ``name`` (default ``where``)."""
        name = name or where
        text = self.text if self.other is None else self.text.format(other=name(self.other))
        return f"{where(self.position)}: {text}"


def _pandas() -> Any:
    try:
        import pandas as pd
    except ModuleNotFoundError:
        raise ModuleNotFoundError(INSTALL_HINT, name="pandas") from None
    return pd


@dataclass(frozen=True)
class Stamps:
    """Parsed time stamps: ``index`` a pandas DatetimeIndex (n,) in seconds, ``style`` one of
    year, month, date, datetime (see the module docstring)."""

    index: Any
    style: str

    def format(self, index: Any) -> list[str]:
        """Stamps of a DatetimeIndex written in this style."""
        if self.style == "year":
            return [f"{t.year}" for t in index]
        if self.style == "month":
            return [f"{t.year:04d}-{t.month:02d}" for t in index]
        if self.style == "date":
            return [t.strftime("%Y-%m-%d") for t in index]
        return [t.isoformat(sep=" ") for t in index]


def parse(times: list[str]) -> Stamps:
    """Stamps (n,) -> :class:`Stamps`; a :class:`TimeError` for a stamp that is not a time,
    repeats an earlier one, or comes before the one above it (unsorted)."""
    pd = _pandas()
    cells = [t.strip() for t in times]
    if cells and all(_YEAR.match(c) for c in cells):  # numpy holds years 1 .. 9999
        style, index = "year", _calendar(pd, [_year(k, c) for k, c in enumerate(cells)])
    elif cells and all(_YEAR_MONTH.match(c) for c in cells):
        style, index = "month", _calendar(pd, [_month(k, c) for k, c in enumerate(cells)])
    else:
        style = "date" if all(len(c) <= 10 for c in cells) else "datetime"
        index = _to_index(pd, [c.replace("/", "-") for c in cells], cells)
    repeats = np.flatnonzero(index.duplicated())
    if repeats.size:
        k = int(repeats[0])
        first = int(np.argmax(index.asi8 == index.asi8[k]))
        raise TimeError(k, f"time stamp {cells[k]!r} repeats {{other}}", first)
    later = np.flatnonzero(np.diff(index.asi8) < 0)
    if later.size:
        k = int(later[0]) + 1
        raise TimeError(
            k,
            f"time stamp {cells[k]!r} comes before {cells[k - 1]!r} of {{other}}; sort the rows "
            "by time",
            k - 1,
        )
    return Stamps(index, style)


def _calendar(pd: Any, iso: list[str]) -> Any:
    """ISO dates of years and months -> DatetimeIndex in seconds (any year 1 .. 9999)."""
    return pd.DatetimeIndex(np.array(iso, "datetime64[s]"))


def _year(k: int, cell: str) -> str:
    m = _YEAR.match(cell)
    assert m is not None
    if int(m.group(1)) < 1:
        raise TimeError(k, f"time stamp {cell!r}: expected a year 1..9999")
    return f"{int(m.group(1)):04d}-01-01"


def _month(k: int, cell: str) -> str:
    m = _YEAR_MONTH.match(cell)
    assert m is not None
    if not 1 <= int(m.group(2)) <= 12:
        raise TimeError(k, f"time stamp {cell!r}: expected a month 1..12")
    return f"{m.group(1)}-{int(m.group(2)):02d}-01"


def _to_index(pd: Any, iso: list[str], cells: list[str]) -> Any:
    """ISO strings -> DatetimeIndex in seconds; a TimeError naming the first unreadable."""
    try:
        index = pd.to_datetime(iso, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):  # e.g. mixed UTC offsets
        index = pd.DatetimeIndex([_one(pd, s) for s in iso])
    bad = np.flatnonzero(pd.isna(index))
    if bad.size:
        k = int(bad[0])
        raise TimeError(
            k,
            f"time stamp {cells[k]!r} is not a time (expected a year, YYYY-MM, or an ISO date "
            "or date time between the years 1677 and 2262)",
        )
    if index.tz is not None:
        index = index.tz_localize(None)
    return index.as_unit("s")


def _one(pd: Any, s: str) -> Any:
    try:
        t = pd.Timestamp(s)
        return t.tz_localize(None) if t.tz is not None else t
    except (ValueError, TypeError):
        return pd.NaT


def frequency(stamps: Stamps) -> str | None:
    """The pandas frequency of the stamps (``pd.infer_freq``), or None if they follow none.

    Stamps with gaps: the frequency most often inferred from runs of three consecutive
    stamps, if every stamp lies on that frequency's grid from the first to the last and at
    least half of the grid's stamps are there (any dates lie on the daily grid: sparse
    ones are irregular, not a daily series with gaps). Two
    stamps: the step between them (a whole number of months for years and months).
    """
    pd = _pandas()
    index = stamps.index
    if len(index) < 2:
        return None
    if len(index) == 2:
        index = _third(pd, index, stamps.style)
    freq = pd.infer_freq(index)
    if freq is not None:
        return str(freq)
    starts = np.unique(np.linspace(0, len(index) - 3, min(25, len(index) - 2)).astype(int))
    votes = Counter(pd.infer_freq(index[s : s + 3]) for s in starts)
    votes.pop(None, None)
    for freq, _ in votes.most_common(2):
        grid = pd.date_range(index[0], index[-1], freq=freq, unit="s")
        if len(grid) <= 2 * len(index) and index.isin(grid).all():
            return str(freq)
    return None


def _third(pd: Any, index: Any, style: str) -> Any:
    """Two stamps and a third one step on (calendar months for years and months), after
    them, or before them near the year 9999."""
    a, b = index[0], index[1]
    months = 12 * (b.year - a.year) + b.month - a.month
    step = pd.DateOffset(months=months) if style in ("year", "month") else b - a
    try:
        third = np.array([(b + step).asm8], "datetime64[s]")
        return index.append(pd.DatetimeIndex(third))
    except (ValueError, OverflowError):  # past 9999: pandas' OutOfBoundsDatetime among them
        third = np.array([(a - step).asm8], "datetime64[s]")
        return pd.DatetimeIndex(third).append(index)


def season_of(freq: str | None) -> tuple[str, int] | None:
    """("monthly", 12), ("yearly", 1), ... of a pandas frequency; None for others (e.g. 10D)."""
    if freq is None:
        return None
    base = freq.split("-")[0]
    return _SEASONS.get(base)


def infer_frequency(times: list[str] | None) -> tuple[str, int] | None:
    """("monthly", 12), ("yearly", 1)... of time stamps, or None when they are missing,
    unreadable, not increasing or not at one of the recognised frequencies (see the module
    docstring). Stamps with gaps count at their frequency."""
    if not times or len(times) < 2:
        return None
    try:
        return season_of(frequency(parse(times)))
    except TimeError:
        return None


def future_times(times: list[str] | None, horizon: int) -> list[str]:
    """Time stamps of the ``horizon`` steps after the last one, at the stamps' frequency and
    in their style. Without a frequency the steps are labelled ``+1, +2, ...``. A ValueError
    if they would run past the year 9999."""
    labels = [f"+{h}" for h in range(1, horizon + 1)]
    if not times or len(times) < 2 or horizon < 1:
        return labels
    try:
        stamps = parse(times)
    except TimeError:
        return labels
    freq = frequency(stamps)
    if freq is None:
        return labels
    pd = _pandas()
    try:
        future = pd.date_range(stamps.index[-1], periods=horizon + 1, freq=freq, unit="s")[1:]
        late = np.flatnonzero(future.year > 9999)
        h = int(late[0]) + 1 if late.size else 0
    except (ValueError, OverflowError):  # pandas' OutOfBoundsDatetime among them
        h = 1 + sum(1 for _ in _until_9999(pd, stamps.index[-1], freq, horizon))
    if h:
        last = stamps.format(stamps.index[-1:])[0]
        raise ValueError(
            f"--horizon {horizon}: the time stamps after {last!r} would run past the year "
            f"9999 at step {h}; forecast at most {h - 1} steps"
        )
    return stamps.format(future)


def _until_9999(pd: Any, last: Any, freq: str, horizon: int) -> Any:
    """The stamps after ``last`` one by one, while they stay before the year 10000."""
    offset = pd.tseries.frequencies.to_offset(freq)
    t = last
    for _ in range(horizon):
        try:
            t = t + offset
        except (ValueError, OverflowError):
            return
        if t.year > 9999:
            return
        yield t
