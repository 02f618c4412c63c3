"""Launching lstmkit under MPI in the tests (test_mpi.py, test_mpi_auto.py): where mpiexec
is, a skip mark for machines without MPI, the environment (one thread per rank) and one
command run to completion within a time limit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")


def mpi_missing() -> str | None:
    """Why MPI tests cannot run here (None: they can)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'lstmkit[mpi]')"
    if MPIEXEC is None:
        return "no mpiexec on PATH or beside the interpreter (pip install mpich)"
    return None


needs_mpi = pytest.mark.skipif(mpi_missing() is not None, reason=str(mpi_missing()))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
TIMEOUT = 120  # a hung job fails the test instead of the suite


def run_lstmkit(
    args: list[str], n: int | None = None, mpi: list[str] = ()
) -> subprocess.CompletedProcess:
    """``python -m lstmkit args``, under ``mpiexec [mpi] -n n`` unless n is None; output kept."""
    cmd = [sys.executable, "-m", "lstmkit", *args]
    if n is not None:
        assert MPIEXEC is not None
        cmd = [MPIEXEC, *mpi, "-n", str(n), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=TIMEOUT)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``proc``, which must have exited 0 (else its output is the failure's message)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc
