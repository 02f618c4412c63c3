"""The time-series forecaster: data, scaling, windows, model gradients, roll-out, metrics.

Oracles: hand-computed values, centred finite differences in float64, and the model's own
whole-sequence forward on the concatenated sequence (for the streaming roll-out).
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import fd_check

from lstmkit.series import data, evaluate, forecast, train
from lstmkit.series.data import CSVError, Scaler, Split, make_windows, read_csv
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.train import trainer
from lstmkit.train.run_folder import Run

# ---- helpers --------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def monthly_csv(tmp_path: Path, values: np.ndarray, name: str = "s.csv") -> Path:
    rows = [f"{1990 + k // 12}-{k % 12 + 1:02d},{v!r}" for k, v in enumerate(values.tolist())]
    return write(tmp_path, "month,value\n" + "\n".join(rows) + "\n", name)


def seasonal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 0.05 * t + 3 * np.sin(2 * np.pi * t / 12) + 0.3 * rng.standard_normal(n)


def quiet_train(config: train.TrainConfig, out: Path, series: data.Series, **kw):
    return train.train(config, out, series, show_progress=False, log=lambda s: None, **kw)


def params_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "__meta__"}


# ---- CSV reading ----------------------------------------------------------------------------


def test_read_csv_values_and_times(tmp_path: Path) -> None:
    path = write(tmp_path, "t,a,b\n2000-01,1.5,x\n2000-02,-2,y\n\n2000-03,3e2,z\n")
    s = read_csv(path, "a", "t")
    np.testing.assert_array_equal(s.values, [1.5, -2.0, 300.0])
    assert s.times == ["2000-01", "2000-02", "2000-03"]
    assert read_csv(path, "a").times is None


@pytest.mark.parametrize(
    "text, needle",
    [
        ("t,a\n1,1\n2,\n3,3\n", "row 3, column 'a': missing value"),
        ("t,a\n1,1\n2,2\n3,abc\n", "row 4, column 'a': expected a number, got 'abc'"),
        ("t,a\n1,1\n2,nan\n", "row 3, column 'a': missing value (empty or NaN cell)"),
        ("t,a\n1,1\n2,-inf\n", "row 3, column 'a': expected a finite number, got '-inf'"),
        ("t,a\n1,1\n2\n", "row 3, column 'a': missing value"),  # short row
        ("t,a\n1,1\n,2\n", "row 3, column 't': missing time stamp"),
        ("t,b\n1,1\n", "no column 'a' (--column); the header has: 't', 'b'"),
        ("", "empty file"),
        ("t,a\n", "no data rows"),
    ],
)
def test_bad_csv_names_row_and_column(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CSVError) as err:
        read_csv(path, "a", "t")
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_missing_time_column_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n1\n")
    with pytest.raises(CSVError, match="no column 'when' \\(--time-column\\)"):
        read_csv(path, "a", "when")
    with pytest.raises(FileNotFoundError, match="no such CSV file"):
        read_csv(tmp_path / "nope.csv", "a")


# ---- time stamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "times, expected",
    [
        (["1958-03", "1958-04", "1958-05"], ("monthly", 12)),
        (["2001-01-01", "2001-02-01", "2001-03-01", "2001-04-01"], ("monthly", 12)),
        (["1700.0", "1701.0", "1702.0"], ("yearly", 1)),
        (["2000-01-01", "2000-04-01", "2000-07-01", "2000-10-01"], ("quarterly", 4)),
        (["2020-01-01", "2020-01-08", "2020-01-15"], ("weekly", 52)),
        (["2020-01-01", "2020-01-02", "2020-01-03"], ("daily", 7)),
        (["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 02:00"], ("hourly", 24)),
        (["a", "b", "c"], None),
        (["2020-01-01", "2020-01-01"], None),  # not increasing
        (["2020-01-01", "2020-01-11", "2020-01-21"], None),  # every 10 days: no season
    ],
)
def test_infer_frequency(times: list[str], expected: tuple[str, int] | None) -> None:
    assert data.infer_frequency(times) == expected


def test_future_times_continue_the_style() -> None:
    assert data.future_times(["2001-11", "2001-12"], 3) == ["2002-01", "2002-02", "2002-03"]
    assert data.future_times(["2007", "2008"], 2) == ["2009", "2010"]
    assert data.future_times(["2001-01-31", "2001-02-28", "2001-03-31"], 2) == [
        "2001-04-30",
        "2001-05-31",
    ]
    assert data.future_times(["2020-01-01", "2020-01-08"], 1) == ["2020-01-15"]
    assert data.future_times(["x", "y"], 2) == ["+1", "+2"]
    assert data.future_times(None, 1) == ["+1"]


# ---- split, scaler, windows -----------------------------------------------------------------


def test_windows_by_hand() -> None:
    X, Y = make_windows(np.arange(6.0), 3)
    assert X.shape == Y.shape == (3, 3, 1)
    np.testing.assert_array_equal(X[:, :, 0].T, [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(Y[:, :, 0].T, [[1, 2, 3], [2, 3, 4], [3, 4, 5]])
    with pytest.raises(ValueError, match="at least lookback \\+ 1 = 7 values"):
        make_windows(np.arange(6.0), 6)


def test_split_refuses_too_short_training_part() -> None:
    assert Split.make(100, 10, 12, 24, False) == Split(78, 10, 12)
    with pytest.raises(ValueError, match="20 remain for training, and --lookback 24 needs"):
        Split.make(40, 10, 10, 24, False)


def test_encode_decode_round_trip() -> None:
    v = np.array([3.0, 5.0, 4.0, 8.0, 7.5])
    for difference in (False, True):
        sc = Scaler(2.0, 4.0)
        z = data.encode(v, sc, difference)
        assert z.shape == (len(v) - int(difference),)
        # z[k] stands for v[k + 1] when differencing, else for v[k]
        back = data.decode(z if difference else z[1:], sc, difference, v[0])
        np.testing.assert_allclose(back, v[1:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("difference", [False, True])
def test_scaler_fitted_on_training_part_only(tmp_path: Path, difference: bool) -> None:
    """The stored scaler is the training part's mean/std; changing the tail changes nothing."""
    values = seasonal(60)
    config = train.TrainConfig(
        lookback=6, horizon=5, val=7, hidden=4, batch=8, steps=2, eval_every=2,
        difference=difference,
    )  # fmt: skip
    series = data.Series(values, None, "value", None, "mem")
    quiet_train(config, tmp_path / "a", series)
    _, meta, _ = train.load_model(tmp_path / "a")
    fit = values[:48]  # 60 - val 7 - holdout 5
    part = np.diff(fit) if difference else fit
    assert meta["scaler"] == {"mean": float(part.mean()), "scale": float(part.std())}
    assert meta["data"]["split"] == {"n_fit": 48, "n_val": 7, "n_holdout": 5}

    wild = values.copy()
    wild[48:] = 1e6  # val and holdout parts
    quiet_train(config, tmp_path / "b", data.Series(wild, None, "value", None, "mem"))
    _, meta_b, _ = train.load_model(tmp_path / "b")
    assert meta_b["scaler"] == meta["scaler"]


# ---- the model ------------------------------------------------------------------------------


def test_forecaster_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    model = Forecaster(ForecasterConfig(hidden=3, layers=2, dtype="float64"), seed=1)
    x = rng.standard_normal((5, 2, 1))
    target = rng.standard_normal((5, 2, 1))

    def loss() -> float:
        pred, _ = model(x)
        return 0.5 * float(np.sum((pred - target) ** 2))

    pred, _ = model(x)
    model.zero_grad()
    model.backward(pred - target)
    assert set(model.grads) == {
        "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0",
        "lstm.weight_ih_l1", "lstm.weight_hh_l1", "lstm.bias_ih_l1", "lstm.bias_hh_l1",
        "head.weight", "head.bias",
    }  # fmt: skip
    grads = {k: g.copy() for k, g in model.grads.items()}
    for name, w in model.parameters().items():
        err = fd_check(loss, w, grads[name], rng, max_entries=8)
        assert err < 1e-6, (name, err)


def test_roll_out_streams_with_step_and_equals_forward_on_the_whole_sequence() -> None:
    model = Forecaster(ForecasterConfig(hidden=5, layers=2, dtype="float64"), seed=0)
    rng = np.random.default_rng(0)
    context = rng.standard_normal((7, 3))  # (T, N)
    calls = {"forward": [], "step": 0}
    lstm_forward, lstm_step = model.lstm.forward, model.lstm.step

    def spy_forward(x, *a, **k):
        calls["forward"].append(x.shape)
        return lstm_forward(x, *a, **k)

    def spy_step(x, *a, **k):
        calls["step"] += 1
        return lstm_step(x, *a, **k)

    model.lstm.forward, model.lstm.step = spy_forward, spy_step
    H = 6
    out = forecast.roll_out(model, context, H)
    assert out.shape == (H, 3)
    assert calls == {"forward": [(7, 3, 1)], "step": H - 1}  # context read once, then steps

    # oracle: the whole-sequence forward on context + forecasts predicts the same values
    model.lstm.forward = lstm_forward
    full = np.concatenate([context, out[:-1]])[:, :, None]  # (T + H - 1, N, 1)
    pred, _ = model(full)
    np.testing.assert_allclose(pred[-H:, :, 0], out, rtol=1e-12, atol=1e-12)


def test_forecast_undoes_scaling_and_differencing() -> None:
    model = Forecaster(ForecasterConfig(hidden=4, dtype="float64"), seed=2)
    values = seasonal(30)
    sc = Scaler(0.3, 2.0)
    for difference in (False, True):
        got = forecast.forecast(model, values, 4, sc, lookback=10, difference=difference)
        z = data.encode(values, sc, difference)[-10:]
        z_hat = forecast.roll_out(model, z[:, None], 4)[:, 0]
        v_hat = z_hat * 2.0 + 0.3
        expected = values[-1] + np.cumsum(v_hat) if difference else v_hat
        np.testing.assert_allclose(got, expected, rtol=1e-12)


# ---- metrics --------------------------------------------------------------------------------


def test_metrics_by_hand() -> None:
    a = np.array([1.0, 2.0, 4.0, 0.0])
    f = np.array([2.0, 2.0, 1.0, 0.0])
    assert evaluate.mae(a, f) == pytest.approx((1 + 0 + 3 + 0) / 4)
    assert evaluate.rmse(a, f) == pytest.approx(math.sqrt((1 + 0 + 9 + 0) / 4))
    # 200|a-f|/(|a|+|f|): 200/3, 0, 600/5, 0/0 -> 0
    assert evaluate.smape(a, f) == pytest.approx((200 / 3 + 0 + 120 + 0) / 4)
    history = np.array([1.0, 3.0, 2.0, 6.0, 5.0])
    # season 1: mean |diff| = (2 + 1 + 4 + 1) / 4 = 2; season 2: (1 + 3 + 3) / 3
    assert evaluate.mase(a, f, history, 1) == pytest.approx(1.0 / 2.0)
    assert evaluate.mase(a, f, history, 2) == pytest.approx(1.0 / (7 / 3))
    assert math.isnan(evaluate.mase(a, f, np.ones(5), 1))
    np.testing.assert_array_equal(evaluate.naive(history, 3), [5, 5, 5])
    np.testing.assert_array_equal(evaluate.seasonal_naive(history, 5, 2), [6, 5, 6, 5, 6])
    with pytest.raises(ValueError, match="same 1-D shape"):
        evaluate.mae(a, f[:3])


def test_evaluate_reports_lstm_next_to_baselines(tmp_path: Path) -> None:
    values = 5 + np.tile([0.0, 1.0, 3.0, 2.0], 12)  # exactly periodic: seasonal naive is exact
    path = write(
        tmp_path,
        "t,v\n" + "".join(f"2000-{k % 12 + 1:02d}-01,{v}\n" for k, v in enumerate(values)),
    )
    series = read_csv(path, "v")  # no time column: season 1 unless given
    model = Forecaster(ForecasterConfig(hidden=3), seed=0)
    meta = {
        "scaler": {"mean": 6.5, "scale": 1.1},
        "train_config": {"lookback": 8, "difference": False},
    }
    report = evaluate.evaluate(model, meta, series, holdout=8, season=4)
    assert report["season"] == 4 and report["season_source"] == "--season"
    sn = report["models"]["seasonal_naive"]
    assert sn["mae"] == sn["rmse"] == 0.0
    assert math.isnan(sn["mase"])  # the history is exactly periodic: the MASE scale is 0
    naive = report["models"]["naive"]
    assert naive["mae"] == pytest.approx(np.mean(np.abs(values[-8:] - values[-9])))
    lstm = report["models"]["lstm"]
    expected = forecast.forecast(model, values[:-8], 8, Scaler(6.5, 1.1), 8)
    assert lstm["mae"] == pytest.approx(evaluate.mae(values[-8:], expected))
    assert evaluate.resolve_season(series, None)[0] == 1
    assert "MASE" in evaluate.format_report(report)


# ---- training -------------------------------------------------------------------------------


def test_training_lowers_validation_loss(tmp_path: Path) -> None:
    series = data.Series(seasonal(120), None, "v", None, "mem")
    config = train.TrainConfig(lookback=12, horizon=12, hidden=8, batch=16, steps=150,
                               eval_every=150, lr=1e-2)  # fmt: skip
    model, meta, _ = train.load_model(quiet_train(config, tmp_path / "r", series)["run"])
    val = [r["val_loss"] for r in Run(tmp_path / "r").read_log() if "val_loss" in r]
    untrained = Forecaster(ForecasterConfig(hidden=8), seed=0)
    split = data.Split(96, 12, 12)
    sc = Scaler.from_dict(meta["scaler"])
    before = train.validation_scores(untrained, series.values, split, sc, config.resolved())
    assert val[-1] < 0.5 * before["val_loss"]
    assert (tmp_path / "r" / "loss.png").is_file()


@pytest.mark.parametrize("how", ["sigint", "raise"])
def test_interrupt_saves_and_resume_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Ctrl-C during step 8 saves latest; resuming to 12 equals an uninterrupted 12-step run.

    A real SIGINT is deferred to the end of the step (saved at step 8); a KeyboardInterrupt
    raised inside the step (before the update) saves step 7 with the dropout generators as
    they were after step 7, although step 8 already drew its masks.
    """
    series = data.Series(seasonal(80), None, "v", None, "mem")
    config = train.TrainConfig(lookback=8, horizon=6, hidden=6, batch=8, steps=12,
                               eval_every=5, dropout=0.2, layers=2)  # fmt: skip
    quiet_train(config, tmp_path / "full", series)

    real_clip, calls = trainer.clip_grad_norm, [0]  # the Trainer clips

    def interrupting_clip(grads, max_norm):
        calls[0] += 1
        if calls[0] == 8:
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
        return real_clip(grads, max_norm)

    monkeypatch.setattr(trainer, "clip_grad_norm", interrupting_clip)
    handler = signal.getsignal(signal.SIGINT)  # (ignored where pytest was started with `&`)
    with pytest.raises(KeyboardInterrupt):
        quiet_train(config, tmp_path / "cut", series)
    monkeypatch.setattr(trainer, "clip_grad_norm", real_clip)
    _, meta, _ = train.load_model(tmp_path / "cut" / "latest.npz")
    assert meta["step"] == (8 if how == "sigint" else 7)
    quiet_train(config, tmp_path / "cut", series, resume=True)
    a, b = params_of(tmp_path / "full" / "latest.npz"), params_of(tmp_path / "cut" / "latest.npz")
    assert a.keys() == b.keys() and any(k.startswith("optim/") for k in a)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert signal.getsignal(signal.SIGINT) is handler  # the handler restored


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    series = data.Series(seasonal(60), None, "v", None, "mem")
    config = train.TrainConfig(lookback=6, horizon=5, hidden=4, batch=8, steps=20,
                               lr=1e38, clip=1e38)  # fmt: skip
    with pytest.raises(train.TrainingError, match="at step \\d+; stopped. The last good"):
        quiet_train(config, tmp_path / "r", series)
    model, meta, _ = train.load_model(tmp_path / "r")
    assert meta["step"] == 0
    assert all(np.isfinite(w).all() for w in model.parameters().values())


def test_resume_refuses_other_options_or_data(tmp_path: Path) -> None:
    series = data.Series(seasonal(60), None, "v", None, "mem")
    config = train.TrainConfig(lookback=6, horizon=5, hidden=4, batch=8, steps=2, eval_every=2)
    quiet_train(config, tmp_path / "r", series)
    with pytest.raises(train.TrainingError, match="already holds a run"):
        quiet_train(config, tmp_path / "r", series)
    other = train.TrainConfig(lookback=6, horizon=5, hidden=5, batch=8, steps=4)
    with pytest.raises(train.TrainingError, match="--hidden 4 \\(now 5\\)"):
        quiet_train(other, tmp_path / "r", series, resume=True)
    changed = data.Series(seasonal(60, seed=1), None, "v", None, "mem")
    with pytest.raises(train.TrainingError, match="training data differs"):
        quiet_train(config, tmp_path / "r", changed, resume=True)


# ---- real data ------------------------------------------------------------------------------


def test_bundled_co2_dataset(tmp_path: Path) -> None:
    pytest.importorskip("statsmodels", reason="the bundled datasets need statsmodels")
    from lstmkit.series import datasets

    path, n = datasets.write_csv("co2", tmp_path / "co2.csv")
    s = read_csv(path, "value", "month")
    assert n == len(s) == 526
    assert s.times is not None and s.times[:2] == ["1958-03", "1958-04"]
    assert data.infer_frequency(s.times) == ("monthly", 12)
    assert 310 < s.values.min() < s.values.max() < 380
    with pytest.raises(ValueError, match="expected one of"):
        datasets.load("nope")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(lr=0.0), "--lr: expected > 0, got 0.0"),
        (dict(holdout=-1), "--holdout: expected >= 0, got -1"),
        (dict(dropout=1.0), r"--dropout: expected a probability in \[0, 1\), got 1.0"),
        (dict(schedule="cosine", steps=None), "--schedule cosine needs --steps"),
    ],
)
def test_config_checks_its_options_once_where_it_is_built(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        train.TrainConfig(**options)
