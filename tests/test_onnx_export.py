"""ONNX export: ONNX Runtime runs the exported graph with lstmkit's results.

The oracle is ONNX Runtime's own LSTM/GRU/RNN kernels: every exported kind and option is
run on random inputs, random per-sequence lengths and a random (carried) initial state,
at two different (T, N) with the same file, and compared to ``layer.forward`` in float32.

Run: .venv/bin/python -m pytest tests/test_onnx_export.py -q
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import rel_err

import lstmkit as lk
from lstmkit.io.onnx import export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-5  # float32: lstmkit's NumPy and ORT's kernels round differently


def _session(path: Any) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _make(kind: str, seed: int = 0, **kwargs: Any) -> Any:
    if kind.startswith("RNN"):
        kwargs["nonlinearity"] = kind.split("-")[1]
        kind = "RNN"
    return getattr(lk, kind)(seed=seed, **kwargs).eval()


def _state_names(layer: Any) -> tuple[list[str], list[str]]:
    lstm = isinstance(layer, lk.LSTM)
    return ["h0", "c0"][: 1 + lstm], ["h_n", "c_n"][: 1 + lstm]


def _random_run(layer: Any, T: int, N: int, rng: np.random.Generator, lengths: bool = True):
    """Random feeds for the graph and lstmkit's outputs on them, in graph output order."""
    x_shape = (N, T, layer.input_size) if layer.batch_first else (T, N, layer.input_size)
    x = rng.standard_normal(x_shape).astype(np.float32)
    rows = layer.num_layers * layer.num_directions
    state_in, _ = _state_names(layer)
    states = [rng.standard_normal((rows, N, layer.hidden_size)).astype(np.float32)]
    if isinstance(layer, lk.LSTM):
        states.append(rng.standard_normal((rows, N, layer.hidden_size)).astype(np.float32))
    feeds = {"x": x, **dict(zip(state_in, states))}
    lens = None
    if lengths:
        lens = rng.integers(1, T + 1, size=N).astype(np.int32)
        lens[0] = T  # the longest sequence runs the whole length, one other may be shorter
        if N > 1:
            lens[1] = max(1, T // 2)
        feeds["sequence_lens"] = lens
    y, state_n = layer(x, tuple(states) if len(states) == 2 else states[0], lengths=lens)
    expected = [y, *(state_n if isinstance(state_n, tuple) else (state_n,))]
    return feeds, expected


def _assert_close(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape and a.dtype == np.float32
        assert float(np.std(b)) > 1e-2, "the reference is degenerate; the test would be weak"
        assert rel_err(a, b) < TOL


KINDS = ["LSTM", "GRU", "RNN-tanh", "RNN-relu"]
OPTIONS = [
    dict(num_layers=1),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, batch_first=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, dropout=0.3),
    dict(num_layers=3, bidirectional=True, bias=False),
    dict(num_layers=3, bias=False, batch_first=True),
]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items())
)
@pytest.mark.parametrize("kind", KINDS)
def test_onnxruntime_matches_forward(kind, options, tmp_path):
    """Same results as forward for random lengths and states, at two (T, N), one file."""
    layer = _make(kind, input_size=3, hidden_size=5, **options)
    path = tmp_path / "layer.onnx"
    export(layer, path)
    onnx.checker.check_model(str(path), full_check=True)
    session = _session(path)
    rng = np.random.default_rng(1)
    for T, N in [(7, 4), (3, 2)]:
        feeds, expected = _random_run(layer, T, N, rng)
        assert feeds["sequence_lens"].min() < T  # padding is really exercised
        _assert_close(session.run(None, feeds), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_graph_uses_the_standard_operator(kind, tmp_path):
    """One LSTM/GRU/RNN node per layer, nothing unrolled, with the spec's attributes."""
    layer = _make(kind, input_size=3, hidden_size=4, num_layers=3, bidirectional=True)
    model = export(layer, tmp_path / "layer.onnx")
    op = kind.split("-")[0]
    ops = [n.op_type for n in model.graph.node]
    assert ops.count(op) == 3
    assert not {"Loop", "Scan", "Sigmoid", "Tanh", "Relu"} & set(ops)
    rec = [n for n in model.graph.node if n.op_type == op][0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in rec.attribute}
    assert attrs["hidden_size"] == 4 and attrs["direction"] == b"bidirectional"
    if op == "GRU":
        assert attrs["linear_before_reset"] == 1
    if op == "RNN":
        assert attrs["activations"] == [kind.split("-")[1].capitalize().encode()] * 2
    names = {i.name: i for i in model.graph.input}
    assert list(names) == ["x", *_state_names(layer)[0], "sequence_lens"]
    dims = [d.dim_param or d.dim_value for d in names["x"].type.tensor_type.shape.dim]
    assert dims == ["T", "N", 3]  # dynamic time and batch
    assert [o.name for o in model.graph.output] == ["y", *_state_names(layer)[1]]


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_chunks_equal_one_run(kind, tmp_path):
    """The variant without sequence_lens, fed chunk by chunk with the carried state."""
    layer = _make(kind, input_size=3, hidden_size=5, num_layers=2)
    path = tmp_path / "stream.onnx"
    model = export(layer, path, sequence_lens=False)
    assert "sequence_lens" not in [i.name for i in model.graph.input]
    session = _session(path)
    rng = np.random.default_rng(2)
    feeds, expected = _random_run(layer, 9, 3, rng, lengths=False)
    state_in, _ = _state_names(layer)
    states = {k: feeds[k] for k in state_in}
    ys = []
    for chunk in np.split(feeds["x"], [4, 5], axis=0):  # chunks of 4, 1 and 4 steps
        y, *finals = session.run(None, {"x": chunk, **states})
        ys.append(y)
        states = dict(zip(state_in, finals))
    _assert_close([np.concatenate(ys), *states.values()], expected)


def test_opset_versions(tmp_path):
    layer = _make("LSTM", input_size=2, hidden_size=3, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(3)
    feeds, expected = _random_run(layer, 5, 3, rng)
    for opset in [13, 17, 21]:
        path = tmp_path / f"opset{opset}.onnx"
        model = export(layer, path, opset=opset)
        assert model.opset_import[0].version == opset
        _assert_close(_session(path).run(None, feeds), expected)
    for bad in [12, 10_000, "17"]:
        with pytest.raises(ValueError, match="opset: expected an integer in 13"):
            export(layer, tmp_path / "bad.onnx", opset=bad)


def test_float64_layer_exports_float32(tmp_path):
    layer = lk.GRU(3, 4, dtype=np.float64, seed=0).eval()
    model = export(layer, tmp_path / "gru.onnx")
    assert all(
        t.data_type == onnx.TensorProto.FLOAT
        for t in model.graph.initializer
        if t.name.endswith(("_W", "_R", "_B"))
    )
    x = np.random.default_rng(4).standard_normal((5, 2, 3))
    h0 = np.zeros((1, 2, 4))
    y, h_n = layer(x, h0)
    feeds = {"x": x.astype(np.float32), "h0": h0.astype(np.float32)}
    feeds["sequence_lens"] = np.array([5, 5], np.int32)
    got = _session(tmp_path / "gru.onnx").run(None, feeds)
    assert rel_err(got[0], y) < TOL and rel_err(got[1], h_n) < TOL


def test_unsupported_options_raise(tmp_path):
    with pytest.raises(ValueError, match="no projection, expected proj_size=0, got 2"):
        export(lk.LSTM(3, 4, proj_size=2), tmp_path / "p.onnx")
    with pytest.raises(ValueError, match="forget_gate=False.*always has a learned forget"):
        export(lk.LSTM(3, 4, forget_gate=False), tmp_path / "f.onnx")
    with pytest.raises(TypeError, match="expected an lstmkit LSTM, GRU or RNN"):
        export(object(), tmp_path / "o.onnx")
    assert not list(tmp_path.iterdir())  # nothing half-written


# ---- LSTM variants: peepholes (P) and CIFG (input_forget) ------------------------------

VARIANTS = [
    dict(peepholes=True),
    dict(coupled_gates=True),
    dict(peepholes=True, coupled_gates=True),
    dict(peepholes=True, recurrent_dropout=0.3),  # dropout belongs to training
]
VARIANT_OPTIONS = [
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(num_layers=2, bias=False),
]


@pytest.mark.parametrize(
    "options", VARIANT_OPTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items())
)
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda o: "-".join(o))
def test_lstm_variants_in_onnxruntime(variant, options, tmp_path):
    """ORT's own LSTM kernel with P and input_forget=1 gives forward's results: carried
    states, sequence_lens, two (T, N) with one file, and (one direction) chunk by chunk."""
    layer = _make("LSTM", input_size=3, hidden_size=5, seed=4, **variant, **options)
    path = tmp_path / "variant.onnx"
    model = export(layer, path)
    rec = [n for n in model.graph.node if n.op_type == "LSTM"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in rec[0].attribute}
    assert attrs.get("input_forget", 0) == int(variant.get("coupled_gates", False))
    assert (len(rec[0].input) == 8 and rec[0].input[7] != "") == variant.get("peepholes", False)
    session = _session(path)
    rng = np.random.default_rng(5)
    for T, N in [(7, 4), (3, 2)]:
        feeds, expected = _random_run(layer, T, N, rng)
        _assert_close(session.run(None, feeds), expected)
    if layer.bidirectional:
        return  # chunks of a bidirectional layer are not one run
    stream = tmp_path / "stream.onnx"
    export(layer, stream, sequence_lens=False)
    feeds, expected = _random_run(layer, 8, 3, rng, lengths=False)
    states = {"h0": feeds["h0"], "c0": feeds["c0"]}
    axis = 1 if layer.batch_first else 0
    ys = []
    for chunk in np.split(feeds["x"], [5], axis=axis):
        y, h, c = _session(stream).run(None, {"x": chunk, **states})
        ys.append(y)
        states = {"h0": h, "c0": c}
    _assert_close([np.concatenate(ys, axis=axis), states["h0"], states["c0"]], expected)


def test_input_forget_is_f_equals_one_minus_i(tmp_path):
    """The direction of ORT's coupling: lstmkit's f = 1 - i (from the i rows) agrees with
    input_forget=1, which ignores the forget rows (changing them changes neither); the same
    weights exported without the coupling (a plain layer) disagree."""
    cifg = _make("LSTM", input_size=3, hidden_size=5, seed=6, coupled_gates=True)
    plain = _make("LSTM", input_size=3, hidden_size=5, seed=6)
    feeds, expected = _random_run(cifg, 6, 3, np.random.default_rng(6))
    export(cifg, tmp_path / "cifg.onnx")
    _assert_close(_session(tmp_path / "cifg.onnx").run(None, feeds), expected)
    export(plain, tmp_path / "plain.onnx")
    got = _session(tmp_path / "plain.onnx").run(None, feeds)
    assert rel_err(got[0], expected[0]) > 1e-2
    for w in cifg.parameters().values():  # new forget rows
        w[5:10] = np.random.default_rng(7).standard_normal(w[5:10].shape)
    export(cifg, tmp_path / "cifg2.onnx")
    _assert_close(_session(tmp_path / "cifg2.onnx").run(None, feeds), expected)
    lens = feeds["sequence_lens"]
    assert np.array_equal(cifg(feeds["x"], (feeds["h0"], feeds["c0"]), lens)[0], expected[0])


@pytest.mark.parametrize(
    "options, message",
    [
        (
            dict(input_gate=False),
            "input_gate=False: the ONNX LSTM operator always has a learned input",
        ),
        (
            dict(output_gate=False),
            "output_gate=False: the ONNX LSTM operator always has a learned output",
        ),
        (dict(input_activation=False), "input_activation=False: the ONNX LSTM operator"),
        (dict(output_activation=False), "output_activation=False: the ONNX LSTM operator"),
        (
            dict(layer_norm=True),
            "layer_norm=True: the ONNX LSTM operator has no layer normalisation",
        ),
        (dict(gate_recurrence=True), "gate_recurrence=True: the ONNX LSTM operator has no"),
        (dict(zoneout=(0.1, 0.2)), r"zoneout=\(0.1, 0.2\): the ONNX LSTM operator has no zoneout"),
        (dict(zoneout_h=0.3, peepholes=True), r"zoneout=\(0.0, 0.3\)"),
    ],
)
def test_unsupported_variants_raise(options, message, tmp_path):
    with pytest.raises(ValueError, match=message) as info:
        export(_make("LSTM", input_size=3, hidden_size=4, **options), tmp_path / "v.onnx")
    assert "\n" not in str(info.value)  # one line
    assert not list(tmp_path.iterdir())


# ---- whole models ----------------------------------------------------------------------


container = pytest.importorskip("lstmkit.nn.model")
modules = pytest.importorskip("lstmkit.nn.feedforward")


class CharLM(container.Model):
    """ids (T, N) -> embed -> dropout -> recurrent stack -> head -> logits (T, N, V)."""

    def __init__(self, V: int, E: int, H: int, kind: str = "LSTM", seed: int = 0, **kw: Any):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.add("embed", modules.Embedding(V, E, seed=rng))
        self.add("drop", modules.Dropout(0.5, seed=rng))
        self.add("lstm", getattr(lk, kind)(E, H, seed=rng, **kw))
        D = 2 if kw.get("bidirectional") else 1
        self.add("head", modules.Linear(D * H, V, seed=rng))

    def forward(self, ids: Any, state: Any = None, lengths: Any = None) -> Any:
        y, state = self.lstm(self.drop(self.embed(ids)), state, lengths)
        return self.head(y), state


class Forecaster(container.Model):
    """x (T, N, F) -> recurrent stack -> head -> y (T, N, out)."""

    def __init__(self, F: int, H: int, out: int, kind: str = "LSTM", seed: int = 0, **kw: Any):
        super().__init__()
        rng = np.random.default_rng(seed)
        head_bias = kw.pop("head_bias", True)
        self.add("lstm", getattr(lk, kind)(F, H, seed=rng, **kw))
        self.add("head", modules.Linear(H, out, bias=head_bias, seed=rng))

    def forward(self, x: Any, state: Any = None, lengths: Any = None) -> Any:
        y, state = self.lstm(x, state, lengths)
        return self.head(y), state


def _model_case(model: Any, ids_or_x: np.ndarray, T: int, N: int, rng: np.random.Generator):
    layer = model.lstm
    rows = layer.num_layers * layer.num_directions
    n_states = 2 if isinstance(layer, lk.LSTM) else 1
    states = [
        rng.standard_normal((rows, N, layer.hidden_size)).astype(np.float32)
        for _ in range(n_states)
    ]
    lens = rng.integers(1, T + 1, size=N).astype(np.int32)
    lens[0], lens[-1] = T, 1
    out, state_n = model(ids_or_x, tuple(states) if n_states == 2 else states[0], lens)
    expected = [out, *(state_n if isinstance(state_n, tuple) else (state_n,))]
    feeds = dict(zip(["h0", "c0"], states))
    feeds["sequence_lens"] = lens
    return feeds, expected


@pytest.mark.parametrize(
    "kind, options",
    [
        ("LSTM", dict(num_layers=2)),
        ("GRU", dict(bidirectional=True)),
        ("LSTM", dict(batch_first=True)),
    ],
)
def test_char_lm_export(kind, options, tmp_path):
    model = CharLM(V=11, E=4, H=6, kind=kind, **options).eval()
    path = tmp_path / "charlm.onnx"
    proto = export(model, path)
    assert [i.name for i in proto.graph.input][0] == "ids"
    assert [o.name for o in proto.graph.output][0] == "logits"
    assert "Gather" in [n.op_type for n in proto.graph.node]
    session = _session(path)
    rng = np.random.default_rng(5)
    for T, N in [(6, 3), (2, 5)]:
        shape = (N, T) if options.get("batch_first") else (T, N)
        ids = rng.integers(0, 11, size=shape)
        feeds, expected = _model_case(model, ids, T, N, rng)
        _assert_close(session.run(None, {"ids": ids, **feeds}), expected)


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_forecaster_export(kind, tmp_path):
    model = Forecaster(F=3, H=5, out=2, kind=kind, num_layers=2, head_bias=kind == "LSTM")
    model.eval()
    path = tmp_path / "forecaster.onnx"
    proto = export(model, path)
    assert [i.name for i in proto.graph.input][0] == "x"
    session = _session(path)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 4, 3)).astype(np.float32)
    feeds, expected = _model_case(model, x, 8, 4, rng)
    _assert_close(session.run(None, {"x": x, **feeds}), expected)


def test_model_with_unknown_children_raises(tmp_path):
    model = container.Model()
    model.add("lstm", lk.LSTM(2, 3))
    with pytest.raises(TypeError, match="expected children lstm .* and head"):
        export(model, tmp_path / "m.onnx")
    model.add("extra", lk.GRU(3, 3))
    model.add("head", modules.Linear(3, 1))
    with pytest.raises(TypeError, match="'extra': 'GRU'"):
        export(model, tmp_path / "m.onnx")


def test_the_char_lm_of_the_text_package(tmp_path):
    """The project's own CharLM (embed, lstm, drop, head) exports and streams in ORT."""
    text_model = pytest.importorskip("lstmkit.text.model")
    config = text_model.CharLMConfig(vocab_size=13, embed=4, hidden=6, layers=2, dropout=0.2)
    model = text_model.CharLM(config, seed=0).eval()
    path = tmp_path / "charlm.onnx"
    export(model, path, sequence_lens=False)
    session = _session(path)
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 13, size=(8, 3))
    logits, (h_n, c_n) = model(ids)
    h, c = model.initial_state(3)
    chunks = []
    for part in np.split(ids, [5], axis=0):  # two chunks, state carried through the graph
        out, h, c = session.run(None, {"ids": part, "h0": h, "c0": c})
        chunks.append(out)
    _assert_close([np.concatenate(chunks), h, c], [logits, h_n, c_n])
