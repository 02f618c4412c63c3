"""The options every run-folder trainer's config shares: those of the one training loop.

A trainer's config (``lstmkit.text.train.TrainConfig``, ``lstmkit.series.train.TrainConfig``)
is a dataclass deriving from :class:`LoopConfig`: it adds its model's and data's fields,
may give the loop's fields its own defaults (a redefined field keeps its place), and names
its own fields to check in ``_positive`` and ``_at_least_zero``. The command-line flags of
these fields are ``lstmkit.cli.options.add_training_options``; :meth:`Options.of
<lstmkit.train.trainer.Options.of>` reads them for the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from lstmkit.train import variant
from lstmkit.train.trainer import check_options

__all__ = ["LoopConfig"]

_LOOP_POSITIVE = ("batch", "steps", "minutes", "lr", "clip", "eval_every")
_LOOP_AT_LEAST_ZERO = ("warmup", "seed")


@dataclass
class LoopConfig:
    """The loop's options: ``batch`` examples per step, ``steps`` and/or ``minutes`` (None:
    no limit), Adam's ``lr`` after ``warmup`` steps on a ``schedule``, global-norm ``clip``,
    validation every ``eval_every`` steps, the ``seed`` of initialisation and dropout, the
    model's ``dtype`` and its LSTM ``variant`` (see :mod:`lstmkit.train.variant`)."""

    batch: int = 32
    steps: int | None = 1000
    minutes: float | None = None
    lr: float = 3e-3
    warmup: int = 0
    schedule: str = "constant"  # or "cosine" (needs steps)
    clip: float = 1.0
    eval_every: int = 100
    seed: int = 0
    dtype: str = "float32"  # "float64": data-parallel runs then equal one process to rounding
    variant: dict[str, Any] = field(default_factory=dict)  # the LSTM's options (train.variant)

    # the subclass's own fields that must be > 0 and >= 0 (unless None), checked first
    _positive: ClassVar[tuple[str, ...]] = ()
    _at_least_zero: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """Normalise the variant; refuse values no run can use (ValueError naming the flag)."""
        self.variant = variant.normalise(self.variant)
        positive = self._positive + _LOOP_POSITIVE
        check_options(self, positive, self._at_least_zero + _LOOP_AT_LEAST_ZERO)
