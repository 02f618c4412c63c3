"""The LSTM variants through the command line: ``text train``, ``series train`` and
``memory`` take the same variant flags, store the variant in the checkpoint, and every
command that reads a run rebuilds that model (resume, sample, eval, forecast, ONNX export).

Each case runs ``lstmkit.cli.app.main`` in this process on a tiny model for a few steps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.nn.cells.lstm import LSTMOptions
from lstmkit.series.train import load_model as load_forecaster
from lstmkit.text.train import load_model as load_charlm
from lstmkit.train import checkpoint
from lstmkit.train.checkpoint import CheckpointError
from lstmkit.train.trainer import TrainingError
from lstmkit.train.variant import check_resume, describe, normalise

OLD = Path(__file__).parent / "data" / "checkpoints_v1"
CORPUS = "def add(a, b):\n    return a + b\n\n\nclass Point:\n    x = 1\n    y = 2\n" * 12
TEXT = ["--embed", "4", "--hidden", "5", "--layers", "2", "--seq-len", "8", "--batch", "2",
        "--eval-every", "2", "--eval-chars", "60", "--lr", "0.01", "--no-progress"]  # fmt: skip
SERIES = ["--column", "y", "--lookback", "4", "--horizon", "2", "--hidden", "4", "--batch", "4",
          "--eval-every", "2", "--no-progress"]  # fmt: skip
# the variants every task is tried with: gates, a norm, and the two regularisers
REGULARISED = ["--peepholes", "--layer-norm", "--zoneout-cell", "0.2", "--zoneout-hidden", "0.1",
               "--recurrent-dropout", "0.25"]  # fmt: skip
WANT = {"peepholes": True, "layer_norm": True, "recurrent_dropout": 0.25, "zoneout_c": 0.2}
WANT["zoneout_h"] = 0.1


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    corpus, csv = root / "corpus.py", root / "series.csv"
    corpus.write_text(CORPUS, encoding="utf-8")
    v = 10 + np.sin(np.arange(50) / 3)
    csv.write_text("t,y\n" + "".join(f"{k},{x:.4f}\n" for k, x in enumerate(v)), encoding="utf-8")
    return {"corpus": corpus, "csv": csv}


def run(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(code: int, err: str, *words: str) -> None:
    """Exit 1 with one line on stderr naming the problem."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, (code, err)
    for word in words:
        assert word in lines[0], lines[0]


def text_train(data: dict[str, Path], out: Path, steps: int, *flags: str) -> list[str]:
    return ["text", "train", "--text", str(data["corpus"]), "--out", str(out),
            "--steps", str(steps), *TEXT, *flags]  # fmt: skip


def params_of(path: Path) -> dict[str, np.ndarray]:
    arrays, _ = checkpoint.load(path / "latest.npz")
    return {k: v for k, v in arrays.items() if k.startswith(("model/", "optim/", "carry/"))}


# ---- the variant dict -------------------------------------------------------------------


def test_a_variant_is_the_options_away_from_the_plain_lstm():
    assert normalise({"peepholes": False, "zoneout_c": 0}) == {}
    assert normalise({"input_gate": False, "zoneout_h": 1 / 4}) == {
        "input_gate": False,
        "zoneout_h": 0.25,
    }
    assert (
        describe({"forget_gate": False, "zoneout_c": 0.5}) == "--no-forget-gate --zoneout-cell 0.5"
    )
    for bad, flag in [
        ({"zoneout_c": 1.0}, "--zoneout-cell"),
        ({"recurrent_dropout": math.nan}, "--recurrent-dropout"),
        ({"peepholes": 1}, "--peepholes"),
        ({"coupled_gates": True, "input_gate": False}, "--coupled-gates"),
        ({"wings": True}, "unknown"),
    ]:
        with pytest.raises(ValueError, match=flag):
            normalise(bad)
    check_resume(None, {})  # a run from before variants is the plain LSTM
    with pytest.raises(TrainingError, match="trained with no variant flags, now --peepholes"):
        check_resume(None, {"peepholes": True})


# ---- char-LM ------------------------------------------------------------------------------


@pytest.mark.slow
def test_char_lm_variant_is_stored_and_resumes_exactly(data, tmp_path, capsys):
    flags = [*REGULARISED, "--gate-recurrence"]
    code, _, err = run(capsys, *text_train(data, tmp_path / "whole", 4, *flags))
    assert code == 0, err
    model, _, meta, arrays = load_charlm(tmp_path / "whole")
    assert meta["model"]["variant"] == {**WANT, "gate_recurrence": True}
    assert model.lstm.options == LSTMOptions(**WANT, gate_recurrence=True)
    assert arrays["carry/a"].shape == (2, 2, 15)  # (L, B, 3H): the gates carried across windows
    assert {"lstm.weight_ci_l1", "lstm.weight_ln_c_l0"} <= set(model.parameters())
    # 2 steps, then 2 more resumed: the same parameters, Adam state and carried state
    assert run(capsys, *text_train(data, tmp_path / "split", 2, *flags))[0] == 0
    assert run(capsys, *text_train(data, tmp_path / "split", 4, *flags), "--resume")[0] == 0
    whole, split = params_of(tmp_path / "whole"), params_of(tmp_path / "split")
    assert whole.keys() == split.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], split[name], err_msg=name)
    # other flags on resume: one line naming both variants
    code, _, err = run(capsys, *text_train(data, tmp_path / "split", 6, "--peepholes"), "--resume")
    refused(code, err, "cannot resume", "--layer-norm", "now --peepholes")
    # sample and eval rebuild the variant (zoneout's expectation, the carried a)
    code, out, err = run(capsys, "text", "sample", "--run", tmp_path / "whole", "--length", "5")
    assert code == 0 and len(out) > 5, err
    code, out, _ = run(capsys, "text", "eval", "--run", tmp_path / "whole", "--text",
                       data["corpus"], "--json")  # fmt: skip
    assert code == 0 and math.isfinite(json.loads(out)["bits_per_char"])


@pytest.mark.slow
def test_explain_reads_a_variant_whose_state_is_a_triple(data, tmp_path, capsys):
    """The explorer on a gate-recurrence cell (state (h, c, a)) with layer norm and zoneout."""
    flags = ["--gate-recurrence", "--layer-norm", "--zoneout-cell", "0.2"]
    assert run(capsys, *text_train(data, tmp_path / "r", 1, *flags))[0] == 0
    code, _, err = run(capsys, "explain", "--run", tmp_path / "r", "--text", "def f(): pass",
                       "--out", tmp_path / "ex", "--top", "2")  # fmt: skip
    assert code == 0 and (tmp_path / "ex" / "explorer.html").is_file(), err


def test_the_variant_changes_the_model(data, tmp_path, capsys):
    """Same seed and data: the plain LSTM and the variant end with different losses."""
    for name, flags in [("plain", []), ("peep", ["--peepholes"])]:
        assert run(capsys, *text_train(data, tmp_path / name, 2, *flags))[0] == 0
    plain, peep = params_of(tmp_path / "plain"), params_of(tmp_path / "peep")
    assert "model/lstm.weight_ci_l0" in peep and "model/lstm.weight_ci_l0" not in plain
    assert not np.array_equal(plain["model/head.weight"], peep["model/head.weight"])


def test_a_checkpoint_from_before_variants_is_the_plain_lstm(tmp_path):
    for path, load in [
        (OLD / "charlm_latest.npz", lambda p: load_charlm(p)[0]),
        (OLD / "forecaster_latest.npz", lambda p: load_forecaster(p)[0]),
    ]:
        _, meta = checkpoint.load(path)
        assert "variant" not in meta["model"]
        assert load(path).lstm.options == LSTMOptions()


def test_a_header_whose_variant_is_bad_or_disagrees_with_the_arrays_is_refused(
    data, tmp_path, capsys
):
    assert run(capsys, *text_train(data, tmp_path / "r", 1, "--peepholes"))[0] == 0
    arrays, meta = checkpoint.load(tmp_path / "r" / "latest.npz")
    for variant, words in [
        ({"peepholes": "yes"}, "model.variant: --peepholes: expected true or false"),
        ({}, "parameters"),  # the peephole weights are there, the header denies them
        ({"peepholes": True, "layer_norm": True}, "parameters"),
        ([1], "model.variant"),
    ]:
        meta["model"]["variant"] = variant
        path = tmp_path / "edited.npz"
        checkpoint.save(path, arrays, meta)
        with pytest.raises(CheckpointError, match="parameters|model.variant") as e:
            load_charlm(path)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_onnx_exports_peepholes_and_refuses_layer_norm_in_one_line(data, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    assert (
        run(capsys, *text_train(data, tmp_path / "p", 2, "--peepholes", "--coupled-gates"))[0] == 0
    )
    code, _, err = run(
        capsys, "export", "onnx", "--run", tmp_path / "p", "--out", tmp_path / "p.onnx"
    )
    assert code == 0, err
    model = load_charlm(tmp_path / "p")[0].eval()
    ids = np.random.default_rng(0).integers(0, model.config.vocab_size, size=(7, 3))
    logits, (h, c) = model(ids)
    h0, c0 = model.initial_state(3)
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"ids": ids, "h0": h0, "c0": c0, "sequence_lens": np.full(3, 7, np.int32)}
    got = session.run(None, feeds)
    for a, b in zip(got, [logits, h, c]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert run(capsys, *text_train(data, tmp_path / "ln", 1, "--layer-norm"))[0] == 0
    code, _, err = run(
        capsys, "export", "onnx", "--run", tmp_path / "ln", "--out", tmp_path / "l.onnx"
    )
    refused(code, err, "layer_norm=True", "ONNX")
    assert not (tmp_path / "l.onnx").exists()


# ---- forecaster ---------------------------------------------------------------------------


def test_forecaster_variant_resumes_exactly_and_forecasts(data, tmp_path, capsys):
    base = ["series", "train", "--csv", str(data["csv"]), *SERIES, *REGULARISED]
    assert run(capsys, *base, "--out", tmp_path / "whole", "--steps", "4")[0] == 0
    assert run(capsys, *base, "--out", tmp_path / "split", "--steps", "2")[0] == 0
    assert run(capsys, *base, "--out", tmp_path / "split", "--steps", "4", "--resume")[0] == 0
    whole, split = params_of(tmp_path / "whole"), params_of(tmp_path / "split")
    for name in whole:
        np.testing.assert_array_equal(whole[name], split[name], err_msg=name)
    model, meta, _ = load_forecaster(tmp_path / "whole")
    assert meta["model"]["variant"] == WANT and model.lstm.options == LSTMOptions(**WANT)
    forecast = ["series", "forecast", "--run", tmp_path / "whole", "--csv", data["csv"],
                "--horizon", "3", "--out", tmp_path / "f.csv", "--no-plot"]  # fmt: skip
    code, _, err = run(capsys, *forecast)
    assert code == 0, err
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 4
    code, _, err = run(capsys, *base[:-len(REGULARISED)], "--out", tmp_path / "split",
                       "--steps", "6", "--resume")  # fmt: skip
    refused(code, err, "cannot resume", "--peepholes", "now no variant flags")


# ---- memory -------------------------------------------------------------------------------


def test_memory_trains_the_variant_and_records_it(tmp_path, capsys):
    base = ["memory", "--task", "adding", "--lags", "5", "--models", "lstm", "--max-steps", "3",
            "--hidden", "4", "--batch", "2", "--json"]  # fmt: skip
    results = {}
    for name, flags in [("plain", []), ("variant", REGULARISED)]:
        code, out, err = run(capsys, *base, "--out", tmp_path / name, *flags)
        assert code == 0, err
        results[name] = json.loads(out)["results"][0]
    assert results["plain"]["variant"] == {} and results["variant"]["variant"] == WANT
    assert results["plain"]["test_metric"] != results["variant"]["test_metric"]
    assert "--zoneout-hidden 0.1" in (tmp_path / "variant" / "results.txt").read_text()


# ---- bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--zoneout-cell", "1.5"], ["--zoneout-cell", "[0, 1)", "1.5"]),
        (["--zoneout-hidden", "-0.1"], ["--zoneout-hidden"]),
        (["--recurrent-dropout", "1"], ["--recurrent-dropout"]),
        (["--coupled-gates", "--no-forget-gate"], ["--coupled-gates", "--no-forget-gate"]),
    ],
)
@pytest.mark.parametrize("command", ["text", "series", "memory"])
def test_bad_variant_values_are_one_line(command, flags, words, data, tmp_path, capsys):
    argv = {
        "text": text_train(data, tmp_path / "r", 1),
        "series": [
            "series",
            "train",
            "--csv",
            str(data["csv"]),
            *SERIES,
            "--out",
            str(tmp_path / "r"),
            "--steps",
            "1",
        ],  # fmt: skip
        "memory": [
            "memory",
            "--task",
            "adding",
            "--lags",
            "5",
            "--models",
            "lstm",
            "--max-steps",
            "1",
            "--hidden",
            "4",
            "--out",
            str(tmp_path / "r"),
        ],  # fmt: skip
    }[command]
    code, _, err = run(capsys, *argv, *flags)
    refused(code, err, *words)
    assert not (tmp_path / "r").exists()  # refused before any work
