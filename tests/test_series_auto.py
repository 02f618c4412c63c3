"""The automatic forecaster: its transform inverts exactly, the season is recovered, the
search stays inside the history, the ensemble learns a trend, and the Python API
(``lk.series.Forecaster``) takes NumPy and pandas and refuses bad input with clear messages."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.cli.app import main
from lstmkit.series import auto, auto_calibration, auto_search
from lstmkit.series.auto import AutoConfig, Candidate, candidates, fit_auto
from lstmkit.series.data import Scaler
from lstmkit.series.transform import Transform, seasonal_indices

TINY = AutoConfig(steps=30, eval_every=10, hidden=4, sizes=(), top=2, seeds=1, minutes=0.5)


def seasonal(n: int, m: int = 12, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / m) + 0.1 * rng.standard_normal(n)


def test_seasonal_indices_recover_an_additive_season() -> None:
    t = np.arange(120)
    s_true = np.array([3.0, -1.0, 0.5, -2.5])  # sums to 0
    y = 5 + 0.2 * t + s_true[t % 4]
    np.testing.assert_allclose(seasonal_indices(y, 4), s_true, atol=1e-9)
    np.testing.assert_array_equal(seasonal_indices(y, 1), [0.0])
    np.testing.assert_array_equal(seasonal_indices(y[:8], 4), np.zeros(4))  # too short


@pytest.mark.parametrize("deseason", [False, True])
@pytest.mark.parametrize("difference", [False, True])
def test_decode_inverts_encode_on_the_values_that_follow(deseason: bool, difference: bool) -> None:
    """decode(z of the future) after a history gives back the future values exactly."""
    y = seasonal(80)
    n, h = 68, 12
    tf = Transform.fit(y[:n], 12, deseason, difference)
    z_future = tf.encode(y)[-h:]  # the model-space values of y[n:]
    np.testing.assert_allclose(tf.decode(z_future, y[:n]), y[n:], rtol=1e-12)
    assert tf.encode(y[:n]).shape == (n - int(difference),)
    z = tf.encode(y[:n])  # scaled on the history: mean 0, standard deviation 1
    assert abs(z.mean()) < 1e-9 and z.std() == pytest.approx(1.0)


def test_candidates_include_season_multiples_and_drop_what_cannot_train() -> None:
    c12 = candidates(12, 6, 200)
    assert {c.lookback for c in c12} == {12, 24, 36}
    assert {(c.deseason, c.difference) for c in c12} == {(d, f) for d in (0, 1) for f in (0, 1)}
    c1 = candidates(1, 10, 200)
    assert {c.lookback for c in c1} == {10, 20, 30} and not any(c.deseason for c in c1)
    short = candidates(1, 10, 25)  # 30 cannot train on 25 values
    assert {c.lookback for c in short} == {10, 20}
    assert candidates(1, 10, 9) == [Candidate(6, False, False, 16)]
    with pytest.raises(ValueError, match="at least 4"):
        candidates(1, 10, 3)


def test_the_search_reads_nothing_after_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every validation forecast's actuals lie inside y, and each candidate (the ES-hybrid
    forms too) trained on a prefix that ends before its first validation origin."""
    y = seasonal(96)
    cuts: list[int] = []
    real = auto.fit_form

    def spy(values: np.ndarray, *args: object) -> object:
        cuts.append(len(values))
        return real(values, *args)

    for module in (auto, auto_search, auto_calibration):  # each calls fit_form
        monkeypatch.setattr(module, "fit_form", spy)
    e = fit_auto(y, 12, 6, replace(TINY, calibration_cuts=2, hybrid=True))
    assert any(row["hybrid"] for row in e.table)
    search, rest = cuts[: len(e.table)], cuts[len(e.table) :]
    refits, earlier = rest[: len(e.members)], rest[len(e.members) :]
    assert all(c <= 96 - 6 for c in search)  # validation windows are held out of training
    assert refits == [96] * len(e.members)  # the refit sees all the history, no more
    # the earlier cuts end one and two validation parts (2 h = 12) before the search's
    assert earlier and set(earlier) == {96 - 24, 96 - 36}
    assert [c.shape[1:] for c in e.cut_errors] == [(7, 6)] * 2  # every origin of the part


def test_earlier_cuts_add_calibration_rows_and_leave_the_forecast_alone() -> None:
    """The intervals' errors are the cross-fitted validation errors, then each earlier
    cut's rows; a fit without earlier cuts forecasts exactly the same values."""
    from lstmkit.series import conformal

    y = seasonal(96)
    e = fit_auto(y, 12, 6, replace(TINY, calibration_cuts=1))
    e0 = fit_auto(y, 12, 6, replace(TINY, calibration_cuts=0))
    np.testing.assert_array_equal(e.predict(6), e0.predict(6))
    (cut,) = e.cut_errors  # (forms, R, h)
    crossed = conformal.cross_fit(e.candidate_errors, TINY.top)
    np.testing.assert_array_equal(e0.errors, crossed)
    np.testing.assert_array_equal(e.errors, np.concatenate([crossed, *cut]))
    assert np.all(np.isfinite(cut)) and e.summary()["calibration_cut_seconds"] >= 0


def test_fit_auto_learns_a_trend_better_than_the_last_value() -> None:
    t = np.arange(100, dtype=np.float64)
    y = 3.0 * t + np.random.default_rng(1).standard_normal(100)
    config = AutoConfig(steps=150, eval_every=50, hidden=8, sizes=(), top=2, seeds=1)
    e = fit_auto(y[:90], 1, 10, config)
    f = e.predict(10)
    assert f.shape == (10,)
    naive_error = np.mean(np.abs(y[90:] - y[89]))  # about 3 * 5.5
    assert np.mean(np.abs(y[90:] - f)) < 0.5 * naive_error
    summary = e.summary()
    assert len(summary["members"]) == 2 and summary["search"]
    assert all(np.isfinite(r["val_mae"]) for r in summary["search"])
    json.dumps(summary)  # JSON-ready


def test_auto_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="steps: expected an integer >= 1"):
        AutoConfig(steps=0)
    with pytest.raises(ValueError, match="minutes"):
        AutoConfig(minutes=-1)
    with pytest.raises(ValueError, match="calibration_cuts: expected an integer >= 0, got -1"):
        AutoConfig(calibration_cuts=-1)
    with pytest.raises(ValueError, match="search_seeds: expected an integer >= 1, got 0"):
        AutoConfig(search_seeds=0)
    with pytest.raises(ValueError, match="y: expected a 1-D array of finite values"):
        fit_auto(np.array([1.0, np.nan, 2.0]), 1, 1)


# ---- the Python API -------------------------------------------------------------------


def test_api_numpy_in_numpy_out() -> None:
    y = seasonal(60)
    f = lk.series.Forecaster(horizon=6, season=12, config=TINY, minutes=0.5).fit(y)
    out = f.predict()
    assert isinstance(out, np.ndarray) and out.shape == (6,) and np.all(np.isfinite(out))
    assert f.predict(9).shape == (9,)
    np.testing.assert_allclose(f.predict(9)[:6], out)  # longer roll-outs extend shorter ones
    assert "horizon=6" in repr(f) and f.summary()["season"] == 12


def test_api_pandas_in_pandas_out_with_the_next_time_stamps() -> None:
    pd = pytest.importorskip("pandas")
    index = pd.date_range("2000-01-01", periods=60, freq="MS")
    y = pd.Series(seasonal(60), index=index, name="sales")
    f = lk.series.Forecaster(horizon=6, config=TINY).fit(y)
    assert f.season_ == 12  # inferred from the monthly index
    out = f.predict(3)
    assert isinstance(out, pd.Series) and out.name == "sales"
    assert list(out.index) == list(pd.date_range("2005-01-01", periods=3, freq="MS"))
    df = pd.DataFrame({"region": ["a"] * 60, "sales": y.to_numpy()}, index=index.to_period("M"))
    g = lk.series.Forecaster(horizon=6, config=TINY).fit(df)  # the one numeric column
    assert g.season_ == 12
    assert [str(p) for p in g.predict(2).index] == ["2005-01", "2005-02"]
    np.testing.assert_allclose(g.predict(3).to_numpy(), out.to_numpy())  # same data, same fit


def test_api_bad_input_says_what_was_expected() -> None:
    pd = pytest.importorskip("pandas")
    F = lk.series.Forecaster
    with pytest.raises(RuntimeError, match=r"call fit\(y\) before predict"):
        F(horizon=3).predict()
    with pytest.raises(ValueError, match="horizon: expected an integer >= 1, got 0"):
        F(horizon=0).fit(np.arange(20.0))
    with pytest.raises(ValueError, match="5 missing values .*first at position 2.*missing='"):
        F(horizon=3).fit([1.0, 2.0, float("nan"), 4.0] * 5)
    with pytest.raises(ValueError, match="1 infinite .first at position 1"):
        F(horizon=3).fit([1.0, float("inf")] + [1.0] * 18)
    with pytest.raises(ValueError, match="expected a 1-D series, got shape"):
        F(horizon=3).fit(np.zeros((10, 2)))
    with pytest.raises(TypeError, match="y: expected numbers"):
        F(horizon=3).fit(["a", "b"])
    with pytest.raises(ValueError, match="at least horizon \\+ 4 = 7 values, got 5"):
        F(horizon=3).fit(np.arange(5.0))
    with pytest.raises(ValueError, match="one numeric column, got 2.*column='name'"):
        F(horizon=3).fit(pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0)}))
    with pytest.raises(ValueError, match="column: expected one of"):
        F(horizon=3).fit(pd.DataFrame({"a": np.arange(20.0)}), column="b")
    with pytest.raises(TypeError, match="expected numeric values, got dtype object"):
        F(horizon=3).fit(pd.Series(["x"] * 20))
    with pytest.raises(ValueError, match="10 missing values"):
        F(horizon=3).fit(pd.Series([1.0, None] * 10))
    with pytest.raises(ValueError, match="missing: expected one of error, interpolate"):
        F(horizon=3, missing="drop").fit(np.arange(20.0))
    f = F(horizon=3, config=TINY).fit(np.arange(30.0))
    with pytest.raises(ValueError, match="h: expected an integer >= 1, got -1"):
        f.predict(-1)


# ---- the CLI's default ------------------------------------------------------------------


def test_backtest_defaults_to_the_automatic_forecaster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("v\n" + "\n".join(repr(float(x)) for x in seasonal(48, m=4)) + "\n")
    out, report = tmp_path / "runs", tmp_path / "r.json"
    argv = ["series", "backtest", "--csv", str(path), "--column", "v", "--season", "4"]
    argv += ["--horizon", "4", "--origins", "2", "--models", "none", "--steps", "20"]
    argv += ["--hidden", "4", "--minutes", "0.2", "--no-progress"]
    assert main(argv + ["--out", str(out), "--json", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["lstmkit"] == "auto" and r["origins"] == [40, 44]
    assert 0 <= r["models"]["lstmkit"]["mean"]["coverage"] <= 1 and r["level"] == 80
    chosen = json.loads((out / "origin-40" / "auto.json").read_text())
    assert all(m["hidden"] == 4 for m in chosen["members"])  # --hidden: one size, no search
    assert main(argv + ["--out", str(out)]) == 1  # the same --out again is refused
    assert "already holds a run" in capsys.readouterr().err
    bad = argv + ["--out", str(tmp_path / "x"), "--layers", "2"]
    assert main(bad) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--layers" in err and not (tmp_path / "x").exists()


def test_train_with_only_csv_column_horizon_then_forecast_and_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`series train` without --lookback is the automatic forecaster; its run folder
    forecasts and evaluates like an LSTM's, from the held-out tail's history only."""
    from lstmkit.series.auto_run import load_ensemble
    from lstmkit.series.evaluate import predict_run

    y = seasonal(48, m=4)
    path = tmp_path / "s.csv"
    path.write_text("v\n" + "\n".join(repr(float(x)) for x in y) + "\n")
    run = tmp_path / "run"
    argv = ["series", "train", "--csv", str(path), "--column", "v", "--horizon", "4"]
    argv += ["--season", "4", "--steps", "20", "--hidden", "4", "--out", str(run)]
    assert main(argv + ["--no-progress"]) == 0
    assert "4 values held out" in capsys.readouterr().out
    ensemble, meta = load_ensemble(run)
    assert meta["data"]["split"] == {"n_fit": 44, "n_val": 0, "n_holdout": 4}
    expected = predict_run(ensemble, meta, y[:44], 4)
    assert np.all(np.isfinite(expected))
    np.testing.assert_array_equal(ensemble.history, y[:44])
    np.testing.assert_allclose(ensemble.predict(4), expected, rtol=1e-12)
    out = tmp_path / "f.csv"
    fargv = ["series", "forecast", "--run", str(run), "--csv", str(path), "--horizon", "4"]
    assert main(fargv + ["--holdout", "4", "--out", str(out), "--no-plot"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "step,forecast,lo_80,hi_80,actual"
    table = np.array([[float(x) for x in r.split(",")] for r in lines[1:]])
    np.testing.assert_allclose(table[:, 1], expected, rtol=1e-9)
    lo, hi = ensemble.interval(4, 80, y[:44])
    np.testing.assert_allclose(table[:, 2:4], np.c_[lo, hi], rtol=1e-9)
    assert np.all(table[:, 2] < table[:, 1]) and np.all(table[:, 1] < table[:, 3])
    np.testing.assert_array_equal(table[:, 4], y[44:])
    assert main(fargv + ["--out", str(out), "--no-plot", "--level", "0"]) == 0
    assert out.read_text().splitlines()[0] == "step,forecast"
    assert main(fargv + ["--out", str(out), "--no-plot", "--level", "100"]) == 1
    assert "--level: expected a percentage" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["series", "eval", "--run", str(run), "--csv", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(report["forecast"], expected, rtol=1e-9)
    assert not report["overlaps_training"]
    assert main(argv) == 1  # the same --out again
    assert "already exists" in capsys.readouterr().err
    (run / "auto.npz").write_bytes(b"not a zip")
    assert main(fargv + ["--out", str(out), "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "auto.npz: not an lstmkit checkpoint" in err


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--resume"], "--resume: no interrupted automatic forecaster"),
        (["--val", "3"], "--val goes with one LSTM"),
        (["--horizon", "50"], "use a smaller --horizon or --holdout"),
        (["--steps", "0"], "--steps: expected an integer >= 1"),
        (["--lookback", "8", "--season", "4"], "--season goes with the automatic"),
    ],
)
def test_train_auto_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("v\n" + "\n".join(repr(float(x)) for x in seasonal(48, m=4)) + "\n")
    argv = ["series", "train", "--csv", str(path), "--column", "v", "--out", str(tmp_path / "r")]
    assert main(argv + extra) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "r").exists()


# ---- prediction intervals -------------------------------------------------------------


def test_interval_is_the_pooled_conformal_quantile_of_the_errors() -> None:
    """Ensemble.interval: at step j, sqrt(j) times the ceil((RH + 1) 0.8)-th smallest of the
    RH scores |e_rj| / sqrt(j), by hand from a replaced error table; past the calibrated H
    it grows like sqrt(j / H)."""
    e = fit_auto(seasonal(60), 12, 6, TINY)
    assert e.errors.shape[1] == 6 and np.all(np.isfinite(e.errors))
    rng = np.random.default_rng(3)
    e.errors = rng.standard_normal((9, 3)) * np.array([1.0, 2.0, 3.0])  # R = 9, H = 3
    f = e.predict(5)
    lo, hi = e.interval(5, level=80)
    scores = sorted(abs(e.errors[r, j]) / np.sqrt(j + 1) for r in range(9) for j in range(3))
    by_hand = [scores[22] * np.sqrt(j) for j in (1, 2, 3)]  # ceil(28 * 0.8) = 23rd of 27
    np.testing.assert_allclose((hi - f)[:3], by_hand, rtol=1e-12)
    np.testing.assert_allclose(f - lo, hi - f, rtol=1e-12)
    np.testing.assert_allclose((hi - f)[3:], by_hand[2] * np.sqrt([4 / 3, 5 / 3]), rtol=1e-12)
    lo50, hi50 = e.interval(5, level=50)
    assert np.all(hi50 - lo50 <= hi - lo)
    with pytest.raises(ValueError, match="level: expected a percentage"):
        e.interval(8, level=100)


def test_backtest_reports_the_coverage_of_an_interval() -> None:
    from lstmkit.series import backtest as bt
    from lstmkit.series.data import Series

    y = np.arange(40, dtype=np.float64)
    series = Series(y, None, "v", None, "test")

    def band(history: Series, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.full(h, history.values[-1])  # naive; the truth rises 1 per step
        return f, f - 1.5, f + 2.5  # covers steps 1 and 2 of 4

    r = bt.backtest(series, 4, [32, 36], 1, {"band": band, "plain": lambda s, h: np.zeros(h)})
    m = r["models"]["band"]
    assert [p["coverage"] for p in m["per_origin"]] == [0.5, 0.5]
    assert m["mean"]["coverage"] == 0.5 and m["mean"]["width"] == 4.0
    assert "coverage" not in r["models"]["plain"]["mean"]
    table = bt.format_backtest({**r, "level": 80})
    assert "cover80" in table and "50.0" in table.splitlines()[2]
    assert table.splitlines()[3].split()[5] == "-"


def test_api_predict_interval() -> None:
    y = seasonal(60)
    f = lk.series.Forecaster(horizon=6, season=12, config=TINY).fit(y)
    lo, hi = f.predict_interval(6, level=90)
    assert np.all(lo < f.predict(6)) and np.all(f.predict(6) < hi)


def test_statsforecast_baselines_give_their_interval() -> None:
    pytest.importorskip("statsforecast")
    from lstmkit.series import backtest as bt
    from lstmkit.series.data import Series

    history = Series(seasonal(48), None, "v", None, "test")
    f, lo, hi = bt.baseline("Naive", 12, level=80)(history, 3)
    np.testing.assert_allclose(f, history.values[-1])
    assert np.all(lo < f) and np.all(f < hi)
    assert np.all(np.diff(hi - lo) > 0)  # a random walk's interval widens


def test_burn_in_steps_carry_no_gradient(forecaster_dpred: list[np.ndarray]) -> None:
    """With burn_in 0.5 and lookback 8 the first 4 positions of every window get no loss
    (the forecasts always read a full context), the others the MSE's gradient."""
    seen = forecaster_dpred
    z = np.sin(np.arange(40.0))
    c = Candidate(8, False, False, 4)
    config = AutoConfig(steps=2, batch=5, burn_in=0.5)
    identity = Transform(np.zeros(1), False, Scaler(0.0, 1.0))  # encode(z) = z
    auto._train(identity, z, c, config, seed=0, steps=2, deadline=np.inf)
    assert len(seen) == 2 and seen[0].shape == (8, 5, 1)
    assert np.all(seen[0][:4] == 0) and np.all(seen[0][4:] != 0)
    assert np.sum(np.abs(seen[0])) > 0
    auto._train(identity, z, c, replace(config, burn_in=0.0), seed=0, steps=1, deadline=np.inf)
    assert np.all(seen[-1] != 0)


def test_a_tampered_auto_checkpoint_is_refused_naming_the_field(tmp_path: Path) -> None:
    from lstmkit.series.auto_run import load_ensemble, save_ensemble
    from lstmkit.series.data import Series
    from lstmkit.train import checkpoint

    y = seasonal(40, m=4)
    e = fit_auto(y, 4, 4, TINY)
    path = save_ensemble(tmp_path, e, Series(y, None, "v", None, "test"), 0)
    loaded, _ = load_ensemble(tmp_path)
    np.testing.assert_allclose(loaded.predict(4), e.predict(4), rtol=1e-6)  # float32 models
    arrays, meta = checkpoint.load(path)
    for key, value, needle in [
        ("season", 5, "seasonal indices of shape"),
        ("members", [], "members: expected a non-empty list"),
        ("kind", "forecaster", "kind: expected 'auto-forecaster'"),
    ]:
        checkpoint.save(path, arrays, {**meta, key: value})
        with pytest.raises(checkpoint.CheckpointError, match=needle):
            load_ensemble(path)
    bad = {**meta, "members": [{**meta["members"][0], "hidden": 5}]}
    checkpoint.save(path, arrays, bad)
    with pytest.raises(checkpoint.CheckpointError, match="member 0"):
        load_ensemble(path)


def test_forecast_plot_shades_the_interval(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The PNG of `series forecast` fills the band between lo and hi over the forecast steps,
    and leaves an unbounded step out instead of stretching the axes."""
    from lstmkit.series import plot

    seen: list = []
    monkeypatch.setattr(plot.files, "save_figure", lambda fig, path, **kw: seen.append(fig))
    forecast = np.array([1.0, 2.0, 3.0])
    lo, hi = forecast - [0.5, 1.0, 1.5], forecast + [0.5, 1.0, np.inf]
    plot.plot_forecast(tmp_path / "f.png", np.arange(10.0), forecast, interval=(lo, hi), level=80)
    (ax,) = seen[0].axes
    (band,) = ax.collections
    x, y = band.get_paths()[0].vertices.T
    assert set(np.round(x[np.isfinite(y)], 6)) == {10.0, 11.0}  # step 12 (inf) is not drawn
    assert np.isclose(y[np.isfinite(y)].max(), 3.0) and np.isclose(y.min(), 0.5)
    assert "80 % interval" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_ylim()[1] < 20


def test_forecast_level_needs_the_automatic_forecaster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("v\n" + "\n".join(repr(float(x)) for x in seasonal(40, m=4)) + "\n")
    run = tmp_path / "run"
    argv = ["series", "train", "--csv", str(path), "--column", "v", "--lookback", "4"]
    assert main(argv + ["--steps", "2", "--hidden", "2", "--out", str(run), "--no-progress"]) == 0
    fargv = ["series", "forecast", "--run", str(run), "--csv", str(path), "--horizon", "3"]
    fargv += ["--out", str(tmp_path / "f.csv"), "--no-plot"]
    assert main(fargv) == 0  # one LSTM: no interval columns by default
    assert (tmp_path / "f.csv").read_text().splitlines()[0] == "step,forecast"
    capsys.readouterr()
    assert main(fargv + ["--level", "80"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no prediction interval" in err


def test_search_seeds_score_a_candidate_by_the_mean_curve_of_its_seeds() -> None:
    """search_seeds=2: the score is the least, over checkpoints, of the two seeds' mean
    validation MAE (each seed trained on its own, scored at the same 3 origins)."""
    y, h = seasonal(72), 6
    c = Candidate(12, True, False, 4)
    config = replace(TINY, search_seeds=2, calibration_cuts=0)
    tf = Transform.fit(y[:60], 12, True, False)  # the validation part: the last 2 h
    curves = []
    for seed in (config.seed, config.seed + 500):
        curve: dict[int, float] = {}

        def record(step: int, model: object, curve: dict[int, float] = curve) -> None:
            f = [auto._predict(model, c, tf, y[:o], h) for o in (60, 63, 66)]
            curve[step] = float(
                np.mean([np.abs(y[o : o + h] - p) for o, p in zip((60, 63, 66), f)])
            )

        auto._train(tf, y[:60], c, config, seed, config.steps, np.inf, record)
        curves.append(curve)
    means = {t: (curves[0][t] + curves[1][t]) / 2 for t in curves[0]}
    step = min(means, key=lambda t: (means[t], t))
    mae, got_step, errors = auto._validate(y, 12, h, c, config, np.inf)
    assert got_step == step and np.isclose(mae, means[step], rtol=1e-12)
    assert errors.shape == (7, h) and np.all(np.isfinite(errors))
