"""The automatic forecaster's ONNX graph: ONNX Runtime's forecast from the raw last values
equals lstmkit's (``Ensemble.predict``, ``series forecast``) to float32 rounding.

The oracle is lstmkit's own NumPy forecast (transform, LSTM roll-out, np.median), run on
ensembles that hold every member form (deseasoned or not, differenced or not, reading the
level or not, lookbacks that differ) and odd and even member counts, from histories whose
lengths give different phases of the season.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.cli.export import half_widths
from lstmkit.io.onnx_ensemble import Interval, Member, export_ensemble, members_of
from lstmkit.series.auto import Candidate, Ensemble
from lstmkit.series.auto_run import save_ensemble
from lstmkit.series.data import Series
from lstmkit.series.level_input import LevelInput
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.series.transform import Transform

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

H = 6


def _session(path: Path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def seasonal(n: int, m: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    noise = 0.3 * np.random.default_rng(seed).standard_normal(n)
    return 50 + 0.2 * t + 4 * np.sin(2 * np.pi * t / m) + noise


def ensemble(K: int, m: int) -> Ensemble:
    """K members cycling through the four forms, random LSTMs with weights large enough to
    be non-linear."""
    y = seasonal(40, m)
    members = []
    for k in range(K):
        c = Candidate((m * 2, 5, m, 7)[k % 4], k % 2 == 0 and m > 1, k % 4 < 2, 3 + k)
        model = Forecaster(ForecasterConfig(hidden=c.hidden), seed=k)
        model.load_state_dict({n: 2.5 * w for n, w in model.state_dict().items()})
        members.append((c, Transform.fit(y, m, c.deseason, c.difference), model, 1))
    return Ensemble(members, y, m, [], False, np.zeros((1, H)))


@pytest.mark.parametrize("K, m", [(1, 4), (2, 4), (3, 12), (4, 4), (5, 1)])
def test_onnxruntime_gives_the_ensembles_forecast(tmp_path: Path, K: int, m: int) -> None:
    e = ensemble(K, m)
    path = tmp_path / "auto.onnx"
    proto = export_ensemble(members_of(e), H, path)
    props = {p.key: p.value for p in proto.metadata_props}
    need = max(c.lookback + c.difference for c, _, _, _ in e.members)
    assert props == {"need": str(need), "horizon": str(H), "season": str(m), "members": str(K)}
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("LSTM") == K * H and ops.count("TopK") == 1
    lengths = [37, 38, 40]  # three phases of the season
    histories = [seasonal(40, m, seed=1)[:n] for n in lengths]
    feeds = {
        "history": np.stack([y[-need:] for y in histories]),
        "n": np.array(lengths, np.int64),
    }
    forecast, members = _session(path).run(None, feeds)
    expected_members = np.stack([e.member_forecasts(H, y) for y in histories], axis=1)
    expected = np.stack([e.predict(H, y) for y in histories])
    assert members.shape == (K, 3, H) and forecast.shape == (3, H)
    assert members.dtype == forecast.dtype == np.float64
    assert np.ptp(expected_members[:, 0, 0]) > 1e-2 or K == 1, "members too alike: weak test"
    np.testing.assert_allclose(members, expected_members, rtol=0, atol=1e-5)
    np.testing.assert_allclose(forecast, expected, rtol=0, atol=1e-5)


def mean_reverting(n: int, m: int, seed: int = 2) -> np.ndarray:
    """20 + an AR(1) with coefficient 0.5 (+ a season of period m): a level with a mean."""
    noise = np.random.default_rng(seed).standard_normal(n)
    d = np.zeros(n)
    for t in range(1, n):
        d[t] = 0.5 * d[t - 1] + noise[t]
    return 20 + d + 3 * np.sin(2 * np.pi * np.arange(n) / m) * (m > 1)


def level_ensemble(m: int) -> Ensemble:
    """Members that read the level (deseasoned or not, lookbacks that differ) next to one
    that reads z only, random LSTMs with weights large enough to be non-linear."""
    y = mean_reverting(60, m)
    forms = [
        Candidate(2 * m if m > 1 else 8, m > 1, True, 5, level=True),
        Candidate(5, False, True, 4, level=True),
        Candidate(7, m > 1, True, 3),
    ]
    members = []
    for k, c in enumerate(forms):
        model = Forecaster(ForecasterConfig(hidden=c.hidden), seed=10 + k, inputs=c.inputs())
        model.load_state_dict({n: 2.5 * w for n, w in model.state_dict().items()})
        tf = LevelInput.fit(y, m, c.deseason) if c.level else Transform.fit(y, m, c.deseason, True)
        members.append((c, tf, model, 1))
    return Ensemble(members, y, m, [], False, np.zeros((1, H)))


@pytest.mark.parametrize("m, h", [(4, 1), (4, 2), (4, 9), (1, 7)])
def test_members_that_read_the_level_give_the_ensembles_forecast(
    tmp_path: Path, m: int, h: int
) -> None:
    """Level members (an LSTM reading (z, u), a roll-out that feeds back u): ONNX Runtime's
    member forecasts and median equal Ensemble.member_forecasts and predict for N = 3 rows."""
    e = level_ensemble(m)
    path = tmp_path / "level.onnx"
    members = members_of(e)
    assert [k.level is not None for k in members] == [True, True, False]
    proto = export_ensemble(members, h, path)
    inits = {t.name: t for t in proto.graph.initializer}
    assert [list(inits[f"m{k}_W"].dims)[-1] for k in range(3)] == [2, 2, 1]  # input_size
    lengths = [45, 46, 51]  # three phases of the season
    histories = [mean_reverting(60, m, seed=3)[:n] for n in lengths]
    need = max(c.lookback + 1 for c, _, _, _ in e.members)
    feeds = {"history": np.stack([y[-need:] for y in histories]), "n": np.array(lengths)}
    forecast, got = _session(path).run(None, feeds)
    expected = np.stack([e.member_forecasts(h, y) for y in histories], axis=1)  # (3, 3, h)
    assert np.ptp(expected[:, :, -1]) > 1e-2, "members too alike: weak test"
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(forecast, np.median(expected, axis=0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(forecast[2], e.predict(h, histories[2]), rtol=0, atol=1e-5)


def test_the_median_of_an_even_count_is_the_mean_of_the_two_middle_ones(tmp_path: Path) -> None:
    """The graph's median of its own member outputs, exactly (float64 TopK and Gather)."""
    e = ensemble(4, 4)
    export_ensemble(members_of(e), H, tmp_path / "a.onnx")
    y = seasonal(40, 4, seed=2)
    feeds = {"history": y[None, -9:], "n": np.array([40])}  # need: lookback 8 + difference
    forecast, members = _session(tmp_path / "a.onnx").run(None, feeds)
    np.testing.assert_array_equal(forecast, np.median(members, axis=0))


def test_lstm_variants_the_operator_expresses(tmp_path: Path) -> None:
    """Members with peepholes (the operator's P) and coupled gates (input_forget)."""
    y = seasonal(40, 4)
    members = []
    for k, variant in enumerate([{"peepholes": True}, {"coupled_gates": True}]):
        model = Forecaster(ForecasterConfig(hidden=5, variant=variant), seed=k)
        model.load_state_dict({n: 2.5 * w for n, w in model.state_dict().items()})
        c = Candidate(8, True, k == 0, 5)
        members.append((c, Transform.fit(y, 4, c.deseason, c.difference), model, 1))
    e = Ensemble(members, y, 4, [], False, np.zeros((1, H)))
    export_ensemble(members_of(e), H, tmp_path / "v.onnx")
    feeds = {"history": y[None, -9:], "n": np.array([40])}
    _, got = _session(tmp_path / "v.onnx").run(None, feeds)
    np.testing.assert_allclose(got[:, 0], e.member_forecasts(H, y), rtol=0, atol=1e-5)


@pytest.mark.parametrize("level, h", [(80, H), (50, H), (95, H + 3)])
def test_the_graphs_interval_is_ensemble_interval(tmp_path: Path, level: int, h: int) -> None:
    """lo and hi from ONNX Runtime equal Ensemble.interval's at every step, for levels other
    than 80 and past the calibrated H (sqrt(j / H) widening); the widths grow with the step,
    so half-widths shifted by a step (or reversed, or one for all) cannot pass."""
    e = ensemble(3, 4)
    e.errors = np.random.default_rng(7).standard_normal((20, H)) * np.sqrt(np.arange(1, H + 1))
    path = tmp_path / "i.onnx"
    proto = export_ensemble(members_of(e), h, path, interval=Interval(level, half_widths(
        e.errors, level, h)))  # fmt: skip
    assert {p.key: p.value for p in proto.metadata_props}["level"] == str(level)
    lengths = [37, 40]
    histories = [seasonal(40, 4, seed=1)[:n] for n in lengths]
    feeds = {"history": np.stack([y[-9:] for y in histories]), "n": np.array(lengths)}
    forecast, _, lo, hi = _session(path).run(None, feeds)
    assert lo.shape == hi.shape == (2, h) and lo.dtype == np.float64
    for k, y in enumerate(histories):
        lo_py, hi_py = e.interval(h, level, y)
        np.testing.assert_allclose(lo[k], lo_py, rtol=0, atol=1e-6)
        np.testing.assert_allclose(hi[k], hi_py, rtol=0, atol=1e-6)
        width = (hi_py - lo_py) / 2  # the oracle's own half-widths, from its own forecast
        np.testing.assert_allclose(hi[k] - forecast[k], width, rtol=0, atol=1e-9)
        np.testing.assert_allclose(forecast[k] - lo[k], width, rtol=0, atol=1e-9)
        assert np.all(np.diff(width) > 1e-3), "widths not distinct per step: weak test"


def test_a_graph_without_interval_has_no_bounds(tmp_path: Path) -> None:
    e = ensemble(2, 4)
    proto = export_ensemble(members_of(e), H, tmp_path / "a.onnx")
    assert [o.name for o in proto.graph.output] == ["forecast", "members"]
    assert "level" not in {p.key for p in proto.metadata_props}
    for q, match in [(np.ones(H - 1), r"expected shape \(6,\)"), (np.full(H, np.inf), "finite")]:
        with pytest.raises(ValueError, match=match):
            export_ensemble(members_of(e), H, tmp_path / "b.onnx", interval=Interval(80, q))
    assert not (tmp_path / "b.onnx").exists()


def test_bad_members_are_refused(tmp_path: Path) -> None:
    e = ensemble(2, 4)
    with pytest.raises(ValueError, match="horizon: expected an integer >= 1"):
        export_ensemble(members_of(e), 0, tmp_path / "a.onnx")
    deep = Forecaster(ForecasterConfig(hidden=3, layers=2), seed=0)
    bad = Member(deep, 4, False, np.zeros(4), 0.0, 1.0)
    with pytest.raises(ValueError, match="expected one forward layer reading one value"):
        export_ensemble([bad], H, tmp_path / "a.onnx")
    one_input = Forecaster(ForecasterConfig(hidden=3), seed=0)
    level = Member(one_input, 4, True, np.zeros(4), 0.0, 1.0, level=(0.0, 1.0))
    with pytest.raises(ValueError, match="expected one forward layer reading 2 values"):
        export_ensemble([level], H, tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="member 0 reads the level: expected a differenced"):
        export_ensemble([replace(level, difference=False)], H, tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx").exists()


def test_export_of_a_trained_run_matches_series_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`series train` (automatic) -> `export onnx` -> ONNX Runtime on the last values gives
    the numbers `series forecast` writes."""
    y = seasonal(48, 4)
    csv = tmp_path / "s.csv"
    csv.write_text("v\n" + "\n".join(repr(float(v)) for v in y) + "\n")
    run = tmp_path / "run"
    train = ["series", "train", "--csv", str(csv), "--column", "v", "--horizon", "4"]
    train += ["--season", "4", "--steps", "20", "--hidden", "4", "--out", str(run)]
    assert main(train + ["--no-progress"]) == 0
    out = tmp_path / "f.csv"
    forecast = ["series", "forecast", "--run", str(run), "--csv", str(csv), "--horizon", "4"]
    assert main(forecast + ["--out", str(out), "--no-plot"]) == 0
    expected = [float(r.split(",")[1]) for r in out.read_text().splitlines()[1:]]
    path = tmp_path / "auto.onnx"
    assert main(["export", "onnx", "--run", str(run), "--out", str(path)]) == 0
    assert "inputs history (N, " in capsys.readouterr().out
    model = onnx.load(str(path))
    need = int(next(p.value for p in model.metadata_props if p.key == "need"))
    feeds = {"history": y[None, -need:], "n": np.array([len(y)])}
    got = _session(path).run(None, feeds)[0]
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-5)
    assert main(["export", "onnx", "--run", str(run), "--out", str(path), "--horizon", "7"]) == 0
    got7 = _session(path).run(None, feeds)[0]
    np.testing.assert_allclose(got7[0, :4], got[0], rtol=0, atol=1e-12)
    assert got7.shape == (1, 7)
    capsys.readouterr()
    bad = ["export", "onnx", "--run", str(run), "--out", str(path), "--no-sequence-lens"]
    assert main(bad) == 1
    assert "--no-sequence-lens" in capsys.readouterr().err
    _check_intervals(tmp_path, run, csv, feeds, capsys)


def test_the_default_run_of_a_mean_reverting_series_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`series train` with the defaults on a mean-reverting series, a slow cycle of period 20
    (El Nino's kind: the ADF gate opens and differenced members that read the level win) ->
    `export onnx` -> ONNX Runtime gives the numbers `series forecast` writes, at the run's
    horizon and a longer one."""
    from lstmkit.series.auto_run import load_ensemble
    from lstmkit.series.stationarity import level_stationary

    t = np.arange(48)
    noise = 0.3 * np.random.default_rng(0).standard_normal(48)
    y = 20 + 5 * np.sin(2 * np.pi * t / 20) + 4 * np.sin(2 * np.pi * t / 4) + noise
    assert level_stationary(y, 4)
    csv = tmp_path / "s.csv"
    csv.write_text("v\n" + "\n".join(repr(float(v)) for v in y) + "\n")
    run = tmp_path / "run"
    train = ["series", "train", "--csv", str(csv), "--column", "v", "--horizon", "4"]
    train += ["--season", "4", "--steps", "20", "--hidden", "4", "--out", str(run)]
    assert main(train + ["--no-progress"]) == 0
    assert any(c.level for c, _, _, _ in load_ensemble(run)[0].members)
    for h in (4, 7):
        out, path = tmp_path / "f.csv", tmp_path / "auto.onnx"
        forecast = ["series", "forecast", "--run", str(run), "--csv", str(csv)]
        assert main([*forecast, "--horizon", str(h), "--out", str(out), "--no-plot"]) == 0
        expected = [float(r.split(",")[1]) for r in out.read_text().splitlines()[1:]]
        export = ["export", "onnx", "--run", str(run), "--out", str(path), "--level", "0"]
        assert main([*export, "--horizon", str(h)]) == 0
        need = int(next(p.value for p in onnx.load(str(path)).metadata_props if p.key == "need"))
        feeds = {"history": y[None, -need:], "n": np.array([len(y)])}
        got = _session(path).run(None, feeds)[0]
        assert got.shape == (1, h)
        np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-5)
    capsys.readouterr()


def _check_intervals(
    tmp_path: Path, run: Path, csv: Path, feeds: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    """`export onnx` (--level L, default 80) -> ONNX Runtime's lo, hi are the lo_L, hi_L
    `series forecast --level L` writes; --level 0: today's graph; refusals in one line."""
    export = ["export", "onnx", "--run", str(run), "--out", str(tmp_path / "i.onnx")]
    for level in (None, 50):
        out = tmp_path / "f.csv"
        forecast = ["series", "forecast", "--run", str(run), "--csv", str(csv), "--horizon", "6"]
        flags = [] if level is None else ["--level", str(level)]
        assert main(forecast + ["--out", str(out), "--no-plot", *flags]) == 0
        header, *rows = [r.split(",") for r in out.read_text().splitlines()]
        L = 80 if level is None else level
        assert header[2:] == [f"lo_{L}", f"hi_{L}"]
        written = np.array([[float(v) for v in r[1:]] for r in rows])  # (6, 3)
        assert main([*export, "--horizon", "6", *flags]) == 0
        assert f"the {L} % interval" in capsys.readouterr().out
        model = onnx.load(str(tmp_path / "i.onnx"))
        assert {p.key: p.value for p in model.metadata_props}["level"] == str(L)
        f, _, lo, hi = _session(tmp_path / "i.onnx").run(None, feeds)
        got = np.stack([f[0], lo[0], hi[0]], axis=1)
        assert np.all(np.isfinite(written)) and np.ptp(written[:, 2] - written[:, 1]) > 1e-3
        np.testing.assert_allclose(got, written, rtol=0, atol=1e-6)
    assert main([*export, "--level", "0"]) == 0
    model = onnx.load(str(tmp_path / "i.onnx"))
    assert [o.name for o in model.graph.output] == ["forecast", "members"]
    assert "level" not in {p.key for p in model.metadata_props}
    capsys.readouterr()
    assert main([*export, "--level", "100"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a percentage 0 <= level < 100" in err, err


@pytest.mark.parametrize(
    "rows, flags, says",
    [
        (2, ["--level", "95"], "--level 95: the run holds too few calibration errors for a 95 %"),
        (0, [], "--level 80 (the default): the run holds no calibration errors"),
    ],
)
def test_a_run_without_an_interval_refuses_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: int, flags: list, says: str
) -> None:
    """Too few calibration errors for the level (inf half-widths) or none (NaN): --level is
    refused in one line that says how to export without it, and --level 0 exports."""
    e = ensemble(2, 4)
    e.errors = np.ones((rows, H)) if rows else np.full((1, H), np.nan)  # 2 x 6: 12 scores
    save_ensemble(tmp_path, e, Series(e.history, None, "v", None, "test"), 0)
    export = ["export", "onnx", "--run", str(tmp_path), "--out", str(tmp_path / "a.onnx")]
    assert main([*export, *flags]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "--level 0" in err, err
    assert not (tmp_path / "a.onnx").exists()
    assert main([*export, "--level", "0"]) == 0
    assert main([*export, "--level", "80"]) == (0 if rows else 1)  # 12 scores: enough for 80
