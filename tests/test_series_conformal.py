"""Split-conformal intervals (series/conformal.py): the finite-sample rank by hand, coverage
near nominal on series with known noise, and the batched validation errors behind them.

Oracles: order statistics written out by hand; coverage counted on fresh noise (a Monte
Carlo estimate against the nominal level); the unbatched roll-out for the batched errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lstmkit.series import conformal
from lstmkit.series.auto import AutoConfig, _errors_at, _predict, candidates
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.series.transform import Transform


@pytest.mark.parametrize(
    "level, rank",
    [(80, 8), (50, 5), (90, 9), (70, 7), (10, 1)],  # ceil((9 + 1) level / 100)
)
def test_finite_sample_rank_by_hand(level: int, rank: int) -> None:
    scores = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0])  # 1..9 shuffled
    assert conformal.conformal_quantile(scores, level) == rank  # the rank-th smallest


def test_too_few_scores_give_an_infinite_quantile_and_nan_is_ignored() -> None:
    assert conformal.conformal_quantile(np.arange(1.0, 10.0), 95) == math.inf  # rank 10 > 9
    assert conformal.conformal_quantile(np.array([np.nan, 2.0, 1.0, 3.0, 4.0]), 80) == 4.0
    assert math.isnan(conformal.conformal_quantile(np.array([np.nan]), 80))
    with pytest.raises(ValueError, match="level: expected a percentage"):
        conformal.conformal_quantile(np.ones(3), 0)


def test_exchangeable_scores_cover_at_least_the_level() -> None:
    """n = 19 calibration errors, then a fresh one, 20 000 times: P(|e| <= q) is between
    0.8 and 0.8 + 1/20 (the finite-sample guarantee); the plain quantile under-covers."""
    rng = np.random.default_rng(0)
    e = rng.standard_normal((20_000, 20))
    q = np.array([conformal.conformal_quantile(np.abs(row[:19]), 80) for row in e])
    covered = np.mean(np.abs(e[:, 19]) <= q)
    assert 0.80 - 0.01 < covered < 0.85 + 0.01, covered
    plain = np.quantile(np.abs(e[:, :19]), 0.8, axis=1)
    assert np.mean(np.abs(e[:, 19]) <= plain) < covered


def test_per_step_intervals_of_a_random_walk_cover_every_step() -> None:
    """A random walk forecast naively: the error at step j has variance j. Calibrated on
    the windows of the first half, the 80 % intervals cover about 80 % at every step of the
    second half's windows; one pooled width would over-cover step 1 and under-cover step 8."""
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.standard_normal(40_000))
    H = 8

    def errors(start: int, stop: int) -> np.ndarray:
        origins = np.arange(start, stop - H, 3)
        return np.stack([y[o : o + H] - y[o - 1] for o in origins])  # (R, H)

    calibration, test = errors(1, 20_000), errors(20_000, 40_000)
    q = conformal.step_quantiles(calibration, 80)
    coverage = np.mean(np.abs(test) <= q, axis=0)  # (H,)
    np.testing.assert_allclose(coverage, 0.8, atol=0.03)
    np.testing.assert_allclose(q / q[0], np.sqrt(np.arange(1, H + 1)), rtol=0.1)
    pooled = np.quantile(np.abs(calibration), 0.8)
    assert np.mean(np.abs(test[:, 0]) <= pooled) > 0.9
    assert np.mean(np.abs(test[:, -1]) <= pooled) < 0.7


def test_short_steps_fall_back_to_the_pooled_scale() -> None:
    errors = np.array([[1.0, 2.0], [-2.0, 4.0], [3.0, -6.0]])  # 3 origins: 80 % needs 4
    q = conformal.step_quantiles(errors, 80)
    scaled = np.abs(errors) / np.sqrt([1.0, 2.0])  # 6 scores: rank ceil(7 * 0.8) = 6
    top = np.sort(scaled.ravel())[5]
    np.testing.assert_allclose(q, top * np.sqrt([1.0, 2.0]))
    assert conformal.step_quantiles(errors, 50)[0] == 2.0  # rank 2 of 3: no fallback


def test_interval_past_the_calibrated_steps() -> None:
    lo, hi = conformal.interval(np.zeros(4), np.array([1.0, 2.0]))
    np.testing.assert_allclose(hi, [1.0, 2.0, 2 * np.sqrt(1.5), 2 * np.sqrt(2.0)])
    np.testing.assert_allclose(lo, -hi)


@pytest.mark.parametrize("difference, deseason", [(False, False), (True, True)])
def test_batched_validation_errors_equal_one_origin_at_a_time(
    difference: bool, deseason: bool
) -> None:
    t = np.arange(80)
    y = 5 + 0.1 * t + np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(2).normal(size=80)
    forms = candidates(12, 6, 74, 8)
    c = next(c for c in forms if (c.difference, c.deseason) == (difference, deseason))
    tf = Transform.fit(y[:60], 12, c.deseason, c.difference)
    model = Forecaster(ForecasterConfig(hidden=8, dtype="float64"), seed=0)
    origins = np.arange(60, 75)
    batched = _errors_at(model, c, tf, y, y, origins, 6)
    one = np.stack([y[o : o + 6] - _predict(model, c, tf, y[:o], 6) for o in origins])
    np.testing.assert_allclose(batched, one, rtol=1e-10, atol=1e-10)
    assert AutoConfig().val_horizons == 2  # the default part: h + 1 origins per candidate


@pytest.mark.slow
def test_the_automatic_forecasters_intervals_cover_a_series_with_known_noise() -> None:
    """A season plus N(0, 0.5^2) noise; the automatic forecaster fitted at 10 origins (a
    small search), 6 steps ahead each: its 80 % intervals cover 80 % of the 60 actuals,
    within the sampling error of 60 correlated draws, and their half-width is near the
    noise's 80 % quantile (1.28 x 0.5 = 0.64) rather than zero or the series' range
    (measured: coverage 0.883, median half-width 0.864 with the earlier cut's errors;
    0.800 and 0.744 without them; before the cross-fitting and the pooled steps 0.767 and
    0.660)."""
    from lstmkit.series.auto import fit_auto

    rng = np.random.default_rng(5)
    t = np.arange(260)
    y = 10 + 2 * np.sin(2 * np.pi * t / 12) + 0.5 * rng.standard_normal(260)
    config = AutoConfig(steps=80, eval_every=20, hidden=8, sizes=(), top=2, seeds=1,
                        minutes=None)  # fmt: skip
    inside, widths = [], []
    for origin in range(140, 260 - 6 + 1, 12):
        e = fit_auto(y[:origin], 12, 6, config)
        lo, hi = e.interval(6, 80)
        inside += list((lo <= y[origin : origin + 6]) & (y[origin : origin + 6] <= hi))
        widths += list((hi - lo) / 2)
    coverage = float(np.mean(inside))
    assert len(inside) == 60 and 0.65 <= coverage <= 0.95, coverage
    assert 0.4 < float(np.median(widths)) < 1.2, np.median(widths)


def test_pooled_quantiles_rank_by_hand() -> None:
    errors = np.array([[1.0, 2.0], [-2.0, 4.0], [3.0, -6.0], [0.5, 1.0]])
    scaled = np.sort((np.abs(errors) / np.sqrt([1.0, 2.0])).ravel())  # 8 scores
    q = conformal.pooled_quantiles(errors, 80)  # rank ceil(9 * 0.8) = 8
    np.testing.assert_allclose(q, scaled[7] * np.sqrt([1.0, 2.0]))
    q50 = conformal.pooled_quantiles(errors, 50)  # rank ceil(9 * 0.5) = 5
    np.testing.assert_allclose(q50, scaled[4] * np.sqrt([1.0, 2.0]))


def test_cross_fit_takes_each_half_from_the_best_on_the_other_half() -> None:
    """Three candidates, 4 origins (early half 0-1, late half 2-3), top 1: candidate b is
    best early, c best late; so the early half's errors are c's and the late half's b's. A
    row with one origin lies in the late half only; an all-NaN row is left out."""
    a = np.array([[5.0], [5.0], [5.0], [5.0]])
    b = np.array([[1.0], [1.0], [9.0], [9.0]])
    c = np.array([[8.0], [8.0], [2.0], [2.0]])
    out = conformal.cross_fit([a, b, c, np.full((4, 1), np.nan)], top=1)
    np.testing.assert_array_equal(out, [[8.0], [8.0], [9.0], [9.0]])
    d = np.array([[0.1]])  # one origin (the last): no early errors, so ranked last for the
    out = conformal.cross_fit([a, b, c, d], top=1)  # late half and absent from the early one
    np.testing.assert_array_equal(out, [[8.0], [8.0], [9.0], [9.0]])
    np.testing.assert_array_equal(conformal.cross_fit([d, 2 * d], top=1), d)  # no halves
    assert np.isnan(conformal.cross_fit([np.full((3, 2), np.nan)], top=2)).all()


def test_cross_fitting_removes_the_selection_optimism() -> None:
    """20 candidates that are equally good (every error N(0, j) at step j): the 3 chosen on
    the same windows look better than they are, so their errors under-cover a fresh error;
    cross-fitted errors cover it at about the level (Monte Carlo over 1500 searches)."""
    rng = np.random.default_rng(3)
    H, R, trials = 4, 8, 1500
    root_j = np.sqrt(np.arange(1, H + 1))
    naive, fitted = [], []
    for _ in range(trials):
        rows = list(rng.standard_normal((20, R, H)) * root_j)
        fresh = np.abs(rng.standard_normal(H) * root_j)
        top = np.concatenate(sorted(rows, key=lambda e: np.mean(np.abs(e)))[:3])
        naive.append(fresh <= conformal.pooled_quantiles(top, 80))
        fitted.append(fresh <= conformal.pooled_quantiles(conformal.cross_fit(rows, 3), 80))
    assert np.mean(naive) < 0.77, np.mean(naive)
    assert 0.78 < np.mean(fitted) < 0.84, np.mean(fitted)


def test_pooled_intervals_track_changing_noise_over_many_windows() -> None:
    """A random walk whose noise scale swings between 0.5 and 1.5; at each of 1600 origins
    the naive forecast's errors from the h + 1 origins of the last 2h values (as the
    forecaster's validation part) calibrate the 80 % interval of the next h values: every
    step covers 80 % within 5 points (measured 0.76-0.78: the overlapping windows' errors
    are correlated, so the few scores understate the spread a little). One width per step
    from only h + 1 scores takes the largest (rank ceil(8 x 0.8) = 7 of 7): measured 0.83."""
    rng = np.random.default_rng(4)
    n, H = 20_000, 6
    t = np.arange(n)
    y = np.cumsum((1 + 0.5 * np.sin(2 * np.pi * t / 4000)) * rng.standard_normal(n))

    def errors(origins: np.ndarray) -> np.ndarray:
        return np.stack([y[o : o + H] - y[o - 1] for o in origins])  # (R, H)

    inside, per_step = [], []
    for o in range(100, n - H, 12):
        calibration = errors(np.arange(o - 2 * H, o - H + 1))  # (H + 1, H)
        test = np.abs(errors(np.array([o]))[0])
        inside.append(test <= conformal.pooled_quantiles(calibration, 80))
        per_step.append(test <= conformal.step_quantiles(calibration, 80))
    np.testing.assert_allclose(np.mean(inside, axis=0), 0.8, atol=0.05)
    assert np.mean(per_step) > np.mean(inside)  # the largest of 7: more conservative
