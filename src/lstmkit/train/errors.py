"""The error a training run stops with (kept apart from the trainer so that the modules the
trainer uses can raise it without importing it)."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, mismatched resume); the message says why."""
