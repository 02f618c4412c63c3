"""Every ```python block of README.md runs as written (each in a fresh namespace and folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize(
    "k",  # the examples that train a forecaster (seconds each) are in the slow tier
    [pytest.param(k, marks=[pytest.mark.slow] * (".fit(" in b)) for k, b in enumerate(BLOCKS)],
)
def test_readme_example_runs(k: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = BLOCKS[k]
    for module in ("torch", "onnx"):
        if re.search(rf"^import {module}\b|lstmkit\.io\.{module}", code, re.M):
            pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)  # examples may write files (model.pt, lstm.onnx)
    exec(compile(code, f"README.md block {k}", "exec"), {"__name__": "__readme__"})
