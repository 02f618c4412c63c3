"""The reference path (the NumPy loop over the cells' equations) gives the bits it gave
before the redesign.

``tests/data/pinned_reference.npz`` was written by this file's ``--regenerate`` on the code
before the layout and the execution strategies moved (commit ed2caec), every layer run with
``impl = "reference"``. Unlike ``test_pinned_results.py`` (whose fused float32 entries moved
by 1-2 ulp when the kernel's three copies of the cell became one), these are not meant to
change: the reference is the definition of the model. The file records the machine that
wrote it: bit for bit there, to rounding on another CPU (``tests/pins.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pins

import lstmkit as lk

DATA = Path(__file__).parent / "data" / "pinned_reference.npz"

# (name, layer class, constructor kwargs, (T, N), lengths or None, dtype)
LAYERS = [
    ("lstm64", lk.LSTM, dict(input_size=5, hidden_size=8, num_layers=2, bidirectional=True,
                             proj_size=3), (7, 3), [7, 4, 1], np.float64),
    ("lstm32", lk.LSTM, dict(input_size=5, hidden_size=16, num_layers=2), (9, 4),
     [9, 9, 5, 2], np.float32),
    ("lstm32_noforget", lk.LSTM, dict(input_size=4, hidden_size=8, forget_gate=False), (6, 2),
     None, np.float32),
    ("gru64", lk.GRU, dict(input_size=5, hidden_size=6, bidirectional=True), (5, 3), [5, 2, 4],
     np.float64),
    ("rnn32", lk.RNN, dict(input_size=3, hidden_size=7, num_layers=2), (6, 2), None,
     np.float32),
]  # fmt: skip


def _results(name, cls, kwargs, shape, lengths, dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, name)))
    layer = cls(**kwargs, dtype=dtype, seed=sum(map(ord, name)))
    layer.impl = "reference"
    T, N = shape
    x = rng.standard_normal((T, N, kwargs["input_size"])).astype(dtype)
    y, state = layer(x, lengths=lengths)
    out = {"y": y}
    for k, s in enumerate(state if isinstance(state, tuple) else (state,)):
        out[f"state{k}"] = s
    dx, dstate = layer.backward(rng.standard_normal(y.shape).astype(dtype))
    out["dx"] = dx
    for k, s in enumerate(dstate if isinstance(dstate, tuple) else (dstate,)):
        out[f"dstate{k}"] = s
    out.update({f"grad.{key}": g for key, g in layer.grads.items()})
    if not kwargs.get("bidirectional"):
        h, steps = None, []
        for t in range(T):
            y_t, h = layer.step(x[t], h)
            steps.append(y_t)
        out["y_step"] = np.stack(steps)
    return {f"{name}/{k}": v for k, v in out.items()}


def compute() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for spec in LAYERS:
        out.update(_results(*spec))
    return out


def test_the_reference_gives_the_bits_it_gave_before_the_redesign() -> None:
    differ = pins.differences(compute(), DATA)
    assert not differ, "results changed:\n" + "\n".join(differ)


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    pins.save(DATA, compute())
    print(f"wrote {DATA}")
