"""Long-lag task generators, their baselines, and small-lag versions an LSTM solves."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.memory import tasks, train
from lstmkit.memory.tasks import REBER_SYMBOLS, TEMPORAL_SYMBOLS

# ---- adding ---------------------------------------------------------------------------


def test_adding_shapes_markers_and_targets() -> None:
    T, N = 13, 200
    b = tasks.AddingTask(T).sample(N, rng=0)
    assert b.x.shape == (T, N, 2) and b.x.dtype == np.float32 and b.y.shape == (N, 1)
    markers = b.x[:, :, 1]
    assert np.all(markers.sum(axis=0) == 2) and set(np.unique(markers)) == {0.0, 1.0}
    first = np.argmax(markers, axis=0)
    second = T - 1 - np.argmax(markers[::-1], axis=0)
    assert np.all(first < T // 2) and np.all(second >= T // 2)
    # both halves get used over many sequences
    assert first.min() == 0 and first.max() == T // 2 - 1 and second.max() == T - 1
    np.testing.assert_allclose(b.y[:, 0], (b.x[:, :, 0] * markers).sum(axis=0), rtol=1e-6)
    assert np.all((b.x[:, :, 0] >= 0) & (b.x[:, :, 0] < 1))


def test_adding_baseline_is_one_sixth() -> None:
    task = tasks.AddingTask(20)
    b = task.sample(40_000, rng=1)
    assert task.baseline(b) == pytest.approx(1 / 6, abs=0.004)
    # the baseline is the MSE of the best constant predictor, which evaluate agrees with
    const = np.full_like(b.y, b.y.mean())
    assert task.evaluate(const, b)["mse"] == pytest.approx(task.baseline(b), rel=1e-9)


def test_generators_are_seeded() -> None:
    a = tasks.AddingTask(9).sample(4, rng=5)
    b = tasks.AddingTask(9).sample(4, rng=5)
    c = tasks.AddingTask(9).sample(4, rng=6)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)


# ---- copying --------------------------------------------------------------------------


def test_copying_layout() -> None:
    T, N = 7, 50
    task = tasks.CopyingTask(T)
    b = task.sample(N, rng=0)
    assert b.x.shape == (T + 20, N, 10) and b.y.shape == (T + 20, N)
    ids = b.x.argmax(axis=2)
    assert np.all(b.x.sum(axis=2) == 1)
    data = ids[:10]
    assert np.all((data >= 1) & (data <= 8))
    assert np.all(ids[10 : T + 9] == 0) and np.all(ids[T + 9] == 9) and np.all(ids[T + 10 :] == 0)
    assert np.all(b.y[: T + 10] == 0) and np.array_equal(b.y[T + 10 :], data)


@pytest.mark.slow
def test_copying_baseline_matches_formula() -> None:
    T = 30
    task = tasks.CopyingTask(T)
    b = task.sample(20_000, rng=2)
    formula = 10 * math.log(8) / (T + 20)
    assert task.baseline(b) == pytest.approx(formula, rel=0.005)
    # scoring the memoryless predictor (blank, then uniform) with evaluate gives the same
    logits = np.zeros(b.y.shape + (9,))
    logits[: T + 10, :, 0] = 50.0
    logits[T + 10 :, :, 0] = -50.0
    assert task.evaluate(logits, b)["xent"] == pytest.approx(formula, rel=1e-6)
    perfect = np.where(np.eye(9)[b.y] > 0, 50.0, -50.0)
    m = task.evaluate(perfect, b)
    assert m["copy_accuracy"] == 1.0 and m["xent"] < 1e-12
    assert task.solved(m, task.baseline(b)) and not task.solved({**m, "copy_accuracy": 0.9}, 1)


# ---- temporal order -------------------------------------------------------------------


@pytest.mark.parametrize("T", [10, 37, 100])
def test_temporal_order_layout(T: int) -> None:
    task = tasks.TemporalOrderTask(T)
    b = task.sample(500, rng=T)
    ids = b.x.argmax(axis=2)  # (T, N)
    B, E, X, Y = (TEMPORAL_SYMBOLS.index(s) for s in "BEXY")
    assert np.all(ids[0] == B) and np.all(ids[-1] == E)
    relevant = (ids == X) | (ids == Y)
    assert np.all(relevant.sum(axis=0) == 2)
    cols = np.arange(500)
    assert np.all(relevant[b.info["t1"], cols]) and np.all(relevant[b.info["t2"], cols])
    (lo1, hi1), (lo2, hi2) = task.positions()
    assert np.all((b.info["t1"] >= lo1) & (b.info["t1"] <= hi1))
    assert np.all((b.info["t2"] >= lo2) & (b.info["t2"] <= hi2)) and hi1 < lo2 < T - 1
    if T == 100:  # the paper's ranges
        assert (lo1, hi1, lo2, hi2) == (10, 20, 50, 60)
    s1 = ids[b.info["t1"], cols] == Y
    s2 = ids[b.info["t2"], cols] == Y
    assert np.array_equal(b.y, 2 * s1 + s2)
    assert task.baseline(b) == pytest.approx(0.25, abs=0.05)


def test_temporal_order_baseline_from_a_large_sample() -> None:
    task = tasks.TemporalOrderTask(20)
    b = task.sample(40_000, rng=9)
    assert task.baseline(b) == pytest.approx(0.25, abs=0.01)


# ---- continual embedded Reber ---------------------------------------------------------

# The Reber grammar written as a regular expression (an oracle independent of the graph).
_REBER = r"B(?:TS*X(?:XT*VP)*(?:S|XT*VV)|PT*V(?:PXT*V)*(?:V|PS))E"
_EMBEDDED = re.compile(rf"(?:B([TP]){_REBER}\1E)+")


def test_reber_stream_is_valid_and_continuous() -> None:
    stream = tasks.ReberStream(3, rng=0)
    chunks = [stream.next_chunk(37) for _ in range(12)]
    x = np.concatenate([c.x for c in chunks])  # (444, 3, 7)
    y = np.concatenate([c.y for c in chunks])
    ids = x.argmax(axis=2)
    assert np.array_equal(ids[1:], y[:-1])  # y is the next input, across chunk borders
    for k in range(3):
        symbols = "".join(REBER_SYMBOLS[i] for i in ids[:, k])
        whole = symbols[: symbols.rfind("EB") + 1]  # cut the unfinished last string
        assert len(whole) > 300 and _EMBEDDED.fullmatch(whole), whole[:80]


def test_reber_legal_sets() -> None:
    b = tasks.ReberStream(4, rng=1).next_chunk(400)
    legal, recall = b.info["legal"], b.info["recall"]
    T, N = b.y.shape
    # the actual next symbol is always legal, and a legal set has one or two symbols
    assert np.all(legal[np.arange(T)[:, None], np.arange(N)[None, :], b.y])
    assert set(np.unique(legal.sum(axis=2))) <= {1, 2}
    ids = b.x.argmax(axis=2)
    E = REBER_SYMBOLS.index("E")
    for t, k in zip(*np.nonzero(recall)):
        assert ids[t, k] == E and legal[t, k].sum() == 1  # after the inner E: one symbol
        start = np.flatnonzero(b.info["string"][:, k] == b.info["string"][t, k])[0]
        if start + 1 < t and b.info["string"][0, k] != b.info["string"][t, k]:
            assert b.y[t, k] == ids[start + 1, k]  # ... the branch seen at the start


def test_reber_metric_and_baseline() -> None:
    task = tasks.ReberTask()
    b = task.stream(4, rng=2).next_chunk(3000)
    oracle = np.where(b.info["legal"], 0.0, -50.0)  # uniform over the legal symbols
    m = task.evaluate(oracle, b)
    assert m["string_accuracy"] == 1.0 and m["step_accuracy"] == 1.0
    # forgetting the branch: T and P equally likely after the inner E
    T_, P_ = REBER_SYMBOLS.index("T"), REBER_SYMBOLS.index("P")
    forgetful = oracle.copy()
    forgetful[b.info["recall"]] = -50.0
    forgetful[b.info["recall"], T_] = forgetful[b.info["recall"], P_] = 0.0
    m = task.evaluate(forgetful, b)
    assert m["string_accuracy"] == 0.0 and m["recall_accuracy"] == 0.0
    assert m["step_accuracy"] == pytest.approx(1 - b.info["recall"].mean())
    assert task.baseline(b) == pytest.approx(0.5, abs=0.06)


# ---- LSTMs solve small-lag versions ---------------------------------------------------


def _train_and_test(task, kind: str, hidden: int, steps: int, batch: int = 32, seed: int = 0):
    config = train.MemoryConfig(hidden=hidden, batch=batch, budget_seconds=1e9, max_steps=steps)
    rng = np.random.default_rng(seed)
    model = train.SequenceModel(kind, task.input_size, hidden, task.output_size, task.scored, rng)
    train.initialise(model, "forget1", task.lag, rng)
    with train.single_blas_thread():
        train.train_model(task, model, config, rng)
    if getattr(task, "stateful", False):
        test = task.stream(4, 1234).next_chunk(2000)
    else:
        test = task.sample(512, 1234)
    model.eval()
    out, _ = model(test.x)
    return task.evaluate(out, test), task.baseline(test)


@pytest.mark.slow
def test_lstm_solves_adding_at_lag_10() -> None:
    task = tasks.AddingTask(10)
    metrics, baseline = _train_and_test(task, "lstm", hidden=16, steps=600)
    assert baseline > 0.13 and metrics["mse"] < 0.015  # ten times below the baseline


@pytest.mark.slow
def test_lstm_solves_temporal_order_at_lag_10() -> None:
    metrics, baseline = _train_and_test(tasks.TemporalOrderTask(10), "lstm", 16, steps=400)
    assert baseline < 0.3 and metrics["accuracy"] > 0.99


@pytest.mark.slow
def test_lstm_solves_a_small_copying_task() -> None:
    task = tasks.CopyingTask(3, n_copy=3, n_symbols=4)
    metrics, baseline = _train_and_test(task, "lstm", 32, steps=1500)
    assert baseline == pytest.approx(3 * math.log(4) / 9, rel=0.02)
    assert metrics["copy_accuracy"] > 0.97 and metrics["xent"] < 0.2 * baseline


@pytest.mark.slow
def test_the_documented_recipe_beats_the_baseline_at_a_modest_lag() -> None:
    """docs/memory.md's adding recipe (chrono, Adam 1e-3, clip 1, H 64, batch 32) at T = 50,
    through run_one as `lstmkit memory` runs it: ten times below the memoryless baseline
    on the test batch within 4,000 steps (it stops solved at 2,300, about 10 s)."""
    config = train.MemoryConfig(lr=1e-3, max_steps=4000, budget_seconds=1e9)
    config.eval_every = 100
    record, _ = train.run_one("adding", "lstm", 50, 0, config)
    assert record["baseline"] > 0.13 and record["test_metric"] < 0.1 * record["baseline"]
    assert record["init"] == "chrono" and record["curve"][0][2] > record["test_metric"]


@pytest.mark.slow
def test_lstm_learns_the_continual_reber_stream() -> None:
    metrics, baseline = _train_and_test(tasks.ReberTask(20), "lstm", 16, steps=600, batch=16)
    assert baseline < 0.6 and metrics["string_accuracy"] > 0.97


# ---- the command ----------------------------------------------------------------------


def test_memory_command_json_and_files(tmp_path, capsys) -> None:
    out = tmp_path / "mem"
    argv = ["memory", "--task", "adding", "--lags", "6,8", "--models", "rnn,lstm"]
    argv += ["--max-steps", "5", "--hidden", "8", "--json", "--out", str(out), "--init", "chrono"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["results"]
    assert len(rows) == 4
    keys = {"task", "model", "lag", "seed", "metric_name", "test_metric", "baseline", "solved"}
    assert all(keys | {"steps", "seconds"} <= set(r) for r in rows)
    assert {(r["model"], r["lag"]) for r in rows} == {
        (m, L) for m in ("rnn", "lstm") for L in (6, 8)
    }
    assert all(r["steps"] == 5 and r["metric_name"] == "mse" for r in rows)
    assert {r["model"]: r["init"] for r in rows} == {"rnn": "default", "lstm": "chrono"}
    assert (out / "metric_vs_lag.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "results.json").read_text()) == result


def test_memory_command_records_learning_curves(tmp_path, capsys) -> None:
    out = tmp_path / "mem"
    argv = ["memory", "--task", "copying", "--lags", "4", "--models", "rnn,lstm", "--json"]
    argv += ["--max-steps", "6", "--eval-every", "2", "--clip", "0.5", "--hidden", "8"]
    assert main(argv + ["--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    for r in rows:  # one point per evaluation: [step, seconds, xent, copy accuracy]
        assert r["curve_columns"] == ["step", "seconds", "xent", "copy_accuracy"]
        assert [p[0] for p in r["curve"]] == [2, 4, 6]
        seconds = [p[1] for p in r["curve"]]
        assert seconds == sorted(seconds) and seconds[-1] <= r["seconds"] + 0.05
        assert all(p[2] > 0 and 0 <= p[3] <= 1 for p in r["curve"])
        assert r["steps_per_s"] > 0
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "steps/s" in (out / "results.txt").read_text()


def test_a_cosine_schedule_needs_the_step_limit(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="--schedule cosine needs --max-steps"):
        train.MemoryConfig(schedule="cosine")
    argv = ["memory", "--lags", "5", "--models", "lstm", "--schedule", "cosine"]
    assert main(argv + ["--out", str(tmp_path)]) == 1
    assert "--max-steps" in capsys.readouterr().err
    argv += ["--max-steps", "4", "--hidden", "4", "--json", "--out", str(tmp_path / "ok")]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["steps"] == 4


def test_learning_curve_columns_of_a_scalar_task() -> None:
    config = train.MemoryConfig(hidden=4, batch=4, max_steps=4, eval_every=2, eval_size=8)
    record, _ = train.run_one("adding", "lstm", 5, 0, config)
    assert record["curve_columns"] == ["step", "seconds", "mse"]
    assert [len(p) for p in record["curve"]] == [3, 3]
    assert record["curve"][-1][2] >= 0


def test_memory_command_table(tmp_path, capsys) -> None:
    argv = ["memory", "--task", "temporal", "--lags", "10", "--models", "gru", "--max-steps"]
    assert main(argv + ["2", "--hidden", "4", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "temporal" in table and "accuracy" in table and "gru" in table and "baseline" in table


def test_memory_command_rejects_unknown_models(tmp_path, capsys) -> None:
    assert main(["memory", "--models", "rnn,transformer", "--out", str(tmp_path)]) == 1
    assert "--models" in capsys.readouterr().err


def test_memory_command_reber(tmp_path, capsys) -> None:
    argv = ["memory", "--task", "reber", "--max-steps", "2", "--hidden", "4", "--batch", "4"]
    assert main(argv + ["--reber-test-steps", "1000", "--json", "--out", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [r["model"] for r in rows] == ["lstm", "lstm-noforget"]
    assert all(r["lag"] is None and r["metric_name"] == "string_accuracy" for r in rows)
    for r in rows:  # the curve of max |c| along the test stream ends at the final state's
        assert r["final_max_abs_c"] > 0 and len(r["max_abs_c_curve"]) == 100
    assert (tmp_path / "reber.png").read_bytes()[:4] == b"\x89PNG"


def test_a_diverging_memory_run_stops_and_keeps_its_step_count(monkeypatch) -> None:
    """The shared Trainer raises on a NaN loss; the memory adapter stops quietly instead."""
    real, calls = train._loss, []

    def poisoned(task, out, batch):
        calls.append(1)
        loss, dout = real(task, out, batch)
        return (float("nan"), dout) if len(calls) == 4 else (loss, dout)

    monkeypatch.setattr(train, "_loss", poisoned)
    task = tasks.AddingTask(5)
    config = train.MemoryConfig(hidden=4, batch=4, budget_seconds=1e9, max_steps=10)
    model = train.SequenceModel("lstm", task.input_size, 4, task.output_size, task.scored, 0)
    steps, seconds, solved = train.train_model(task, model, config, np.random.default_rng(0))
    assert (steps, solved) == (3, False) and seconds >= 0
    assert all(np.isfinite(w).all() for w in model.parameters().values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(lr=0.0), "--lr: expected > 0, got 0.0"),
        (dict(budget_seconds=-1.0), "--budget-seconds: expected > 0, got -1.0"),
        (dict(max_steps=0), "--max-steps: expected > 0, got 0"),
    ],
)
def test_memory_config_checks_its_options(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        train.MemoryConfig(**options)


def test_the_recipes_models_run_the_compiled_kernel() -> None:
    """The long-lag recipes (docs/memory.md) use no option outside the fused kernel."""
    pytest.importorskip("numba")
    from lstmkit.nn import strategy

    for kind in ("rnn", "lstm"):
        model = train.SequenceModel(kind, 10, 64, 9, "every", seed=0)
        cell, ex = model.rnn.cell, model.rnn.execution
        assert strategy.fused_kernel(cell, np.dtype(np.float32), ex) is not None
