"""The level gate (lstmkit.series.stationarity): the ADF statistic against the regression
solved by hand and against statsmodels, MacKinnon's critical value, the gate on series whose
answer is known, and the automatic forecaster reading the level only where the gate opens
(the default)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lstmkit.series.auto import AutoConfig, _gates, fit_auto
from lstmkit.series.stationarity import (
    adf_critical_5,
    adf_lags,
    adf_statistic,
    level_stationary,
)

TINY = AutoConfig(steps=20, eval_every=10, hidden=4, sizes=(), top=1, seeds=1, minutes=None)


def _ar1(n: int, phi: float, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).standard_normal(n)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_tau_is_rho_over_its_standard_error_of_the_regression_by_hand() -> None:
    # one lag: rows t = 2..n-1 of  dx_t = a + rho x_{t-1} + phi dx_{t-1}, solved with the
    # normal equations and the textbook standard error, written out without the module
    x = _ar1(40, 0.6, 0) + 3.0
    rows = [(1.0, x[t - 1], x[t - 1] - x[t - 2]) for t in range(2, 40)]
    A = np.array(rows)  # (38, 3)
    b = np.array([x[t] - x[t - 1] for t in range(2, 40)])  # (38,)
    coef = np.linalg.solve(A.T @ A, A.T @ b)
    r = b - A @ coef
    se_rho = np.sqrt(np.linalg.inv(A.T @ A)[1, 1] * (r @ r) / (38 - 3))
    tau, T = adf_statistic(x, 1)
    assert T == 38
    assert tau == pytest.approx(coef[1] / se_rho, rel=1e-10)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # adfuller's tuple
@pytest.mark.parametrize("seed", [0, 1])
def test_tau_and_the_critical_value_equal_statsmodels(seed: int) -> None:
    sm = pytest.importorskip("statsmodels.tsa.stattools")
    adfvalues = pytest.importorskip("statsmodels.tsa.adfvalues")
    for x in (_ar1(120, 0.8, seed), np.cumsum(_ar1(90, 0.3, seed))):
        k = adf_lags(len(x))
        tau, T = adf_statistic(x, k)
        ref = sm.adfuller(x, maxlag=k, regression="c", autolag=None)
        assert tau == pytest.approx(ref[0], rel=1e-9)
        assert T == ref[3]
        assert adf_critical_5(T) == pytest.approx(adfvalues.mackinnoncrit(1, "c", T)[1])


def test_the_lag_is_the_cube_root_rule() -> None:
    assert [adf_lags(n) for n in (9, 10, 28, 114, 125, 126, 203)] == [2, 2, 3, 4, 4, 5, 5]


def test_the_gate_opens_for_a_mean_reverting_level_and_shuts_for_a_trend_or_a_walk() -> None:
    t = np.arange(200)
    season = 3.0 * np.sin(2 * np.pi * t / 4)
    assert level_stationary(_ar1(200, 0.5, 2) + season, 4)  # deseasoned first
    assert not level_stationary(0.2 * t + _ar1(200, 0.5, 2) + season, 4)  # CO2's kind
    assert not level_stationary(np.cumsum(np.random.default_rng(3).standard_normal(200)), 1)
    with pytest.raises(ValueError, match="expected x"):
        adf_statistic(np.zeros(5), 3)


def test_the_forecaster_reads_the_level_only_where_the_gate_opens() -> None:
    on, off = TINY, replace(TINY, level_if_stationary=False)
    assert AutoConfig().level_if_stationary  # the default since branch fc20
    y_flat = _ar1(60, 0.3, 4)  # mean-reverting
    y_trend = 0.5 * np.arange(60) + _ar1(60, 0.3, 4)
    assert _gates(y_flat, 1, on) == (True, None) and _gates(y_trend, 1, on) == (False, None)
    assert not _gates(y_flat, 1, off)[0]
    assert _gates(y_trend, 1, replace(off, level_input=True))[0]  # the ungated option
    forms = [(row["difference"], row["level"]) for row in fit_auto(y_flat, 1, 4, on).table]
    assert (True, True) in forms and (True, False) not in forms
    shut = fit_auto(y_trend, 1, 4, on)
    assert not any(row["level"] for row in shut.table)
    # a shut gate is the defaults, bit for bit (the held-out series are not re-run there)
    np.testing.assert_array_equal(shut.predict(4), fit_auto(y_trend, 1, 4, off).predict(4))


def test_the_global_model_refuses_the_ungated_level_and_reads_none_by_default() -> None:
    from lstmkit.series.many import Panel, fit_global

    panel = Panel.of([_ar1(48, 0.3, 5), _ar1(44, 0.3, 6)], ["a", "b"])
    match = r"level_input: .* expected AutoConfig\(level_input=False\)"
    with pytest.raises(ValueError, match=match):
        fit_global(panel, 4, 4, replace(TINY, level_input=True))
    assert TINY.level_if_stationary  # the default: accepted, the global model reads no level


@pytest.mark.parametrize("command", ["train", "backtest"])
def test_no_level_turns_the_gate_off_on_the_command_line(command: str) -> None:
    from lstmkit.cli.app import build_parser
    from lstmkit.cli.series_auto import auto_config

    parser = build_parser()
    args = ["series", command, "--csv", "x.csv", "--column", "v", "--out", "r"]
    assert auto_config(parser.parse_args(args)).level_if_stationary  # on by default
    assert not auto_config(parser.parse_args([*args, "--no-level"])).level_if_stationary
