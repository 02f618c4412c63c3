"""Truncated BPTT: the window layout, resuming from a window index, and the gradients of a
windowed LSTM run against torch with the state detached at every window boundary."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.nn.recurrent import LSTM
from lstmkit.text.tbptt import carry_state, num_windows, windows

torch = pytest.importorskip("torch")


def test_layout_by_hand():
    tokens = np.arange(21)  # L = (21 - 1) // 2 = 10 steps per stream
    got = list(windows(tokens, batch_size=2, seq_len=4))
    assert len(got) == num_windows(21, 2, 4) == 3
    x0, y0 = got[0]
    np.testing.assert_array_equal(x0, [[0, 10], [1, 11], [2, 12], [3, 13]])
    np.testing.assert_array_equal(y0, x0 + 1)
    x2, y2 = got[2]  # the short last window
    np.testing.assert_array_equal(x2, [[8, 18], [9, 19]])
    np.testing.assert_array_equal(y2, [[9, 19], [10, 20]])
    assert [x.shape for x, _ in windows(tokens, 2, 4, drop_last=True)] == [(4, 2), (4, 2)]
    assert num_windows(21, 2, 4, drop_last=True) == 2


def test_streams_are_contiguous_and_cover_the_text():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=1003)
    B, T = 4, 7
    xs, ys = zip(*windows(tokens, B, T))
    x, y = np.concatenate(xs), np.concatenate(ys)  # (L, B)
    L = (1003 - 1) // B
    assert x.shape == (L, B)
    for b in range(B):
        np.testing.assert_array_equal(x[:, b], tokens[b * L : (b + 1) * L])
        np.testing.assert_array_equal(y[:, b], tokens[b * L + 1 : (b + 1) * L + 1])


def test_start_resumes_at_the_same_window():
    tokens = np.random.default_rng(1).integers(0, 9, size=500)
    full = list(windows(tokens, 3, 8))
    for k in (0, 5, len(full) - 1, len(full)):
        tail = list(windows(tokens, 3, 8, start=k))
        assert len(tail) == len(full) - k
        for (a, b), (c, d) in zip(tail, full[k:]):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_validation():
    with pytest.raises(ValueError, match="at least batch_size \\+ 1 = 5 tokens, got 4"):
        list(windows(np.arange(4), 4, 2))
    with pytest.raises(ValueError, match="1-D integer"):
        windows(np.zeros(10), 2, 2)
    with pytest.raises(ValueError, match=r"start: expected a window index in \[0, 3\]"):
        windows(np.arange(21), 2, 4, start=4)
    with pytest.raises(ValueError, match="seq_len"):
        windows(np.arange(21), 2, 0)


def test_carry_state_copies():
    h, c = np.ones((1, 2, 3)), np.zeros((1, 2, 3))
    h2, c2 = carry_state((h, c))
    assert np.array_equal(h2, h) and h2 is not h and not np.shares_memory(c2, c)
    assert carry_state(None) is None
    assert carry_state(h).base is None


def test_windowed_lstm_matches_torch_truncated_bptt():
    """Forward over windows with the carried state equals one long forward; gradients equal
    torch's with ``.detach()`` on the state between windows."""
    rng = np.random.default_rng(2)
    I, H, B, T = 3, 5, 2, 4
    tokens = rng.integers(0, I, size=2 * 23 + 1)  # L = 23: five windows, the last of 3 steps
    table = rng.standard_normal((I, I))  # a fixed input embedding
    lstm = LSTM(I, H, num_layers=2, dtype=np.float64, seed=0)
    ref = torch.nn.LSTM(I, H, num_layers=2, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    n = num_windows(tokens.size, B, T)
    Rs = [rng.standard_normal((T, B, H)) for _ in range(n)]

    state, outputs = None, []
    for (x_ids, _), R in zip(windows(tokens, B, T), Rs):
        y, final = lstm(table[x_ids], state)
        lstm.backward(R[: len(y)])  # loss = sum(y * R); gradient flows within the window
        outputs.append(y)
        state = carry_state(final)

    t_state, t_outputs = None, []
    for (x_ids, _), R in zip(windows(tokens, B, T), Rs):
        y, (h, c) = ref(torch.from_numpy(table[x_ids]), t_state)
        (y * torch.from_numpy(R[: len(y)])).sum().backward()
        t_outputs.append(y.detach().numpy())
        t_state = (h.detach(), c.detach())

    whole, _ = LSTM(I, H, num_layers=2, dtype=np.float64, seed=0).eval()(
        table[np.concatenate([x for x, _ in windows(tokens, B, T)])]
    )
    np.testing.assert_allclose(np.concatenate(outputs), whole, rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.concatenate(outputs), np.concatenate(t_outputs), atol=1e-14)
    np.testing.assert_allclose(state[1], t_state[1].numpy(), atol=1e-14)
    for name, p in ref.named_parameters():
        g = lstm.grads[name]
        assert np.abs(g - p.grad.numpy()).max() < 1e-12 * np.abs(p.grad.numpy()).max(), name
    # and truncation matters: full BPTT over the concatenated sequence differs
    full = LSTM(I, H, num_layers=2, dtype=np.float64, seed=0)
    full(table[np.concatenate([x for x, _ in windows(tokens, B, T)])])
    full.backward(np.concatenate([R[: len(y)] for R, y in zip(Rs, outputs)]))
    assert not np.allclose(full.grads["weight_hh_l0"], lstm.grads["weight_hh_l0"])
