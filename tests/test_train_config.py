"""The loop's options every trainer's config shares (lstmkit.train.config.LoopConfig)."""

from __future__ import annotations

import pytest

from lstmkit.series import train as series_train
from lstmkit.text import train as text_train
from lstmkit.train.config import LoopConfig

CONFIGS = [text_train.TrainConfig, series_train.TrainConfig]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(batch=0), "--batch: expected > 0, got 0"),
        (dict(minutes=0.0), "--minutes: expected > 0, got 0.0"),
        (dict(clip=-1.0), "--clip: expected > 0, got -1.0"),
        (dict(eval_every=0), "--eval-every: expected > 0, got 0"),
        (dict(warmup=-1), "--warmup: expected >= 0, got -1"),
        (dict(seed=-1), "--seed: expected >= 0, got -1"),
        (dict(schedule="linear"), "--schedule: expected constant or cosine, got 'linear'"),
    ],
)
def test_every_trainer_checks_the_loop_options(config, options, message) -> None:
    assert issubclass(config, LoopConfig)
    with pytest.raises(ValueError, match=message):
        config(**options)


@pytest.mark.parametrize(
    ("config", "options", "message"),
    [
        (text_train.TrainConfig, dict(seq_len=0), "--seq-len: expected > 0, got 0"),
        (text_train.TrainConfig, dict(eval_chars=0), "--eval-chars: expected > 0, got 0"),
        (series_train.TrainConfig, dict(horizon=0), "--horizon: expected > 0, got 0"),
        (series_train.TrainConfig, dict(val=-1), "--val: expected >= 0, got -1"),
    ],
)
def test_each_trainer_checks_its_own_options(config, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        config(**options)


def test_each_trainer_keeps_its_own_loop_defaults() -> None:
    loop = ("batch", "steps", "lr", "clip", "eval_every", "warmup", "schedule", "seed", "dtype")
    text, series = text_train.TrainConfig(), series_train.TrainConfig()
    assert [getattr(text, k) for k in loop] == [64, 2000, 2e-3, 5.0, 200, 0, "constant", 0,
                                                "float32"]  # fmt: skip
    assert [getattr(series, k) for k in loop] == [32, 1000, 3e-3, 1.0, 100, 0, "constant", 0,
                                                  "float32"]  # fmt: skip
    assert text.variant == series.variant == {} and text.variant is not series.variant
