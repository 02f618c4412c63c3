"""The LSTM's inference with the batch split across threads (kernels/lstm_row_split.py: each
thread its rows for all steps, where the general path splits the cells and waits at every
step).

Here at small sizes, with the splitting limits lowered so that two threads share the work.
The same operations as the split loops' on one block of cells, so the results are the
general path's bit for bit (the general path forced by ``WEIGHTS_UP_TO = 0``); and, as an
independent oracle, the reference loop (``impl="reference"``, NumPy's cells) to float32
rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.kernels import lstm_row_split

I, H, T = 6, 32, 7
SPLIT = lk.Execution(threads=2, split_from=0, min_work=0, min_cells=8, min_rows=2)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row split's layer calls, counted (N of each)."""
    seen: list[int] = []
    layer = lstm_row_split.layer

    def counted(weights, x, *args):  # type: ignore[no-untyped-def]
        seen.append(x.shape[1])
        return layer(weights, x, *args)

    monkeypatch.setattr(lstm_row_split, "layer", counted)
    return seen


def _run(layer: lk.LSTM, x: np.ndarray, state: object, ex: lk.Execution) -> list[np.ndarray]:
    y, (h, c) = layer(x, state, inference=True, execution=ex)
    return [y, h, c]


def _general(
    layer: lk.LSTM,
    x: np.ndarray,
    state: object,
    monkeypatch: pytest.MonkeyPatch,
    ex: lk.Execution = SPLIT,
) -> list[np.ndarray]:
    """The general path's results (the row split turned off)."""
    with monkeypatch.context() as m:
        m.setattr(lstm_row_split, "WEIGHTS_UP_TO", 0)
        return _run(layer, x, state, ex)


@pytest.mark.parametrize(
    ("N", "kwargs", "with_state", "threads"),
    [(6, {}, False, 2), (5, {}, True, 2), (4, {"bias": False}, False, 2),
     (7, {"num_layers": 2}, True, 2), (5, {}, True, 1)],
)  # fmt: skip
def test_row_split_is_the_general_path_bit_for_bit(N, kwargs, with_state, threads, calls,
                                                   monkeypatch):  # fmt: skip
    layer = lk.LSTM(I, H, seed=3, **kwargs)
    layer.eval()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    L = layer.num_layers
    state = tuple(rng.standard_normal((L, N, H)).astype(np.float32) for _ in range(2))
    state = state if with_state else None
    ex = SPLIT.with_threads(threads)
    ours = _run(layer, x, state, ex)
    assert calls == [N] * L
    general = _general(layer, x, state, monkeypatch, ex)
    assert calls == [N] * L  # (the general path did not take it)
    for a, b in zip(ours, general, strict=True):
        np.testing.assert_array_equal(a, b)
    reference = _run(layer, x, state, lk.Execution(impl="reference"))  # independent
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_row_split_sees_in_place_updates(calls, monkeypatch):
    """The kept weights are made again where the live ones changed."""
    layer = lk.LSTM(I, H, seed=4)
    layer.eval()
    x = np.random.default_rng(2).standard_normal((T, 6, I)).astype(np.float32)
    before = _run(layer, x, None, SPLIT)[0]
    params = layer.parameters()
    for name, index in (("weight_hh_l0", (H + 3, 1)), ("weight_ih_l0", (5, 2)),
                        ("bias_hh_l0", (2 * H + 1,))):  # fmt: skip
        params[name][index] += np.float32(0.5)
        after = _run(layer, x, None, SPLIT)[0]
        assert not np.array_equal(after, before)
        np.testing.assert_array_equal(after, _general(layer, x, None, monkeypatch)[0])
        before = after
    assert len(calls) == 4


def test_row_split_applies_where_the_general_path_runs_the_split_loops():
    assert lstm_row_split.applies(T, 6, I, H, SPLIT)
    assert lstm_row_split.applies(T, 1, I, H, SPLIT.with_threads(1))  # one block
    assert not lstm_row_split.applies(T, 3, I, H, SPLIT)  # fewer than 2 x min_rows rows
    assert not lstm_row_split.applies(T, 6, I, 1024, SPLIT)  # weights past WEIGHTS_UP_TO
    assert not lstm_row_split.applies(T, 6, I, H, lk.Execution(threads=2))  # too small
