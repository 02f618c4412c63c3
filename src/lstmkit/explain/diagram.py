"""The LSTM cell drawn as inline SVG (the seed's Figure 2), for the HTML explorer.

x_t and h_{t-1} come in at the bottom and feed the gates f, i, o and the candidate g;
c_{t-1} runs along the top through f's multiplication and the addition of i * g to c_t;
o times tanh(c_t) gives h_t. A variant draws its own cell (:func:`cell_diagram`):

* peepholes: dashed lines from c_{t-1} to i and f, and from c_t to o;
* coupled gates: f is 1 - i, a link from i and no input of its own;
* a switched-off gate (no input, forget or output gate): a grey, dashed box "= 1", no input;
* no input or output activation: no tanh box for g or before h.

Every element the page animates has an ``id`` and a ``data-q`` naming its quantity: i, f,
g, o, c, tanh_c, h (this step's, :data:`lstmkit.explain.html.QUANTITIES`), c_prev, h_prev
(the previous step's c and h, 0 at the first step), fc = f * c_prev and ig = i * g. The
value texts have ids ``d-<quantity>``. No script, no external reference: the markup
parses as XML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lstmkit.explain.values import display_value
from lstmkit.nn.cells.lstm import LSTMOptions

__all__ = ["DIAGRAM_VALUES", "cell_diagram", "diagram_shape"]

# the quantities whose value the diagram prints (ids d-<q>)
DIAGRAM_VALUES = ("c_prev", "h_prev", "i", "f", "g", "o", "c", "tanh_c", "h")

_NAMES = {"i": "input (update) gate", "f": "forget gate", "g": "candidate", "o": "output gate"}
_GATE_X = {"f": 150, "i": 240, "g": 330, "o": 420}  # box centres (y = _GATE_Y)
_GATE_Y, _BUS_Y, _C_Y = 200, 265, 50
_BOX_W, _BOX_H = 64, 40
_OUT_X, _ADD_X = 500, 285  # the output multiplication's column; the addition's


def diagram_shape(options: LSTMOptions | Mapping[str, Any] | None = None) -> dict[str, bool]:
    """What to draw for a cell with ``options`` (an LSTMOptions, a variant dict as a
    checkpoint keeps it, or None for the plain LSTM)."""
    if options is None:
        options = LSTMOptions()
    elif not isinstance(options, LSTMOptions):
        options = LSTMOptions(**dict(options))
    return {
        "i": options.input_gate,
        "f": options.forget_gate,
        "o": options.output_gate,
        "coupled": options.coupled_gates,
        "g_tanh": options.input_activation,
        "c_tanh": options.output_activation,
        "peepholes": options.peepholes,
        "layer_norm": options.layer_norm,
    }


def _number(value: float | None) -> str:
    return "-" if value is None else display_value(value)


def _path(id_: str, d: str, q: str = "", cls: str = "flow") -> str:
    """An arrow along d; its width and colour follow quantity q (none: a fixed wire)."""
    data = f' data-q="{q}"' if q else ""
    return f'<path id="{id_}" class="{cls}"{data} d="{d}"/>'


def _text(x: float, y: float, s: str, cls: str = "lbl", id_: str = "") -> str:
    ident = f' id="{id_}"' if id_ else ""
    return f'<text{ident} class="{cls}" x="{x}" y="{y}">{s}</text>'


def _node(id_: str, x: float, y: float, symbol: str) -> str:
    """A pointwise operation: a circle with x or +."""
    return (
        f'<g id="{id_}"><circle class="op" cx="{x}" cy="{y}" r="12"/>'
        + _text(x, y + 5, symbol, "sym")
        + "</g>"
    )


def _value(q: str, x: float, y: float, values: Mapping[str, float]) -> str:
    return _text(x, y, _number(values.get(q)), "val", f"d-{q}")


def _gate(q: str, shape: dict[str, bool], values: Mapping[str, float]) -> str:
    """Gate q's box (sigma, tanh or 1 - i; grey when switched off), its name and value, and
    its input from the x/h bus (none when switched off or coupled)."""
    x, y = _GATE_X[q], _GATE_Y
    left, top = x - _BOX_W / 2, y - _BOX_H / 2
    on = q == "g" or shape[q]
    coupled = q == "f" and shape["coupled"]
    if q == "g":
        symbol = "tanh" if shape["g_tanh"] else ""
    elif not on:
        symbol = "= 1"
    else:
        symbol = "1 \u2212 i" if coupled else "\u03c3"
    title = f"{_NAMES[q]} {q}" + (" = 1 − i" if coupled else "" if on else ": none (= 1)")
    parts = [f'<g id="gate-{q}" class="{"gate" if on else "gate absent"}"><title>{title}</title>']
    if symbol:
        parts.append(
            f'<rect id="box-{q}" class="box" data-q="{q}" x="{left}" y="{top}" '
            f'width="{_BOX_W}" height="{_BOX_H}" rx="6"/>'
        )
    parts.append(_text(left + 6, top + 15, q, "name"))
    parts.append(_text(x + 8, top + 15, symbol, "sym"))
    parts.append(_value(q, x, top + 33, values))
    parts.append("</g>")
    if on and not coupled:
        parts.append(_path(f"in-{q}", f"M{x} {_BUS_Y} V{y + _BOX_H / 2}", cls="wire"))
    return "".join(parts)


def _gate_outputs(shape: dict[str, bool]) -> list[str]:
    """f to its multiplication, i and g to theirs, o to the output's; a coupled f's link
    from i."""
    top = _GATE_Y - _BOX_H / 2
    fx, ix, gx, ox = (_GATE_X[q] for q in "figo")
    dim = {q: "flow" if shape[q] else "flow absent" for q in "ifo"}
    out = [
        _path("a-f", f"M{fx} {top} V{_C_Y + 12}", "f", dim["f"]),
        _path("a-i", f"M{ix} {top} V120 H{_ADD_X - 12}", "i", dim["i"]),
        _path("a-g", f"M{gx} {top} V120 H{_ADD_X + 12}", "g"),
        _path("a-o", f"M{ox + _BOX_W / 2} {_GATE_Y} H{_OUT_X - 12}", "o", dim["o"]),
    ]
    if shape["coupled"]:
        out.append(_path("link-coupled", f"M{ix - _BOX_W / 2} {_GATE_Y} H{fx + _BOX_W / 2}", "i"))
    return out


def _peepholes(shape: dict[str, bool]) -> list[str]:
    """c_{t-1} to i and f, c_t to o (dashed), for the gates a peephole can move."""
    if not shape["peepholes"]:
        return []
    top = _GATE_Y - _BOX_H / 2
    out = ['<circle class="dot" cx="80" cy="50" r="3"/>']
    if shape["f"] and not shape["coupled"]:
        out.append(
            _path("peep-f", f"M80 {_C_Y} V150 H{_GATE_X['f'] - 15} V{top}", "c_prev", "peep")
        )
    if shape["i"]:
        out.append(
            _path("peep-i", f"M80 {_C_Y} V140 H{_GATE_X['i'] - 15} V{top}", "c_prev", "peep")
        )
    if shape["o"]:
        out.append('<circle class="dot" cx="535" cy="50" r="3"/>')
        out.append(_path("peep-o", f"M535 {_C_Y} V150 H{_GATE_X['o'] + 10} V{top}", "c", "peep"))
    return out


def _cell_line(shape: dict[str, bool], values: Mapping[str, float]) -> list[str]:
    """c_{t-1} -> x f -> + i*g -> c_t along the top, and c_t -> [tanh] -> x o -> h_t."""
    fx = _GATE_X["f"]
    out = [
        _path("a-c_prev", f"M30 {_C_Y} H{fx - 12}", "c_prev"),
        _path("a-fc", f"M{fx + 12} {_C_Y} H{_ADD_X - 12}", "fc"),
        _path("a-ig", f"M{_ADD_X} 108 V{_C_Y + 12}", "ig"),
        _path("a-c", f"M{_ADD_X + 12} {_C_Y} H590", "c"),
        _node("n-f", fx, _C_Y, "\u00d7"),
        _node("n-add", _ADD_X, _C_Y, "+"),
        _node("n-ig", _ADD_X, 120, "\u00d7"),
        _node("n-o", _OUT_X, _GATE_Y, "\u00d7"),
        _path("a-h", f"M{_OUT_X} {_GATE_Y + 12} V305 H590", "h"),
    ]
    if shape["c_tanh"]:
        label = "tanh\u2218LN" if shape["layer_norm"] else "tanh"
        out += [
            _path("a-c_down", f"M{_OUT_X} {_C_Y} V100", "c"),
            '<g id="out-tanh">'
            f'<rect id="box-tanh_c" class="box" data-q="tanh_c" x="{_OUT_X - 40}" y="100" '
            'width="80" height="40" rx="6"/>',
            _text(_OUT_X, 115, label, "sym"),
            _value("tanh_c", _OUT_X, 133, values),
            "</g>",
            _path("a-tanh_c", f"M{_OUT_X} 140 V{_GATE_Y - 12}", "tanh_c"),
        ]
    else:  # m = o * c: no tanh box
        out.append(_path("a-c_down", f"M{_OUT_X} {_C_Y} V{_GATE_Y - 12}", "c"))
    return out


def _inputs(values: Mapping[str, float]) -> list[str]:
    """The x/h bus into the gates, and the labels of what comes in and goes out."""
    return [
        _path("a-h_prev", f"M30 {_BUS_Y} H{_GATE_X['o']}", "h_prev", "bus"),
        _path("a-x", f"M100 330 V{_BUS_Y}", cls="wire"),
        _text(4, 38, "c\u209c\u208b\u2081", "io"),
        _value("c_prev", 4, 72, values),
        _text(4, 253, "h\u209c\u208b\u2081", "io"),
        _value("h_prev", 4, 287, values),
        _text(108, 330, "x\u209c", "io"),
        _text(130, 330, "", "val", "d-x"),
        _text(596, 38, "c\u209c", "io end"),
        _value("c", 596, 72, values),
        _text(596, 295, "h\u209c", "io end"),
        _value("h", 596, 325, values),
    ]


_STYLE = (
    ".flow,.wire,.peep,.bus{fill:none;stroke:#555;stroke-width:2;marker-end:url(#arr)}"
    ".wire,.bus{stroke:#999}.bus{marker-end:none}.peep{stroke-dasharray:5 3;stroke:#8a5a00}"
    ".absent{opacity:.35}.gate.absent .box{stroke-dasharray:4 3;fill:#eee}"
    ".box{fill:#fff;stroke:#333}.op{fill:#fff;stroke:#333}.dot{fill:#8a5a00}"
    "text{font:12px ui-monospace,monospace;text-anchor:middle}"
    ".lbl,.io,.name{text-anchor:start}.io{font-size:14px;font-weight:bold}"
    ".io.end{text-anchor:end}.name{font-weight:bold}.sym{font-size:13px}"
    "#d-c_prev,#d-h_prev{text-anchor:start}#d-c,#d-h{text-anchor:end}"
    "#d-x{text-anchor:start}"
)


def cell_diagram(
    options: LSTMOptions | Mapping[str, Any] | None = None,
    values: Mapping[str, float] | None = None,
) -> str:
    """The cell with ``options`` as one ``<svg>`` element (a string), showing ``values``
    ({quantity: value}, see :data:`DIAGRAM_VALUES`; "-" where missing) as the page does
    (:func:`lstmkit.explain.values.display_value`)."""
    shape, vals = diagram_shape(options), dict(values or {})
    body = _inputs(vals) + _cell_line(shape, vals)
    body += [_gate(q, shape, vals) for q in "figo"] + _gate_outputs(shape) + _peepholes(shape)
    defs = (
        '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" markerUnits="userSpaceOnUse" orient="auto">'
        '<path d="M0 0 L10 5 L0 10 z" fill="#555"/></marker></defs>'
    )
    return (
        '<svg id="diagram" viewBox="0 0 600 340" width="600" height="340" role="img" '
        'aria-label="the LSTM cell at the selected step and unit">'
        f"<style>{_STYLE}</style>{defs}" + "".join(body) + "</svg>"
    )
