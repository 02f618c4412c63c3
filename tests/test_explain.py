"""Gate traces, saturation statistics, text features, the interpretable-cell search and
the ``explain`` command on a saved char-LM run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.cli.app import main
from lstmkit.explain import explorer as explain
from lstmkit.explain.html import QUANTITIES, display_value, explorer_data
from lstmkit.text.corpus import Vocab
from lstmkit.text.model import CharLM, CharLMConfig
from lstmkit.text.train import TrainConfig, save_model
from lstmkit.train.run_folder import Run


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("forget_gate", [True, False])
def test_gate_traces_match_a_step_by_step_unroll(forget_gate: bool) -> None:
    rng = np.random.default_rng(0)
    lstm = lk.LSTM(3, 5, num_layers=2, dtype=np.float64, seed=1, forget_gate=forget_gate)
    x = rng.standard_normal((9, 3))
    traces = explain.gate_traces(lstm, x)
    assert len(traces) == 2 and all(tr[q].shape == (9, 5) for tr in traces for q in QUANTITIES)
    # oracle 1: the states from lstm.step, one step at a time
    state = None
    for t in range(9):
        _, state = lstm.step(x[t][None], state)
        h, c = state  # (2, 1, 5) each
        for layer in range(2):
            np.testing.assert_allclose(traces[layer]["h"][t], h[layer, 0], rtol=1e-12)
            np.testing.assert_allclose(traces[layer]["c"][t], c[layer, 0], rtol=1e-12)
    # oracle 2: layer 0's gates from the weights and the unrolled h_{t-1}
    p = lstm.parameters()
    W_ih, W_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    b = p["bias_ih_l0"] + p["bias_hh_l0"]
    h_prev = np.vstack([np.zeros(5), traces[0]["h"][:-1]])
    zi, zf, zg, zo = np.split(x @ W_ih.T + h_prev @ W_hh.T + b, 4, axis=1)
    np.testing.assert_allclose(traces[0]["i"], _sigmoid(zi), rtol=1e-10)
    np.testing.assert_allclose(traces[0]["f"], _sigmoid(zf) if forget_gate else 1.0, rtol=1e-10)
    np.testing.assert_allclose(traces[0]["g"], np.tanh(zg), rtol=1e-10)
    np.testing.assert_allclose(traces[0]["o"], _sigmoid(zo), rtol=1e-10)
    np.testing.assert_allclose(traces[1]["tanh_c"], np.tanh(traces[1]["c"]), rtol=1e-12)
    assert lstm.training  # the mode is restored


def test_gate_saturation_on_a_constructed_case() -> None:
    T, H = 8, 3
    tr = {q: np.full((T, H), 0.5) for q in QUANTITIES}
    tr["f"][:, 0] = [0.05, 0.95, 0.5, 0.99, 0.0, 1.0, 0.1, 0.9]  # 0.1 and 0.9 are not saturated
    tr["i"][:, 1] = 0.01
    tr["o"][:6, 2] = 0.97
    sat = explain.gate_saturation([tr, tr])
    assert len(sat) == 2 and set(sat[0]) == {"i", "f", "o"}
    left, right = sat[0]["f"]
    np.testing.assert_array_equal(left, [2 / 8, 0, 0])
    np.testing.assert_array_equal(right, [3 / 8, 0, 0])
    np.testing.assert_array_equal(sat[1]["i"][0], [0, 1, 0])
    np.testing.assert_array_equal(sat[1]["o"][1], [0, 0, 6 / 8])
    np.testing.assert_array_equal(sat[1]["o"][0], [0, 0, 0])


def test_text_features() -> None:
    text = 'a("x)")\n  [b]\n'
    f = explain.text_features(text)
    #                  a  (  "  x  )  "  )  \n ␣  ␣  [  b  ]  \n
    assert f["in_quote"].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["bracket_depth"].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0]
    assert f["line_position"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5]
    assert f["indentation"].tolist() == [0] * 8 + [2] * 6


def test_interpretable_cells_finds_the_planted_cell() -> None:
    text = 'x = "ab" + f(1, (2)) + "c"\n' * 6
    features = explain.text_features(text)
    rng = np.random.default_rng(4)
    T = len(text)
    traces = [{"tanh_c": rng.uniform(-0.3, 0.3, (T, 6))} for _ in range(2)]
    traces[1]["tanh_c"][:, 4] = 0.8 - 1.2 * features["in_quote"]  # a quote cell, negative
    traces[0]["tanh_c"][:, 2] = np.tanh(0.5 * features["bracket_depth"])
    top = explain.interpretable_cells(traces, features, top=3)
    assert top[0] == {"layer": 1, "cell": 4, "feature": "in_quote", "corr": pytest.approx(-1.0)}
    assert top[1]["layer"] == 0 and top[1]["cell"] == 2 and top[1]["feature"] == "bracket_depth"
    assert top[1]["corr"] > 0.95 and abs(top[2]["corr"]) < 0.6
    assert len({(r["layer"], r["cell"]) for r in top}) == 3  # each cell once


def test_explorer_data_round_trips() -> None:
    rng = np.random.default_rng(2)
    tr = {q: rng.uniform(-1, 1, (4, 3)) for q in QUANTITIES}
    tr["c"] = rng.uniform(-50, 50, (4, 3))
    tr["i"][0, 0] = -0.00001  # rounds to zero: shown "0.0000", never "-0.0000"
    data = explorer_data([tr], "ab\nc", initial=(0, 2))
    json.dumps(data)  # JSON-able
    assert data["hidden"] == 3 and data["layers"] == 1 and data["initial"]["cell"] == 2
    assert display_value(-0.00001) == "0.0000" and display_value(0.12345678) == "0.1235"
    with pytest.raises(ValueError, match="expected 4 characters"):
        explorer_data([tr], "abc")


@pytest.fixture
def saved_run(tmp_path):
    text = 'def f(x):\n    return [x, "y"]\n' * 3
    vocab = Vocab.build(text)
    model = CharLM(CharLMConfig(vocab_size=len(vocab), embed=8, hidden=12, layers=2), seed=0)
    run = Run(tmp_path / "run").create()
    save_model(run, "latest", model, vocab, TrainConfig())
    return run.folder, model, vocab, text


def test_load_run_gives_the_saved_model(saved_run) -> None:
    folder, model, vocab, text = saved_run
    loaded, loaded_vocab = explain.load_run(folder)
    assert loaded_vocab == vocab
    a = explain.char_model_traces(model, vocab, text)
    b = explain.char_model_traces(loaded, loaded_vocab, text)
    np.testing.assert_array_equal(a[1]["c"], b[1]["c"])


@pytest.mark.slow
def test_explain_command(saved_run, tmp_path, capsys) -> None:
    folder, _, _, text = saved_run
    source = tmp_path / "sample.py"
    source.write_text(text)
    out = tmp_path / "explained"
    argv = ["explain", "--run", str(folder), "--text", str(source), "--out", str(out)]
    assert main(argv + ["--top", "4"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(" r = ") == 4 and "explorer.html" in printed
    for name in ["heatmaps.png", "trajectories.png", "saturation.png", "top_cells.png"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    html = (out / "explorer.html").read_text()
    assert '<script type="application/json" id="data">' in html
    # a literal text and chosen cells work too; a cell out of range is the user's mistake
    argv = ["explain", "--run", str(folder), "--text", "f(a)", "--out", str(out), "--cells"]
    assert main(argv + ["1,3"]) == 0
    assert main(argv + ["12"]) == 1
    assert main(["explain", "--run", str(tmp_path / "nothing"), "--text", "a"]) == 1
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    "hostile", ["<!--<script>", "</script><script>alert(1)</script>", "a]]>&amp;<b>", "<!-- -->"]
)
def test_explorer_page_keeps_hostile_text_inside_its_data(tmp_path, hostile) -> None:
    """Text holding ``<!--<script>`` (which puts an HTML parser in the "script data double
    escaped" state, so a later ``</script>`` no longer ends the element) or ``</script>``
    stays data: the page has no ``<``, ``>`` or ``&`` inside its JSON, and the JSON gives
    the text back exactly."""
    from lstmkit.explain.html import write_explorer

    text = f"x = 1  # {hostile}\ny = 2\n"
    rng = np.random.default_rng(0)
    tr = {q: rng.uniform(-1, 1, (len(text), 3)) for q in QUANTITIES}
    page = write_explorer([tr], text, tmp_path / "explorer.html").read_text(encoding="utf-8")
    start = page.index('<script type="application/json" id="data">') + len(
        '<script type="application/json" id="data">'
    )
    end = page.index("</script>", start)
    blob = page[start:end]
    assert not any(ch in blob for ch in "<>&"), blob[:200]
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert json.loads(blob)["text"] == text
