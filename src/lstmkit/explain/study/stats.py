"""The study's statistics, as Greff et al. (2017): per task and variant the mean and
standard deviation of the metric over seeds, and each variant against the full cell by
Welch's t-test (unequal variances; scipy), the p-values of one task Holm-corrected for the
number of variants compared. The Mann-Whitney U test's p-value (no normality assumed) is
given next to it.

    rows = stats.compare(records, base="vanilla", alpha=0.05)

Each row: ``task, variant, n, diverged, mean, sd, median, diff`` (mean - the base's mean),
``baseline`` (the task's memoryless baseline: for the char-LM the uniform guess's
log2(vocabulary size); NaN where the records have none), ``failed`` (finished runs no
better than that baseline: a variant that trains on some seeds and blows up on others
shows here even where its variance keeps the tests from significance),
``p_welch``, ``p_holm``, ``p_mannwhitney``, and ``verdict``: "better", "worse" (Holm's p
below ``alpha``, the sign by the metric's direction), "same" (not significant), "base", or
"untested" (a test needs two finished runs a side; its p-values are NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["compare", "holm"]


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of m p-values (NaN stays NaN and does not count): the
    k-th smallest p (k = 0, 1, ...) becomes max over j <= k of min(1, (m - j) p_(j))."""
    finite = [(v, k) for k, v in enumerate(p) if not math.isnan(v)]
    m = len(finite)
    out = [math.nan] * len(p)
    running = 0.0
    for j, (value, k) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - j) * value))
        out[k] = running
    return out


def _tests(values: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """(Welch's t-test p, Mann-Whitney U p), two-sided; NaN with fewer than 2 values a side
    or no variance at all."""
    from scipy import stats

    if len(values) < 2 or len(base) < 2:
        return math.nan, math.nan
    if np.ptp(np.concatenate([values, base])) == 0:
        return 1.0, 1.0  # every run the same: no difference to find
    welch = stats.ttest_ind(values, base, equal_var=False).pvalue
    mwu = stats.mannwhitneyu(values, base, alternative="two-sided").pvalue
    return float(welch), float(mwu)


def _describe(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {"mean": math.nan, "sd": math.nan, "median": math.nan}
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return {"mean": float(np.mean(values)), "sd": sd, "median": float(np.median(values))}


def compare(
    records: Sequence[dict[str, Any]], base: str = "vanilla", alpha: float = 0.05
) -> list[dict[str, Any]]:
    """One row per (task, variant) in the records' order (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for task in dict.fromkeys(r["task"] for r in records):
        mine = [r for r in records if r["task"] == task]
        lower = bool(mine[0]["lower_is_better"])
        finished = {
            name: np.array([r["value"] for r in mine if r["variant"] == name and not r["diverged"]])
            for name in dict.fromkeys(r["variant"] for r in mine)
        }
        base_values = finished.get(base, np.array([]))
        task_rows = []
        for name, values in finished.items():
            runs = [r for r in mine if r["variant"] == name]
            row = {"task": task, "variant": name, "metric": mine[0]["metric"]}
            row.update(lower_is_better=lower, n=len(values), diverged=len(runs) - len(values))
            row.update(_describe(values))
            baselines = [r["baseline"] for r in runs if r.get("baseline") is not None]
            row["baseline"] = float(np.mean(baselines)) if baselines else math.nan
            row["failed"] = sum(_failed(r, lower) for r in runs if not r["diverged"])
            row["diff"] = (
                row["mean"] - float(np.mean(base_values)) if len(base_values) else math.nan
            )
            row["p_welch"], row["p_mannwhitney"] = (
                (math.nan, math.nan) if name == base else _tests(values, base_values)
            )
            task_rows.append(row)
        others = [row for row in task_rows if row["variant"] != base]
        for row, p in zip(others, holm([row["p_welch"] for row in others])):
            row["p_holm"] = p
        for row in task_rows:
            row.setdefault("p_holm", math.nan)
            row["verdict"] = _verdict(row, base, alpha)
        rows += task_rows
    return rows


def _failed(record: dict[str, Any], lower_is_better: bool) -> bool:
    """Whether a finished run ended no better than its task's memoryless baseline."""
    baseline = record.get("baseline")
    if baseline is None:
        return False
    return record["value"] >= baseline if lower_is_better else record["value"] <= baseline


def _verdict(row: dict[str, Any], base: str, alpha: float) -> str:
    if row["variant"] == base:
        return "base"
    if math.isnan(row["p_holm"]):
        return "untested"
    if not row["p_holm"] < alpha:
        return "same"
    higher = row["diff"] > 0
    return "worse" if higher == row["lower_is_better"] else "better"
