"""The automatic forecaster's search and refits shared among MPI ranks
(lstmkit.series.auto_shared): `mpiexec -n 2 python -m lstmkit series train` writes the
auto.npz of a one-process run, bit for bit (the oracle: the one-process run), also when it
resumes a one-process run killed in the search. Slow, and skipped without mpi4py/mpiexec.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mpi_launch import ENV, MPIEXEC, needs_mpi, ok, run_lstmkit

from lstmkit.series import auto_progress
from lstmkit.series.auto import AutoConfig, fit_auto
from lstmkit.series.auto_shared import Shared
from lstmkit.train import checkpoint, distributed


def _series(path: Path) -> Path:
    t = np.arange(60)
    noise = 0.1 * np.random.default_rng(0).standard_normal(60)
    y = 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 4) + noise
    path.write_text("v\n" + "\n".join(repr(float(v)) for v in y) + "\n")
    return path


def _args(csv: Path, out: Path, steps: int = 40) -> list[str]:
    return [
        "series", "train", "--csv", str(csv), "--column", "v", "--horizon", "4", "--season",
        "4", "--steps", str(steps), "--eval-every", "10", "--minutes", "30", "--no-progress",
        "--out", str(out), "--mpi-timeout", "60",
    ]  # fmt: skip


def _assert_same_run(a: Path, b: Path) -> None:
    (x, meta_x), (y, meta_y) = checkpoint.load(a / "auto.npz"), checkpoint.load(b / "auto.npz")
    assert sorted(x) == sorted(y)
    for k in x:
        assert np.array_equal(x[k], y[k], equal_nan=True), k
    for key in ("members", "search", "season"):
        assert meta_x[key] == meta_y[key], key


def test_one_process_shared_memo_changes_nothing() -> None:
    """With one process, Shared computes every job itself: the plain fit's ensemble."""
    y = 10 + np.sin(np.arange(24) * np.pi / 2) + 0.01 * np.arange(24)
    config = AutoConfig(
        steps=5,
        eval_every=5,
        hidden=3,
        sizes=(2,),
        top=2,
        seeds=1,
        minutes=None,
        calibration_cuts=0,
    )
    plain = fit_auto(y, 4, 4, config)
    shared = Shared(distributed.SingleProcess())
    got = fit_auto(y, 4, 4, config, progress=shared)
    assert got.table == plain.table
    assert len(shared.rows) == len(plain.table) and len(shared.members) == 2
    for (_, _, a, _), (_, _, b, _) in zip(got.members, plain.members):
        for k, w in a.state_dict().items():
            np.testing.assert_array_equal(w, b.state_dict()[k])


@pytest.mark.slow
@needs_mpi
def test_two_ranks_write_the_one_process_run(tmp_path: Path) -> None:
    csv = _series(tmp_path / "s.csv")
    ok(run_lstmkit(_args(csv, tmp_path / "one")))
    proc = ok(run_lstmkit(_args(csv, tmp_path / "two"), n=2))
    assert "sharing the candidates among 2 MPI processes" in proc.stderr
    assert proc.stdout.count("trained the automatic forecaster") == 1  # rank 0 alone
    assert not (tmp_path / "two" / auto_progress.FILE).exists()
    _assert_same_run(tmp_path / "one", tmp_path / "two")


@pytest.mark.slow
@needs_mpi
def test_two_ranks_resume_a_killed_one_process_run(tmp_path: Path) -> None:
    """A one-process run killed (SIGKILL) once a candidate is saved, resumed by 2 ranks:
    the one-process run's auto.npz."""
    assert MPIEXEC is not None
    csv, killed = _series(tmp_path / "s.csv"), tmp_path / "killed"
    argv = _args(csv, killed, steps=300)
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit", *argv], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(checkpoint.load(killed / auto_progress.FILE)[1]["rows"]) >= 1:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    resumed = ok(run_lstmkit([*argv, "--resume"], n=2))
    assert "resuming:" in resumed.stderr
    ok(run_lstmkit(_args(csv, tmp_path / "one", steps=300)))
    _assert_same_run(tmp_path / "one", killed)


def _long_csv(path: Path) -> Path:
    rng = np.random.default_rng(1)
    rows = ["unique_id,y"]
    for k, n in enumerate((44, 36, 40)):
        t = np.arange(n)
        y = 10 * k + 0.05 * t + 2 * np.sin(2 * np.pi * t / 4) + 0.1 * rng.standard_normal(n)
        rows += [f"s{k},{float(v)!r}" for v in y]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
@needs_mpi
def test_two_ranks_write_the_one_process_global_run(tmp_path: Path) -> None:
    """The global model (--id-column): 2 ranks write the one-process global.npz."""
    csv = _long_csv(tmp_path / "l.csv")
    argv = [
        "series", "train", "--csv", str(csv), "--id-column", "--column", "y", "--horizon",
        "3", "--season", "4", "--steps", "30", "--eval-every", "10", "--minutes", "30",
        "--no-progress", "--mpi-timeout", "60",
    ]  # fmt: skip
    ok(run_lstmkit([*argv, "--out", str(tmp_path / "one")]))
    proc = ok(run_lstmkit([*argv, "--out", str(tmp_path / "two")], n=2))
    assert "sharing the candidates among 2 MPI processes" in proc.stderr
    assert proc.stdout.count("trained the global forecaster") == 1
    (x, mx), (y, my) = (checkpoint.load(tmp_path / r / "global.npz") for r in ("one", "two"))
    assert sorted(x) == sorted(y)
    for k in x:
        assert np.array_equal(x[k], y[k], equal_nan=True), k
    assert mx["search"] == my["search"] and mx["members"] == my["members"]
