"""Outcome counts per input class of the robustness suite (printed by this folder's conftest)."""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[tuple[str, str]] = Counter()


def record(kind: str, outcome: str) -> None:
    COUNTS[kind, outcome] += 1
