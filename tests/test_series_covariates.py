"""Covariates: the inputs are aligned one step ahead (known-future) or observed (past), the
roll-out equals the whole-sequence forward on its own inputs, a flag that alone predicts the
future is used, saved models keep their covariates, and bad input is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.cli.app import main
from lstmkit.series.auto import AutoConfig
from lstmkit.series.covariates import CovariateLSTM, fit_scales, inputs_targets, roll_out, windows
from lstmkit.series.global_run import load_global, save_global
from lstmkit.series.many import Panel, fit_global
from lstmkit.train import checkpoint
from lstmkit.train.checkpoint import CheckpointError

TINY = AutoConfig(
    steps=100, eval_every=50, hidden=8, sizes=(), top=1, seeds=1, minutes=0.5, lr=1e-2
)


def flag_series(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """y_t = 5 flag_t + small noise: its future is predictable from the flag alone."""
    rng = np.random.default_rng(seed)
    flag = (rng.random(n) < 0.3).astype(float)
    return 5 * flag + 0.1 * rng.standard_normal(n), flag


def test_inputs_carry_the_next_steps_future_covariate_and_the_current_past_one() -> None:
    """u_k = [z_k, x_{t+1}, p_t], v_k = [z_{k+1}, p_{t+1}] with t = k + off, built by a loop."""
    n = 7
    z = np.arange(n - 1, dtype=float) + 100  # differenced: z_k belongs to time k + 1
    X = np.arange(n, dtype=float)[:, None] * 10
    Pc = np.arange(n, dtype=float)[:, None] * -1
    unit = np.array([[0.0, 1.0], [0.0, 1.0]])  # no scaling
    u, v = inputs_targets(z, 1, X, Pc, unit)
    for k in range(len(z) - 1):
        t = k + 1
        np.testing.assert_array_equal(u[k], [z[k], X[t + 1, 0], Pc[t, 0]])
        np.testing.assert_array_equal(v[k], [z[k + 1], Pc[t + 1, 0]])
    U, V = windows(u, v, 3)
    assert U.shape == (3, len(u) - 2, 3) and V.shape == (3, len(u) - 2, 2)
    np.testing.assert_array_equal(U[:, 1], u[1:4])


def test_scales_are_per_column_and_a_constant_column_keeps_scale_one() -> None:
    C = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_array_equal(fit_scales(C), [[2.0, 1.0], [5.0, 1.0]])


def test_roll_out_equals_forward_on_its_own_fed_back_inputs() -> None:
    """The streamed roll-out is the batched forward over the context and the fed-back steps."""
    rng = np.random.default_rng(1)
    n, h, L = 30, 5, 8
    z, X, Pc = rng.standard_normal(n), rng.standard_normal((n, 1)), rng.standard_normal((n, 1))
    Xf = rng.standard_normal((h, 1))
    unit = np.array([[0.0, 1.0], [0.0, 1.0]])
    model = CovariateLSTM(6, 1, 1, seed=0)
    out = roll_out(model, z, 0, X, Pc, unit, Xf, L)
    x_all = np.concatenate([X, Xf])[:, 0]
    u = [[z[t], x_all[t + 1], Pc[t, 0]] for t in range(n - L, n)]
    for j in range(h):  # feed back the forward pass's own predictions
        pred, _ = model(np.array(u, np.float32)[:, None, :])
        assert pred[-1, 0, 0] == pytest.approx(out[j], rel=1e-5, abs=1e-6)
        u.append([pred[-1, 0, 0], x_all[n + j + 1] if j + 1 < h else 0.0, pred[-1, 0, 1]])


def test_a_known_future_flag_predicts_what_no_flag_blind_forecast_can() -> None:
    """With the flag the MAE is far below that of the best flag-blind forecast, a constant
    at the median of the actuals (the minimiser of the MAE over constants)."""
    y, flag = flag_series()
    h = 10
    f = lk.series.Forecaster(horizon=h, config=TINY, minutes=0.5)
    f.fit(y[:-h], future_covariates=flag[:-h])
    pred = f.predict(h, X_future=flag[-h:])
    actual = y[-h:]
    blind = float(np.mean(np.abs(actual - np.median(actual))))
    assert blind > 0.8
    assert float(np.mean(np.abs(pred - actual))) < 0.3 * blind


@pytest.mark.slow
def test_with_the_flag_beats_the_same_search_without_it() -> None:
    y, flag = flag_series(160, seed=2)
    h = 12
    fit, test = slice(0, -h), slice(-h, None)
    with_flag = fit_global(Panel([y[fit]], [flag[fit, None]], [np.zeros((148, 0))], ["y"]), 1, h)
    without = fit_global(Panel.of([y[fit]]), 1, h)
    mae_with = np.mean(np.abs(with_flag.predict(h, [flag[test, None]])[0] - y[test]))
    mae_without = np.mean(np.abs(without.predict(h)[0] - y[test]))
    assert mae_with < 0.3 * mae_without


def test_predict_refuses_missing_or_misshapen_future_covariates() -> None:
    import pandas as pd

    y, flag = flag_series(60)
    cov = pd.DataFrame({"promo": flag[:-4]})
    f = lk.series.Forecaster(horizon=4, config=replace_steps(TINY), minutes=0.2)
    f.fit(y[:-4], future_covariates=cov)
    with pytest.raises(ValueError, match=r"fitted with 1 known-future covariates \['promo'\]"):
        f.predict(4)
    with pytest.raises(ValueError, match="expected 4 rows, got 3"):
        f.predict(4, X_future=flag[-4:-1])
    with pytest.raises(ValueError, match=r"expected the columns \['promo'\], missing \['promo'\]"):
        f.predict(4, X_future=pd.DataFrame({"price": flag[-4:]}))
    assert f.predict(4, X_future=pd.DataFrame({"promo": flag[-4:]})).shape == (4,)
    with pytest.raises(TypeError, match="expected numeric columns"):
        lk.series.Forecaster(horizon=4).fit(y, future_covariates=pd.DataFrame({"a": ["x"] * 60}))
    with pytest.raises(ValueError, match="expected 60 rows, got 59"):
        lk.series.Forecaster(horizon=4).fit(y, past_covariates=flag[:-1])
    plain = lk.series.Forecaster(horizon=4, config=replace_steps(TINY), minutes=0.2).fit(y)
    with pytest.raises(ValueError, match="fitted without future_covariates"):
        plain.predict(4, X_future=flag[:4])


def replace_steps(config: AutoConfig) -> AutoConfig:
    from dataclasses import replace

    return replace(config, steps=10, eval_every=10, hidden=4)


def test_a_saved_model_forecasts_the_same_and_its_header_is_checked(tmp_path) -> None:
    y, flag = flag_series(60)
    P = np.stack([np.roll(y, 1)], axis=1)
    panel = Panel([y[:-4]], [flag[:-4, None]], [P[:-4]], ["y"])
    ens = fit_global(panel, 1, 4, replace_steps(TINY), (["promo"], ["lag"]))
    data = {"column": "y", "time_column": None, "id_column": None, "source": "x", "n_holdout": 4}
    path = save_global(tmp_path, ens, data)
    back, meta = load_global(tmp_path)
    assert meta["future_covariates"] == ["promo"] and meta["past_covariates"] == ["lag"]
    np.testing.assert_array_equal(
        back.predict(4, [flag[-4:, None]]), ens.predict(4, [flag[-4:, None]])
    )
    # a header that claims a second future covariate no longer matches the arrays
    arrays, header = checkpoint.load(path)
    checkpoint.save(tmp_path / "bad.npz", arrays, {**header, "future_covariates": ["a", "b"]})
    with pytest.raises(
        CheckpointError, match=r"history/X.: shape \(56, 1\), the header implies \(56, 2\)"
    ):
        load_global(tmp_path / "bad.npz")
    checkpoint.save(tmp_path / "odd.npz", {**arrays, "extra": np.zeros(2)}, header)
    with pytest.raises(CheckpointError, match="'extra': unexpected"):
        load_global(tmp_path / "odd.npz")


# ---- the command line -------------------------------------------------------------------


def write_promo(path: Path, n: int = 60) -> Path:
    y, flag = flag_series(n)
    rows = "".join(f"{k},{y[k]:.4f},{int(flag[k])},{'ab'[k % 2]}\n" for k in range(n))
    path.write_text("t,y,promo,word\n" + rows, encoding="utf-8")
    return path


def one_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


FAST = ["--horizon", "4", "--steps", "10", "--eval-every", "10", "--hidden", "4", "--minutes",
        "0.2"]  # fmt: skip


def test_cli_trains_and_forecasts_with_future_covariates(tmp_path, capsys) -> None:
    csv = write_promo(tmp_path / "p.csv")
    run = tmp_path / "run"
    argv = ["series", "train", "--csv", str(csv), "--column", "y", "--future-covariates",
            "promo", "--out", str(run), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "future ['promo']" in capsys.readouterr().out
    out = tmp_path / "f.csv"
    forecast = ["series", "forecast", "--run", str(run), "--csv", str(csv), "--horizon", "3",
                "--out", str(out)]  # fmt: skip
    err = one_error(capsys, forecast)
    assert "need the known-future covariates ['promo']; got 0 rows" in err
    (tmp_path / "fut.csv").write_text("promo\n1\n0\n1\n", encoding="utf-8")
    assert main([*forecast, "--future-csv", str(tmp_path / "fut.csv")]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "step,forecast,lo_80,hi_80" and len(lines) == 4  # 80 % by default
    err = one_error(
        capsys, [*forecast, "--horizon", "4", "--future-csv", str(tmp_path / "fut.csv")]
    )
    assert "got 3 rows" in err


def test_cli_refuses_unknown_and_non_numeric_covariate_columns(tmp_path, capsys) -> None:
    csv = write_promo(tmp_path / "p.csv")
    base = ["series", "train", "--csv", str(csv), "--column", "y", "--out", str(tmp_path / "r"),
            *FAST]  # fmt: skip
    err = one_error(capsys, [*base, "--future-covariates", "promo,price"])
    assert "no column 'price' (--future-covariates)" in err
    err = one_error(capsys, [*base, "--past-covariates", "word"])
    assert "column 'word': expected a number, got 'a'" in err
    err = one_error(capsys, [*base, "--future-covariates", "promo", "--lookback", "4"])
    assert "automatic forecaster" in err
    err = one_error(capsys, [*base, "--future-covariates", "promo", "--past-covariates", "promo"])
    assert "may appear once" in err
    assert not (tmp_path / "r").exists()


def test_the_backtest_hands_the_model_the_history_and_the_true_future_covariates(
    tmp_path, capsys, monkeypatch
) -> None:
    """At each origin o the model sees y[:o] and the covariates before o, and for the
    forecast the known-future rows X[o : o + h] (recorded by a stand-in for the fit)."""
    from lstmkit.series import many_backtest

    csv = write_promo(tmp_path / "p.csv", 50)
    seen = []

    class Fake:
        def predict(self, h, X_future):
            seen[-1].append(np.concatenate(X_future))
            return np.zeros((1, h))

        def interval(self, h, level, X_future):
            return -np.ones((1, h)), np.ones((1, h))

    def fake_fit(panel, m, h, config, names):
        seen.append([len(panel.y[0]), panel.X[0].copy(), names])
        return Fake()

    monkeypatch.setattr(many_backtest, "fit_global", fake_fit)
    argv = ["series", "backtest", "--csv", str(csv), "--column", "y", "--future-covariates",
            "promo", "--horizon", "4", "--origins", "3", "--step", "5", "--models", "none",
            "--out", str(tmp_path / "bt"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "lstmkit is given the true known-future covariates" in capsys.readouterr().out
    _, flag = flag_series(50)
    assert [s[0] for s in seen] == [36, 41, 46]
    for n_seen, X_seen, names, X_future in seen:
        np.testing.assert_array_equal(X_seen[:, 0], flag[:n_seen])
        np.testing.assert_array_equal(X_future[:, 0], flag[n_seen : n_seen + 4])
        assert names == (["promo"], [])
    report = json.loads((tmp_path / "bt" / "report.json").read_text())
    assert len(report["models"]["lstmkit"]["mase"][0]) == 3


def test_batched_roll_outs_equal_one_at_a_time() -> None:
    from lstmkit.series.covariates import context, roll_out_batch

    rng = np.random.default_rng(3)
    model = CovariateLSTM(5, 2, 1, seed=1)
    scales = np.array([[0.0, 1.0]] * 3)
    one, ctx = [], []
    for n in (20, 25, 30):
        z, X, Pc = rng.standard_normal(n), rng.standard_normal((n, 2)), rng.standard_normal((n, 1))
        Xf = rng.standard_normal((4, 2))
        one.append(roll_out(model, z, 0, X, Pc, scales, Xf, 6))
        ctx.append(context(z, 0, X, Pc, scales, Xf, 6))
    u = np.stack([c[0] for c in ctx], axis=1)
    x_next = np.stack([c[1] for c in ctx], axis=1)
    np.testing.assert_allclose(roll_out_batch(model, u, x_next), np.stack(one, axis=1), rtol=1e-5)


def test_predict_interval_after_a_fit_with_covariates_brackets_the_forecast() -> None:
    y, flag = flag_series(40)
    f = lk.series.Forecaster(horizon=4, config=replace_steps(TINY), minutes=0.2)
    f.fit(y[:-4], future_covariates=flag[:-4])
    lo, hi = f.predict_interval(4, 80, X_future=flag[-4:])
    point = f.predict(4, flag[-4:])
    assert lo.shape == hi.shape == (4,) and np.all(lo < point) and np.all(point < hi)
    with pytest.raises(ValueError, match="X_future"):
        f.predict_interval(4)
    assert f.summary()["future_covariates"] == ["x0"]


def test_a_damaged_global_checkpoint_is_one_checkpoint_error(tmp_path) -> None:
    """Truncations and flipped bytes anywhere in global.npz: CheckpointError, nothing else."""
    y, flag = flag_series(40)
    panel = Panel([y], [flag[:, None]], [np.zeros((40, 0))], ["y"])
    ens = fit_global(panel, 1, 4, replace_steps(TINY), (["promo"], []))
    data = {"column": "y", "time_column": None, "id_column": None, "source": "x", "n_holdout": 0}
    raw = save_global(tmp_path, ens, data).read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    for k in range(40):
        if k % 2:
            blob = raw[: int(rng.integers(0, len(raw)))]
        else:
            b = bytearray(raw)
            b[int(rng.integers(0, len(raw)))] ^= 1 << int(rng.integers(0, 8))
            blob = bytes(b)
        bad.write_bytes(blob)
        try:
            load_global(bad)
        except CheckpointError:
            pass
