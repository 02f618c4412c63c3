"""One training loop: the automatic forecaster's fit_windows runs through Trainer and gives,
bit for bit, what the hand-written loop it replaced gave (the oracle below, kept verbatim:
same batches, Adam, clipping, learning rate and evaluated steps); Trainer's two options for
it (a deadline read after each step, the last step evaluated without a run folder); and
StopRequests.hold, which defers a second Ctrl-C to the end of an update."""

from __future__ import annotations

import signal
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lstmkit.nn.losses import mse
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.series.auto import AutoConfig, Candidate, fit_windows
from lstmkit.series.covariates import CovariateLSTM
from lstmkit.series.model import Forecaster, ForecasterConfig
from lstmkit.train.signals import StopRequests
from lstmkit.train.trainer import Evaluation, Options, Task, Trainer


def hand_written_loop(model, X, Y, W, c, config, seed, steps, deadline, every=None) -> Any:
    """fit_windows as it was before it ran through Trainer (commit 2355a45)."""
    rng = np.random.default_rng([seed, 1])
    optimizer = Adam(model.parameters(), model.grads, lr=config.lr)
    B = min(config.batch, X.shape[1])
    skip = min(int(config.burn_in * c.lookback), c.lookback - 1)
    for step in range(1, steps + 1):
        idx = rng.choice(X.shape[1], B, replace=False)
        model.zero_grad()
        pred, _ = model(X[:, idx])
        if W is None:
            _, d_kept = mse(pred[skip:], Y[skip:, idx])
        else:
            w = W[skip:, idx]
            d_kept = (2.0 * w * (pred[skip:] - Y[skip:, idx]) / max(float(w.sum()), 1.0)).astype(
                pred.dtype
            )
        dpred = np.zeros_like(pred)
        dpred[skip:] = d_kept
        model.backward(dpred)
        clip_grad_norm(model.grads, config.clip)
        optimizer.step()
        last = step == steps or time.monotonic() > deadline
        if every is not None and (step % config.eval_every == 0 or last):
            every(step, model)
        if last:
            break
    return model


CASES = {  # name: (steps, eval_every, masked, deadline, covariates)
    "plain": (13, 5, False, np.inf, False),
    "masked": (9, 4, True, np.inf, False),
    "covariates": (7, 3, False, np.inf, True),
    "past the deadline": (20, 5, False, -np.inf, False),  # one step, evaluated
    "last step evaluated once": (10, 5, False, np.inf, False),
}


@pytest.mark.parametrize("case", CASES)
def test_fit_windows_is_the_hand_written_loop_bit_for_bit(case: str) -> None:
    steps, eval_every, masked, deadline, covariates = CASES[case]
    rng = np.random.default_rng(len(case))
    L, M, D, K = 8, 20, (4 if covariates else 1), (2 if covariates else 1)
    X = rng.standard_normal((L, M, D)).astype(np.float32)
    Y = rng.standard_normal((L, M, K)).astype(np.float32)
    W = (rng.random((L, M, K)) > 0.3).astype(np.float32) if masked else None
    c = Candidate(L, False, False, 4)
    config = AutoConfig(steps=steps, eval_every=eval_every, batch=6, clip=0.3, burn_in=0.5)
    seen: dict[str, list[tuple[int, dict[str, np.ndarray]]]] = {"oracle": [], "trainer": []}
    for who, fit in (("oracle", hand_written_loop), ("trainer", fit_windows)):
        model = (
            CovariateLSTM(4, 2, 1, seed=3)
            if covariates
            else Forecaster(ForecasterConfig(hidden=4), seed=3)
        )

        def every(step: int, m: Any, who: str = who) -> None:
            seen[who].append((step, m.state_dict()))

        fit(model, X, Y, W, c, config, 5, steps, deadline, every)
        seen[who].append((-1, model.state_dict()))
    steps_seen = [s for s, _ in seen["trainer"]]
    assert steps_seen == [s for s, _ in seen["oracle"]]
    assert steps_seen[-2] == (1 if deadline < 0 else steps)  # the last step, evaluated once
    for (_, a), (_, b) in zip(seen["oracle"], seen["trainer"]):
        for name in a:
            assert a[name].tobytes() == b[name].tobytes(), name


class Counting(Task):
    """A one-parameter model (w, loss (w - 1)^2) that records the evaluated steps."""

    def __init__(self) -> None:
        self.model = SimpleNamespace()
        self.w, self.g = np.zeros(1), np.zeros(1)
        m = self.model
        m.parameters = lambda: {"w": self.w}
        m.grads = {"w": self.g}
        m.zero_grad = lambda: self.g.fill(0.0)
        m.backward = lambda dout: self.g.__iadd__(dout)
        m.set_noise = lambda noise: None
        m.rng_state = lambda: {}
        self.evaluated: list[int] = []

    def loss(self, step: int) -> tuple[float, np.ndarray]:
        return float((self.w[0] - 1) ** 2), 2 * (self.w - 1)

    def evaluate(self, step: int) -> Evaluation:
        self.evaluated.append(step)
        return Evaluation()


@pytest.mark.parametrize("evaluate_last", [False, True])
def test_a_deadline_is_read_after_the_step_and_the_last_step_may_be_evaluated(
    evaluate_last: bool,
) -> None:
    """Past the deadline already: one step runs (``seconds`` would run none); without a
    run folder the last step is evaluated only with ``evaluate_last``."""
    task = Counting()
    options = Options(0.1, 1.0, 4, 10, deadline=-np.inf, evaluate_last=evaluate_last)
    assert Trainer(task, options).fit().steps == 1
    assert task.evaluated == ([1] if evaluate_last else [])
    task = Counting()
    options = Options(0.1, 1.0, 4, 10, evaluate_last=evaluate_last)
    assert Trainer(task, options).fit().steps == 10
    assert task.evaluated == [4, 8] + ([10] if evaluate_last else [])
    task = Counting()
    assert Trainer(task, Options(0.1, 1.0, 4, 10, seconds=1e-9)).fit().steps == 0


def test_a_deadline_is_refused_with_several_ranks() -> None:
    with pytest.raises(ValueError, match="options.deadline: expected one process"):
        Trainer(Counting(), Options(0.1, 1.0, 4, 10, deadline=0.0), comm=SimpleNamespace(size=2))


def test_hold_defers_a_second_ctrl_c_to_the_end_of_the_block() -> None:
    with StopRequests() as stop:
        with stop.hold():
            assert signal.getsignal(signal.SIGINT) == stop._handle  # no handler swapped
            signal.raise_signal(signal.SIGTERM)
            assert not stop.requested  # recorded, not acted upon
        assert stop.requested and not stop.forced
        with pytest.raises(KeyboardInterrupt):
            with stop.hold():
                signal.raise_signal(signal.SIGINT)  # the second: forced, at the block's end
                reached = True
        assert reached and stop.forced
