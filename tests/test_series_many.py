"""Many series, one global model: a long-format CSV splits by id, each series is scaled by its
own statistics, the global model forecasts each, the backtest averages MASE per series, and
missing ids or short series are one clear error."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.series.auto import AutoConfig
from lstmkit.series.data import CSVError
from lstmkit.series.evaluate import mase
from lstmkit.series.many import Panel, fit_global
from lstmkit.series.many_backtest import backtest_panel, panel_origins
from lstmkit.series.panel_data import read_long

TINY = AutoConfig(steps=10, eval_every=10, hidden=4, sizes=(), top=1, seeds=1, minutes=0.2)


def write_long(path: Path, series: dict[str, np.ndarray], interleave: bool = True) -> Path:
    rows = [(k, t, v) for k, y in series.items() for t, v in enumerate(y)]
    if interleave:
        rows.sort(key=lambda r: r[1])  # ids interleave, each id's rows in time order
    lines = ["unique_id,ds,y"] + [f"{k},{2000 + t // 12}-{t % 12 + 1:02d},{v}" for k, t, v in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_long_csv_splits_by_id_in_order_of_first_appearance(tmp_path) -> None:
    a, b = np.arange(5.0), 10 + np.arange(3.0)
    d = read_long(write_long(tmp_path / "l.csv", {"b": b, "a": a}), "unique_id", "y", "ds")
    assert d.ids == ["b", "a"]
    np.testing.assert_array_equal(d.y[0], b)
    np.testing.assert_array_equal(d.y[1], a)
    assert d.times is not None and d.times[1][:2] == ["2000-01", "2000-02"]


def test_long_csv_errors_name_the_row_and_column(tmp_path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("unique_id,ds,y\na,2000-01,1\n,2000-02,2\n", encoding="utf-8")
    with pytest.raises(CSVError, match="row 3, column 'unique_id': missing series id"):
        read_long(path, "unique_id", "y")
    with pytest.raises(CSVError, match="no column 'id' \\(--id-column\\)"):
        read_long(path, "id", "y")
    path.write_text("unique_id,ds,y\na,2000-01,1\na,2000-01,2\n", encoding="utf-8")
    with pytest.raises(CSVError, match="time stamp '2000-01' of series 'a' repeats row 2"):
        read_long(path, "unique_id", "y", "ds")


def seasonal(n: int, level: float, scale: float, seed: int) -> np.ndarray:
    t = np.arange(n)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(n)
    return level + scale * (np.sin(2 * np.pi * t / 12) + noise)


def test_series_of_very_different_scales_are_each_scaled_by_their_own_statistics() -> None:
    """One model for a series around 1000 (amplitude 100) and one around 0 (amplitude 0.01):
    both forecasts keep their own level and scale (a shared scaler would flatten the small
    one or shift it by hundreds)."""
    big, small = seasonal(60, 1000, 100, 0), seasonal(60, 0, 0.01, 1)
    config = replace(TINY, steps=40, eval_every=40, hidden=8, lr=1e-2)
    ens = fit_global(Panel.of([big[:-6], small[:-6]], ["big", "small"]), 12, 6, config)
    f = ens.predict(6)
    assert f.shape == (2, 6)
    for y, fc in zip((big, small), f):
        amplitude = np.ptp(y)
        assert np.max(np.abs(fc - y[-6:])) < 0.5 * amplitude


def test_a_series_too_short_for_the_horizon_is_named() -> None:
    with pytest.raises(ValueError, match="series 'short' has 7 values; the horizon 6 needs"):
        fit_global(Panel.of([np.arange(40.0), np.arange(7.0)], ["long", "short"]), 1, 6, TINY)
    with pytest.raises(ValueError, match="series 2 has 20 values"):
        panel_origins([60, 20], 6, 3, 6, 8)


@pytest.mark.slow  # statsforecast's first import compiles its models
def test_the_backtest_averages_each_series_then_the_series() -> None:
    """Naive's MASE recomputed independently, per series and origin, then averaged."""
    pytest.importorskip("statsforecast")
    ys = [seasonal(50, 10, 1, 0), seasonal(44, 100, 20, 1)]
    h, origins = 4, panel_origins([50, 44], 4, 2, 4, 20)
    report = backtest_panel(Panel.of(ys, ["a", "b"]), h, origins, 1, TINY, ["Naive"])
    expect = [
        np.mean(
            [
                mase(y[o : o + h], np.repeat(y[o - 1], h), y[:o], 1)
                for o in (row[j] for row in origins)
            ]
        )
        for j, y in enumerate(ys)
    ]
    np.testing.assert_allclose(report["models"]["Naive"]["per_series"], expect, rtol=1e-12)
    assert report["models"]["Naive"]["mean"] == pytest.approx(np.mean(expect))
    assert len(report["models"]["lstmkit"]["mase"]) == 2


# ---- the command line -------------------------------------------------------------------


def one_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


FAST = ["--horizon", "3", "--steps", "10", "--eval-every", "10", "--hidden", "4", "--minutes",
        "0.2", "--holdout", "0"]  # fmt: skip


def test_cli_trains_one_model_and_forecasts_every_id_in_long_format(tmp_path, capsys) -> None:
    series = {"a": seasonal(40, 10, 1, 0), "b": seasonal(36, 50, 5, 1), "c": seasonal(44, 0, 1, 2)}
    path = write_long(tmp_path / "l.csv", series)
    run = tmp_path / "run"
    argv = ["series", "train", "--csv", str(path), "--id-column", "--column", "y",
            "--time-column", "ds", "--out", str(run), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "on 3 series" in capsys.readouterr().out
    out = tmp_path / "f.csv"
    forecast = ["series", "forecast", "--run", str(run), "--csv", str(path), "--horizon", "2",
                "--out", str(out)]  # fmt: skip
    assert main(forecast) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["unique_id", "ds", "forecast", "lo_80", "hi_80"]  # 80 % by default
    assert [r[0] for r in rows[1:]] == ["a", "a", "b", "b", "c", "c"]
    assert rows[1][1] == "2003-05" and rows[3][1] == "2003-01"  # each id's own next months
    assert main([*forecast, "--holdout", "2", "--no-plot"]) == 0  # from 2 before each end
    rows = list(csv.reader(out.open()))
    assert rows[0][-1] == "actual" and rows[1][1] == "2003-03"
    assert float(rows[1][-1]) == pytest.approx(series["a"][-2], abs=1e-9)
    err = one_error(capsys, [*argv[: -len(FAST)], *FAST, "--resume"])
    assert "--resume: " in err and "global.npz exists: the run is finished" in err
    err = one_error(capsys, [*argv[: -len(FAST)], *FAST, "--val", "5"])
    assert "--val goes with one LSTM" in err
    # a CSV without one of the run's ids, or with another, is refused
    del series["b"]
    err = one_error(
        capsys, [*forecast[:5], str(write_long(tmp_path / "m.csv", series)), *forecast[6:]]
    )
    assert "1 missing (['b'])" in err


def test_cli_refuses_a_missing_id_column_and_short_series(tmp_path, capsys) -> None:
    path = write_long(tmp_path / "l.csv", {"a": seasonal(40, 10, 1, 0), "tiny": np.arange(5.0)})
    base = ["series", "train", "--csv", str(path), "--column", "y", "--out", str(tmp_path / "r"),
            *FAST]  # fmt: skip
    err = one_error(capsys, [*base, "--id-column", "series"])
    assert "no column 'series' (--id-column)" in err
    err = one_error(capsys, [*base, "--id-column"])
    assert "series 'tiny' has 5 values" in err
    assert not (tmp_path / "r").exists()


def test_two_seasons_give_seasonal_indices_for_the_global_model() -> None:
    """Two and a half seasons of a line plus a sine: the classical decomposition needs three
    (zeros), ``min_seasons=2`` recovers the sine's indices from a least-squares line."""
    from lstmkit.series.transform import Transform, seasonal_indices

    t = np.arange(30)
    y = 5 + 0.3 * t + np.sin(2 * np.pi * t / 12)
    np.testing.assert_array_equal(seasonal_indices(y, 12), np.zeros(12))
    np.testing.assert_allclose(
        seasonal_indices(y, 12, min_seasons=2), np.sin(2 * np.pi * np.arange(12) / 12), atol=0.05
    )
    assert np.all(seasonal_indices(y[:23], 12, min_seasons=2) == 0)  # under two seasons
    long = np.r_[y, 5 + 0.3 * np.arange(30, 48) + np.sin(2 * np.pi * np.arange(30, 48) / 12)]
    np.testing.assert_array_equal(
        Transform.fit(long, 12, True, False, min_seasons=2).season, seasonal_indices(long, 12)
    )
