"""The robustness suite's summary: how many generated inputs of each class ended how; and
its tier (slow).

Every generated input is recorded as (class, outcome) in ``_outcomes.COUNTS``; the run ends
with a table: "refused" (a one-line CheckpointError naming the file) or "harmless" (the
damage was in bytes no reader interprets, and the loaded data equals the original).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from robustness._outcomes import COUNTS

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    """The robustness suite is the slow tier's (thousands of generated inputs, ~35 s): `make
    test` runs it, `make test-fast` leaves it out."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not COUNTS:
        return
    terminalreporter.section("robustness inputs (class: outcome count)")
    for kind in sorted({k for k, _ in COUNTS}):
        outcomes = ", ".join(f"{o} {n}" for (k, o), n in sorted(COUNTS.items()) if k == kind)
        terminalreporter.write_line(f"{kind}: {outcomes}")
    terminalreporter.write_line(f"total: {sum(COUNTS.values())}")
