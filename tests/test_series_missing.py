"""Missing values (series/missing.py): an error by default, or filled or masked by choice.

Oracles: fills written out by hand; the loss's gradient read off the model's backward;
the backtest's histories compared with the series cut by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.cli.app import main
from lstmkit.series.data import CSVError, read_csv
from lstmkit.series.missing import MissingError, fill

pytest.importorskip("pandas")

NAN = np.nan


def write(tmp_path: Path, rows: list[tuple[str, str]], name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text("t,y\n" + "".join(f"{t},{v}\n" for t, v in rows), encoding="utf-8")
    return path


def monthly(n: int, skip: tuple[int, ...] = (), empty: tuple[int, ...] = ()) -> list:
    rows = []
    for k in range(n):
        if k in skip:
            continue
        v = "" if k in empty else f"{10 + np.sin(k / 2):.4f}"
        rows.append((f"{2000 + k // 12}-{k % 12 + 1:02d}", v))
    return rows


# ---- each mode, by hand ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("interpolate", [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]),  # ends: the nearest observed value
        ("mask", [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]),  # its inputs are interpolated
        ("previous", [1.0, 1.0, 1.0, 1.0, 4.0, 4.0]),  # before the first: the first
    ],
)
def test_fill_by_hand(mode: str, expected: list[float]) -> None:
    filled, observed = fill(np.array([NAN, 1.0, NAN, NAN, 4.0, NAN]), mode)
    np.testing.assert_array_equal(filled, expected)
    np.testing.assert_array_equal(observed, [False, True, False, False, True, False])


def test_fill_refuses_by_default_and_when_nothing_is_observed() -> None:
    with pytest.raises(MissingError, match="position 2: missing value .and 1 more.; fill"):
        fill(np.array([1.0, 2.0, NAN, NAN]), "error")
    with pytest.raises(MissingError, match="all 2 values are missing"):
        fill(np.array([NAN, NAN]), "previous")
    values, observed = fill(np.array([1.0, 2.0]), "error")  # nothing missing: no error
    assert observed.all() and values.tolist() == [1.0, 2.0]


# ---- reading a CSV: empty cells and skipped time stamps -------------------------------


def test_the_default_is_an_error_naming_the_row_and_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, monthly(30, empty=(4,)))
    with pytest.raises(CSVError) as err:
        read_csv(path, "y", "t")
    message = str(err.value)
    assert "row 6, column 'y': missing value" in message and "--missing interpolate" in message
    assert "\n" not in message


def test_a_skipped_time_stamp_is_a_gap(tmp_path: Path) -> None:
    path = write(tmp_path, monthly(30, skip=(6, 7)))  # July and August 2000
    with pytest.raises(CSVError, match="skip from '2000-06' to '2000-09' .a gap of 2; 2 missing"):
        read_csv(path, "y", "t")
    s = read_csv(path, "y", "t", missing="interpolate")
    assert len(s) == 30 and s.times[6:8] == ["2000-07", "2000-08"]
    assert np.isnan(s.values[6:8]).all()  # still missing: filled by whoever reads them
    h = s.history()
    np.testing.assert_allclose(h[6:8], h[5] + (h[8] - h[5]) * np.array([1, 2]) / 3)


@pytest.mark.parametrize(
    "rows, needle",
    [
        ([("2001-01", "1"), ("2001-02", "2"), ("2001-2", "3")], "row 4, column 't': time stamp "
         "'2001-2' repeats row 3"),
        ([("2001-01", "1"), ("2001-03", "2"), ("2001-02", "3")], "row 4, column 't': time stamp "
         "'2001-02' comes before '2001-03' of row 3; sort the rows"),
        ([("2001-01-01", "1"), ("2001-01-02", "2"), ("2001-01-05", "3"), ("2001-01-11", "4")],
         "follow no regular frequency"),
        ([("2001-01-01", "1"), ("tomorrow", "2")], "row 3, column 't': time stamp 'tomorrow' is "
         "not a time"),
    ],
)  # fmt: skip
def test_irregular_duplicate_unsorted_stamps_are_one_line_errors(
    tmp_path: Path, rows: list, needle: str
) -> None:
    path = write(tmp_path, rows)
    with pytest.raises(CSVError) as err:
        read_csv(path, "y", "t", missing="interpolate")
    assert needle in str(err.value) and "\n" not in str(err.value)


# ---- the command line ----------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def train_argv(csv: Path) -> list[str]:
    return ["series", "train", "--csv", str(csv), "--column", "y", "--time-column", "t",
            "--lookback", "4", "--horizon", "3", "--hidden", "4", "--steps", "2",
            "--eval-every", "1", "--no-progress"]  # fmt: skip


def test_cli_default_error_and_bad_choices(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = write(tmp_path, monthly(40, empty=(10, 11), skip=(20,)))
    base = train_argv(csv)
    code, _, err = run(capsys, base + ["--out", str(tmp_path / "r0")])
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "row 12, column 'y': missing value (empty or NaN cell) (and 2 more)" in err
    assert "--missing interpolate" in err
    code, _, err = run(capsys, base + ["--out", str(tmp_path / "r2"), "--missing", "mask"])
    assert code == 1 and "--missing mask goes with the automatic forecaster" in err
    code, _, err = run(capsys, base + ["--out", str(tmp_path / "r3"), "--missing", "zero"])
    assert code == 2 and "invalid choice: 'zero'" in err
    assert not any((tmp_path / f"r{k}").exists() for k in (0, 2, 3))


@pytest.mark.slow
def test_cli_the_flag_on_train_and_forecast(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = write(tmp_path, monthly(40, empty=(10, 11), skip=(20,)))
    base = train_argv(csv)
    code, out, err = run(capsys, base + ["--out", str(tmp_path / "r1"), "--missing", "previous"])
    assert code == 0, err
    assert "3 missing values filled with the previous value (--missing previous)" in err
    forecast = ["series", "forecast", "--run", str(tmp_path / "r1"), "--csv", str(csv),
                "--horizon", "2", "--out", str(tmp_path / "f.csv"), "--no-plot"]  # fmt: skip
    code, _, err = run(capsys, forecast)
    assert code == 1 and "missing value" in err, err
    code, out, err = run(capsys, forecast + ["--missing", "interpolate"])
    assert code == 0 and "3 missing values interpolated" in err, err
    assert (tmp_path / "f.csv").read_text().splitlines()[1].startswith("2003-05,")


def test_mask_gives_missing_targets_no_gradient(forecaster_dpred: list[np.ndarray]) -> None:
    """fit_auto(observed=...): the positions whose target is missing get dL/dpred = 0, the
    others the masked mean's gradient (2 (pred - target) / number of observed)."""
    from lstmkit.series import auto
    from lstmkit.series.data import Scaler
    from lstmkit.series.transform import Transform

    seen = forecaster_dpred
    y = 10 + np.sin(np.arange(30) / 2)
    observed = np.ones(30, bool)
    observed[8:30] = False  # only the first 8 targets are known
    c = auto.Candidate(lookback=4, deseason=False, difference=False, hidden=3)
    config = auto.AutoConfig(steps=3, batch=30, burn_in=0.0, minutes=None)
    z_observed = auto._z_observed(observed, False)
    shift = Transform(np.zeros(1), False, Scaler(10.0, 1.0))  # encode(y) = y - 10
    auto._train(shift, y, c, config, 0, 3, np.inf, None, z_observed)
    # windows start at s = 0..25; the target of (position p, window s) is z[s + p + 1]
    for dpred in seen:
        assert dpred.shape[1] == 26  # every window: none is dropped
    s, p = np.meshgrid(np.arange(26), np.arange(4))
    unknown = (s + p + 1) >= 8
    order = np.random.default_rng([0, 1]).choice(26, 26, replace=False)
    assert np.all(seen[0][unknown[:, order]] == 0)
    assert np.all(seen[0][~unknown[:, order]] != 0)
    assert auto._z_observed(np.array([1, 0, 1, 1], bool), True).tolist() == [False, False, True]


def test_mask_in_the_api_and_a_datetime_index_with_a_gap() -> None:
    pd = pytest.importorskip("pandas")
    t = np.arange(48)
    y = pd.Series(10 + np.sin(2 * np.pi * t / 12), index=pd.date_range("2000-01", periods=48,
                  freq="MS"))  # fmt: skip
    y = y.drop(y.index[[5, 6]])  # two months missing from the index
    config = lk.series.auto.AutoConfig(steps=20, eval_every=10, hidden=4, sizes=(), top=1,
                                       seeds=1, minutes=None)  # fmt: skip
    with pytest.raises(ValueError, match="2 missing values .*2000-06-01.*missing='interpolate'"):
        lk.series.Forecaster(horizon=3, config=config).fit(y)
    f = lk.series.Forecaster(horizon=3, config=config, missing="mask").fit(y)
    assert f.predict(3).index[0] == pd.Timestamp("2004-01-01")
    assert f.season_ == 12 and "missing='mask'" in repr(f)


def test_a_backtest_fills_each_history_from_itself(tmp_path: Path) -> None:
    """No value at or after an origin reaches a model through the filling: a gap just before
    an origin is filled with the last value before it, not interpolated towards the next."""
    from lstmkit.series import backtest as bt
    from lstmkit.series.data import Series

    v = np.arange(40, dtype=np.float64)
    v[28:30] = NAN  # just before the origin 30
    v[33] = NAN  # an actual that is missing: not scored
    series = Series(v, None, "y", None, "test", "interpolate")
    seen = {}

    def spy(history: Series, h: int) -> np.ndarray:
        seen[len(history)] = history.history()
        return np.full(h, 100.0)

    report = bt.backtest(series, 5, [30, 35], 1, {"spy": spy})
    np.testing.assert_array_equal(seen[30][26:], [26, 27, 27, 27])  # held: nothing after 30
    assert seen[35][28:30].tolist() == [28.0, 29.0]  # interpolated from inside the history
    first = report["models"]["spy"]["per_origin"][0]
    assert first["mae"] == np.mean(np.abs(np.array([30, 31, 32, 34]) - 100.0))
