"""The linear autoregressive highway (``ForecasterConfig.highway``, ``AutoConfig.highway``):
its gradient against float64 finite differences, its forecast against an ARIMA(q, 1, 0)
with drift computed by hand, the step-by-step roll-out against the batched pass, and the
automatic forecaster with it saved, loaded, resumed and refused where it cannot follow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from interrupting import Interrupting, Killed

from lstmkit.io.onnx_ensemble import members_of
from lstmkit.series.auto import AutoConfig, candidates, fit_auto
from lstmkit.series.auto_progress import Progress, stamp
from lstmkit.series.auto_run import load_ensemble, save_ensemble
from lstmkit.series.data import Scaler, Series
from lstmkit.series.forecast import forecast, roll_out
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.train import checkpoint

CONFIG = AutoConfig(steps=10, eval_every=5, hidden=4, sizes=(3,), top=2, seeds=1, minutes=None)
M, H = 4, 4


def series(n: int = 40) -> np.ndarray:
    t = np.arange(n)
    noise = 0.1 * np.random.default_rng(0).standard_normal(n)
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / M) + noise


def model64(q: int, seed: int = 0, inputs: int = 1) -> Forecaster:
    model = Forecaster(ForecasterConfig(hidden=3, dtype="float64", highway=q), seed, inputs)
    rng = np.random.default_rng(seed + 1)
    model.highway.parameters()["weight"][...] = rng.normal(0, 0.5, (1, q))
    return model


def test_the_gradient_matches_finite_differences() -> None:
    """d sum(pred * R) / d every parameter, the highway's included, in float64: centred
    differences agree to 1e-7 (relative)."""
    rng = np.random.default_rng(2)
    model = model64(3, inputs=2)
    x, R = rng.standard_normal((6, 2, 2)), rng.standard_normal((6, 2, 1))
    model.zero_grad()
    pred, _ = model(x)
    model.backward(R)
    for name, w in model.parameters().items():
        g = model.grads[name]
        for idx in list(np.ndindex(w.shape))[:6]:
            old = w[idx]
            w[idx] = old + 1e-6
            up = float(np.sum(model(x)[0] * R))
            w[idx] = old - 1e-6
            down = float(np.sum(model(x)[0] * R))
            w[idx] = old
            numeric = (up - down) / 2e-6
            assert abs(numeric - g[idx]) <= 1e-7 * max(1.0, abs(numeric)), (name, idx)


def test_a_zero_head_forecasts_arima_q10_with_drift_by_hand() -> None:
    """With W_head = 0 the differenced forecaster is ARIMA(q, 1, 0) with drift: the forecast
    equals the recursion d_{t+1} = mu + s (b + sum_j a_j (d_{t-q+1+j} - mu) / s), computed
    here in plain Python from the original values."""
    q, b = 3, 0.2
    model = model64(q)
    model.head.parameters()["weight"][...] = 0.0
    model.head.parameters()["bias"][...] = b
    a = model.highway.parameters()["weight"][0].copy()
    y = np.cumsum(np.random.default_rng(3).normal(1.0, 2.0, 30))
    mu, s = 0.7, 1.9
    got = forecast(model, y, 6, Scaler(mu, s), lookback=8, difference=True)
    d = list(np.diff(y))
    level, want = y[-1], []
    for _ in range(6):
        z = [(v - mu) / s for v in d[-q:]]
        d.append(mu + s * (b + sum(a[j] * z[j] for j in range(q))))
        level += d[-1]
        want.append(level)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_stepping_continues_the_batched_pass() -> None:
    """forward on x[:k], then step by step with the state carried, equals forward on all of
    x: the state holds the highway's last q values."""
    rng = np.random.default_rng(4)
    model = model64(4)
    x = rng.standard_normal((9, 3, 1))
    whole, _ = model(x, inference=True)
    part, state = model(x[:3], inference=True)
    steps = [part]
    for t in range(3, 9):
        p, state = model.step(x[t], state)
        steps.append(p[None])
    np.testing.assert_allclose(np.concatenate(steps), whole, rtol=1e-12)
    z = roll_out(model, x[:, :, 0], 3)  # the roll-out streams the same way
    again, _ = model(np.concatenate([x, z[:2, :, None]]), inference=True)
    np.testing.assert_allclose(z[1:], again[-2:, :, 0], rtol=1e-12)


def test_off_the_forecaster_and_the_candidates_are_those_before() -> None:
    """highway 0: no highway parameter; with q > 0 the other parameters start the same (its
    weights start at 0 and draw nothing from the model's generator)."""
    plain, with_q = (Forecaster(ForecasterConfig(hidden=5, highway=q), 7) for q in (0, 2))
    assert "highway.weight" not in plain.parameters()
    assert not with_q.highway.parameters()["weight"].any()
    for name, w in plain.parameters().items():
        np.testing.assert_array_equal(w, with_q.parameters()[name])
    assert all(c.highway == 0 for c in candidates(4, 4, 40))
    assert {c.highway for c in candidates(1, 3, 40, highway=6)} == {4, 6}  # lookbacks 4, 6, 9
    with pytest.raises(ValueError, match=r"^highway: expected an integer >= 0, got -1$"):
        AutoConfig(highway=-1)


def test_the_ensemble_is_saved_loaded_and_older_runs_load(tmp_path: Path) -> None:
    y = series()
    e = fit_auto(y, M, H, AutoConfig(**{**CONFIG.__dict__, "highway": 3}))
    assert {c.highway for c, *_ in e.members} == {3}
    s = Series(y, None, "v", None, "mem")
    save_ensemble(tmp_path, e, s, 0)
    loaded, meta = load_ensemble(tmp_path)
    np.testing.assert_array_equal(loaded.predict(H), e.predict(H))
    assert [m["highway"] for m in meta["members"]] == [3, 3]
    off = fit_auto(y, M, H, CONFIG)  # a run from before the highway: no "highway" key
    (tmp_path / "old").mkdir()
    path = save_ensemble(tmp_path / "old", off, s, 0)
    arrays, meta = checkpoint.load(path)
    for m in meta["members"]:
        del m["highway"]
    checkpoint.save(path, arrays, meta)
    np.testing.assert_array_equal(load_ensemble(path)[0].predict(H), off.predict(H))


def test_an_interrupted_fit_with_the_highway_resumes_bit_for_bit(tmp_path: Path) -> None:
    y, config = series(), AutoConfig(**{**CONFIG.__dict__, "highway": 2})
    reference = fit_auto(y, M, H, config)
    s = stamp(y, M, H, config)
    kill_at = len(reference.table) + 2  # in the refits
    with pytest.raises(Killed):
        fit_auto(y, M, H, config, progress=Interrupting(Progress.start(tmp_path, s), kill_at))
    resumed = fit_auto(y, M, H, config, progress=Progress.resume(tmp_path, s))
    for (_, _, a, _), (_, _, b, _) in zip(resumed.members, reference.members):
        for name, w in a.state_dict().items():
            np.testing.assert_array_equal(w, b.state_dict()[name])
    assert resumed.table == reference.table


def test_the_onnx_export_and_the_global_model_refuse_it() -> None:
    from lstmkit.series.many import fit_global

    e = fit_auto(series(), M, H, AutoConfig(**{**CONFIG.__dict__, "highway": 2}))
    with pytest.raises(ValueError, match=r"^member 0 adds a linear autoregressive highway"):
        members_of(e)
    with pytest.raises(ValueError, match=r"^highway: for one series only"):
        fit_global(None, M, H, AutoConfig(highway=2))
