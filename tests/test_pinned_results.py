"""Results pinned before the redesign: the same seed and configuration give the same bits.

``tests/data/pinned_results.npz`` was written by this file's ``--regenerate`` on the code
before the layout and the execution strategies moved (commit ed2caec). Every array below is
compared bit for bit: a refactoring that changes one rounding anywhere (layers in float32
and float64, every fused path, streaming, the three trainers) fails here and names the
array. Regenerated twice since, each time with the change named in its commit: float64
layers now run the reference (<= 2.2e-16), and the fused kernel's three copies of the cell
became one (float32 entries <= 3.4e-7 relative, 1-2 ulp); float32 GRU layers run a fused
kernel and streaming step (gru32, float32 rounding). Regenerated on 2026-12-03 on the
machine it names, the pins written elsewhere (<= 2.8e-7 relative): bit for bit on that
machine, to rounding on another CPU (``tests/pins.py``). Regenerated on 2026-12-03 again:
the split loops' inference runs the cell in registers (``cell_split._cells_infer``), whose
vectorised loop rounds its divisions otherwise (the two ``y_inference`` of lstm32_split and
lstm32_split_bi, <= 2.6e-7 relative). Regenerated on 2026-12-03 a third time: the
softmax cross-entropy's gradient is exp(z - max) / (sum n) instead of exp(log p) / n (one
exp fewer; only the char-LM's arrays moved, <= 3.9e-7 relative), and the float32 ``tanh``
of the kernels divides exactly in vectorised loops too (no reciprocal estimate, as in
their scalar versions, so that a result no longer depends on which of the two LLVM runs,
which depended on addresses: docs/forecasting.md), float32 entries <= 2.9e-7 relative.
The reference path itself is
pinned from ed2caec unchanged in ``test_pinned_reference.py``. The pins are written with
numba's default thread count on this 2-core machine (as CI runs): under
``NUMBA_NUM_THREADS=1`` the split LSTM's backward sums in another order and lstm32_split's
gradients move by ~1e-7 relative (measured 2026-12-03), which this file reports. To accept
an intended change of results, regenerate and say why in the commit::

    python tests/test_pinned_results.py --regenerate
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pins
import pytest

import lstmkit as lk

DATA = Path(__file__).parent / "data" / "pinned_results.npz"

# (name, layer class, constructor kwargs, (T, N), lengths or None, dtype)
LAYERS = [
    ("lstm64_ref", lk.LSTM, dict(input_size=5, hidden_size=8, num_layers=2,
                                 bidirectional=True, proj_size=3), (7, 3), [7, 4, 1], np.float64),
    ("lstm32_small", lk.LSTM, dict(input_size=5, hidden_size=16), (9, 4), [9, 9, 5, 2],
     np.float32),
    ("lstm32_proj", lk.LSTM, dict(input_size=6, hidden_size=32, proj_size=8, num_layers=2),
     (6, 5), None, np.float32),
    ("lstm32_split", lk.LSTM, dict(input_size=32, hidden_size=128), (6, 16), None, np.float32),
    ("lstm32_split_bi", lk.LSTM, dict(input_size=32, hidden_size=128, bidirectional=True),
     (5, 32), [5] * 16 + [3] * 16, np.float32),
    ("lstm32_noforget", lk.LSTM, dict(input_size=4, hidden_size=8, forget_gate=False), (6, 2),
     None, np.float32),
    ("gru32", lk.GRU, dict(input_size=5, hidden_size=12, num_layers=2), (8, 3), [8, 5, 2],
     np.float32),
    ("rnn64_relu", lk.RNN, dict(input_size=5, hidden_size=7, nonlinearity="relu",
                                bidirectional=True), (6, 2), None, np.float64),
]  # fmt: skip


def _layer_results(name, cls, kwargs, shape, lengths, dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, name)))
    layer = cls(**kwargs, dtype=dtype, seed=sum(map(ord, name)))
    T, N = shape
    x = rng.standard_normal((T, N, kwargs["input_size"])).astype(dtype)
    y, state = layer(x, lengths=lengths)
    out = {"y": y}
    parts = state if isinstance(state, tuple) else (state,)
    for k, s in enumerate(parts):
        out[f"state{k}"] = s
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dstate = layer.backward(dy)
    out["dx"] = dx
    for k, s in enumerate(dstate if isinstance(dstate, tuple) else (dstate,)):
        out[f"dstate{k}"] = s
    for key, g in layer.grads.items():
        out[f"grad.{key}"] = g
    y_inf, _ = layer(x, lengths=lengths, inference=True)
    out["y_inference"] = y_inf
    if not kwargs.get("bidirectional"):
        h = None
        steps = []
        for t in range(T):
            y_t, h = layer.step(x[t], h)
            steps.append(y_t)
        out["y_step"] = np.stack(steps)
    return {f"{name}/{k}": v for k, v in out.items()}


def _charlm_results(tmp: Path) -> dict[str, np.ndarray]:
    from lstmkit.text import train

    text = tmp / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    config = train.TrainConfig(
        embed=8,
        hidden=16,
        layers=2,
        dropout=0.1,
        seq_len=12,
        batch=4,
        steps=7,
        eval_every=5,
        eval_chars=300,
        seed=3,
    )
    train.train(config, tmp / "lm", [str(text)], show_progress=False, log=lambda s: None)
    return _checkpoint_arrays(tmp / "lm" / "latest.npz", "charlm")


def _series_results(tmp: Path) -> dict[str, np.ndarray]:
    from lstmkit.series import data, train

    t = np.arange(90)
    values = np.sin(t / 5.0) * 3 + 0.05 * t
    series = data.Series(values, None, "v", None, "mem")
    config = train.TrainConfig(lookback=8, horizon=4, hidden=8, batch=8, steps=9, eval_every=4)
    train.train(config, tmp / "fc", series, show_progress=False, log=lambda s: None)
    return _checkpoint_arrays(tmp / "fc" / "latest.npz", "series")


def _memory_results() -> dict[str, np.ndarray]:
    from lstmkit.memory import tasks, train

    config = train.MemoryConfig(hidden=8, batch=8, budget_seconds=1e9, max_steps=6, eval_every=3)
    task = tasks.make_task("adding", 10)
    rng = np.random.default_rng(5)
    model = train.SequenceModel("lstm", task.input_size, 8, task.output_size, task.scored, seed=rng)
    train.initialise(model, "chrono", task.lag, rng)
    train.train_model(task, model, config, rng)
    return {f"memory/{k}": v.copy() for k, v in model.parameters().items()}


def _checkpoint_arrays(path: Path, prefix: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {f"{prefix}/{k}": z[k] for k in z.files if k.startswith(("model/", "optim/"))}


def compute(tmp: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for spec in LAYERS:
        out.update(_layer_results(*spec))
    out.update(_charlm_results(tmp))
    out.update(_series_results(tmp))
    out.update(_memory_results())
    return out


def test_results_are_the_pinned_bits(tmp_path):
    if not DATA.exists():
        pytest.fail(f"{DATA} is missing; it is part of the repository")
    differ = pins.differences(compute(tmp_path), DATA)
    assert not differ, "results changed:\n" + "\n".join(differ)


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        arrays = compute(Path(d))
    pins.save(DATA, arrays)
    print(f"wrote {len(arrays)} arrays to {DATA}")
