"""The level as a second LSTM input (lstmkit.series.level_input): its inputs by hand, windows
and contexts against the causal encode, the roll-out against one forward pass over the
decoded forecasts re-encoded, and a fit that saves, loads and exports to ONNX (ONNX Runtime
gives its forecast)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lstmkit.series.auto import AutoConfig, Candidate, candidates, fit_auto
from lstmkit.series.level_input import LevelInput
from lstmkit.series.model import Forecaster, ForecasterConfig

TINY = AutoConfig(steps=20, eval_every=10, hidden=4, sizes=(), top=2, seeds=1, minutes=0.5)


def _series(n: int = 48, m: int = 4) -> np.ndarray:
    t = np.arange(n)
    return 10 + 2 * np.sin(2 * np.pi * t / m) + 0.3 * np.random.default_rng(1).standard_normal(n)


def test_the_inputs_are_the_scaled_change_and_the_scaled_level_by_hand() -> None:
    # no season: d = y = 1, 3, 2, 6; e = 2, -1, 4 (mean 5/3, std by hand); level mean 3,
    # std sqrt(((-2)^2 + 0 + 1 + 9) / 4) = sqrt(3.5)
    y = np.array([1.0, 3.0, 2.0, 6.0])
    tf = LevelInput.fit(y, 1, deseason=False)
    e = np.array([2.0, -1.0, 4.0])
    e_std = np.sqrt(np.mean((e - 5 / 3) ** 2))
    x = tf.encode(y)
    np.testing.assert_allclose(x[:, 0], (e - 5 / 3) / e_std)
    np.testing.assert_allclose(x[:, 1], (y[1:] - 3.0) / np.sqrt(3.5))


def test_windows_and_contexts_read_what_encode_reads_before_each_origin() -> None:
    y = _series()
    tf = LevelInput.fit(y, 4, deseason=True)
    X, Y = tf.windows(y, 5)  # (5, M, 2), (5, M, 1)
    x = tf.encode(y)  # (n - 1, 2)
    assert X.shape == (5, len(x) - 5, 2) and Y.shape == (5, len(x) - 5, 1)
    np.testing.assert_array_equal(X[:, 7], x[7:12])
    np.testing.assert_array_equal(Y[:, 7, 0], x[8:13, 0])
    origins = np.array([20, 33, 48])
    got = tf.contexts(y, origins, 6)  # (6, 3, 2)
    for r, o in enumerate(origins):  # encode is causal: the prefix's encode, same scalers
        np.testing.assert_allclose(got[:, r], tf.encode(y[:o])[-6:])


def test_the_roll_out_feeds_back_the_level_of_its_own_forecasts() -> None:
    """Oracle: decode the roll-out's forecasts into values, append them to the history and
    encode that; one forward pass over those inputs predicts the same z at every step."""
    y = _series()
    tf = LevelInput.fit(y, 4, deseason=True)
    model = Forecaster(ForecasterConfig(hidden=5, dtype="float64"), seed=3, inputs=2)
    L, h = 6, 5
    z_hat = tf.roll_out(model, tf.encode(y)[-L:][:, None], h)[:, 0]  # (h,)
    y_hat = tf.decode(z_hat, y)
    x_all = tf.encode(np.concatenate([y, y_hat]))[-(L + h) :]  # (L + h, 2)
    pred, _ = model(x_all[:, None, :], inference=True)  # (L + h, 1, 1)
    np.testing.assert_allclose(pred[L - 1 : L - 1 + h, 0, 0], z_hat, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x_all[L:, 0], z_hat, atol=1e-10)  # decode inverts encode
    with pytest.raises(ValueError, match=r"expected shape \(T, N, 2\)"):
        tf.roll_out(model, np.zeros((3, 1)), 2)


def test_only_the_differenced_forms_read_the_level() -> None:
    pool = candidates(12, 6, 200, level=True)
    assert pool and all(c.level == c.difference for c in pool)
    assert not any(c.level for c in candidates(12, 6, 200))
    assert Candidate(4, False, True, 8, level=True).inputs() == 2


def test_a_level_input_fit_resumes_saves_loads_and_exports_to_onnx(tmp_path: Path) -> None:
    """A fit replayed from its progress file (every candidate and member saved) gives the
    same forecast, weight and calibration errors as the fit that saved it; its run folder
    loads to the same forecast; without the Holt-Winters combination (refused in one line)
    its ONNX graph gives the loaded ensemble's forecast in ONNX Runtime."""
    from lstmkit.io.onnx_ensemble import members_of
    from lstmkit.series.auto_progress import Progress, stamp
    from lstmkit.series.auto_run import load_ensemble, save_ensemble
    from lstmkit.series.data import Series

    y = _series()
    config = replace(TINY, level_input=True, combine=True, minutes=None, top=12)  # all forms
    s = stamp(y, 4, 4, config)
    (tmp_path / "p").mkdir()
    first = fit_auto(y, 4, 4, config, progress=Progress.start(tmp_path / "p", s))
    again = fit_auto(y, 4, 4, config, progress=Progress.resume(tmp_path / "p", s))
    assert any(c.level for c, _, _, _ in again.members)
    assert again.combination.weight == first.combination.weight
    np.testing.assert_array_equal(again.predict(4), first.predict(4))
    np.testing.assert_array_equal(again.errors, first.errors)
    assert "level_input" not in stamp(y, 4, 4, TINY)  # off: stamped as before the option

    save_ensemble(tmp_path, first, Series(y, None, "v", None, "test"), 0)
    loaded, meta = load_ensemble(tmp_path)
    assert any("level_scaler" in d for d in meta["members"])
    np.testing.assert_allclose(loaded.predict(4), first.predict(4), rtol=1e-6)  # float32
    with pytest.raises(ValueError, match="Holt-Winters.*no ONNX export yet") as info:
        members_of(loaded)
    assert "\n" not in str(info.value)
    _check_onnx(tmp_path, replace(loaded, combination=None), y)


def _check_onnx(tmp_path: Path, ensemble, y: np.ndarray) -> None:
    """ONNX Runtime's forecast of ``ensemble``'s graph equals its predict (float32 rounding)
    for N = 3 histories (prefixes of y at three phases of the season) and two horizons."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from lstmkit.io.onnx_ensemble import export_ensemble, members_of

    members = members_of(ensemble)
    assert any(k.level is not None for k in members)
    need = max(k.need() for k in members)
    lengths = [len(y) - 2, len(y) - 1, len(y)]
    feeds = {"history": np.stack([y[n - need : n] for n in lengths]), "n": np.array(lengths)}
    for h in (1, 6):
        export_ensemble(members, h, tmp_path / "level.onnx")
        session = ort.InferenceSession(str(tmp_path / "level.onnx"))
        got = session.run(["forecast"], feeds)[0]  # (3, h)
        expected = np.stack([ensemble.predict(h, y[:n]) for n in lengths])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
