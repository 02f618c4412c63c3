"""Small refusals and exactness at the library's boundary (issue 15, item 10)."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.nn.recurrent import _uniform
from lstmkit.text.sample import next_char_distribution


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_step_and_forward_refuse_a_batch_of_zero(dtype, impl) -> None:
    layer = lk.LSTM(3, 4, num_layers=2, dtype=dtype, seed=0)
    layer.impl = impl
    with pytest.raises(ValueError, match=r"x_t: expected at least one sequence \(N >= 1\)"):
        layer.step(np.zeros((0, 3), dtype))
    with pytest.raises(ValueError, match="at least one time step and one sequence"):
        layer.forward(np.zeros((5, 0, 3), dtype))
    y, _ = layer.step(np.zeros((2, 3), dtype))  # one or more still steps
    assert y.shape == (2, 4)


@pytest.mark.parametrize(
    "given,hint",
    [
        (np.complex64, "complex values are not supported"),
        (np.complex128, "complex values are not supported"),
        (np.float16, r"convert with .astype\(np.float32\) \(layers are float32 or float64\)"),
        (np.float64, "build the layer with dtype=np.float64"),
    ],
)
def test_a_dtype_error_suggests_only_dtypes_a_layer_has(given, hint) -> None:
    layer = lk.LSTM(3, 4, dtype=np.float32, seed=0)
    with pytest.raises(TypeError, match=hint) as info:
        layer.forward(np.zeros((2, 1, 3), given))
    assert "dtype=np.complex" not in str(info.value)
    assert "dtype=np.float16" not in str(info.value)


def test_top_k_keeps_exactly_k_on_ties() -> None:
    logits = np.array([0.0, 2.0, 1.0, 1.0, 1.0, 1.0, -3.0])
    for k in range(1, 7):  # id 0 (<unk>, logit 0.0) is 6th: kept by k = 6, never emitted
        p = next_char_distribution(logits, 1.0, top_k=k)
        assert np.count_nonzero(p) == min(k, 5) and np.isclose(p.sum(), 1.0)
    p = next_char_distribution(logits, 1.0, top_k=3)  # 2.0, then two of the four 1.0 ties
    assert np.count_nonzero(p) == 3 and p[1] > p[2] == p[3] > 0 and p[4] == p[5] == 0
    # without ties, the same distribution as before: the k largest, renormalised
    z = np.random.default_rng(0).standard_normal(50)
    p = next_char_distribution(z, 0.7, top_k=10)
    top = np.argsort(z)[-10:]
    expected = np.exp((z[top] - z[top].max()) / 0.7)
    if 0 in top:
        expected[list(top).index(0)] = 0.0
    assert np.allclose(p[top], expected / expected.sum()) and np.count_nonzero(p) <= 10


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_sampling_refuses_a_temperature_that_is_no_temperature(temperature) -> None:
    from lstmkit.text.corpus import Vocab
    from lstmkit.text.model import CharLM, CharLMConfig
    from lstmkit.text.sample import generate

    vocab = Vocab.build("abc")
    model = CharLM(CharLMConfig(vocab_size=len(vocab), embed=4, hidden=4, layers=1), seed=0)
    with pytest.raises(ValueError, match="temperature: expected a finite number > 0"):
        next(generate(model, vocab, "a", 3, temperature=temperature))


def test_float32_initialisation_is_drawn_in_chunks_with_the_same_numbers() -> None:
    """No float64 copy of a float32 layer's parameters, and exactly the numbers of one
    float64 draw rounded to float32 (so every pinned result stays): the generator's stream
    is the same drawn in chunks, and its state after is the same too."""
    for shape in [(1,), (7, 3), (4 * 300, 301), (3 * 65536 + 5,)]:
        a, b = np.random.default_rng(5), np.random.default_rng(5)
        expected = a.uniform(-0.05, 0.05, size=shape).astype(np.float32)
        got = _uniform(b, 0.05, shape, np.float32)
        assert got.dtype == np.float32 and np.array_equal(got, expected)
        assert a.random() == b.random()
    layer32 = lk.LSTM(5, 6, num_layers=2, dtype=np.float32, seed=3)
    layer64 = lk.LSTM(5, 6, num_layers=2, dtype=np.float64, seed=3)
    for name, value in layer32.state_dict().items():
        assert np.array_equal(value, layer64.state_dict()[name].astype(np.float32)), name
