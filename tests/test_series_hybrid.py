"""The exponential smoothing (series/smoothing.py) and the ES-hybrid form (series/hybrid.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmkit.io.onnx_ensemble import Member, export_ensemble
from lstmkit.series.auto import Candidate, Ensemble, candidates
from lstmkit.series.hybrid import LevelTransform, fit_form
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.series.smoothing import Smoothing, fit, smooth
from lstmkit.series.transform import Transform


def seasonal(n: int, m: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    noise = 0.3 * np.random.default_rng(seed).standard_normal(n)
    return 50 + 0.1 * t + 4 * np.sin(2 * np.pi * t / m) + noise


def test_the_recursion_on_a_hand_derived_example() -> None:
    """m = 2, alpha = gamma = 0.5, l_{-1} = 0, s = (1, -1), y = (2, 0, 3), by hand:
    e_0 = 2 - 0 - 1 = 1,        l_0 = 0.5,   s_0 = 1.5
    e_1 = 0 - 0.5 + 1 = 0.5,    l_1 = 0.75,  s_1 = -0.75
    e_2 = 3 - 0.75 - 1.5 = 0.75, l_2 = 1.125, s_2 = 1.875."""
    run = smooth(np.array([2.0, 0.0, 3.0]), Smoothing(0.5, 0.5, 0.0, np.array([1.0, -1.0])))
    np.testing.assert_allclose(run.errors, [1.0, 0.5, 0.75])
    np.testing.assert_allclose(run.level, [0.5, 0.75, 1.125])
    np.testing.assert_allclose(run.season, [1.0, -1.0, 1.5])
    np.testing.assert_allclose(run.future_season(3), [-0.75, 1.875, -0.75])  # t = 3, 4, 5
    # with a trend: m = 1, alpha = beta = 0.5, l_{-1} = 0, b_{-1} = 1, y = (2, 2):
    # e_0 = 2 - 0 - 1 = 1, l_0 = 1.5, b_0 = 1.5; e_1 = 2 - 3 = -1, l_1 = 2.5, b_1 = 1
    sm = Smoothing(0.5, 0.0, 0.0, np.zeros(1), beta=0.5, trend0=1.0)
    run = smooth(np.array([2.0, 2.0]), sm)
    np.testing.assert_allclose(run.errors, [1.0, -1.0])
    np.testing.assert_allclose(run.level, [1.5, 2.5])
    np.testing.assert_allclose(run.trend, [1.5, 1.0])


@pytest.mark.slow  # importing statsforecast takes seconds
@pytest.mark.parametrize("trend", ["N", "A"])
def test_the_recursion_equals_statsforecasts_ets(trend: str) -> None:
    """ETS(A,N,A) and ETS(A,A,A) with the same parameters and initial states."""
    ets = pytest.importorskip("statsforecast.ets")
    m, y = 4, seasonal(30, 4)
    beta, b0 = (0.05, 0.2) if trend == "A" else (0.0, 0.0)
    sm = Smoothing(0.3, 0.1, 49.5, np.array([0.2, 4.0, -0.4, -3.8]), beta, b0)
    # statsforecast's state (l[, b], s_1 .. s_m) holds the most recent season first
    init = np.r_[sm.level0, [b0] * (trend == "A"), sm.season0[::-1]]
    _, e, x, _ = ets.pegelsresid_C(y, m, init, "A", trend, "A", False, 0.3, beta, 0.1, 1.0, 3)
    run = smooth(y, sm)
    np.testing.assert_allclose(run.errors, e, atol=1e-12)
    np.testing.assert_allclose(run.level, x[1:, 0], atol=1e-12)
    if trend == "A":
        np.testing.assert_allclose(run.trend, x[1:, 1], atol=1e-12)
    np.testing.assert_allclose(run.season_next, x[-1, -m:][::-1], atol=1e-12)


def test_fit_follows_a_random_walk_averages_noise_and_finds_a_slope() -> None:
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.standard_normal(200))
    noise = 5 + rng.standard_normal(200)
    assert fit(walk, 1, False).alpha > 0.8
    assert fit(noise, 1, False).alpha < 0.1
    assert fit(noise, 12, False).gamma == 0.0 and fit(noise, 1, False).trend0 == 0.0
    line = 3 + 0.5 * np.arange(60) + 0.1 * rng.standard_normal(60)
    run = smooth(line, fit(line, 1, False, trend=True))
    assert abs(run.trend[-1] - 0.5) < 0.05
    with pytest.raises(ValueError, match="expected at least 2 finite values"):
        fit(np.array([1.0, np.nan]), 1, False)


@pytest.mark.parametrize("trend", [False, True])
def test_windows_and_contexts_are_in_the_frame_of_their_last_level(trend: bool) -> None:
    y, L = seasonal(60, 4), 8
    tf = LevelTransform.fit(y, 4, True, L, trend)
    X, Y = tf.windows(y, L)  # (L, M, 1)
    assert X.shape == Y.shape == (L, 60 - L, 1)
    for j in (0, 17, 60 - L - 1):  # window j: inputs y[j : j + L], a history ending there
        np.testing.assert_allclose(X[:, j, 0], tf.encode(y[: j + L])[-L:], atol=1e-12)
    np.testing.assert_allclose(X[1:], Y[:-1])  # in one frame, the targets are the next inputs
    if trend:  # the frame is the line through l_e with slope b_e
        run = smooth(y, tf.smoothing)
        d, j, e = y - run.season, 5, 5 + L - 1
        line = run.level[e] + run.trend[e] * (np.arange(j, j + L) - e)
        np.testing.assert_allclose(X[:, j, 0] * tf.scaler.scale, d[j : j + L] - line)
    origins = np.array([20, 33, 60])
    C = tf.contexts(y, origins, L)
    for r, o in enumerate(origins):
        np.testing.assert_allclose(C[:, r], tf.encode(y[:o])[-L:], atol=1e-12)
    assert 0.5 < np.sqrt(np.mean(X**2)) < 2.0  # the scale: windows' RMS about 1


def test_with_a_burn_in_the_frame_is_set_where_the_loss_begins() -> None:
    """burn_in 0.75, L = 8: the frame of window j is the level after y_{j + 6}, the input
    whose next-step prediction is the first to carry the loss; the forecast's contexts keep
    the frame at their end."""
    y, L = seasonal(60, 4), 8
    tf = LevelTransform.fit(y, 4, True, L, burn_in=0.75)
    run = smooth(y, tf.smoothing)
    d = y - run.season
    X, Y = tf.windows(y, L)
    for j in (0, 30):
        np.testing.assert_allclose(X[:, j, 0] * tf.scaler.scale, d[j : j + L] - run.level[j + 6])
        np.testing.assert_allclose(
            Y[:, j, 0] * tf.scaler.scale, d[j + 1 : j + L + 1] - run.level[j + 6]
        )
    np.testing.assert_allclose(tf.contexts(y, np.array([40]), L)[:, 0], tf.encode(y[:40])[-L:])


@pytest.mark.parametrize("trend", [False, True])
def test_decode_re_levels_and_re_seasons(trend: bool) -> None:
    """The values after the history, put in the frame at n - 1 by hand, decode to themselves."""
    y, n = seasonal(50, 4), 40
    tf = LevelTransform.fit(y[:n], 4, True, 8, trend)
    run = smooth(y[:n], tf.smoothing)
    line = run.level[-1] + run.trend[-1] * np.arange(1, 11)
    z = (y[n:] - run.future_season(10) - line) / tf.scaler.scale
    np.testing.assert_allclose(tf.decode(z, y[:n]), y[n:], atol=1e-10)
    np.testing.assert_allclose(tf.decode(z[:, None], y[:n])[:, 0], y[n:], atol=1e-10)


def test_fit_form_picks_the_candidates_transform() -> None:
    y = seasonal(40, 4)
    assert isinstance(fit_form(y, 4, Candidate(8, True, True, 4)), Transform)
    assert isinstance(fit_form(y, 4, Candidate(8, True, False, 4, hybrid=True)), LevelTransform)
    pool = candidates(12, 12, 200, hybrid=True)
    assert [c.lookback for c in pool if c.hybrid] == [12, 24, 36]
    assert all(c.deseason and not c.difference for c in pool if c.hybrid)
    assert not any(c.hybrid for c in candidates(12, 12, 200))


def ensemble(y: np.ndarray, m: int, hybrid: bool) -> Ensemble:
    """Two members (a differenced one, then an ES-hybrid with a trend or a plain one) with
    random LSTMs, and random calibration errors (20, 4)."""
    forms = [Candidate(8, True, True, 4), Candidate(8, True, False, 4, hybrid=hybrid)]
    members = [
        (c, fit_form(y, m, c, trend=True), Forecaster(ForecasterConfig(hidden=4), seed=k), 10)
        for k, c in enumerate(forms)
    ]
    errors = np.random.default_rng(0).standard_normal((20, 4))
    return Ensemble(members, y, m, [], False, errors)


def test_a_hybrid_ensemble_saves_loads_and_forecasts(tmp_path: Path) -> None:
    from lstmkit.series.auto_run import load_ensemble, save_ensemble
    from lstmkit.series.data import Series

    y = seasonal(48, 4)
    e = ensemble(y, 4, hybrid=True)
    save_ensemble(tmp_path, e, Series(y, None, "v", None, "test"), 0)
    loaded, meta = load_ensemble(tmp_path)
    assert meta["members"][-1]["hybrid"] and set(meta["members"][-1]["smoothing"]) == {
        "alpha", "beta", "gamma", "level0", "trend0"
    }  # fmt: skip
    np.testing.assert_allclose(loaded.member_forecasts(4), e.member_forecasts(4), rtol=1e-6)
    lo, hi = loaded.interval(4)
    assert np.all(lo < loaded.predict(4)) and np.all(loaded.predict(4) < hi)


def test_a_run_from_before_the_hybrid_still_loads(tmp_path: Path) -> None:
    from lstmkit.series.auto_run import load_ensemble, save_ensemble
    from lstmkit.series.data import Series
    from lstmkit.train import checkpoint

    y = seasonal(48, 4)
    e = ensemble(y, 4, hybrid=False)
    path = save_ensemble(tmp_path, e, Series(y, None, "v", None, "test"), 0)
    arrays, meta = checkpoint.load(path)
    old = [{k: v for k, v in member.items() if k != "hybrid"} for member in meta["members"]]
    checkpoint.save(path, arrays, {**meta, "members": old})
    loaded, _ = load_ensemble(path)
    np.testing.assert_allclose(loaded.predict(4), e.predict(4), rtol=1e-6)


def test_onnx_export_refuses_a_hybrid_member_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    model = Forecaster(ForecasterConfig(hidden=3), seed=0)
    plain = Member(model, 4, False, np.zeros(4), 0.0, 1.0)
    hybrid = Member(model, 4, False, np.zeros(4), 0.0, 1.0, hybrid=True)
    with pytest.raises(ValueError, match="member 1 is an ES-hybrid .* no ONNX export yet") as e:
        export_ensemble([plain, hybrid], 3, tmp_path / "h.onnx")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "h.onnx").exists()


def test_the_command_line_refuses_to_export_a_hybrid_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx")
    from lstmkit.cli.app import main
    from lstmkit.series.auto_run import save_ensemble
    from lstmkit.series.data import Series

    y = seasonal(48, 4)
    save_ensemble(tmp_path, ensemble(y, 4, hybrid=True), Series(y, None, "v", None, "t"), 0)
    out = tmp_path / "h.onnx"
    assert main(["export", "onnx", "--run", str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "member 1 is an ES-hybrid" in err and "without --hybrid" in err and "\n" not in err
    assert not out.exists()


def test_hybrid_adds_the_hybrid_forms_to_the_search() -> None:
    from lstmkit.cli.app import build_parser
    from lstmkit.cli.series_auto import auto_config

    parser = build_parser()
    args = ["series", "train", "--csv", "x.csv", "--column", "v", "--out", "r"]
    assert not auto_config(parser.parse_args(args)).hybrid  # off by default
    assert auto_config(parser.parse_args([*args, "--hybrid"])).hybrid
