"""Where a fresh clone's test run spends its time compiling: a pytest plugin.

numba compiles each kernel once per signature (dtypes and array layouts) and caches it next
to the source; a clean clone (CI) compiles everything inside the tests. This plugin listens
to numba's compile events and writes, at exit, the compile time of each function
(exclusive of the functions it compiled in turn) and each signature's::

    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=benchmarks python -m pytest -p compile_time \\
        tests/test_fused.py            # -> compile_time.txt (COMPILE_TIME_OUT=PATH)

Only the pytest process is seen (not the subprocesses some tests start).
"""

from __future__ import annotations

import atexit
import os
import time
from collections import Counter

from numba.core import event

_open: list[list[float]] = []  # [start, time spent compiling callees] per compile under way
_by_function: Counter[str] = Counter()
_versions: Counter[str] = Counter()
_signatures: list[tuple[float, str, str]] = []


def _name(dispatcher: object) -> str:
    f = getattr(dispatcher, "py_func", dispatcher)
    return f"{f.__module__}.{f.__qualname__}"


class _Listener(event.Listener):
    def on_start(self, ev: event.Event) -> None:
        _open.append([time.perf_counter(), 0.0])

    def on_end(self, ev: event.Event) -> None:
        start, callees = _open.pop()
        spent = time.perf_counter() - start
        name = _name(ev.data["dispatcher"])
        _by_function[name] += spent - callees
        _versions[name] += 1
        _signatures.append((spent - callees, name, str(ev.data.get("args"))))
        if _open:
            _open[-1][1] += spent


def _report() -> None:
    with open(os.environ.get("COMPILE_TIME_OUT", "compile_time.txt"), "w") as f:
        f.write(f"total {sum(_by_function.values()):.1f} s compiling (exclusive)\n")
        for name, seconds in _by_function.most_common(40):
            f.write(f"{seconds:7.2f} s  {_versions[name]:2d} versions  {name}\n")
        f.write("\nthe slowest signatures:\n")
        for seconds, name, args in sorted(_signatures, reverse=True)[:20]:
            f.write(f"{seconds:7.2f} s  {name} {args}\n")


event.register("numba:compile", _Listener())
atexit.register(_report)
