"""Time stamps read with pandas (series/times.py): the frequency, the stamps that follow,
and the one-line errors for stamps that cannot be used.

Oracles: calendars written out by hand (month lengths, leap years, weekdays).
"""

from __future__ import annotations

import sys

import pytest

from lstmkit.series import times
from lstmkit.series.times import TimeError, frequency, future_times, parse

pytest.importorskip("pandas")


@pytest.mark.parametrize(
    "stamps, freq, named",
    [
        (["1958-03", "1958-04", "1958-05"], "MS", ("monthly", 12)),
        (["2001-01-31", "2001-02-28", "2001-03-31"], "ME", ("monthly", 12)),
        (["1700", "1701", "1702"], "YS-JAN", ("yearly", 1)),
        (["1700.0", "1701.0"], "YS-JAN", ("yearly", 1)),  # two stamps: one calendar step
        (["2020-01-01", "2020-01-02", "2020-01-03"], "D", ("daily", 7)),
        (["2020-01-01", "2020-01-08", "2020-01-15"], "W-WED", ("weekly", 52)),
        (["2000-01-01", "2000-04-01", "2000-07-01"], "QS-OCT", ("quarterly", 4)),
        (["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 02:00"], "h", ("hourly", 24)),
        (["2020-01-01", "2020-01-11", "2020-01-21"], "10D", None),  # regular, no season
    ],
)
def test_frequency_and_season(stamps: list[str], freq: str, named: tuple | None) -> None:
    assert frequency(parse(stamps)) == freq
    assert times.infer_frequency(stamps) == named


def test_a_gap_keeps_the_frequency() -> None:
    months = [f"{2000 + k // 12}-{k % 12 + 1:02d}" for k in range(36)]
    del months[7:9]  # August and September 2000
    assert frequency(parse(months)) == "MS"
    assert frequency(parse(["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-11"])) is None


def test_future_stamps_monthly_daily_yearly_by_hand() -> None:
    assert future_times(["2001-11", "2001-12"], 3) == ["2002-01", "2002-02", "2002-03"]
    # month ends: 30 April, 31 May; February of a leap year has 29 days
    assert future_times(["2001-01-31", "2001-02-28", "2001-03-31"], 2) == [
        "2001-04-30",
        "2001-05-31",
    ]
    assert future_times(["2024-01-31", "2024-02-29", "2024-03-31"], 1) == ["2024-04-30"]
    assert future_times(["2024-02-27", "2024-02-28"], 3) == [
        "2024-02-29",
        "2024-03-01",
        "2024-03-02",
    ]
    assert future_times(["1700", "1701", "1702"], 2) == ["1703", "1704"]  # before pandas' ns range
    assert future_times(["2020-01-01 22:00", "2020-01-01 23:00"], 1) == ["2020-01-02 00:00:00"]
    assert future_times(["x", "y"], 2) == ["+1", "+2"]  # not times: positions
    assert future_times(None, 1) == ["+1"]


def test_future_stamps_stop_at_the_year_9999() -> None:
    with pytest.raises(ValueError, match="after '9999' would run past the year 9999 at step 1"):
        future_times(["9998", "9999"], 1)


@pytest.mark.parametrize(
    "stamps, position, needle",
    [
        (["2001-01", "2001-02", "2001/2"], 2, "time stamp '2001/2' repeats stamp 1"),
        (["2001-01", "2001-03", "2001-02"], 2, "'2001-02' comes before '2001-03' of stamp 1; sort"),
        (["2001-01-01", "soon"], 1, "time stamp 'soon' is not a time"),
        (["2001-01", "2001-13"], 1, "expected a month 1..12"),
        (["0", "1"], 0, "expected a year 1..9999"),
    ],
)
def test_unusable_stamps_name_the_first_offender(
    stamps: list[str], position: int, needle: str
) -> None:
    with pytest.raises(TimeError) as err:
        parse(stamps)
    assert err.value.position == position and needle in str(err.value)


def test_without_pandas_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'lstmkit\[series\]'"):
        parse(["2001-01", "2001-02"])


def test_without_pandas_only_a_time_column_needs_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstmkit.cli.app import main
    from lstmkit.series.data import read_csv

    path = tmp_path / "s.csv"
    path.write_text("t,y\n2001-01,1\n2001-02,2\n2001-03,3\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "pandas", None)
    assert read_csv(path, "y").values.tolist() == [1.0, 2.0, 3.0]  # no time column: no pandas
    argv = ["series", "train", "--csv", str(path), "--column", "y", "--time-column", "t",
            "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "pip install 'lstmkit[series]'" in err, err
