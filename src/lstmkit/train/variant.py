"""The LSTM variant a trainer builds, as its configs and checkpoints keep it.

A variant is the dict of :class:`lstmkit.nn.cells.lstm.LSTMOptions` fields away from torch's
LSTM (``{}`` is the plain LSTM; ``{"peepholes": True, "zoneout_c": 0.1}``), so it is JSON
and two variants are equal exactly when their cells are. A checkpoint written before
variants were kept has none: it is the plain LSTM.

Each option has one command-line flag (:data:`FLAGS`), which the trainers' options
(``lstmkit.cli.options``) add and the messages here name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from lstmkit.nn.cells.lstm import LSTMOptions
from lstmkit.train.errors import TrainingError

__all__ = ["FLAGS", "RATES", "check_resume", "describe", "normalise", "options"]

# option -> its flag; a boolean option's flag sets the opposite of its default
FLAGS: dict[str, str] = {
    "peepholes": "--peepholes",
    "coupled_gates": "--coupled-gates",
    "input_gate": "--no-input-gate",
    "forget_gate": "--no-forget-gate",
    "output_gate": "--no-output-gate",
    "input_activation": "--no-input-activation",
    "output_activation": "--no-output-activation",
    "gate_recurrence": "--gate-recurrence",
    "layer_norm": "--layer-norm",
    "recurrent_dropout": "--recurrent-dropout",
    "zoneout_c": "--zoneout-cell",
    "zoneout_h": "--zoneout-hidden",
}
RATES = ("recurrent_dropout", "zoneout_c", "zoneout_h")  # probabilities in [0, 1)
_DEFAULTS = {f.name: f.default for f in fields(LSTMOptions)}
assert set(FLAGS) == set(_DEFAULTS), "every LSTM option needs a flag"


def normalise(variant: Any) -> dict[str, Any]:
    """``variant`` checked and reduced to the options away from their defaults, in
    LSTMOptions order; ValueError naming the flag otherwise (an unknown option, a
    non-boolean switch, a rate outside [0, 1), --coupled-gates without both gates)."""
    if not isinstance(variant, Mapping):
        raise ValueError(f"variant: expected an object of LSTM options, got {variant!r}")
    unknown = sorted(set(variant) - set(FLAGS))
    if unknown:
        raise ValueError(f"variant: unknown LSTM options {unknown}; known: {list(FLAGS)}")
    for name, value in variant.items():
        flag = FLAGS[name]
        if name in RATES:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not 0.0 <= value < 1.0:
                raise ValueError(f"{flag}: expected a probability in [0, 1), got {value!r}")
        elif not isinstance(value, bool):
            raise ValueError(f"{flag}: expected true or false, got {value!r}")
    merged = {**_DEFAULTS, **variant}
    if merged["coupled_gates"] and not (merged["input_gate"] and merged["forget_gate"]):
        raise ValueError(
            "--coupled-gates sets f = 1 - i: it needs both gates, "
            "expected no --no-input-gate and no --no-forget-gate"
        )
    return {k: float(v) if k in RATES else v for k, v in merged.items() if v != _DEFAULTS[k]}


def options(variant: Mapping[str, Any]) -> LSTMOptions:
    """The cell options of a (checked) variant."""
    return LSTMOptions(**normalise(variant))


def describe(variant: Mapping[str, Any]) -> str:
    """The flags that give ``variant``: "--peepholes --zoneout-cell 0.1", or "no variant
    flags" for the plain LSTM."""
    words = [FLAGS[k] + (f" {v:g}" if k in RATES else "") for k, v in normalise(variant).items()]
    return " ".join(words) or "no variant flags"


def check_resume(stored: Mapping[str, Any] | None, now: Mapping[str, Any]) -> None:
    """Refuse to resume a run whose LSTM variant (``stored``; None: a run from before
    variants, the plain LSTM) differs from the one asked for (TrainingError, one line)."""
    was = normalise(stored or {})
    if was != normalise(now):
        raise TrainingError(
            f"cannot resume: the run's LSTM was trained with {describe(was)}, now "
            f"{describe(now)}; pass the same variant flags (or start a new run with another --out)"
        )
