"""Optimizers against torch.optim (same gradients in, same parameters out, float64), exact
resume from state_dict through .npz + JSON, and clip_grad_norm against torch."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from lstmkit.nn.optim import SGD, Adam, AdamW, RMSprop, clip_grad_norm

torch = pytest.importorskip("torch")

SHAPES = {"w": (4, 3), "b": (4,), "e": (5, 2)}
STEPS = 10

CONFIGS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.3)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    (SGD, dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1)),
    (Adam, dict()),
    (Adam, dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6)),
    (Adam, dict(lr=0.01, weight_decay=0.1)),
    (Adam, dict(lr=0.01, amsgrad=True)),
    (AdamW, dict()),
    (AdamW, dict(lr=0.01, weight_decay=0.3, betas=(0.5, 0.7))),
    (AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (RMSprop, dict()),
    (RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-4)),
    (RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
]


def config_id(config):
    cls, kw = config
    return cls.__name__ + "".join(f"-{k}={v}" for k, v in kw.items())


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


def gradient_sequence(n, seed=1):
    """Gradients with varied scales (some tiny, some large) so eps and bias correction matter."""
    rng = np.random.default_rng(seed)
    return [
        {k: rng.standard_normal(s) * 10.0 ** rng.integers(-4, 2) for k, s in SHAPES.items()}
        for _ in range(n)
    ]


def lr_at(step, base):
    """A changing lr, as a schedule would set it between steps."""
    return base * (1.0 if step < 5 else 0.5)


def run_ours(cls, kw, params, grad_seq, start=0, opt=None):
    if opt is None:
        opt = cls(params, {k: np.zeros_like(v) for k, v in params.items()}, **kw)
    grads = opt.grads
    base = kw.get("lr", 1e-3 if cls in (Adam, AdamW) else 1e-2)
    for step in range(start, len(grad_seq)):
        for k in grads:
            grads[k][...] = grad_seq[step][k]
        opt.lr = lr_at(step, base)
        opt.step()
    return opt


def run_torch(cls, kw, params, grad_seq):
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    topt = getattr(torch.optim, cls.__name__)(list(tparams.values()), foreach=False, **kw)
    base = topt.param_groups[0]["lr"]
    for step, g in enumerate(grad_seq):
        for k, p in tparams.items():
            p.grad = torch.tensor(g[k])
        topt.param_groups[0]["lr"] = lr_at(step, base)
        topt.step()
    return {k: p.detach().numpy() for k, p in tparams.items()}


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_same_gradients_same_parameters_as_torch(config):
    cls, kw = config
    params = make_params()
    start = {k: v.copy() for k, v in params.items()}
    grad_seq = gradient_sequence(STEPS)
    run_ours(cls, kw, params, grad_seq)
    expected = run_torch(cls, kw, start, grad_seq)
    for k in SHAPES:
        moved = np.abs(expected[k] - start[k]).max()
        assert moved > 1e-4, "the test must move the parameters"
        err = np.abs(params[k] - expected[k]).max() / np.abs(expected[k] - start[k]).max()
        assert err < 1e-12, (k, err)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop])
def test_defaults_equal_torch_defaults(cls):
    torch_cls = getattr(torch.optim, cls.__name__)
    p, g = {"w": np.zeros(2)}, {"w": np.zeros(2)}
    tp = [torch.zeros(2, requires_grad=True)]
    # SGD has no default lr, in torch nor here
    ours = cls(p, g, lr=0.1) if cls is SGD else cls(p, g)
    group = (torch_cls(tp, lr=0.1) if cls is SGD else torch_cls(tp)).param_groups[0]
    for key, value in ours.hyperparameters().items():
        expected = group[key]
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, key


def test_float32_parameters_stay_float32_and_close_to_torch():
    cls, kw = Adam, dict(lr=0.01, weight_decay=0.1)
    params = {k: v.astype(np.float32) for k, v in make_params().items()}
    start = {k: v.astype(np.float64) for k, v in params.items()}
    grad_seq = [{k: v.astype(np.float32) for k, v in g.items()} for g in gradient_sequence(5)]
    run_ours(cls, kw, params, grad_seq)
    expected = run_torch(
        cls, kw, start, [{k: v.astype(np.float64) for k, v in g.items()} for g in grad_seq]
    )
    for k in SHAPES:
        assert params[k].dtype == np.float32
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-5, atol=1e-6)


def save_and_load(arrays, scalars):
    """The checkpoint path: arrays through .npz without pickle, scalars through JSON."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    return loaded, json.loads(json.dumps(scalars))


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_state_dict_resume_is_bit_identical(config):
    cls, kw = config
    grad_seq = gradient_sequence(STEPS, seed=7)
    straight = make_params()
    run_ours(cls, kw, straight, grad_seq)

    # stop after 4 steps, save, build a fresh optimizer on restored parameters, continue
    first = make_params()
    half = run_ours(cls, kw, first, grad_seq[:4])
    arrays, scalars = save_and_load(*half.state_dict())
    assert scalars["step"] == 4 and scalars["type"] == cls.__name__
    resumed = {k: v.copy() for k, v in first.items()}
    grads = {k: np.zeros_like(v) for k, v in resumed.items()}
    opt = cls(resumed, grads, **dict(kw, lr=123.0))  # lr comes back from the state
    opt.load_state_dict(arrays, scalars)
    assert opt.lr == half.lr
    run_ours(cls, kw, resumed, grad_seq, start=4, opt=opt)
    for k in SHAPES:
        np.testing.assert_array_equal(resumed[k], straight[k])


def test_load_state_dict_refuses_mismatches_and_changes_nothing():
    params = make_params()
    opt = run_ours(Adam, dict(lr=0.01), params, gradient_sequence(3))
    arrays, scalars = opt.state_dict()
    assert sorted(arrays) == sorted(f"{b}.{k}" for b in ("exp_avg", "exp_avg_sq") for k in SHAPES)
    other = Adam(params, {k: np.zeros_like(v) for k, v in params.items()}, lr=0.5)
    with pytest.raises(ValueError, match="expected state of a Adam optimizer, got 'SGD'"):
        other.load_state_dict(arrays, dict(scalars, type="SGD"))
    bad = dict(arrays)
    bad.pop("exp_avg.w")
    with pytest.raises(ValueError, match=r"missing arrays \['exp_avg.w'\]"):
        other.load_state_dict(bad, scalars)
    with pytest.raises(ValueError, match=r"exp_avg_sq.b: expected shape \(4,\), got \(5,\)"):
        other.load_state_dict(dict(arrays, **{"exp_avg_sq.b": np.zeros(5)}), scalars)
    with pytest.raises(ValueError, match="max_exp_avg_sq"):  # amsgrad needs its buffer
        other.load_state_dict(arrays, dict(scalars, amsgrad=True))
    assert other.lr == 0.5 and other.step_count == 0 and not other.amsgrad and not other.state


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_state_dict_before_the_first_step_round_trips(config):
    cls, kw = config
    params = make_params()
    opt = cls(params, {k: np.zeros_like(v) for k, v in params.items()}, **kw)
    arrays, scalars = opt.state_dict()
    assert arrays == {} and scalars["step"] == 0
    opt.load_state_dict(*save_and_load(arrays, scalars))
    assert opt.step_count == 0


def test_sgd_momentum_buffer_appears_after_first_step():
    params = make_params()
    grads = {k: np.ones_like(v) for k, v in params.items()}
    opt = SGD(params, grads, lr=0.1, momentum=0.9)
    assert opt.state_dict()[0] == {}
    opt.step()
    arrays, _ = opt.state_dict()
    np.testing.assert_array_equal(arrays["momentum_buffer.w"], np.ones((4, 3)))  # = first grad


def test_optimizer_validation():
    p = {"w": np.zeros(3)}
    with pytest.raises(ValueError, match="same keys"):
        SGD(p, {"v": np.zeros(3)}, lr=0.1)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        SGD(p, {"w": np.zeros(4)}, lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(p, {"w": np.zeros(3)}, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        Adam(p, {"w": np.zeros(3)}, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        RMSprop(p, {"w": np.zeros(3)}, lr=-1)
    with pytest.raises(ValueError, match="shares memory"):
        SGD(p, p, lr=0.1)


def test_model_container_with_optimizer_updates_children():
    from lstmkit.nn.feedforward import Linear
    from lstmkit.nn.model import Model

    class Two(Model):
        def __init__(self):
            super().__init__()
            self.add("a", Linear(3, 4, dtype=np.float64, seed=0))
            self.add("b", Linear(4, 2, dtype=np.float64, seed=1))

    model = Two()
    opt = Adam(model.parameters(), model.grads, lr=0.1)
    before = model.b.state_dict()["bias"]
    model.b(model.a(np.ones((1, 3))))
    model.b.backward(np.ones((1, 2)))
    opt.step()
    assert not np.array_equal(model.b.parameters()["bias"], before)
    assert opt.params["b.bias"] is model.b.parameters()["bias"]


# ---- clip_grad_norm -----------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.05, 0.8, 0.999, 1.5])
def test_clip_grad_norm_matches_torch(ratio):
    grads = {k: v * 3 for k, v in make_params(2).items()}
    max_norm = ratio * np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for p, g in zip(tparams, grads.values()):
        p.grad = torch.tensor(g)
    expected = torch.nn.utils.clip_grad_norm_(tparams, max_norm).item()
    total = clip_grad_norm(grads, max_norm)
    assert abs(total - expected) / expected < 1e-14
    for p, g in zip(tparams, grads.values()):
        assert np.abs(g - p.grad.numpy()).max() <= 1e-15 * np.abs(g).max()
    clipped_norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    assert clipped_norm <= max_norm + 1e-12
    assert (clipped_norm < total) == (total > max_norm)


def test_clip_grad_norm_reports_nonfinite_and_leaves_grads():
    for bad in (np.nan, np.inf):
        g = np.array([1.0, bad, 2.0])
        total = clip_grad_norm([g, np.ones(2)], 1.0)
        assert np.isnan(total) if np.isnan(bad) else total == np.inf
        assert g[0] == 1.0 and g[2] == 2.0
        with pytest.raises(FloatingPointError, match="diverged"):
            clip_grad_norm([g], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm([np.ones(2)], 0.0)
    g32 = np.full(4, 10.0, np.float32)
    clip_grad_norm([g32], 1.0)
    assert g32.dtype == np.float32 and abs(np.linalg.norm(g32) - 1.0) < 1e-5
