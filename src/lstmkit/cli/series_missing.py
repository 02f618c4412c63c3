"""``--missing`` on the series commands: the option, the one-line report of what was filled,
and the refusal of ``mask`` where no loss can skip a value (see lstmkit.series.missing)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from lstmkit.cli.errors import UserError


def add_missing_option(p: argparse.ArgumentParser) -> None:
    from lstmkit.series.missing import MODES

    p.add_argument(
        "--missing",
        choices=MODES,
        default="error",
        help="missing values (empty/NaN cells, time stamps the frequency skips): error "
        "(default), interpolate (linear), previous (last value) or mask (the automatic "
        "forecaster's loss skips them; inputs interpolated)",
    )


def say_filled(series: Any, end: int) -> None:
    """One line on stderr when missing values before ``end`` were filled (never silently)."""
    import numpy as np

    count = int(np.isnan(series.values[:end]).sum())
    if count:
        how = {"interpolate": "interpolated", "previous": "filled with the previous value",
               "mask": "masked (inputs interpolated)"}[series.missing]  # fmt: skip
        print(f"{count} missing values {how} (--missing {series.missing})", file=sys.stderr)


def refuse_mask(args: argparse.Namespace) -> None:
    """``--missing mask`` with one LSTM (--lookback/--difference): a UserError."""
    if args.missing == "mask":
        raise UserError(
            "--missing mask goes with the automatic forecaster (no --lookback or --difference); "
            "with one LSTM choose --missing interpolate or previous"
        )


def filled_before(series: Any, end: int) -> Any:
    """The series with its values before ``end`` filled from those values alone."""
    if end <= 0:
        return series
    values = series.values.copy()
    values[:end] = series.history(end)
    return replace(series, values=values)
