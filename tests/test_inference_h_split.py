"""The GRU's and RNN's inference loop split by cells (kernels/h_split.py: from 8 MB of W_hh,
each thread on a block of cells, the products with the weights as the left matrix).

Here at small sizes, by lowering ``Execution.transposed_from`` (and the splitting limits, so
that two threads share the cells). The oracle is the reference loop (``impl="reference"``,
NumPy's cells); the products sum in another order than either path's, so the comparison is
to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.kernels import h_split, parallel

I, H, T = 5, 40, 7


def _split(threads: int) -> lk.Execution:
    """The split loop at any size, on ``threads`` blocks of cells."""
    return lk.Execution(transposed_from=0, min_work=0, min_cells=8, threads=threads)


def _layer(cell: str, seed: int = 0, **kwargs: object) -> lk.GRU | lk.RNN:
    if cell == "RNN_relu":
        layer = lk.RNN(I, H, nonlinearity="relu", seed=seed, **kwargs)
    else:
        layer = getattr(lk, cell)(I, H, seed=seed, **kwargs)
    layer.eval()
    return layer


def _inputs(layer: lk.GRU | lk.RNN, N: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    h0 = rng.standard_normal((layer.num_layers, N, H)).astype(np.float32)
    return x, h0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("cell", "N", "kwargs"),
    [("GRU", 6, {}), ("GRU", 1, {}), ("GRU", 3, {"num_layers": 2}), ("GRU", 4, {"bias": False}),
     ("RNN", 6, {}), ("RNN_relu", 5, {})],
)  # fmt: skip
def test_split_inference_equals_the_reference(cell, N, kwargs, threads):
    layer = _layer(cell, **kwargs)
    ex = _split(threads)
    W_hh = layer.parameters()["weight_hh_l0"]
    assert h_split.applies(W_hh, ex)
    assert len(parallel.cell_blocks(H, T * N * H * W_hh.shape[0], ex)) == threads
    x, h0 = _inputs(layer, N)
    y, h_n = layer(x, h0, inference=True, execution=ex)
    assert layer.__dict__["_inferrer_kept"][1](x, h0, [{}] * layer.num_layers) is not None
    y_ref, h_ref = layer(x, h0, inference=True, execution=lk.Execution(impl="reference"))
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(h_n, h_ref, rtol=1e-5, atol=2e-6)
    np.testing.assert_array_equal(h_n[-1], y[-1])


def test_split_inference_sees_an_in_place_update():
    """Nothing is kept between calls: a changed weight is seen at the next call."""
    layer = _layer("GRU")
    layer.execution = _split(2)
    x, h0 = _inputs(layer, 4)
    before = layer(x, h0, inference=True)[0]
    layer.parameters()["weight_hh_l0"][H + 3, 1] += np.float32(0.5)  # z gate, cell 3
    after = layer(x, h0, inference=True)[0]
    assert not np.array_equal(after, before)
    y_ref = layer(x, h0, inference=True, execution=lk.Execution(impl="reference"))[0]
    np.testing.assert_allclose(after, y_ref, rtol=1e-5, atol=2e-6)
