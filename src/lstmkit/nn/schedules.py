"""Learning-rate schedules: the lr as a pure function of the step number.

A schedule holds only its hyperparameters, so resuming needs nothing but the step::

    schedule = WarmupCosine(lr=2e-3, warmup_steps=100, total_steps=5000, min_lr=1e-4)
    for step in range(start, total):
        optimizer.lr = schedule(step)   # step counts from 0: the lr of the (step+1)-th update
        ...
        optimizer.step()

Each matches torch's scheduler in closed form: ``Constant`` = no scheduler, ``StepDecay`` =
``StepLR``, the warm-up of ``WarmupCosine`` = ``LinearLR(start_factor=1/W, total_iters=W-1)``
and its decay = ``CosineAnnealingLR(T_max=total_steps-W, eta_min=min_lr)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Constant", "StepDecay", "WarmupCosine", "make_schedule"]


def _check_step(step: int) -> int:
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step: expected an integer >= 0, got {step!r}")
    return step


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class Constant:
    """lr(step) = lr."""

    lr: float

    def __post_init__(self) -> None:
        _check_positive("lr", self.lr)

    def __call__(self, step: int) -> float:
        _check_step(step)
        return float(self.lr)


@dataclass(frozen=True)
class StepDecay:
    """lr(step) = lr * gamma ** (step // step_size)   (torch's StepLR)."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _check_positive("lr", self.lr)
        _check_positive("gamma", self.gamma)
        if not isinstance(self.step_size, int) or self.step_size < 1:
            raise ValueError(f"step_size: expected an integer >= 1, got {self.step_size!r}")

    def __call__(self, step: int) -> float:
        return float(self.lr * self.gamma ** (_check_step(step) // self.step_size))


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr``.

    lr(s) = lr * (s + 1) / W                                     for s < W
    lr(s) = min_lr + (lr - min_lr) (1 + cos(pi (s - W) / (S - W))) / 2   for W <= s <= S
    lr(s) = min_lr                                               for s > S
    with W = warmup_steps (0 for none), S = total_steps.
    """

    lr: float
    warmup_steps: int
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _check_positive("lr", self.lr)
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected an integer >= 0, got {self.warmup_steps!r}")
        if not isinstance(self.total_steps, int) or self.total_steps <= self.warmup_steps:
            raise ValueError(
                f"total_steps: expected an integer > warmup_steps ({self.warmup_steps}), "
                f"got {self.total_steps!r}"
            )
        if not (isinstance(self.min_lr, int | float) and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"min_lr: expected a number in [0, lr={self.lr}], got {self.min_lr!r}")

    def __call__(self, step: int) -> float:
        s, W, S = _check_step(step), self.warmup_steps, self.total_steps
        if s < W:
            return float(self.lr * (s + 1) / W)
        if s > S:
            return float(self.min_lr)
        progress = (s - W) / (S - W)
        return float(self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2)


def make_schedule(name: str, lr: float, **options: Any) -> Constant | StepDecay | WarmupCosine:
    """Build a schedule by name ("constant", "step", "cosine"), e.g. from a CLI flag."""
    kinds: dict[str, Any] = {"constant": Constant, "step": StepDecay, "cosine": WarmupCosine}
    if name not in kinds:
        raise ValueError(f"schedule: expected one of {sorted(kinds)}, got {name!r}")
    try:
        return kinds[name](lr, **options)
    except TypeError as err:
        raise ValueError(f"schedule {name!r}: {err}") from None
