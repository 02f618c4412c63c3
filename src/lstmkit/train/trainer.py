"""What every trainer shares: its error, model checkpoints by kind, and resume checks.

A trained model's checkpoint holds its parameters as ``model/<name>`` arrays and, in the
JSON header, ``kind`` (which model class reads it), ``model`` (that class's config) and the
trainer's own fields (``train_config``, optimizer scalars, RNG states, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.nn.schedules import Constant, WarmupCosine
from lstmkit.train import checkpoint
from lstmkit.train.run_folder import Run


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, mismatched resume); the message says why."""


def save_model(
    run: Run,
    name: str,
    kind: str,
    model: Any,
    meta: dict[str, Any],
    extra_arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``model``'s parameters, config and ``meta`` as the run's checkpoint ``name``."""
    arrays = {f"model/{k}": v for k, v in model.parameters().items()}
    arrays.update(extra_arrays or {})
    return run.save(name, arrays, {"kind": kind, "model": model.config.to_dict(), **meta})


def load_model_checkpoint(
    path: str | Path, kind: str, what: str
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]:
    """(all arrays, header, model parameters) of a checkpoint holding a ``kind`` model.

    ``path`` is a checkpoint file or a run folder (its best, else latest, checkpoint);
    ``what`` names the kind for the error message ("a char-LM").
    """
    path = Path(path)
    if path.is_dir():
        run = Run(path)
        path = run.checkpoint_path("best" if run.exists("best") else "latest")
    arrays, meta = checkpoint.load(path)
    if meta.get("kind") != kind:
        raise checkpoint.CheckpointError(
            f"{path}: holds a {meta.get('kind')!r} model, expected {what} ({kind!r})"
        )
    params = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    return arrays, meta, params


def check_same_options(stored: dict[str, Any], config: Any, keys: Iterable[str]) -> None:
    """Refuse to resume with options (among ``keys``) that differ from the stored config."""
    keys = set(keys)
    differ = [
        f"--{f.name.replace('_', '-')} {stored.get(f.name)} (now {getattr(config, f.name)})"
        for f in fields(config)
        if f.name in keys and stored.get(f.name) != getattr(config, f.name)
    ]
    if differ:
        raise TrainingError(
            "cannot resume: the run was trained with "
            + ", ".join(differ)
            + "; pass the same options (or start a new run with another --out)"
        )


def lr_schedule(
    lr: float, schedule: str, warmup: int, steps: int | None
) -> Constant | WarmupCosine:
    """The learning rate per step: constant, or cosine to ``steps``, after a linear warm-up."""
    if schedule == "cosine":
        if not steps:
            raise TrainingError("--schedule cosine needs --steps")
        return WarmupCosine(lr, warmup, steps)
    if warmup:
        return WarmupCosine(lr, warmup, 2**62, min_lr=lr)  # warm-up, then constant
    return Constant(lr)


def diverged(what: str, step: int, run: Run) -> TrainingError:
    """The error that stops a run whose loss, gradients or parameters became non-finite."""
    last = run.checkpoint_path("latest")
    kept = f"The last good checkpoint is {last}" if last.is_file() else "There is no checkpoint yet"
    return TrainingError(f"{what} at step {step + 1}; stopped. {kept}. Try a lower --lr or --clip")
