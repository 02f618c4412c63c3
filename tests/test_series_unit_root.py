"""AutoConfig.difference_if_unit_root: where the level gate's ADF test leaves a unit root
standing, the automatic forecaster searches the differenced forms only; where it rejects,
the candidates (and the fit) are those without the option, bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lstmkit.series.auto import AutoConfig, candidates, fit_auto
from lstmkit.series.auto_run import load_ensemble, save_ensemble
from lstmkit.series.data import Series

OFF = AutoConfig(steps=20, eval_every=10, hidden=4, sizes=(), top=1, seeds=1, minutes=None)
ON = replace(OFF, difference_if_unit_root=True)


def _walk_with_drift(n: int) -> np.ndarray:
    return np.cumsum(0.5 + np.random.default_rng(0).standard_normal(n))  # (n,)


def _white_noise(n: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(n)  # (n,)


def test_the_shut_gate_keeps_every_lookback_and_season_form_differenced() -> None:
    kept = candidates(4, 8, 120, differenced_only=True, hybrid=True)
    forms = {(c.lookback, c.deseason, c.difference, c.hybrid) for c in kept}
    assert forms == {(L, d, True, False) for L in (4, 8, 12) for d in (True, False)}
    every = candidates(4, 8, 120, hybrid=True)
    assert [c for c in every if c.difference] == kept  # the same forms, in the same order
    assert candidates(1, 4, 7, differenced_only=True)[0].difference  # the short fallback


def test_a_random_walk_with_drift_searches_the_differenced_forms_only() -> None:
    y = _walk_with_drift(60)
    fitted = fit_auto(y, 1, 4, ON)
    assert fitted.unit_root is True and fitted.summary()["unit_root"] is True
    assert fitted.table and all(row["difference"] for row in fitted.table)
    assert not all(row["difference"] for row in fit_auto(y, 1, 4, OFF).table)  # without it


def test_white_noise_keeps_the_candidates_and_the_forecast_bit_for_bit(tmp_path) -> None:
    y = _white_noise(60)
    on, off = fit_auto(y, 1, 4, ON), fit_auto(y, 1, 4, OFF)
    assert on.unit_root is False and "unit_root" not in off.summary()
    assert [r["difference"] for r in on.table] == [r["difference"] for r in off.table]
    assert any(not r["difference"] for r in on.table)
    np.testing.assert_array_equal(on.predict(4), off.predict(4))
    series = Series(y, None, "v", None, "test")
    save_ensemble(tmp_path, on, series, 0)
    loaded, meta = load_ensemble(tmp_path)
    assert loaded.unit_root is False and meta["unit_root"] is False
    np.testing.assert_array_equal(loaded.predict(4), on.predict(4))
