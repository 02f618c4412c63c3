"""Cross-entropy and MSE: values and gradients against torch autograd (float64) and finite
differences; stability; validation messages."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.nn.losses import log_softmax, mse, softmax_cross_entropy

torch = pytest.importorskip("torch")
F = torch.nn.functional


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def torch_ce(logits, targets, reduction, ignore_index=-100):
    z = torch.from_numpy(logits).requires_grad_()
    C = logits.shape[-1]
    loss = F.cross_entropy(
        z.reshape(-1, C),
        torch.from_numpy(targets.astype(np.int64)).reshape(-1),
        ignore_index=ignore_index,
        reduction=reduction,
    )
    loss.backward()
    return loss.item(), z.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_matches_torch(reduction, ignore):
    rng = np.random.default_rng(0)
    logits = 3 * rng.standard_normal((6, 4, 9))
    targets = rng.integers(0, 9, size=(6, 4))
    if ignore:
        targets[rng.random((6, 4)) < 0.3] = -100
        assert (targets == -100).sum() > 2
    loss, dlogits = softmax_cross_entropy(
        logits, targets, ignore_index=-100 if ignore else None, reduction=reduction
    )
    ref_loss, ref_grad = torch_ce(logits, targets, reduction)
    assert isinstance(loss, float)
    assert abs(loss - ref_loss) / abs(ref_loss) < 1e-14
    assert rel_err(dlogits, ref_grad) < 1e-14
    if ignore:
        assert not dlogits[targets == -100].any()


def test_mask_equals_ignore_index_and_they_combine():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 3, 4))
    targets = rng.integers(0, 4, size=(5, 3))
    mask = rng.random((5, 3)) < 0.6
    ignored = np.where(mask, targets, 7)  # 7 is out of range but ignored
    via_mask = softmax_cross_entropy(logits, targets, mask=mask)
    via_index = softmax_cross_entropy(logits, ignored, ignore_index=7)
    ref_loss, ref_grad = torch_ce(logits, ignored, "mean", ignore_index=7)
    assert abs(via_mask[0] - ref_loss) < 1e-14 and abs(via_index[0] - ref_loss) < 1e-14
    assert rel_err(via_mask[1], ref_grad) < 1e-14 and rel_err(via_index[1], ref_grad) < 1e-14
    both = softmax_cross_entropy(logits, ignored, ignore_index=7, mask=mask.astype(np.int8))
    assert both[0] == via_mask[0]


def test_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 5))
    targets = np.array([0, 4, 2])
    _, analytic = softmax_cross_entropy(logits, targets)
    numeric = np.zeros_like(logits)
    eps = 1e-6
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (
            softmax_cross_entropy(up, targets)[0] - softmax_cross_entropy(down, targets)[0]
        ) / (2 * eps)
    assert rel_err(analytic, numeric) < 1e-8


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [1e308, 1e308, 0.0]])
    targets = np.array([1, 0])
    loss, dlogits = softmax_cross_entropy(logits, targets, reduction="sum")
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    assert abs(loss - (1e4 + np.log(2))) < 1e-9
    np.testing.assert_allclose(dlogits, [[1, -1, 0], [-0.5, 0.5, 0]], atol=1e-15)
    np.testing.assert_allclose(log_softmax(np.array([1e4, 1e4])), np.log([0.5, 0.5]))


def test_cross_entropy_float32_keeps_dtype():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 6)).astype(np.float32)
    targets = rng.integers(0, 6, 4)
    loss, dlogits = softmax_cross_entropy(logits, targets)
    assert dlogits.dtype == np.float32
    ref_loss, ref_grad = torch_ce(logits.astype(np.float64), targets, "mean")
    assert abs(loss - ref_loss) < 1e-6 and rel_err(dlogits, ref_grad) < 1e-6


def test_cross_entropy_validation():
    logits = np.zeros((2, 3, 5))
    with pytest.raises(ValueError, match=r"class ids in \[0, 5\).*got 5"):
        softmax_cross_entropy(logits, np.full((2, 3), 5))
    with pytest.raises(ValueError, match=r"\[0, 5\) or ignore_index=-1, got -2"):
        softmax_cross_entropy(logits, np.full((2, 3), -2), ignore_index=-1)
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\).*got \(3, 2\)"):
        softmax_cross_entropy(logits, np.zeros((3, 2), np.int64))
    with pytest.raises(TypeError, match="integers"):
        softmax_cross_entropy(logits, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mean is undefined"):
        softmax_cross_entropy(logits, np.full((2, 3), -100), ignore_index=-100)
    assert softmax_cross_entropy(logits, np.full((2, 3), -1), ignore_index=-1, reduction="sum")[
        0
    ] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy(logits, np.zeros((2, 3), np.int64), reduction="none")
    with pytest.raises(ValueError, match="0/1"):
        softmax_cross_entropy(logits, np.zeros((2, 3), np.int64), mask=np.full((2, 3), 2))


def test_nan_logits_give_nan_loss_not_an_error():
    logits = np.array([[0.0, np.nan]])
    loss, _ = softmax_cross_entropy(logits, np.array([0]))
    assert np.isnan(loss)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_torch(reduction):
    rng = np.random.default_rng(4)
    pred, target = rng.standard_normal((7, 3, 2)), rng.standard_normal((7, 3, 2))
    loss, dpred = mse(pred, target, reduction)
    p = torch.from_numpy(pred).requires_grad_()
    ref = F.mse_loss(p, torch.from_numpy(target), reduction=reduction)
    ref.backward()
    assert abs(loss - ref.item()) / ref.item() < 1e-14
    assert rel_err(dpred, p.grad.numpy()) < 1e-14


def test_mse_validation_and_dtype():
    with pytest.raises(ValueError, match=r"expected shape \(3, 1\).*got \(3,\)"):
        mse(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(TypeError, match="float"):
        mse(np.zeros(3, np.int64), np.zeros(3))
    _, d = mse(np.ones(4, np.float32), np.zeros(4))
    assert d.dtype == np.float32 and np.allclose(d, 0.5)
