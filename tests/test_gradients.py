"""Per-step state gradients against finite differences; decay rates; the command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.memory import gradients, tasks, train


def _unrolled_loss(model: train.SequenceModel, x: np.ndarray, y: np.ndarray, t: int, delta):
    """Per-sequence squared error of the last step's prediction, computed step by step
    with ``layer.step``, adding ``delta`` (a tuple like the state) to the state leaving
    step t. Independent of the batched forward/backward under test."""
    rnn = model.rnn
    state = None
    for s in range(x.shape[0]):
        _, state = rnn.step(x[s], state)
        parts = list(state) if isinstance(state, tuple) else [state]  # each (1, N, .)
        if s == t:
            parts = [p + d[None] for p, d in zip(parts, delta)]
        state = tuple(parts) if isinstance(state, tuple) else parts[0]
    h = parts[0][0]  # (N, H): what the read-out sees after the last step
    pred = model.head(h)  # (N, 1)
    return ((pred - y) ** 2)[:, 0]  # (N,)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm", "lstm-noforget"])
def test_state_gradient_norms_match_finite_differences(kind: str) -> None:
    task = tasks.AddingTask(6)
    batch = task.sample(3, rng=0)
    model = train.SequenceModel(kind, 2, 4, 1, "last", seed=1, dtype=np.float64)
    if kind == "lstm":
        train.initialise(model, "forget1", 6, None)
    norms = gradients.state_gradient_norms(model, task, batch)
    x, y = batch.x.astype(np.float64), batch.y.astype(np.float64)
    T, N, H = x.shape[0], x.shape[1], 4
    names = ["h", "c"] if model.is_lstm else ["h"]
    eps = 1e-6
    for which, name in enumerate(names):
        fd = np.zeros((T, N, H))
        for t in range(T):
            for j in range(H):
                delta = [np.zeros((N, H)) for _ in names]
                delta[which][:, j] = eps
                up = _unrolled_loss(model, x, y, t, tuple(delta))
                delta[which][:, j] = -eps
                down = _unrolled_loss(model, x, y, t, tuple(delta))
                fd[t, :, j] = (up - down) / (2 * eps)  # each sequence's own loss
        expected = np.linalg.norm(fd, axis=2).mean(axis=1)
        np.testing.assert_allclose(norms[name], expected, rtol=1e-6, atol=1e-12)
    if model.is_lstm:
        assert norms["c"][-1] == 0.0  # nothing after the last step reads c_T
    assert all(g.sum() == 0 for g in model.grads.values())  # left zeroed


def test_decay_rate_of_a_known_exponential() -> None:
    distance = np.arange(40)[::-1]
    norms = 3.0 * 0.8**distance
    assert gradients.decay_rate(norms) == pytest.approx(math.log(0.8), rel=1e-9)
    norms[-1] = 0.0  # an exact zero (dL/dc at the last step) is left out
    assert gradients.decay_rate(norms) == pytest.approx(math.log(0.8), rel=1e-9)
    assert math.isnan(gradients.decay_rate(np.array([0.0, 1.0])))


def test_rnn_gradients_vanish_faster_than_the_lstm_at_init() -> None:
    config = gradients.GradientsConfig(hidden=16, batch=8, train_steps=2)
    rows, curves = gradients.measure(["rnn", "lstm"], "adding", 40, 0, config)
    rate = {(r["model"], r["phase"]): r["h_decay_per_step"] for r in rows}
    assert rate[("rnn", "init")] < 2 * rate[("lstm", "init")] < 0
    assert curves[("lstm", "init")]["c"].shape == (40,)
    assert "c" not in curves[("rnn", "init")]
    assert [r["train_steps"] for r in rows] == [0, 2, 0, 2]


def test_gradients_command(tmp_path, capsys) -> None:
    argv = ["gradients", "--lag", "12", "--models", "gru,lstm", "--train-steps", "2"]
    assert main(argv + ["--hidden", "8", "--batch", "4", "--out", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["model"], r["phase"]) for r in rows] == [
        ("gru", "init"),
        ("gru", "trained"),
        ("lstm", "init"),
        ("lstm", "trained"),
    ]
    assert all(r["h_decay_per_step"] < 0 for r in rows)
    assert (tmp_path / "gradient_norms.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "gradients.json").read_text())
    assert len(saved["norms"]["lstm/init"]["h"]) == 12
    assert main(["gradients", "--task", "temporal", "--lag", "3", "--out", str(tmp_path)]) == 1
