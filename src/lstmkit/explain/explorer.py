"""The LSTM's gates made visible, for a char-LM run over any text.

Everything is read from the forward pass's stored activations
(:meth:`lstmkit.LSTM.activations`); nothing re-implements the cell. Step t is the step
that reads character t, so every value lines up with the character that produced it.

* :func:`gate_traces` -> per layer, (T, H) arrays of i, f, g, o, c, tanh(c), h;
* :func:`gate_saturation` -> the fractions of time each gate is left-saturated (< 0.1)
  and right-saturated (> 0.9), per cell (Karpathy, Johnson & Fei-Fei 2015);
* :func:`text_features` and :func:`interpretable_cells` -> cells ranked by |correlation|
  of tanh(c) with simple text features;
* :func:`explain` writes the figures and the HTML explorer (:mod:`explain_html`).

    model, vocab = explain.load_run("runs/charlm")
    report = explain.explain(model, vocab, "def f(x):\n    return (x + 1)\n", "out/")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.train import files

__all__ = [
    "GATES",
    "explain",
    "format_top_cells",
    "gate_saturation",
    "gate_traces",
    "interpretable_cells",
    "load_run",
    "text_features",
]

# The quantities kept per step and cell: the gates, the candidate g, the cell state.
GATES = ("i", "f", "g", "o", "c", "tanh_c", "h")
SATURATION_GATES = ("i", "f", "o")


def load_run(run: str | os.PathLike[str]) -> tuple[Any, Any]:
    """The char-LM and vocabulary of a run folder (best, else latest, checkpoint) or file."""
    from lstmkit.text.train import load_model

    model, vocab, _, _ = load_model(Path(run))
    return model, vocab


def gate_traces(lstm: Any, x: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Run ``lstm`` over one sequence x (T, I) from a zero state and read its activations.

    Returns one dict per layer of float64 (T, H) arrays keyed by :data:`GATES`:
    i, f, g, o as stored by the forward pass, c_t (the state leaving step t: the next
    step's c_prev, the final state for the last step), tanh(c_t) and h_t = o * tanh(c_t)
    (before any projection).
    """
    if getattr(lstm.cell, "num_gates", None) != 4 or lstm.bidirectional:
        raise ValueError(f"lstm: expected a unidirectional LSTM, got {lstm!r}")
    was_training = lstm.training
    lstm.eval()
    try:
        _, state = lstm(x[:, None, :])  # (T, 1, I) -> (h_n, c_n[, a_n]), c_n (L, 1, H)
        c_n = state[1]
        acts = lstm.activations()
    finally:
        lstm.train(was_training)
    traces = []
    for layer in range(lstm.num_layers):
        a = {k: v[:, 0, :].astype(np.float64) for k, v in acts[f"_l{layer}"].items()}
        c = np.concatenate([a["c_prev"][1:], c_n[layer].astype(np.float64)], axis=0)  # (T, H)
        traces.append(
            {
                "i": a["i"],
                "f": a["f"],
                "g": a["g"],
                "o": a["o"],
                "c": c,
                "tanh_c": a["tanh_c"],
                "h": a["m"],
            }
        )
    return traces


def char_model_traces(model: Any, vocab: Any, text: str) -> list[dict[str, np.ndarray]]:
    """gate_traces for a char-LM with ``embed`` and ``lstm`` children over ``text``."""
    if not text:
        raise ValueError("text: expected at least one character, got an empty string")
    ids = vocab.encode(text)
    x = model.embed(ids)  # (T, E)
    return gate_traces(model.lstm, np.asarray(x, dtype=model.lstm.dtype))


def gate_saturation(
    traces: Sequence[dict[str, np.ndarray]], low: float = 0.1, high: float = 0.9
) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per layer and gate (i, f, o): (fraction of steps < low, fraction > high), each (H,)."""
    return [
        {g: ((tr[g] < low).mean(axis=0), (tr[g] > high).mean(axis=0)) for g in SATURATION_GATES}
        for tr in traces
    ]


# ---- text features and the interpretable-cell search ----------------------------------

_OPEN, _CLOSE = "([{", ")]}"


def text_features(text: str) -> dict[str, np.ndarray]:
    """Simple per-character features of ``text``, each (T,) float64, as seen after
    reading character t:

    * ``in_quote``: 1 inside a "..." or '...' string (the opening quote counts as inside,
      the closing one as outside);
    * ``bracket_depth``: nesting depth of (, [ and {;
    * ``line_position``: characters since the last newline (0 right after it);
    * ``indentation``: leading spaces/tabs of the line the character is on.
    """
    T = len(text)
    in_quote = np.zeros(T)
    depth = np.zeros(T)
    position = np.zeros(T)
    indentation = np.zeros(T)
    quote: str | None = None
    level = col = 0
    line_start = 0
    for t, ch in enumerate(text):
        if quote is None and ch in "\"'":
            quote = ch
        elif quote is not None and ch == quote:
            quote = None
        if quote is None:
            if ch in _OPEN:
                level += 1
            elif ch in _CLOSE:
                level = max(0, level - 1)
        in_quote[t] = quote is not None
        depth[t] = level
        position[t] = col
        col = 0 if ch == "\n" else col + 1
        if ch == "\n" or t == T - 1:
            line = text[line_start : t + 1]
            indentation[line_start : t + 1] = len(line) - len(line.lstrip(" \t"))
            line_start = t + 1
    return {
        "in_quote": in_quote,
        "bracket_depth": depth,
        "line_position": position,
        "indentation": indentation,
    }


def _correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of values (T, H) with feature (T,); 0 where
    either is constant."""
    v = values - values.mean(axis=0)
    f = feature - feature.mean()
    denom = np.sqrt((v * v).sum(axis=0) * (f @ f))
    return np.divide(f @ v, denom, out=np.zeros(values.shape[1]), where=denom > 0)


def interpretable_cells(
    traces: Sequence[dict[str, np.ndarray]],
    features: dict[str, np.ndarray],
    top: int = 8,
    quantity: str = "tanh_c",
) -> list[dict[str, Any]]:
    """The ``top`` (layer, cell, feature) triples by |corr(quantity, feature)|, best first.

    Each feature's best cell is always among them (so one strong feature, often the
    position in the line, cannot crowd out the others), then the best remaining ones.
    A cell appears at most once (with its best feature); constant features are skipped.
    """
    candidates = []
    for layer, tr in enumerate(traces):
        for name, feature in features.items():
            r = _correlations(tr[quantity], feature)
            for cell in range(r.shape[0]):
                candidates.append((abs(r[cell]), layer, cell, name, float(r[cell])))
    candidates.sort(key=lambda c: -c[0])
    firsts = []
    for name in features:  # each feature's best cell first, then everything by |r|
        firsts += [c for c in candidates if c[3] == name][:1]
    out: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for _, layer, cell, name, corr in firsts + candidates:
        if (layer, cell) in seen or corr == 0.0 or len(out) == top:
            continue
        seen.add((layer, cell))
        out.append({"layer": layer, "cell": cell, "feature": name, "corr": corr})
    return sorted(out, key=lambda r: -abs(r["corr"]))


def format_top_cells(top: Sequence[dict[str, Any]]) -> str:
    lines = ["interpretable cells (|correlation| of tanh(c) with a text feature):"]
    for k, r in enumerate(top, 1):
        lines.append(
            f"  {k:2d}. layer {r['layer']} cell {r['cell']:4d}  {r['feature']:<14} "
            f"r = {r['corr']:+.3f}"
        )
    return "\n".join(lines)


# ---- figures ------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _char_label(ch: str) -> str:
    return {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423"}.get(ch, ch)


def plot_heatmaps(
    traces: Sequence[dict[str, np.ndarray]],
    text: str,
    cells: Sequence[tuple[int, int]],
    path: Path,
    max_chars: int = 120,
) -> Path:
    """Heat maps of f, i, o and tanh(c) for the chosen (layer, cell)s over the first
    ``max_chars`` characters (one row per cell, one column per character)."""
    plt = _pyplot()
    n = min(len(text), max_chars)
    panels = [("f", "forget gate f", "Greens", 0, 1), ("i", "input gate i", "Greens", 0, 1)]
    panels += [("o", "output gate o", "Greens", 0, 1), ("tanh_c", "tanh(c)", "RdBu_r", -1, 1)]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(8, 0.13 * n + 2), 1.2 + 0.45 * len(cells) * len(panels))
    )
    labels = [f"L{layer} c{cell}" for layer, cell in cells]
    for ax, (key, title, cmap, vmin, vmax) in zip(axes, panels):
        data = np.stack([traces[layer][key][:n, cell] for layer, cell in cells])
        im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="none")
        ax.set_yticks(range(len(cells)), labels, fontsize=7)
        ax.set_xticks(range(n), [_char_label(ch) for ch in text[:n]], fontsize=6)
        ax.set_title(title, fontsize=9, loc="left")
        fig.colorbar(im, ax=ax, fraction=0.015, pad=0.01)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_trajectories(
    traces: Sequence[dict[str, np.ndarray]],
    text: str,
    cells: Sequence[tuple[int, int]],
    path: Path,
) -> Path:
    """c_t against t for the chosen cells, with newlines marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    for layer, cell in cells:
        ax.plot(traces[layer]["c"][:, cell], lw=1, label=f"layer {layer} cell {cell}")
    for t, ch in enumerate(text):
        if ch == "\n":
            ax.axvline(t, color="0.85", lw=0.5, zorder=0)
    ax.set_xlabel("character t (grey lines: newlines)")
    ax.set_ylabel("cell state c_t")
    ax.set_title("cell-state trajectories")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_saturation(
    saturation: Sequence[dict[str, tuple[np.ndarray, np.ndarray]]], path: Path
) -> Path:
    """Karpathy et al.'s scatter: per layer, each cell's gates as points (fraction of time
    left-saturated < 0.1, fraction right-saturated > 0.9)."""
    plt = _pyplot()
    L = len(saturation)
    fig, axes = plt.subplots(1, L, figsize=(4.2 * L, 4.2), squeeze=False)
    colors = {"i": "C2", "f": "C0", "o": "C3"}
    names = {"i": "input gate", "f": "forget gate", "o": "output gate"}
    for layer, ax in enumerate(axes[0]):
        for gate, (left, right) in saturation[layer].items():
            ax.scatter(left, right, s=10, alpha=0.6, color=colors[gate], label=names[gate])
        ax.plot([0, 1], [1, 0], color="0.7", lw=0.8)
        ax.set_xlim(-0.03, 1.03)  # points on the axes (never saturated) stay visible
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("fraction left-saturated (< 0.1)")
        ax.set_title(f"layer {layer}")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("fraction right-saturated (> 0.9)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_top_cells(
    traces: Sequence[dict[str, np.ndarray]],
    features: dict[str, np.ndarray],
    top: Sequence[dict[str, Any]],
    path: Path,
    max_chars: int = 600,
) -> Path:
    """For each top cell: tanh(c) over the first ``max_chars`` characters and its feature
    (scaled to [0, 1])."""
    plt = _pyplot()
    k = max(1, len(top))
    fig, axes = plt.subplots(k, 1, figsize=(10, 1.5 * k + 0.5), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], top):
        feature = features[r["feature"]]
        span = feature.max() - feature.min()
        scaled = ((feature - feature.min()) / span if span > 0 else feature)[:max_chars]
        ax.plot(traces[r["layer"]]["tanh_c"][:max_chars, r["cell"]], lw=0.9, label="tanh(c)")
        ax.plot(scaled, lw=0.9, color="0.5", alpha=0.7, label=r["feature"] + " (scaled)")
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(
            f"layer {r['layer']} cell {r['cell']}: r = {r['corr']:+.2f} with {r['feature']}",
            fontsize=8,
            loc="left",
        )
        ax.legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("character t")
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


# ---- the whole report -----------------------------------------------------------------


def explain(
    model: Any,
    vocab: Any,
    text: str,
    out_dir: str | os.PathLike[str],
    cells: Sequence[int] | None = None,
    top: int = 8,
    html_chars: int = 1000,
) -> dict[str, Any]:
    """Write heatmaps.png, trajectories.png, saturation.png, top_cells.png and
    explorer.html to ``out_dir``; returns {"top_cells", "saturation", "files"}.

    ``cells``: cells of the last layer to plot; by default the interpretable-cell search's
    best (up to 6). The statistics use the whole text; the explorer shows its first
    ``html_chars`` characters (every value of every cell is embedded: about 11 MB per
    1000 characters for a 2 x 256 LSTM), with the diagram of the model's cell variant.
    """
    from lstmkit.explain.html import write_explorer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    traces = char_model_traces(model, vocab, text)
    H, last = traces[0]["c"].shape[1], len(traces) - 1
    features = text_features(text)
    ranked = interpretable_cells(traces, features, top=top)
    if cells:
        bad = [c for c in cells if not 0 <= c < H]
        if bad:
            raise ValueError(f"cells: expected cells in [0, {H}), got {bad}")
        chosen = [(last, int(c)) for c in cells]
    else:
        chosen = [(r["layer"], r["cell"]) for r in ranked[:6]] or [(last, 0)]
    saturation = gate_saturation(traces)
    files = [
        plot_heatmaps(traces, text, chosen, out / "heatmaps.png"),
        plot_trajectories(traces, text, chosen, out / "trajectories.png"),
        plot_saturation(saturation, out / "saturation.png"),
        plot_top_cells(traces, features, ranked, out / "top_cells.png"),
        write_explorer(
            [{q: v[:html_chars] for q, v in tr.items()} for tr in traces],
            text[:html_chars],
            out / "explorer.html",
            ranked,
            initial=chosen[0],
            options=getattr(model.lstm.cell, "options", None),
        ),
    ]
    return {"top_cells": ranked, "saturation": saturation, "files": files}
