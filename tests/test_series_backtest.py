"""``lstmkit series backtest``: metrics by hand, the rolling origins (no data after an origin
reaches a model), statsforecast's naive models against lstmkit's, a tiny end-to-end run and
the message without the baselines extra."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.series import backtest as bt
from lstmkit.series.data import Series, fingerprint
from lstmkit.series.evaluate import mae, mase, naive, rmse, seasonal_naive, smape
from lstmkit.series.train import load_model


def series_of(values: np.ndarray, times: list[str] | None = None) -> Series:
    return Series(np.asarray(values, np.float64), times, "value", "month", "test")


def monthly_csv(tmp_path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    v = 50 + 0.1 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.standard_normal(n)
    path = tmp_path / "monthly.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["month", "value"])
        w.writerows(
            (f"{2000 + k // 12:04d}-{k % 12 + 1:02d}", repr(float(x))) for k, x in enumerate(v)
        )
    return path


def test_metrics_by_hand_with_a_season() -> None:
    history = [1.0, 2.0, 4.0, 3.0, 6.0, 5.0]
    actual, forecast = [6.0, 7.0], [5.0, 9.0]  # errors 1, 2
    assert mae(actual, forecast) == pytest.approx(1.5)
    assert rmse(actual, forecast) == pytest.approx(math.sqrt(2.5))
    assert smape(actual, forecast) == pytest.approx((200 / 11 + 200 * 2 / 16) / 2)
    # m = 2: |4-1|, |3-2|, |6-4|, |5-3| = 3, 1, 2, 2 -> scale 2 -> MASE 1.5 / 2
    assert mase(actual, forecast, history, season=2) == pytest.approx(0.75)
    # m = 1: 1, 2, 1, 3, 1 -> scale 1.6
    assert mase(actual, forecast, history, season=1) == pytest.approx(1.5 / 1.6)


def test_origins_roll_back_from_the_end() -> None:
    assert bt.origins(100, 10, 5, 10) == [50, 60, 70, 80, 90]
    assert bt.origins(100, 10, 5, 3) == [78, 81, 84, 87, 90]
    assert bt.origins(100, 10, 1, 10) == [90]
    with pytest.raises(ValueError, match="fewer --origins"):
        bt.origins(30, 10, 5, 10, min_history=5)
    with pytest.raises(ValueError, match="--step"):
        bt.origins(100, 10, 5, 0)


def test_no_value_at_or_after_an_origin_reaches_a_model() -> None:
    n, h = 50, 4
    values = np.arange(n, dtype=np.float64) ** 1.5
    times = [f"{2000 + k // 12:04d}-{k % 12 + 1:02d}" for k in range(n)]
    series = series_of(values, times)
    seen: list[Series] = []

    def spy(history: Series, horizon: int) -> np.ndarray:
        seen.append(history)
        history.values[:] = -1.0  # a model that writes into its input harms no one
        return naive(history.values, horizon)

    origins = bt.origins(n, h, 3, 5)
    report = bt.backtest(series, h, origins, 2, {"spy": spy})
    assert [len(s) for s in seen] == origins
    for s, o in zip(seen, origins):
        assert s.times == times[:o]
        assert len(s.values) == o and s.values.max() == -1.0
    assert np.array_equal(series.values, np.arange(n, dtype=np.float64) ** 1.5)
    assert report["actual"] == [values[o : o + h].tolist() for o in origins]


def test_scores_and_means_are_those_of_each_origin() -> None:
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.standard_normal(60)) + 10
    origins = bt.origins(60, 6, 3, 6)
    report = bt.backtest(
        series_of(values),
        6,
        origins,
        4,
        {
            "naive": lambda s, h: naive(s.values, h),
            "snaive": lambda s, h: seasonal_naive(s.values, h, 4),
        },
    )
    per = report["models"]["naive"]["per_origin"]
    for o, p in zip(origins, per):
        a, f = values[o : o + 6], np.full(6, values[o - 1])
        assert p["mae"] == pytest.approx(mae(a, f))
        scale = np.mean(np.abs(values[4:o] - values[: o - 4]))  # in-sample, season 4
        assert p["mase"] == pytest.approx(mae(a, f) / scale)
    assert report["models"]["naive"]["mean"]["mase"] == pytest.approx(
        np.mean([p["mase"] for p in per])
    )
    table = bt.format_backtest(report)
    assert "MASE@3" in table and table.splitlines()[2].startswith("naive")


def test_a_failing_model_is_named_with_its_origin() -> None:
    def broken(history: Series, horizon: int) -> np.ndarray:
        raise ValueError("no fit")

    with pytest.raises(ValueError, match="broken at origin 40: no fit"):
        bt.backtest(series_of(np.arange(50.0)), 5, [40], 1, {"broken": broken})


def test_statsforecast_naive_models_agree_with_lstmkits() -> None:
    pytest.importorskip("statsforecast")
    rng = np.random.default_rng(2)
    history = series_of(rng.standard_normal(40))
    np.testing.assert_allclose(bt.baseline("Naive", 12)(history, 7), naive(history.values, 7))
    np.testing.assert_allclose(
        bt.baseline("SeasonalNaive", 12)(history, 15), seasonal_naive(history.values, 15, 12)
    )
    with pytest.raises(ValueError, match="--models"):
        bt.baseline("Prophet", 1)


def test_without_statsforecast_one_line_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "statsforecast", None)
    monkeypatch.setitem(sys.modules, "statsforecast.models", None)
    path = monthly_csv(tmp_path)
    code = main(
        [
            "series",
            "backtest",
            "--csv",
            str(path),
            "--column",
            "value",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "pip install 'lstmkit[baselines]'" in err
    assert not (tmp_path / "r").exists()  # refused before any work


def test_lstmkit_imports_neither_statsforecast_nor_pandas() -> None:
    code = (
        "import sys, lstmkit, lstmkit.series.backtest, lstmkit.series.train;"
        "from lstmkit.cli.app import build_parser; build_parser();"
        "bad = [m for m in ('statsforecast', 'pandas') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_backtest_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("statsforecast")
    path = monthly_csv(tmp_path)
    out, report_path, png = tmp_path / "runs", tmp_path / "r.json", tmp_path / "r.png"
    args = ["series", "backtest", "--csv", str(path), "--column", "value", "--time-column", "month"]
    args += ["--horizon", "6", "--origins", "2", "--steps", "20", "--hidden", "8"]
    args += [
        "--lookback",
        "12",
        "--batch",
        "8",
        "--no-progress",
        "--models",
        "AutoETS,AutoTheta,SeasonalNaive,Naive",
    ]
    args += ["--out", str(out), "--json", str(report_path), "--plot", str(png)]
    assert main(args) == 0
    captured = capsys.readouterr()
    table = captured.out
    assert captured.err == ""  # --no-progress: quiet
    assert len(table.splitlines()) == 2 + 5 + 2  # header, one row per model, the two files
    assert "season 12 (inferred: monthly time column)" in table
    names = ["lstmkit", "AutoETS", "AutoTheta", "SeasonalNaive", "Naive"]
    assert [line.split()[0] for line in table.splitlines()[2:7]] == names
    report = json.loads(report_path.read_text())
    assert report["origins"] == [48, 54] and list(report["models"]) == names
    for m in report["models"].values():
        assert len(m["per_origin"]) == 2 and all(len(f) == 6 for f in m["forecast"])
        assert all(math.isfinite(p["mase"]) for p in m["per_origin"])
    assert png.stat().st_size > 0
    # each origin's run trained on the values before it only (and validated on its last 6)
    values = np.array([float(r["value"]) for r in csv.DictReader(open(path, encoding="utf-8"))])
    for o, run in zip(report["origins"], report["runs"]):
        _, meta, _ = load_model(run)
        assert meta["data"]["n"] == o
        assert meta["data"]["split"] == {"n_fit": o - 6, "n_val": 6, "n_holdout": 0}
        assert meta["data"]["fingerprint"] == fingerprint(values[:o])
    # the same --out again: refused up front, nothing overwritten
    assert main(args) == 1
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--models", "Prophet"], "--models: expected names among AutoETS"),
        (["--models", "Naive,"], "--models"),
        (["--origins", "40"], "fewer --origins"),
        (["--season", "0"], "--season: expected > 0"),
    ],
)
def test_bad_options_are_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    path = monthly_csv(tmp_path)
    argv = ["series", "backtest", "--csv", str(path), "--column", "value"]
    assert main(argv + ["--out", str(tmp_path / "r"), *extra]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "r").exists()
