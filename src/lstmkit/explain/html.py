"""One self-contained HTML file to explore an LSTM's gates over a text.

No network, no CDN: the CSS and JavaScript are inline and the data is embedded as JSON
in a ``<script type="application/json">`` element. The text is drawn character by
character, coloured by the chosen cell's activation or gate; hovering, clicking or stepping
to a character (arrow keys, or the play button) shows every gate value of that cell at that
step, in a table and in the cell's diagram (:mod:`lstmkit.explain.diagram`, drawn for the
model's variant); controls pick the layer, cell (unit) and quantity.

Values are stored as integers n = round(10^4 v) (so the page shows n / 10^4 with 4
decimals, exactly :func:`display_value` of the Python value), packed little-endian and
base64-encoded inside the JSON: int16 for the bounded quantities, int32 for c. That keeps
a 1000-character page of a 2 x 256 LSTM near 11 MB instead of 30 MB of decimal text.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.explain.diagram import DIAGRAM_VALUES, cell_diagram, diagram_shape
from lstmkit.explain.values import SCALE, display_value, quantised
from lstmkit.nn.cells.lstm import LSTMOptions

__all__ = ["display_value", "explorer_data", "step_values", "write_explorer"]

QUANTITIES = ("i", "f", "g", "o", "c", "tanh_c", "h")
_LABELS = {
    "i": "input gate i",
    "f": "forget gate f",
    "g": "candidate g",
    "o": "output gate o",
    "c": "cell state c",
    "tanh_c": "tanh(c)",
    "h": "output h",
}


_BOUNDED = ("i", "f", "g", "o", "tanh_c", "h")  # in [-1, 1]: int16 holds 10^4 v


def _packed(values: np.ndarray, quantity: str) -> str:
    dtype = "<i2" if quantity in _BOUNDED else "<i4"
    raw = quantised(values).reshape(-1).astype(dtype).tobytes()
    return base64.b64encode(raw).decode("ascii")


def explorer_data(
    traces: Sequence[dict[str, np.ndarray]],
    text: str,
    top_cells: Sequence[dict[str, Any]] = (),
    initial: tuple[int, int] = (0, 0),
    options: LSTMOptions | None = None,
) -> dict[str, Any]:
    """The JSON embedded in the page: values[layer][quantity] is a base64 string of the
    packed integers (int16 or int32, see ``kinds``), index t * hidden + cell; ``cell``: what
    the diagram draws for the cell's ``options`` (:func:`diagram.diagram_shape`)."""
    T, H = traces[0]["c"].shape
    if len(text) != T:
        raise ValueError(f"text: expected {T} characters (one per step), got {len(text)}")
    return {
        "text": text,
        "layers": len(traces),
        "hidden": H,
        "quantities": list(QUANTITIES),
        "labels": _LABELS,
        "scale": SCALE,
        "kinds": {q: ("int16" if q in _BOUNDED else "int32") for q in QUANTITIES},
        "values": [{q: _packed(tr[q], q) for q in QUANTITIES} for tr in traces],
        "top": [dict(r) for r in top_cells],
        "initial": {"layer": int(initial[0]), "cell": int(initial[1])},
        "cell": diagram_shape(options),
        "diagram": list(DIAGRAM_VALUES),
    }


def step_values(trace: dict[str, np.ndarray], t: int, cell: int) -> dict[str, float]:
    """What the diagram shows for one layer's ``trace`` at step t and ``cell``: this step's
    quantities, and c_prev, h_prev (the previous step's c and h; 0 at the first step)."""
    values = {q: float(trace[q][t, cell]) for q in QUANTITIES}
    values["c_prev"] = float(trace["c"][t - 1, cell]) if t > 0 else 0.0
    values["h_prev"] = float(trace["h"][t - 1, cell]) if t > 0 else 0.0
    return values


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; }
#controls { display: flex; gap: 1.2em; align-items: center; flex-wrap: wrap; margin-bottom: .8em; }
#text { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap;
        line-height: 1.55; font-size: 14px; border: 1px solid #ccc; padding: .6em;
        max-height: 60vh; overflow: auto; }
#text span { cursor: crosshair; }
#text span.sel { outline: 2px solid #222; }
#panel { display: flex; gap: 2em; margin-top: .8em; align-items: flex-start; }
#info table { border-collapse: collapse; font-family: ui-monospace, monospace; }
#info td { padding: 1px 10px; border-bottom: 1px solid #eee; }
#info td.v { text-align: right; }
#top li { cursor: pointer; color: #1a55a0; }
.legend { font-size: 12px; color: #666; }
#text:focus { outline: 2px solid #1a55a0; }
#play { min-width: 6.5em; }
#info { flex: 0 0 auto; } #info td { white-space: nowrap; }
#figure { flex: 0 1 620px; }
#figure svg { max-width: 100%; height: auto; }
"""

_JS = r"""
(function () {
  const D = JSON.parse(document.getElementById('data').textContent);
  function unpack(b64, kind) {  // little-endian integers -> Float64Array of n / scale
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
    const view = new DataView(bytes.buffer);
    const size = kind === 'int16' ? 2 : 4;
    const out = new Float64Array(bytes.length / size);
    for (let k = 0; k < out.length; k++) {
      const n = size === 2 ? view.getInt16(2 * k, true) : view.getInt32(4 * k, true);
      out[k] = n / D.scale;
    }
    return out;
  }
  D.values = D.values.map(function (layer) {
    const o = {};
    for (const q of D.quantities) o[q] = unpack(layer[q], D.kinds[q]);
    return o;
  });
  const layerSel = document.getElementById('layer');
  const cellIn = document.getElementById('cell');
  const qSel = document.getElementById('quantity');
  const box = document.getElementById('text');
  for (let l = 0; l < D.layers; l++) layerSel.add(new Option('layer ' + l, String(l)));
  for (const q of D.quantities) qSel.add(new Option(D.labels[q], q));
  cellIn.max = String(D.hidden - 1);
  layerSel.value = String(D.initial.layer);
  cellIn.value = String(D.initial.cell);
  qSel.value = 'tanh_c';
  const spans = [];
  const shown = {'\n': '\u21b5\n', '\t': '\u21e5   '};
  for (let t = 0; t < D.text.length; t++) {
    const s = document.createElement('span');
    const ch = D.text[t];
    s.textContent = shown[ch] || ch;
    s.dataset.t = String(t);
    s.id = 'ch-' + t;
    spans.push(s);
    box.appendChild(s);
  }
  function state() {
    const layer = Math.max(0, Math.min(D.layers - 1, parseInt(layerSel.value, 10) || 0));
    let cell = parseInt(cellIn.value, 10);
    if (!(cell >= 0)) cell = 0;
    cell = Math.min(D.hidden - 1, cell);
    return {layer: layer, cell: cell, q: qSel.value};
  }
  function value(layer, q, t, cell) { return D.values[layer][q][t * D.hidden + cell]; }
  function colour(q, v, scale) {
    if (q === 'i' || q === 'f' || q === 'o') {  // in [0, 1]: white to green
      const a = Math.max(0, Math.min(1, v));
      return 'rgba(30, 150, 60, ' + a.toFixed(3) + ')';
    }
    const a = Math.max(-1, Math.min(1, v / scale));  // signed: blue < 0 < red
    return a >= 0 ? 'rgba(214, 39, 40, ' + a.toFixed(3) + ')'
                  : 'rgba(31, 119, 180, ' + (-a).toFixed(3) + ')';
  }
  function paint() {
    const s = state();
    let scale = 1;
    if (s.q === 'c') {
      scale = 1e-9;
      for (let t = 0; t < spans.length; t++) {
        scale = Math.max(scale, Math.abs(value(s.layer, 'c', t, s.cell)));
      }
    }
    for (let t = 0; t < spans.length; t++) {
      spans[t].style.background = colour(s.q, value(s.layer, s.q, t, s.cell), scale);
    }
    document.getElementById('scale').textContent =
      s.q === 'c' ? 'colour: c / max|c| = ' + scale.toFixed(4) : '';
  }
  // the diagram: every [data-q] element's width (or fill) and colour follow its value
  const marks = Array.from(document.querySelectorAll('#diagram [data-q]'))
    .filter(function (e) { return !e.closest('.absent'); });
  const GATE = {i: true, f: true, o: true};
  const C_LIKE = {c: 'c', c_prev: 'c', fc: 'c', ig: 'c', h_prev: 'h'};
  function unitScale(s) {  // max(1, max_t |q|) of the unit, per quantity
    const out = {};
    for (const q of D.quantities) {
      let m = 1;
      for (let t = 0; t < spans.length; t++) {
        m = Math.max(m, Math.abs(value(s.layer, q, t, s.cell)));
      }
      out[q] = m;
    }
    return out;
  }
  function cellValues(s, t) {
    const v = {};
    for (const q of D.quantities) v[q] = value(s.layer, q, t, s.cell);
    v.c_prev = t > 0 ? value(s.layer, 'c', t - 1, s.cell) : 0;
    v.h_prev = t > 0 ? value(s.layer, 'h', t - 1, s.cell) : 0;
    v.fc = v.f * v.c_prev;
    v.ig = v.i * v.g;
    return v;
  }
  let scales = null;
  function drawCell(s, t) {
    const v = cellValues(s, t);
    for (const q of D.diagram) {
      const e = document.getElementById('d-' + q);
      if (e) e.textContent = v[q].toFixed(4);
    }
    document.getElementById('d-x').textContent = '= ' + JSON.stringify(D.text[t]);
    for (const e of marks) {
      const q = e.dataset.q;
      const a = Math.min(1, Math.abs(v[q]) / (GATE[q] ? 1 : scales[C_LIKE[q] || q]));
      const hue = GATE[q] ? '30, 150, 60' : v[q] >= 0 ? '214, 39, 40' : '31, 119, 180';
      if (e.tagName === 'rect') {
        e.style.fill = 'rgba(' + hue + ', ' + (0.6 * a).toFixed(3) + ')';
      } else {
        e.style.stroke = 'rgb(' + hue + ')';
        e.style.strokeWidth = (1 + 5 * a).toFixed(2);
      }
    }
  }
  let current = -1;
  function show(t, scroll) {
    const s = state();
    if (current >= 0) spans[current].classList.remove('sel');
    current = t;
    spans[t].classList.add('sel');
    box.setAttribute('aria-activedescendant', spans[t].id);
    if (scroll) spans[t].scrollIntoView({block: 'nearest'});
    document.getElementById('step').textContent = String(t);
    const ch = D.text[t];
    document.getElementById('char').textContent = JSON.stringify(ch);
    document.getElementById('where').textContent = 'layer ' + s.layer + ', cell ' + s.cell;
    for (const q of D.quantities) {
      document.getElementById('v-' + q).textContent = value(s.layer, q, t, s.cell).toFixed(4);
    }
    drawCell(s, t);
  }
  // play / pause: one character per tick; clicking a character or a key pauses
  const playBtn = document.getElementById('play');
  const speed = document.getElementById('speed');
  let timer = null;
  function target(e) {
    const t = e.target && e.target.dataset ? e.target.dataset.t : undefined;
    return t === undefined ? -1 : parseInt(t, 10);
  }
  box.addEventListener('mouseover', function (e) {  // while playing, play owns the step
    const t = target(e);
    if (t >= 0 && timer === null) show(t);
  });
  function pause() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    playBtn.textContent = '\u25b6 play';
    playBtn.setAttribute('aria-pressed', 'false');
  }
  function tick() {
    if (current >= spans.length - 1) pause(); else show(current + 1, true);
  }
  function play() {
    if (current >= spans.length - 1) show(0, true);
    timer = setInterval(tick, parseInt(speed.value, 10));
    playBtn.textContent = '\u275a\u275a pause';
    playBtn.setAttribute('aria-pressed', 'true');
  }
  playBtn.addEventListener('click', function () { if (timer === null) play(); else pause(); });
  speed.addEventListener('change', function () { if (timer !== null) { pause(); play(); } });
  box.addEventListener('click', function (e) {
    const t = target(e);
    if (t < 0) return;
    pause();
    show(t);
    box.focus({preventScroll: true});
  });
  const KEYS = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1};
  box.addEventListener('keydown', function (e) {
    const last = spans.length - 1;
    let t = -1;
    if (e.key in KEYS) t = Math.max(0, Math.min(last, current + KEYS[e.key]));
    else if (e.key === 'Home') t = 0;
    else if (e.key === 'End') t = last;
    else if (e.key === ' ') { e.preventDefault(); playBtn.click(); return; }
    if (t < 0) return;
    e.preventDefault();
    pause();
    show(t, true);
  });
  function changed() { scales = unitScale(state()); paint(); if (current >= 0) show(current); }
  layerSel.addEventListener('change', changed);
  cellIn.addEventListener('change', changed);
  cellIn.addEventListener('input', changed);
  qSel.addEventListener('change', changed);
  const list = document.getElementById('top');
  for (const r of D.top) {
    const li = document.createElement('li');
    li.textContent = 'layer ' + r.layer + ' cell ' + r.cell + ': r = ' +
      (r.corr >= 0 ? '+' : '') + r.corr.toFixed(3) + ' with ' + r.feature;
    li.addEventListener('click', function () {
      layerSel.value = String(r.layer); cellIn.value = String(r.cell); changed();
    });
    list.appendChild(li);
  }
  scales = unitScale(state());
  paint();
  show(0);
  document.body.dataset.ready = '1';
})();
"""


def script_json(data: Any) -> str:
    """``data`` as JSON to embed in a ``<script>`` element: ``<``, ``>`` and ``&`` written as
    ``\\u003c``, ``\\u003e``, ``\\u0026`` (the same string to JSON.parse), so no text in it can
    end the element or open an HTML comment (``</script>``, ``<!--<script>``) whatever the
    parser's state."""
    blob = json.dumps(data, separators=(",", ":"))
    return blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(data: dict[str, Any], svg: str, variant: str) -> str:
    blob = script_json(data)
    rows = "".join(
        f'<tr><td>{_LABELS[q]}</td><td class="v" id="v-{q}">-</td></tr>' for q in QUANTITIES
    )
    speeds = "".join(
        f'<option value="{ms}"{" selected" if ms == 300 else ""}>{name}</option>'
        for name, ms in [("slow", 800), ("normal", 300), ("fast", 80)]
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lstmkit explorer</title>
<style>{_CSS}</style>
</head>
<body>
<h2>LSTM gates over the text</h2>
<div id="controls">
  <label>layer <select id="layer"></select></label>
  <label>cell (unit) <input id="cell" type="number" min="0" step="1" style="width:5em"></label>
  <label>colour by <select id="quantity"></select></label>
  <button id="play" type="button" aria-pressed="false">&#9654; play</button>
  <label>speed <select id="speed">{speeds}</select></label>
  <span class="legend">gates: white (0) to green (1); signed values: blue (&lt; 0) to red
  (&gt; 0). <span id="scale"></span></span>
</div>
<div id="text" tabindex="0" aria-label="the text: hover or click a character, or move with
the arrow keys (space plays and pauses)"></div>
<div id="panel">
  <div id="info">
    <div>step <b id="step">-</b> character <b id="char">-</b> (<span id="where"></span>)</div>
    <table>{rows}</table>
  </div>
  <div id="figure">{svg}
    <div class="legend">cell: {variant}. Arrows: width by |value| (c by the unit's largest
    |c|), green gates, red &gt; 0, blue &lt; 0; dashed: peepholes; grey: no gate.</div>
  </div>
  <div><b>interpretable cells</b> (click to select)<ol id="top"></ol></div>
</div>
<script type="application/json" id="data">{blob}</script>
<script>{_JS}</script>
</body>
</html>
"""


def write_explorer(
    traces: Sequence[dict[str, np.ndarray]],
    text: str,
    path: str | os.PathLike[str],
    top_cells: Sequence[dict[str, Any]] = (),
    initial: tuple[int, int] = (0, 0),
    options: LSTMOptions | None = None,
) -> Path:
    """Write the explorer page for ``traces`` (from :func:`explain.gate_traces`) of an LSTM
    with cell ``options`` (None: the plain LSTM) to path."""
    from lstmkit.train.variant import describe

    path = Path(path)
    data = explorer_data(traces, text, top_cells, initial, options)
    layer, cell = data["initial"]["layer"], data["initial"]["cell"]
    svg = cell_diagram(options, step_values(traces[layer], 0, cell))
    variant = describe(options.changed() if options else {})
    page = _page(data, svg, "plain LSTM" if variant == "no variant flags" else variant)
    path.write_text(page, encoding="utf-8")
    return path
