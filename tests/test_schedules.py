"""Learning-rate schedules against torch.optim.lr_scheduler (StepLR, LinearLR,
CosineAnnealingLR), plus their closed forms and validation."""

from __future__ import annotations

import math

import pytest

from lstmkit.nn.schedules import Constant, StepDecay, WarmupCosine, make_schedule

torch = pytest.importorskip("torch")


def torch_lrs(make_scheduler, base_lr, n):
    """The lr torch uses for updates 0..n-1 (scheduler.step() after each update)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_constant():
    s = Constant(0.3)
    assert [s(k) for k in (0, 1, 10**6)] == [0.3, 0.3, 0.3]


def test_step_decay_matches_step_lr():
    ours = StepDecay(0.5, step_size=7, gamma=0.3)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 7, gamma=0.3), 0.5, 40)
    for k, expected in enumerate(ref):
        assert ours(k) == pytest.approx(expected, rel=1e-12)
    assert ours(6) == 0.5 and ours(7) == pytest.approx(0.15)


def test_warmup_matches_linear_lr_and_decay_matches_cosine_annealing():
    lr, W, S, min_lr = 2e-3, 10, 60, 1e-4
    ours = WarmupCosine(lr, warmup_steps=W, total_steps=S, min_lr=min_lr)
    warm = torch_lrs(
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 1 / W, 1.0, total_iters=W - 1), lr, W
    )
    for k in range(W):
        assert ours(k) == pytest.approx(warm[k], rel=1e-12), k
    decay = torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=S - W, eta_min=min_lr),
        lr,
        S - W + 1,
    )
    for j, expected in enumerate(decay):
        assert ours(W + j) == pytest.approx(expected, rel=1e-10), W + j
    assert ours(W - 1) == lr and ours(W) == lr
    assert ours(S) == pytest.approx(min_lr) and ours(S + 1000) == min_lr


def test_whole_warmup_cosine_matches_sequential_lr():
    lr, W, S = 1.0, 5, 25
    ours = WarmupCosine(lr, warmup_steps=W, total_steps=S)
    ref = torch_lrs(
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, 1 / W, 1.0, total_iters=W - 1),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=S - W),
            ],
            milestones=[W],
        ),
        lr,
        S + 1,
    )
    for k, expected in enumerate(ref):
        assert ours(k) == pytest.approx(expected, rel=1e-10, abs=1e-15), k


def test_no_warmup_and_purity():
    s = WarmupCosine(1.0, warmup_steps=0, total_steps=4)
    assert [s(k) for k in range(5)] == pytest.approx(
        [1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0]
    )
    # no hidden state: any order of calls gives the same values (resume needs only the step)
    assert [s(3), s(0), s(3)] == [s(3), 1.0, s(3)]


def test_make_schedule_and_validation():
    assert make_schedule("cosine", 0.1, warmup_steps=2, total_steps=10) == WarmupCosine(0.1, 2, 10)
    assert make_schedule("step", 0.1, step_size=3)(3) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="expected one of"):
        make_schedule("linear", 0.1)
    with pytest.raises(ValueError, match="schedule 'step'"):
        make_schedule("step", 0.1)
    with pytest.raises(ValueError, match="total_steps: expected an integer > warmup_steps"):
        WarmupCosine(0.1, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="min_lr"):
        WarmupCosine(0.1, 0, 10, min_lr=0.2)
    with pytest.raises(ValueError, match="step: expected an integer >= 0"):
        Constant(0.1)(-1)
    with pytest.raises(ValueError, match="lr"):
        Constant(0.0)
