"""The global forecaster's ONNX graph: ONNX Runtime's forecast from each series' raw last
values, length and index equals lstmkit's (``GlobalEnsemble.predict``, ``series forecast``).

The oracle is lstmkit's own NumPy forecast (each series' transform, the LSTM roll-out,
np.median) on ensembles holding every member form (deseasoned or not, differenced or not,
lookbacks that differ), odd and even member counts, series of very different levels and
scales, and batches that repeat and reorder the series at different phases of the season.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.cli.export import half_widths
from lstmkit.io.onnx_ensemble import Interval
from lstmkit.io.onnx_global import GlobalMember, export_global, members_of
from lstmkit.series.auto import Candidate
from lstmkit.series.covariates import CovariateLSTM, fit_scales
from lstmkit.series.many import GlobalEnsemble, Member, Panel
from lstmkit.series.transform import Transform

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

H = 5


def _session(path: Path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def seasonal(n: int, m: int, level: float, amplitude: float, seed: int) -> np.ndarray:
    t = np.arange(n)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(n)
    return level + amplitude * (0.02 * t + np.sin(2 * np.pi * t / m) + noise)


def panel(m: int) -> Panel:
    """Three series: around 1000 (amplitude 100), around 0 (amplitude 0.5), around 50."""
    ys = [seasonal(40, m, 1000, 100, 0), seasonal(30, m, 0, 0.5, 1), seasonal(36, m, 50, 4, 2)]
    return Panel.of(ys, ["big", "small", "mid"])


def ensemble(K: int, m: int) -> GlobalEnsemble:
    """K members cycling through the four forms, random LSTMs with weights large enough to
    be non-linear, each series' transform fitted on it."""
    p = panel(m)
    members = []
    for k in range(K):
        c = Candidate((m * 2, 5, m, 7)[k % 4], k % 2 == 0 and m > 1, k % 4 < 2, 3 + k)
        model = CovariateLSTM(c.hidden, seed=k)
        model.load_state_dict({n: 2.5 * w for n, w in model.state_dict().items()})
        tfs = [Transform.fit(y, m, c.deseason, c.difference, min_seasons=2) for y in p.y]
        scales = [fit_scales(np.zeros((len(y), 0))) for y in p.y]
        members.append(Member(c, tfs, scales, model, 1))
    return GlobalEnsemble(members, p, m, [], False, [], [], [np.zeros((1, H)) for _ in p.y])


@pytest.mark.parametrize("K, m", [(1, 4), (2, 4), (3, 12), (4, 4), (5, 1)])
def test_onnxruntime_gives_each_series_forecast(tmp_path: Path, K: int, m: int) -> None:
    e = ensemble(K, m)
    path = tmp_path / "global.onnx"
    proto = export_global(members_of(e), H, path, e.panel.ids)
    props = {p.key: p.value for p in proto.metadata_props}
    need = max(mb.candidate.lookback + mb.candidate.difference for mb in e.members)
    assert json.loads(props.pop("ids")) == ["big", "small", "mid"]
    assert (props.pop("future"), props.pop("past")) == ("0", "0")
    assert props == {"need": str(need), "horizon": str(H), "season": str(m), "members": str(K)}
    # a batch that reorders and repeats the series, cut at different phases of the season
    rows = [(2, 33), (0, 40), (1, 27), (0, 38), (1, 30)]  # (series, length)
    fresh = panel(m)
    histories = Panel.of([fresh.y[i][:n] for i, n in rows], [e.panel.ids[i] for i, _ in rows])
    expected_members = []
    for mb in e.members:  # each member alone, on each row's own series' transform
        alone = [
            GlobalEnsemble(
                [Member(mb.candidate, [mb.transforms[i]], [mb.scales[i]], mb.model, 1)],
                e.panel, m, [], False, [], [], e.errors,
            ).predict(H, panel=Panel.of([y]))[0]
            for (i, _), y in zip(rows, histories.y)
        ]  # fmt: skip
        expected_members.append(np.stack(alone))
    expected_members = np.stack(expected_members)  # (K, N, H)
    feeds = {
        "history": np.stack([y[-need:] for y in histories.y]),
        "n": np.array([n for _, n in rows], np.int64),
        "series": np.array([i for i, _ in rows], np.int64),
    }
    forecast, members = _session(path).run(None, feeds)
    assert members.shape == (K, len(rows), H) and forecast.shape == (len(rows), H)
    assert members.dtype == forecast.dtype == np.float64
    assert np.ptp(expected_members[:, 0, 0]) > 1e-2 or K == 1, "members too alike: weak test"
    scale = np.array([np.ptp(fresh.y[i]) for i, _ in rows])[None, :, None]
    np.testing.assert_allclose(members / scale, expected_members / scale, rtol=0, atol=1e-6)
    np.testing.assert_allclose(forecast, np.median(members, axis=0), rtol=0, atol=0)
    # the ensemble's own forecast of its three series, in the run's order
    full = {"history": np.stack([y[-need:] for y in e.panel.y]), "n": np.array([40, 30, 36])}
    got, _ = _session(path).run(None, {**full, "series": np.arange(3)})
    scale3 = np.array([np.ptp(y) for y in e.panel.y])[:, None]
    np.testing.assert_allclose(got / scale3, e.predict(H) / scale3, rtol=0, atol=1e-6)


def calibrated(e: GlobalEnsemble) -> GlobalEnsemble:
    """Each series' own calibration errors: other counts and scales (its values' range)."""
    rng = np.random.default_rng(11)
    steps = np.sqrt(np.arange(1, H + 1))
    e.errors = [np.ptp(y) * 0.1 * rng.standard_normal((r, H)) * steps
                for y, r in zip(e.panel.y, (12, 30, 7))]  # fmt: skip
    return e


@pytest.mark.parametrize("level, h", [(80, H), (60, H), (90, H + 2)])
def test_the_graphs_interval_is_each_series_interval(tmp_path: Path, level: int, h: int) -> None:
    """lo and hi from ONNX Runtime equal GlobalEnsemble.interval's, each series with its own
    half-widths Gathered by ``series`` (a batch that reorders and repeats the series), for
    levels other than 80 and past the calibrated H; the widths differ from step to step and
    from series to series, so a table shifted by a step or a row cannot pass."""
    e = calibrated(ensemble(3, 4))
    q = np.stack([half_widths(err, level, h) for err in e.errors])  # (S, h)
    path = tmp_path / "i.onnx"
    proto = export_global(members_of(e), h, path, e.panel.ids, interval=Interval(level, q))
    assert {p.key: p.value for p in proto.metadata_props}["level"] == str(level)
    need = int({p.key: p.value for p in proto.metadata_props}["need"])
    full = {"history": np.stack([y[-need:] for y in e.panel.y]), "n": np.array([40, 30, 36])}
    forecast, _, lo, hi = _session(path).run(None, {**full, "series": np.arange(3)})
    lo_py, hi_py = e.interval(h, level)  # (S, h) each
    scale = np.array([np.ptp(y) for y in e.panel.y])[:, None]
    np.testing.assert_allclose(lo / scale, lo_py / scale, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hi / scale, hi_py / scale, rtol=0, atol=1e-6)
    width = (hi_py - lo_py) / 2  # the oracle's own half-widths, from its own forecast
    assert np.all(np.diff(width, axis=1) > 1e-3) and np.all(np.diff(width[:, 0]) != 0)
    rows = [2, 0, 1, 0, 2]
    fresh = panel(4)
    feeds = {
        "history": np.stack([fresh.y[i][-need - 1 : -1] for i in rows]),
        "n": np.array([len(fresh.y[i]) - 1 for i in rows], np.int64),
        "series": np.array(rows, np.int64),
    }
    forecast, _, lo, hi = _session(path).run(None, feeds)
    np.testing.assert_allclose(hi - forecast, width[rows], rtol=0, atol=1e-9)
    np.testing.assert_allclose(forecast - lo, width[rows], rtol=0, atol=1e-9)


def covariate_ensemble(K: int, m: int, F: int, P: int) -> GlobalEnsemble:
    """K members of every form over the three series, with F known-future and P past
    covariates of their own levels and scales (each series' covariate scales differ)."""
    p = panel(m)
    rng = np.random.default_rng(5)
    X = [3 * i + (i + 1) * rng.standard_normal((len(y), F)) for i, y in enumerate(p.y)]
    Pc = [10 * i - (i + 2) * rng.standard_normal((len(y), P)) for i, y in enumerate(p.y)]
    p = Panel(p.y, X, Pc, p.ids)
    members = []
    for k in range(K):
        c = Candidate((m * 2, 5, m, 7)[k % 4], k % 2 == 0 and m > 1, k % 4 < 2, 3 + k)
        model = CovariateLSTM(c.hidden, F, P, seed=k)
        model.load_state_dict({n: 2.0 * w for n, w in model.state_dict().items()})
        tfs = [Transform.fit(y, m, c.deseason, c.difference, min_seasons=2) for y in p.y]
        scales = [fit_scales(np.concatenate([x, q], axis=1)) for x, q in zip(p.X, p.P)]
        members.append(Member(c, tfs, scales, model, 1))
    names = [f"x{j}" for j in range(F)], [f"p{j}" for j in range(P)]
    errors = [np.zeros((1, H)) for _ in p.y]
    return GlobalEnsemble(members, p, m, [], False, *names, errors)


@pytest.mark.parametrize("K, m, F, P, h", [(3, 4, 2, 1, H), (2, 12, 1, 0, H), (4, 1, 0, 2, H),
                                          (1, 4, 1, 1, 1)])  # fmt: skip
def test_onnxruntime_gives_the_covariate_forecast(
    tmp_path: Path, K: int, m: int, F: int, P: int, h: int
) -> None:
    """Known-future covariates over the context and the horizon, past ones over the
    context and fed back from the head: each series' forecast as GlobalEnsemble.predict's."""
    e = covariate_ensemble(K, m, F, P)
    members = [
        GlobalMember(g.model, g.lookback, g.difference, g.season, g.mean, g.scale,
                     np.stack(mb.scales), F)
        for g, mb in zip(members_of(e), e.members)
    ]  # fmt: skip
    proto = export_global(members, h, tmp_path / "c.onnx", e.panel.ids)
    need = int({q.key: q.value for q in proto.metadata_props}["need"])
    ends = [34, 25, 30]  # histories cut at other phases; what follows is the future
    hist = e.panel.cut(ends)
    X_future = [x[n : n + h] for x, n in zip(e.panel.X, ends)]
    expected = e.predict(h, X_future, hist)
    feeds = {
        "history": np.stack([y[-need:] for y in hist.y]),
        "n": np.array(ends, np.int64),
        "series": np.arange(3, dtype=np.int64),
    }
    if F:
        feeds["future"] = np.stack([x[n - need : n + h] for x, n in zip(e.panel.X, ends)])
    if P:
        feeds["past"] = np.stack([q[-need:] for q in hist.P])
    got, _ = _session(tmp_path / "c.onnx").run(None, feeds)
    scale = np.array([np.ptp(y) for y in e.panel.y])[:, None]
    np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=1e-6)
    if F:  # the covariates matter: other future values, another forecast
        other = {**feeds, "future": feeds["future"] + 1.0}
        assert np.max(np.abs(_session(tmp_path / "c.onnx").run(None, other)[0] - got)) > 1e-3


def test_bad_tables_are_refused(tmp_path: Path) -> None:
    m = members_of(ensemble(2, 4))
    with pytest.raises(ValueError, match=r"expected one row per series \(2\), got 3"):
        export_global(m, H, tmp_path / "a.onnx", ["a", "b"])
    bad = GlobalMember(m[0].model, 8, False, np.zeros((3, 4)), np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match=r"expected season \(S, m\), mean \(S,\), scale"):
        export_global([bad], H, tmp_path / "a.onnx", ["a", "b", "c"])
    assert not (tmp_path / "a.onnx").exists()


# ---- the command line ------------------------------------------------------------------


def _long_csv(path: Path, series: dict[str, np.ndarray], extra: str = "") -> Path:
    head = "unique_id,ds,y" + (",flag" if extra else "")
    lines = [head] + [
        f"{k},{2000 + t // 12}-{t % 12 + 1:02d},{float(v)!r}" + (",1" if extra else "")
        for k, y in series.items()
        for t, v in enumerate(y)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FAST = ["--horizon", "3", "--steps", "20", "--eval-every", "10", "--hidden", "4", "--minutes",
        "0.5", "--season", "4", "--no-progress"]  # fmt: skip


def test_export_of_a_trained_global_run_matches_series_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`series train --id-column` -> `export onnx` -> ONNX Runtime on each series' last
    values, length and index gives the numbers `series forecast` writes."""
    series = {"a": seasonal(40, 4, 10, 1, 0), "b": seasonal(36, 4, 500, 50, 1)}
    csv = _long_csv(tmp_path / "l.csv", series)
    run = tmp_path / "run"
    train = ["series", "train", "--csv", str(csv), "--id-column", "--column", "y"]
    assert main([*train, "--time-column", "ds", "--out", str(run), *FAST]) == 0
    out = tmp_path / "f.csv"
    forecast = ["series", "forecast", "--run", str(run), "--csv", str(csv), "--horizon", "3"]
    assert main([*forecast, "--out", str(out), "--no-plot", "--level", "0"]) == 0
    rows = [r.split(",") for r in out.read_text().splitlines()[1:]]
    path = tmp_path / "g.onnx"
    assert main(["export", "onnx", "--run", str(run), "--out", str(path), "--level", "0"]) == 0
    assert "series (N,) int64" in capsys.readouterr().out
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    need, ids = int(props["need"]), json.loads(props["ids"])
    feeds = {
        "history": np.stack([series[i][-need:] for i in ids]),
        "n": np.array([len(series[i]) for i in ids], np.int64),
        "series": np.arange(len(ids), dtype=np.int64),
    }
    got, _ = _session(path).run(None, feeds)
    for k, name in enumerate(ids):
        expected = [float(r[2]) for r in rows if r[0] == name]
        scale = np.ptp(series[name])
        np.testing.assert_allclose(got[k] / scale, np.array(expected) / scale, atol=1e-6)
    for level in (None, 50):  # the interval: lo_L, hi_L of `series forecast --level L`
        flags = [] if level is None else ["--level", str(level)]
        assert main([*forecast, "--out", str(out), "--no-plot", *flags]) == 0
        header, *rows = [r.split(",") for r in out.read_text().splitlines()]
        L = 80 if level is None else level
        assert header[-2:] == [f"lo_{L}", f"hi_{L}"]
        assert main(["export", "onnx", "--run", str(run), "--out", str(path), *flags]) == 0
        assert f"the {L} % interval" in capsys.readouterr().out
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["level"] == str(L)
        f, _, lo, hi = _session(path).run(None, feeds)
        for k, name in enumerate(ids):
            written = np.array([[float(v) for v in r[2:]] for r in rows if r[0] == name])
            assert np.all(np.isfinite(written)) and np.ptp(written[:, 2] - written[:, 1]) > 0
            got_k = np.stack([f[k], lo[k], hi[k]], axis=1) / np.ptp(series[name])
            np.testing.assert_allclose(got_k, written / np.ptp(series[name]), atol=1e-6)
    assert main(["export", "onnx", "--run", str(run), "--out", str(path), "--horizon", "5"]) == 0
    got5 = _session(path).run(None, feeds)[0]  # more steps unrolled: the first ones unchanged
    assert got5.shape == (2, 5)
    np.testing.assert_allclose(got5[:, :3], got, rtol=0, atol=1e-12)
    capsys.readouterr()
    assert main(["export", "onnx", "--run", str(run), "--out", str(path), "--no-sequence-lens"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-sequence-lens" in err, err


def test_export_of_a_covariate_run_matches_series_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`series train --id-column --future-covariates flag --past-covariates traffic` ->
    `export onnx` -> ONNX Runtime with the covariates gives `series forecast --future-csv`'s
    numbers."""
    rng = np.random.default_rng(3)
    series = {
        k: seasonal(40, 4, level, 1, s) for s, (k, level) in enumerate([("a", 10), ("b", 30)])
    }
    flag = {k: (rng.random(44) < 0.3).astype(float) for k in series}
    traffic = {k: 0.5 * series[k] + rng.standard_normal(40) for k in series}
    for k in series:
        series[k] = series[k] + 2 * flag[k][:40]
    lines = ["unique_id,y,flag,traffic"] + [
        f"{k},{float(series[k][t])!r},{flag[k][t]:g},{float(traffic[k][t])!r}"
        for k in series
        for t in range(40)
    ]
    csv = tmp_path / "l.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    nxt = tmp_path / "next.csv"
    rows = [f"{k},{flag[k][t]:g}" for k in series for t in range(40, 43)]
    nxt.write_text("unique_id,flag\n" + "\n".join(rows) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    train = ["series", "train", "--csv", str(csv), "--id-column", "--column", "y"]
    train += ["--future-covariates", "flag", "--past-covariates", "traffic"]
    assert main([*train, "--out", str(run), *FAST]) == 0
    out = tmp_path / "f.csv"
    forecast = ["series", "forecast", "--run", str(run), "--csv", str(csv), "--horizon", "3"]
    forecast += ["--future-csv", str(nxt), "--out", str(out), "--no-plot", "--level", "0"]
    assert main(forecast) == 0
    written = [r.split(",") for r in out.read_text().splitlines()[1:]]
    path = tmp_path / "g.onnx"
    assert main(["export", "onnx", "--run", str(run), "--out", str(path)]) == 0
    assert "future (N, " in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    need, ids = int(props["need"]), json.loads(props["ids"])
    assert (props["future"], props["past"]) == ("1", "1")
    feeds = {
        "history": np.stack([series[i][-need:] for i in ids]),
        "n": np.full(len(ids), 40, np.int64),
        "series": np.arange(len(ids), dtype=np.int64),
        "future": np.stack([flag[i][40 - need : 43, None] for i in ids]),
        "past": np.stack([traffic[i][-need:, None] for i in ids]),
    }
    got = _session(path).run(None, feeds)[0]
    for k, name in enumerate(ids):
        expected = np.array([float(r[2]) for r in written if r[0] == name])
        scale = np.ptp(series[name])
        np.testing.assert_allclose(got[k] / scale, expected / scale, atol=1e-6)


def test_a_run_without_its_horizon_needs_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose errors do not tell the horizon (saved before it stored them): --horizon
    is asked for in one line, and given, the export works."""
    from lstmkit.series.global_run import save_global

    e = ensemble(2, 4)
    e.errors = [np.full((1, 1), np.nan) for _ in e.panel.y]
    data = {"column": "y", "time_column": None, "id_column": "id", "source": None}
    save_global(tmp_path, e, {**data, "n_holdout": 0})
    out = ["export", "onnx", "--run", str(tmp_path), "--out", str(tmp_path / "g.onnx")]
    assert main(out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not record its horizon" in err, err
    assert main([*out, "--horizon", "2"]) == 1  # no calibration errors: no interval
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "--level 80 (the default): series 'big', 'small', 'mid' of" in err
    )
    assert "hold no calibration errors" in err and "--level 0" in err, err
    assert main([*out, "--horizon", "2", "--level", "0"]) == 0
    got, _ = _session(tmp_path / "g.onnx").run(
        None,
        {
            "history": np.stack([y[-9:] for y in e.panel.y]),
            "n": np.array([len(y) for y in e.panel.y], np.int64),
            "series": np.arange(3, dtype=np.int64),
        },
    )
    scale = np.array([np.ptp(y) for y in e.panel.y])[:, None]
    np.testing.assert_allclose(got / scale, e.predict(2) / scale, rtol=0, atol=1e-6)


def test_a_series_with_too_few_errors_refuses_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One series' 7 x 5 calibration errors are too few for 98 %: --level 98 is refused in
    one line naming it; 80 exports (every series has enough)."""
    from lstmkit.series.global_run import save_global

    e = calibrated(ensemble(2, 4))
    data = {"column": "y", "time_column": None, "id_column": "id", "source": None}
    save_global(tmp_path, e, {**data, "n_holdout": 0})
    out = ["export", "onnx", "--run", str(tmp_path), "--out", str(tmp_path / "g.onnx")]
    assert main([*out, "--level", "98"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--level 98: series 'mid' of the run holds too few" in err
    assert "lower --level, or --level 0" in err, err
    assert main(out) == 0
    assert [o.name for o in onnx.load(str(tmp_path / "g.onnx")).graph.output][2:] == ["lo", "hi"]
