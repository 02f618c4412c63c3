"""The cell diagram of the HTML explorer: each variant's shape, valid XML, and the values it
shows for a tiny model."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest

from lstmkit.explain import explorer as explain
from lstmkit.explain.diagram import DIAGRAM_VALUES, cell_diagram, diagram_shape
from lstmkit.explain.html import display_value, explorer_data, step_values, write_explorer
from lstmkit.nn.cells.lstm import LSTMOptions
from lstmkit.text.corpus import Vocab
from lstmkit.text.model import CharLM, CharLMConfig


def _ids(svg: str) -> dict[str, ET.Element]:
    """Every element of the diagram with an id (parsing fails on invalid XML)."""
    root = ET.fromstring(svg)
    assert root.tag == "svg"
    return {e.get("id", ""): e for e in root.iter() if e.get("id")}


def _text(e: ET.Element) -> str:
    return "".join(e.itertext())


def test_the_plain_cell_has_figure_2s_parts() -> None:
    ids = _ids(cell_diagram())
    for q in "figo":
        assert f"box-{q}" in ids and f"in-{q}" in ids and f"a-{q}" in ids
        assert ids[f"gate-{q}"].get("class") == "gate"
    for part in ["n-f", "n-add", "n-ig", "n-o", "box-tanh_c", "a-c_prev", "a-c", "a-h"]:
        assert part in ids
    assert not [k for k in ids if k.startswith("peep-")] and "link-coupled" not in ids
    assert all(f"d-{q}" in ids for q in DIAGRAM_VALUES)
    assert not [k for k, e in ids.items() if "absent" in e.get("class", "")]
    assert [_text(ids[f"d-{q}"]) for q in DIAGRAM_VALUES] == ["-"] * len(DIAGRAM_VALUES)


@pytest.mark.parametrize(
    "options, present, absent",
    [
        ({"peepholes": True}, ["peep-i", "peep-f", "peep-o", "in-f"], ["link-coupled"]),
        ({"coupled_gates": True}, ["link-coupled", "in-i"], ["in-f", "peep-f"]),
        (
            {"coupled_gates": True, "peepholes": True},
            ["link-coupled", "peep-i", "peep-o"],
            ["in-f", "peep-f"],  # f = 1 - i: a peephole into f would move nothing
        ),
        (
            {"input_gate": False, "peepholes": True},
            ["peep-f", "peep-o", "box-i"],
            ["in-i", "peep-i"],
        ),
        ({"forget_gate": False}, ["in-i", "box-f"], ["in-f"]),
        ({"output_gate": False, "peepholes": True}, ["peep-i", "peep-f"], ["in-o", "peep-o"]),
        ({"input_activation": False}, ["in-g", "gate-g", "d-g"], ["box-g"]),
        ({"output_activation": False}, ["a-c_down", "d-c", "d-h"], ["box-tanh_c", "d-tanh_c"]),
    ],
)
def test_each_variant_draws_its_own_cell(
    options: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    ids = _ids(cell_diagram(options))
    assert [k for k in present if k not in ids] == []
    assert [k for k in absent if k in ids] == []
    for gate, flag in [("i", "input_gate"), ("f", "forget_gate"), ("o", "output_gate")]:
        off = options.get(flag) is False
        assert ("absent" in ids[f"gate-{gate}"].get("class", "")) == off, gate
        assert ("absent" in ids[f"a-{gate}"].get("class", "")) == off, gate
        if off:
            assert "= 1" in _text(ids[f"gate-{gate}"])
    if options.get("coupled_gates"):
        assert "1 \u2212 i" in _text(ids["gate-f"])
    if options.get("input_activation") is False:
        assert "tanh" not in _text(ids["gate-g"])


def test_layer_norm_is_named_in_the_output_box_and_options_come_in_any_form() -> None:
    ids = _ids(cell_diagram({"layer_norm": True}))
    assert "LN" in _text(ids["out-tanh"]) and "LN" not in _text(_ids(cell_diagram())["out-tanh"])
    assert diagram_shape({"peepholes": True}) == diagram_shape(LSTMOptions(peepholes=True))
    assert diagram_shape(None) == diagram_shape(LSTMOptions())
    with pytest.raises(ValueError, match="coupled_gates"):
        diagram_shape({"coupled_gates": True, "input_gate": False})


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    """A 2-layer char-LM with peepholes and coupled gates, its traces and its page."""
    text = "ab(c)\nba"
    vocab = Vocab.build(text)
    variant = {"peepholes": True, "coupled_gates": True}
    config = CharLMConfig(vocab_size=len(vocab), embed=4, hidden=3, layers=2, variant=variant)
    model = CharLM(config, seed=5)
    traces = explain.char_model_traces(model, vocab, text)
    return {"text": text, "traces": traces, "options": model.lstm.cell.options}


def test_step_values_are_the_traces_and_the_previous_step(tiny: dict[str, Any]) -> None:
    tr = tiny["traces"][1]
    first, third = step_values(tr, 0, 2), step_values(tr, 2, 2)
    assert first["c_prev"] == 0.0 and first["h_prev"] == 0.0
    assert third["c_prev"] == tr["c"][1, 2] and third["h_prev"] == tr["h"][1, 2]
    assert third["f"] == tr["f"][2, 2] and third["o"] == tr["o"][2, 2]
    np.testing.assert_allclose(tr["f"], 1.0 - tr["i"], rtol=0, atol=1e-6)  # coupled


def test_the_page_embeds_the_diagram_with_the_models_values(tiny: dict[str, Any], tmp_path) -> None:
    text, traces, options = tiny["text"], tiny["traces"], tiny["options"]
    page = write_explorer(traces, text, tmp_path / "e.html", initial=(1, 2), options=options)
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 1 and "http" not in html and " href=" not in html
    ids = _ids(html[html.index("<svg") : html.index("</svg>") + len("</svg>")])
    assert "link-coupled" in ids and "peep-i" in ids and "peep-f" not in ids
    shown = {q: _text(ids[f"d-{q}"]) for q in DIAGRAM_VALUES}
    expected = {q: display_value(v) for q, v in step_values(traces[1], 0, 2).items()}
    assert shown == {q: expected[q] for q in DIAGRAM_VALUES}
    assert "--coupled-gates --peepholes" in html
    data = explorer_data(traces, text, options=options)
    assert data["cell"] == diagram_shape(options) and data["diagram"] == list(DIAGRAM_VALUES)
    json.dumps(data)


@pytest.mark.slow
def test_explain_draws_the_models_variant(tmp_path) -> None:
    text = "f(a, [b])\n" * 3
    vocab = Vocab.build(text)
    variant = {"output_gate": False, "output_activation": False}
    config = CharLMConfig(vocab_size=len(vocab), embed=4, hidden=3, layers=1, variant=variant)
    report = explain.explain(CharLM(config, seed=1), vocab, text, tmp_path, top=2)
    html = next(p for p in report["files"] if p.name == "explorer.html").read_text("utf-8")
    ids = _ids(html[html.index("<svg") : html.index("</svg>") + len("</svg>")])
    assert "absent" in ids["gate-o"].get("class", "") and "box-tanh_c" not in ids
