"""The forecast combination (LSTM ensemble and Holt-Winters, lstmkit.series.combination): the
weight's choice and the cross-fitted median against hand-made examples, Holt-Winters' forecast
against its recursion by hand, and the combined forecast, its intervals' errors, the run folder,
the ONNX export and the global model around it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lstmkit.series import combination
from lstmkit.series.auto import AutoConfig, fit_auto
from lstmkit.series.smoothing import Smoothing

TINY = AutoConfig(steps=20, eval_every=10, hidden=4, sizes=(), top=2, seeds=1, minutes=0.5)


def test_the_weight_is_the_one_with_the_least_validation_error() -> None:
    # by hand: w e_lstm + (1 - w) e_hw = 4w - 2 at the first entry, 2 - 4w at the second;
    # mean |.| = |4w - 2|: 2, 1, 0, 1, 2 for w = 0, .25, .5, .75, 1
    assert combination.choose_weight(np.array([[2.0, -2.0]]), np.array([[-2.0, 2.0]])) == 0.5
    # Holt-Winters alone is exact: w = 0; the LSTM alone is: w = 1
    assert combination.choose_weight(np.array([[1.0, -3.0]]), np.zeros((1, 2))) == 0.0
    assert combination.choose_weight(np.zeros((1, 2)), np.array([[1.0, -3.0]])) == 1.0
    # equal errors tie at every w: the LSTM alone (the larger weight)
    assert combination.choose_weight(np.ones((2, 3)), np.ones((2, 3))) == 1.0
    # the entries either does not know are left out: only the second column counts, where
    # e = 4 w - 3 (by hand: |.| = 3, 2, 1, 0, 1): w = 0.75
    e_lstm, e_hw = np.array([[np.nan, 1.0]]), np.array([[50.0, -3.0]])
    assert combination.choose_weight(e_lstm, e_hw) == 0.75
    assert combination.choose_weight(np.full((1, 2), np.nan), e_hw) == 1.0
    with pytest.raises(ValueError, match="expected the shape of e_lstm"):
        combination.choose_weight(np.zeros((2, 2)), np.zeros((1, 2)))


def test_the_median_of_each_half_comes_from_the_candidates_ranked_on_the_other() -> None:
    # 3 candidates, 4 origins (early half 0-1, late half 2-3), h = 1. On the late half, a
    # and b are best (mean |e| 1, 2; c 9), on the early half b and c (2, 3; a 10).
    a = np.array([[10.0], [-10.0], [1.0], [1.0]])
    b = np.array([[2.0], [2.0], [2.0], [-2.0]])
    c = np.array([[3.0], [3.0], [9.0], [9.0]])
    got = combination.cross_fitted_median([a, b, c], top=2)
    # early origins: median (mean of two) of a and b; late ones: of b and c (by hand)
    np.testing.assert_array_equal(got, [[6.0], [-4.0], [5.5], [3.5]])
    # a shorter row d (1 origin, the last) is in the late half only: the early half takes
    # the best two on the late half among those it has (a, b: d, best there, has none);
    # the late half the best two on the early half (b 2, a 10; d, with none there, last)
    d = np.array([[0.0]])
    got = combination.cross_fitted_median([a, b, d], top=2)
    np.testing.assert_array_equal(got, [[6.0], [-4.0], [1.5], [-0.5]])
    # nothing finite: one unknown row
    assert np.isnan(combination.cross_fitted_median([np.full((1, 3), np.nan)], 2)).all()


def test_holt_winters_forecast_follows_its_recursion_by_hand() -> None:
    # alpha 1 and gamma 0: l_t = y_t - s_t, the season never moves. With m = 3,
    # s = (1, 0, -1) and y = 5, 4, 3, 7: l_3 = 7 - s_0 = 6 (t = 3 is 0 mod 3), and the next
    # values are l_3 + s_1, l_3 + s_2, l_3 + s_0 = 6, 5, 7.
    sm = Smoothing(alpha=1.0, gamma=0.0, level0=0.0, season0=np.array([1.0, 0.0, -1.0]))
    y = np.array([5.0, 4.0, 3.0, 7.0])
    np.testing.assert_allclose(combination.forecast(y, sm, 3), [6.0, 5.0, 7.0])
    # alpha 0.5 without a season, from l_{-1} = 0: l = 1, 2 (y = 2, 3); flat at 2
    flat = Smoothing(alpha=0.5, gamma=0.0, level0=0.0, season0=np.zeros(1))
    np.testing.assert_allclose(combination.forecast([2.0, 3.0], flat, 2), [2.0, 2.0])
    # a trend b = 0.5 that never moves (beta 0) with alpha 1: l = y - s, then + 0.5 a step
    trend = Smoothing(alpha=1.0, gamma=0.0, level0=0.0, season0=np.zeros(1), trend0=0.5)
    np.testing.assert_allclose(combination.forecast([2.0, 3.0], trend, 3), [3.5, 4.0, 4.5])
    mix = combination.Combination(0.25, flat)
    np.testing.assert_allclose(mix.combine(np.array([6.0, 10.0]), np.array([2.0, 3.0])), [3, 4])


def _series(n: int = 40, m: int = 4) -> np.ndarray:
    t = np.arange(n)
    return 10 + 2 * np.sin(2 * np.pi * t / m) + 0.1 * np.random.default_rng(0).standard_normal(n)


@pytest.fixture(scope="module")
def fits() -> tuple[np.ndarray, object, object]:
    """(y, the LSTM alone, the same fit combined with a weight forced to 0.5)."""
    y = _series()
    alone = fit_auto(y, 4, 4, TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(combination, "choose_weight", lambda e_lstm, e_hw: 0.5)
        mixed = fit_auto(y, 4, 4, replace(TINY, combine=True))
    return y, alone, mixed


def test_the_combined_forecast_and_its_calibration_errors(fits: tuple) -> None:
    y, alone, mixed = fits
    assert mixed.combination.weight == 0.5 and mixed.summary()["lstm_weight"] == 0.5
    median = np.median(alone.member_forecasts(4), axis=0)  # the same members (same seeds)
    np.testing.assert_array_equal(mixed.member_forecasts(4), alone.member_forecasts(4))
    hw = combination.forecast(y, combination.fit(y, 4), 4)
    np.testing.assert_allclose(mixed.predict(4), 0.5 * median + 0.5 * hw)
    lo, hi = mixed.interval(4, 80)
    np.testing.assert_allclose((lo + hi) / 2, mixed.predict(4))  # around the combined forecast
    # the calibration errors are the combination's: 0.5 e + 0.5 e_hw at the same origins
    for e_mix, e in zip(mixed.candidate_errors, alone.candidate_errors):
        origins = np.arange(len(y) - 4 - len(e) + 1, len(y) - 4 + 1)
        sm = _hw_before(y, e)
        e_hw = np.stack([y[o : o + 4] - combination.forecast(y[:o], sm, 4) for o in origins])
        np.testing.assert_allclose(e_mix, 0.5 * e + 0.5 * e_hw)
    # and at the earlier cut (y[:a] trains, origins a .. a + V - h), Holt-Winters fitted on y[:a]
    assert len(mixed.cut_errors) == len(alone.cut_errors) == 1
    a = len(y) - 2 * 8  # V = 2 h = 8
    sm = combination.fit(y[:a], 4)
    e_hw = np.stack([y[o : o + 4] - combination.forecast(y[:o], sm, 4) for o in range(a, a + 5)])
    np.testing.assert_allclose(mixed.cut_errors[0], 0.5 * alone.cut_errors[0] + 0.5 * e_hw)


def _hw_before(y: np.ndarray, e: np.ndarray) -> Smoothing:
    """Holt-Winters fitted before the first validation origin of the longest row."""
    return combination.fit(y[: len(y) - 4 - len(e) + 1], 4)


def test_a_combined_run_saves_loads_and_refuses_onnx(fits: tuple, tmp_path: Path) -> None:
    from lstmkit.io.onnx_ensemble import members_of
    from lstmkit.series.auto_run import load_ensemble, save_ensemble
    from lstmkit.series.data import Series

    y, alone, mixed = fits
    save_ensemble(tmp_path, mixed, Series(y, None, "v", None, "test"), 0)
    loaded, meta = load_ensemble(tmp_path)
    assert meta["combination"]["weight"] == 0.5
    np.testing.assert_allclose(loaded.predict(4), mixed.predict(4), rtol=1e-6)  # float32 LSTMs
    with pytest.raises(ValueError, match=r"Holt-Winters.*no ONNX export yet") as info:
        members_of(loaded)
    assert "\n" not in str(info.value)
    assert len(members_of(alone)) == len(alone.members)


def test_the_global_model_refuses_the_combination() -> None:
    from lstmkit.series.many import Panel, fit_global

    panel = Panel.of([_series(), _series(44)], ["a", "b"])
    with pytest.raises(ValueError, match=r"combine: .* expected AutoConfig\(combine=False\)"):
        fit_global(panel, 4, 4, replace(TINY, combine=True))
