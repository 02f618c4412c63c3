"""What :class:`lstmkit.train.trainer.Trainer` adds to a training step of a small model.

Run from the repository root (CPU time, ``time.process_time``: what a shared machine
measures reliably)::

    python benchmarks/bench_trainer_step.py [--rounds 9]

Two models: a 2-parameter linear one, whose step costs almost nothing (what is left is the
loop's own cost), and the automatic forecaster's first nile candidate (Forecaster, hidden 16,
windows of 10, batch 32). Each trains 400 or 2000 steps in turn, in rounds, two ways on the
same windows: :func:`lstmkit.series.auto.fit_windows` (Trainer without a run folder) and the
bare step (batch draw, forward, backward, clipping, Adam; no divergence checks, no signal
guard). The report gives the minimum and the median microseconds per step of each and the
median of the rounds' ratios; both must end with the same parameters, bit for bit.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from typing import Any

import numpy as np

from lstmkit.nn.feedforward import Linear
from lstmkit.nn.losses import mse
from lstmkit.nn.model import Model
from lstmkit.nn.optim import Adam, clip_grad_norm
from lstmkit.series.auto import AutoConfig, Candidate, fit_windows
from lstmkit.series.model import Forecaster, ForecasterConfig


class _Linear(Model):
    """pred = w x + b on every position: a step of (almost) no compute."""

    def __init__(self) -> None:
        super().__init__()
        self.head = self.add("head", Linear(1, 1, dtype=np.float32, seed=0))

    def forward(self, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, None]:
        return self.head(x), None

    def backward(self, dpred: np.ndarray) -> None:
        self.head.backward(dpred)


def bare_steps(model: Any, X: np.ndarray, Y: np.ndarray, c: Candidate, config: AutoConfig) -> None:
    """fit_windows' steps written out, without the trainer (the same rng draws and update)."""
    rng = np.random.default_rng([0, 1])
    optimizer = Adam(model.parameters(), model.grads, lr=config.lr)
    B, skip = min(config.batch, X.shape[1]), min(int(config.burn_in * c.lookback), c.lookback - 1)
    for _ in range(config.steps):
        idx = rng.choice(X.shape[1], B, replace=False)
        model.zero_grad()
        pred, _ = model(X[:, idx])  # (L, B, 1)
        dpred = np.zeros_like(pred)
        dpred[skip:] = mse(pred[skip:], Y[skip:, idx])[1]
        model.backward(dpred)
        clip_grad_norm(model.grads, config.clip)
        optimizer.step()


def compare(name: str, make: Any, L: int, steps: int, rounds: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((L, 80, 1)).astype(np.float32)  # (L, M, 1)
    Y = rng.standard_normal((L, 80, 1)).astype(np.float32)
    c, config = Candidate(L, False, False, 16), AutoConfig(steps=steps, eval_every=50)
    runs = {
        "bare step": lambda m: bare_steps(m, X, Y, c, config),
        "Trainer": lambda m: fit_windows(m, X, Y, None, c, config, 0, steps, np.inf),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    final: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(rounds):
        for who, run in runs.items():
            model = make()
            t = time.process_time()
            run(model)
            times[who].append((time.process_time() - t) / steps * 1e6)
            final[who] = model.state_dict()
    same = all(
        final["bare step"][k].tobytes() == final["Trainer"][k].tobytes() for k in final["Trainer"]
    )
    a, b = np.array(times["bare step"]), np.array(times["Trainer"])
    print(f"{name}: bare step min {a.min():.1f} median {np.median(a):.1f} us | Trainer min "
          f"{b.min():.1f} median {np.median(b):.1f} us | Trainer / bare (median of rounds) "
          f"{np.median(b / a):.3f} | same parameters: {same}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    compare("linear, 2000 steps", _Linear, 4, 2000, rounds)
    forecaster = partial(Forecaster, ForecasterConfig(16), seed=1)
    compare("Forecaster hidden 16, 400 steps", forecaster, 10, 400, rounds)


if __name__ == "__main__":
    main()
