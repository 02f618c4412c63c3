"""Many series through pandas and their prediction intervals: ``Forecaster().fit(long_df)``,
the long answers of ``predict`` / ``predict_interval``, one-line errors for bad frames, each
series' conformal interval (recomputed from its errors by hand), and ``--level`` in
``series forecast`` / ``series backtest --id-column``."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.cli.app import main
from lstmkit.series.auto import AutoConfig
from lstmkit.series.global_run import load_global, save_global
from lstmkit.series.many import Panel, fit_global

pd = pytest.importorskip("pandas")

TINY = AutoConfig(steps=10, eval_every=10, hidden=4, sizes=(), top=1, seeds=1, minutes=0.2)


def seasonal(n: int, level: float, scale: float, seed: int) -> np.ndarray:
    t = np.arange(n)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(n)
    return level + scale * (np.sin(2 * np.pi * t / 12) + noise)


def long_df(lengths: dict[str, int], start: str = "2000-01") -> pd.DataFrame:
    """Monthly series in long format, rows shuffled (the frame need not be sorted)."""
    parts = []
    for k, (name, n) in enumerate(lengths.items()):
        ds = pd.period_range(start, periods=n, freq="M").to_timestamp()
        parts.append(pd.DataFrame({"unique_id": name, "ds": ds, "y": seasonal(n, 10 * k, 1, k)}))
    df = pd.concat(parts, ignore_index=True)
    return df.sample(frac=1.0, random_state=0)


# ---- the frame -----------------------------------------------------------------------------


def test_a_long_frame_splits_by_id_and_sorts_each_by_time() -> None:
    from lstmkit.series.panel_frame import frame_panel

    df = long_df({"b": 30, "a": 26})
    fp = frame_panel(df, "unique_id", "ds", "y")
    assert fp.panel.ids == list(pd.unique(df.unique_id))  # the frame's order of first rows
    for name, y, index in zip(fp.panel.ids, fp.panel.y, fp.index):
        rows = df[df.unique_id == name].sort_values("ds")
        np.testing.assert_array_equal(y, rows.y.to_numpy())
        assert list(index) == list(rows.ds)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="y"), r"missing \['y'\]"),
        (lambda d: d.assign(y=d.y.where(d.index != 3)), "'y' has 1 missing or infinite"),
        (lambda d: pd.concat([d, d.iloc[:1]]), "repeats the time stamp"),
        (lambda d: d.assign(y="x"), "expected numbers in column 'y'"),
        (lambda d: d.y.to_numpy(), "expected a pandas DataFrame|1-D series"),
    ],
)
def test_bad_long_frames_are_one_line_errors(change, message) -> None:
    df = long_df({"a": 30, "b": 30})
    f = lk.series.Forecaster(horizon=4, config=TINY)
    with pytest.raises((ValueError, TypeError), match=message) as e:
        f.fit(change(df), id_column="unique_id")
    assert "\n" not in str(e.value)


def test_a_short_series_in_a_frame_is_named() -> None:
    with pytest.raises(ValueError, match="series 'tiny' has 5 values"):
        lk.series.Forecaster(horizon=4, config=TINY).fit(long_df({"a": 30, "tiny": 5}))


# ---- fit / predict / predict_interval ----------------------------------------------------


def test_fit_on_a_long_frame_forecasts_every_id_in_long_format() -> None:
    df = long_df({"a": 40, "b": 30})
    f = lk.series.Forecaster(horizon=4, config=TINY, minutes=0.2).fit(df)
    out = f.predict(3)
    assert out.columns.tolist() == ["unique_id", "ds", "forecast"]
    assert sorted(out.unique_id.tolist()) == ["a"] * 3 + ["b"] * 3
    a = out[out.unique_id == "a"]
    assert list(a.ds) == list(pd.date_range("2003-05-01", periods=3, freq="MS"))
    bounds = f.predict_interval(3, 80)
    assert bounds.columns.tolist() == ["unique_id", "ds", "lo_80", "hi_80"]
    assert np.all(bounds.lo_80.to_numpy() < out.forecast.to_numpy())
    assert np.all(out.forecast.to_numpy() < bounds.hi_80.to_numpy())
    assert f.summary()["series"] == 2


def test_future_covariates_come_from_columns_and_a_long_future_frame() -> None:
    df = long_df({"a": 30, "b": 34}).rename(columns={"unique_id": "shop", "ds": "month"})
    df["promo"] = (np.arange(len(df)) % 3 == 0).astype(float)
    f = lk.series.Forecaster(horizon=2, config=TINY, minutes=0.2)
    f.fit(df, id_column="shop", time_column="month", future_covariates=["promo"])
    future = pd.DataFrame({"shop": ["a", "a", "b", "b"], "promo": [1.0, 0.0, 0.0, 1.0]})
    out = f.predict(2, X_future=future)
    assert out.columns.tolist() == ["shop", "month", "forecast"] and len(out) == 4
    with pytest.raises(ValueError, match="expected 2 rows of \\['promo'\\] for series 'b'"):
        f.predict(2, X_future=future.iloc[:3])
    with pytest.raises(ValueError, match="X_future"):
        f.predict(2)


# ---- intervals ---------------------------------------------------------------------------


def test_each_series_interval_is_its_own_conformal_quantile_times_sqrt_step(tmp_path) -> None:
    """Recomputed by hand: Q = the ceil((n + 1) 0.8)-th smallest |e_rj| / sqrt(j) of that
    series' errors; the interval at step j is forecast -+ sqrt(j) Q; a saved and loaded run
    gives the same bounds."""
    ys = [seasonal(40, 0, 1, 0), seasonal(52, 100, 30, 1)]
    ens = fit_global(Panel.of(ys, ["a", "b"]), 12, 4, replace(TINY, top=2))
    lo, hi = ens.interval(4, 80)
    point = ens.predict(4)
    for i, e in enumerate(ens.errors):
        assert e.shape[1] == 4 and e.shape[0] >= 2
        scores = sorted((abs(e[r, j]) / math.sqrt(j + 1)) for r in range(len(e)) for j in range(4))
        Q = scores[math.ceil((len(scores) + 1) * 0.8) - 1]
        np.testing.assert_allclose(hi[i] - point[i], Q * np.sqrt(np.arange(1, 5)), rtol=1e-12)
        np.testing.assert_allclose(point[i] - lo[i], Q * np.sqrt(np.arange(1, 5)), rtol=1e-12)
    assert np.mean(hi[1] - lo[1]) > np.mean(hi[0] - lo[0])  # each series: its own errors
    data = {"column": "y", "time_column": None, "id_column": "id", "source": "x", "n_holdout": 0}
    save_global(tmp_path, ens, data)
    back, _ = load_global(tmp_path)
    np.testing.assert_array_equal(back.interval(4, 80)[1], hi)


# ---- the command line --------------------------------------------------------------------


FAST = ["--steps", "10", "--eval-every", "10", "--hidden", "4", "--minutes", "0.2"]


def write_csv(tmp_path, lengths: dict[str, int]):
    path = tmp_path / "l.csv"
    df = long_df(lengths)
    df["ds"] = df.ds.dt.strftime("%Y-%m")
    df.sort_values(["unique_id", "ds"]).to_csv(path, index=False)
    return path


def test_cli_forecast_writes_the_interval_columns(tmp_path, capsys) -> None:
    path = write_csv(tmp_path, {"a": 30, "b": 34})
    run = tmp_path / "run"
    argv = ["series", "train", "--csv", str(path), "--id-column", "--column", "y",
            "--time-column", "ds", "--out", str(run), "--horizon", "3", *FAST]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "f.csv"
    forecast = ["series", "forecast", "--run", str(run), "--csv", str(path), "--horizon", "3",
                "--out", str(out), "--level", "80", "--holdout", "3"]  # fmt: skip
    assert main(forecast) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["unique_id", "ds", "forecast", "lo_80", "hi_80", "actual"]
    for r in rows:
        assert float(r["lo_80"]) < float(r["forecast"]) < float(r["hi_80"])
    capsys.readouterr()
    assert main([*forecast[:-4], "--level", "100"]) == 1
    assert "--level: expected a percentage 0 <= level < 100" in capsys.readouterr().err


def test_cli_backtest_reports_coverage_per_series_and_in_the_mean(tmp_path, capsys) -> None:
    path = write_csv(tmp_path, {"a": 40, "b": 44})
    argv = ["series", "backtest", "--csv", str(path), "--id-column", "--column", "y",
            "--time-column", "ds", "--horizon", "3", "--origins", "2", "--models", "none",
            "--out", str(tmp_path / "bt"), "--no-progress", *FAST]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "cover80" in text and "coverage of the 80% interval per series" in text
    report = json.loads((tmp_path / "bt" / "report.json").read_text())
    lstm = report["models"]["lstmkit"]
    assert report["level"] == 80 and len(lstm["coverage"]) == 2
    assert lstm["coverage_mean"] == pytest.approx(np.mean(lstm["coverage_per_series"]))


def test_cli_forecast_of_an_automatic_run_writes_the_same_interval_columns(tmp_path) -> None:
    path = tmp_path / "one.csv"
    y = seasonal(40, 5, 1, 3)
    path.write_text("t,v\n" + "".join(f"{k},{v}\n" for k, v in enumerate(y)), encoding="utf-8")
    run = tmp_path / "run"
    argv = ["series", "train", "--csv", str(path), "--column", "v", "--out", str(run),
            "--horizon", "3", "--season", "12", *FAST]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "f.csv"
    assert main(["series", "forecast", "--run", str(run), "--csv", str(path), "--horizon", "3",
                 "--out", str(out), "--no-plot", "--level", "90"]) == 0  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["step", "forecast", "lo_90", "hi_90"] and len(rows) == 3
    assert all(float(r["lo_90"]) < float(r["forecast"]) < float(r["hi_90"]) for r in rows)
