"""Data-parallel training on MPI (lstmkit.train.distributed): `mpiexec -n 2 python -m lstmkit ...`.

The oracle is the one-process run: with the same seed, K ranks sharing the B streams of
every window must end with the parameters, Adam moments, carried state and metrics of one
process with batch B — to rounding in float64, to float32 rounding in float32. The MPI
tests skip when mpi4py or its mpiexec is missing (`pip install 'lstmkit[mpi]'`); the unit
tests of the communicator helpers run everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mpi_launch import ENV, MPIEXEC, TIMEOUT, mpi_missing, needs_mpi, ok, run_lstmkit

from lstmkit.train import checkpoint, distributed

# ---- without MPI ------------------------------------------------------------------------


def test_launcher_size_reads_the_launchers_variables():
    assert distributed.launcher_size({}) is None
    assert distributed.launcher_size({"PMI_SIZE": "4", "PMI_RANK": "1"}) == 4
    assert distributed.launcher_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert distributed.launcher_size({"PMIX_RANK": "0"}) == 0  # launched, size unknown


def test_without_a_launcher_training_stays_single_process():
    comm = distributed.from_environment(environ={"PATH": "/usr/bin"})
    assert isinstance(comm, distributed.SingleProcess) and (comm.rank, comm.size) == (0, 1)
    assert distributed.from_environment(environ={"PMI_SIZE": "1"}).size == 1


def test_a_launch_without_mpi4py_is_refused_not_run_k_times(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    with pytest.raises(distributed.DistributedError, match=r"lstmkit\[mpi\]"):
        distributed.from_environment(environ={"PMI_SIZE": "2", "PMI_RANK": "0"})


class _TwoRanks(distributed.SingleProcess):
    """Rank 0 of 2, whose peer contributed ``peer``: what MPI's Allreduce(SUM) / 2 gives."""

    size = 2

    def __init__(self, peer: np.ndarray):
        self.peer = peer

    def allreduce_mean_(self, buffer: np.ndarray) -> None:
        buffer += self.peer
        buffer /= 2


def test_flat_gradients_average_every_array_and_scalar_in_place():
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    peer = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    flat = distributed.FlatGradients(grads, scalars=2)
    assert flat.nbytes == (12 + 5 + 2) * 8
    comm = _TwoRanks(np.concatenate([peer["a"].ravel(), peer["b"], [3.0, 1.0]]))
    expected = {k: (grads[k] + peer[k]) / 2 for k in grads}
    a_before = grads["a"]
    loss, flag = flat.allreduce_mean(comm, grads, 1.0, 0.0)
    assert (loss, flag) == (2.0, 0.5)
    assert grads["a"] is a_before  # updated in place: the optimizer holds these arrays
    for k in grads:
        np.testing.assert_array_equal(grads[k], expected[k])
    with pytest.raises(ValueError, match="scalars"):
        flat.allreduce_mean(comm, grads, 1.0)


def test_shard_splits_streams_evenly_or_explains():
    comm = _TwoRanks(np.zeros(1))
    shard = distributed.MPICommunicator.shard
    comm.rank = 1
    assert shard(comm, 64) == slice(32, 64)  # type: ignore[arg-type]
    with pytest.raises(distributed.DistributedError, match="multiple of the 2 MPI processes"):
        shard(comm, 63)  # type: ignore[arg-type]


# ---- under mpiexec ----------------------------------------------------------------------


def _corpus(folder: Path) -> Path:
    """~600 training characters: batch 4 x seq 16 gives 8 windows, so 12 steps wrap around."""
    folder.mkdir()
    words = ["alpha", "beta", "gamma", "delta"]
    for k in range(4):
        lines = [f"{words[(k + j) % 4]} = {words[j % 4]}({j % 3})\n" for j in range(12)]
        (folder / f"f{k}.txt").write_text("".join(lines), encoding="utf-8")
    return folder


def _args(corpus: Path, out: Path, steps: int, dtype: str = "float64", *extra: str) -> list[str]:
    return [
        "text", "train", "--text", str(corpus), "--out", str(out), "--steps", str(steps),
        "--batch", "4", "--seq-len", "16", "--embed", "8", "--hidden", "12", "--layers", "2",
        "--eval-every", "5", "--eval-chars", "300", "--lr", "0.01", "--clip", "0.5",
        "--seed", "3", "--dtype", dtype, "--mpi-timeout", "60", *extra,
    ]  # fmt: skip


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _assert_same_run(
    got: Path, want: Path, rtol: float, name: str = "latest", logs: bool = True
) -> None:
    """Every array (parameters, Adam moments, the global carried state) and the metrics."""
    a, ma = checkpoint.load(got / f"{name}.npz")
    b, mb = checkpoint.load(want / f"{name}.npz")
    assert sorted(a) == sorted(b)
    assert a["carry/h"].shape == b["carry/h"].shape  # the global (L, B, H) state
    for key in b:
        assert a[key].dtype == b[key].dtype, key
        assert _rel(a[key], b[key]) <= rtol, (key, _rel(a[key], b[key]))
    assert ma["step"] == mb["step"] and ma["optimizer"] == mb["optimizer"]
    assert ma["best_val_bpc"] == pytest.approx(mb["best_val_bpc"], rel=rtol)
    if not logs:
        return
    log_a = [json.loads(x) for x in (got / "metrics.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (want / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in log_a] == [sorted(r) for r in log_b]  # nothing logged twice
    for ra, rb in zip(log_a, log_b):
        assert ra["step"] == rb["step"]
        for k in ("train_loss", "grad_norm", "val_bpc"):
            if k in rb:
                assert ra[k] == pytest.approx(rb[k], rel=max(rtol, 1e-6)), (k, ra, rb)


_GUARD = """\
import os, sys
run = os.path.realpath(sys.argv[1])
def _inside(path):
    try:
        return os.path.realpath(os.fsdecode(path)).startswith(run)
    except TypeError:
        return False  # a file descriptor
def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = (mode is not None and any(c in mode for c in "wax+")) or (
            mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    else:
        writes = event in ("os.rename", "os.remove", "os.mkdir", "os.truncate", "shutil.rmtree")
        path = args[0] if args else None
    if writes and path is not None and _inside(path):
        os.write(2, f"RANK-1-WROTE {event} {path}\\n".encode())
        os._exit(3)
sys.addaudithook(_hook)
from lstmkit.cli.app import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process and two ranks, 12 steps each (float64); rank 1 may not touch the run."""
    if mpi_missing():
        pytest.skip(mpi_missing())
    root = tmp_path_factory.mktemp("mpi")
    corpus = _corpus(root / "corpus")
    single, double = root / "single", root / "double"
    ok(run_lstmkit(_args(corpus, single, 12) + ["--no-progress"]))
    guard = root / "guard.py"
    guard.write_text(_GUARD)
    assert MPIEXEC is not None
    cmd = [MPIEXEC, "-prepend-rank", "-n", "1", sys.executable, "-m", "lstmkit"]
    cmd += _args(corpus, double, 12) + [":", "-n", "1", sys.executable, str(guard), str(double)]
    cmd += _args(corpus, double, 12)  # progress bar on: only rank 0 may show it
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
    return {"corpus": corpus, "single": single, "double": double, "proc": ok(proc)}


@pytest.mark.slow
@needs_mpi
def test_two_ranks_equal_one_process_in_float64(runs):
    assert "on 2 MPI processes" in runs["proc"].stdout  # really two ranks, not two runs
    _assert_same_run(runs["double"], runs["single"], rtol=1e-12)
    _assert_same_run(runs["double"], runs["single"], rtol=1e-12, name="best")


@pytest.mark.slow
@needs_mpi
def test_rank_0_alone_writes_logs_and_shows_progress(runs):
    proc = runs["proc"]
    out = proc.stdout + proc.stderr
    assert "RANK-1-WROTE" not in out
    assert "[0]" in proc.stderr and "train" in proc.stderr  # rank 0's progress bar
    assert not [line for line in out.splitlines() if line.startswith("[1]")], out
    names = sorted(p.name for p in runs["double"].iterdir())
    assert names == ["best.npz", "latest.npz", "loss.png", "metrics.jsonl"]


@pytest.mark.slow
@needs_mpi
def test_two_ranks_equal_one_process_to_float32_rounding(tmp_path, runs):
    single, double = tmp_path / "single", tmp_path / "double"
    ok(run_lstmkit(_args(runs["corpus"], single, 6, "float32") + ["--no-progress"]))
    ok(run_lstmkit(_args(runs["corpus"], double, 6, "float32") + ["--no-progress"], n=2))
    _assert_same_run(double, single, rtol=2e-4)


@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize(("first", "then"), [(2, 1), (2, 2), (1, 2)])
def test_resume_on_any_number_of_ranks_continues_the_run(tmp_path, runs, first, then):
    out = tmp_path / "run"
    ok(run_lstmkit(_args(runs["corpus"], out, 7) + ["--no-progress"], n=first))
    ok(run_lstmkit(_args(runs["corpus"], out, 12) + ["--no-progress", "--resume"], n=then))
    _assert_same_run(out, runs["single"], rtol=1e-12, logs=False)  # + a validation at step 7


@pytest.mark.slow
@needs_mpi
def test_resume_with_dropout_on_the_same_ranks_is_bit_exact(tmp_path, runs):
    whole, split = tmp_path / "whole", tmp_path / "split"
    extra = ["--no-progress", "--dropout", "0.3"]
    ok(run_lstmkit(_args(runs["corpus"], whole, 10, "float64", *extra), n=2))
    ok(run_lstmkit(_args(runs["corpus"], split, 6, "float64", *extra), n=2))
    ok(run_lstmkit(_args(runs["corpus"], split, 10, "float64", *extra, "--resume"), n=2))
    a, _ = checkpoint.load(split / "latest.npz")
    b, _ = checkpoint.load(whole / "latest.npz")
    for key in b:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
@needs_mpi
def test_with_dropout_two_ranks_equal_one_process_and_resume_on_one(tmp_path, runs):
    """Dropout masks are keyed by (seed, step, example), not drawn per rank: 2 ranks draw
    exactly one process's masks (inter-layer and output dropout), and a run begun on 2 ranks
    goes on on 1 as if it had never been split."""
    single, double, split = tmp_path / "single", tmp_path / "double", tmp_path / "split"
    extra = ["--no-progress", "--dropout", "0.1"]
    ok(run_lstmkit(_args(runs["corpus"], single, 12, "float64", *extra)))
    ok(run_lstmkit(_args(runs["corpus"], double, 12, "float64", *extra), n=2))
    _assert_same_run(double, single, rtol=1e-10)
    ok(run_lstmkit(_args(runs["corpus"], split, 7, "float64", *extra), n=2))
    ok(run_lstmkit(_args(runs["corpus"], split, 12, "float64", *extra, "--resume")))
    _assert_same_run(split, single, rtol=1e-10, logs=False)
    # control: the masks matter (without them the runs would agree trivially)
    a, _ = checkpoint.load(single / "latest.npz")
    b, _ = checkpoint.load(runs["single"] / "latest.npz")
    assert _rel(a["model/head.weight"], b["model/head.weight"]) > 1e-3


@pytest.mark.slow
@needs_mpi
def test_a_batch_that_does_not_divide_is_refused_once(tmp_path, runs):
    args = _args(runs["corpus"], tmp_path / "run", 3) + ["--batch", "5", "--no-progress"]
    proc = run_lstmkit(args, n=2)
    assert proc.returncode == 1
    assert proc.stderr.count("expected a multiple of the 2 MPI processes") == 1, proc.stderr
    assert not (tmp_path / "run").exists()


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of MPI rank ``rank`` among the launcher's descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
    family, grew = {launcher.pid}, True
    while grew:
        new = {p for p, pp in parents.items() if pp in family} - family
        family |= new
        grew = bool(new)
    for pid in family - {launcher.pid}:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in env and b"lstmkit" in cmdline:
            return pid
    return None


def _start_long_run(out: Path, corpus: Path, *extra: str) -> subprocess.Popen:
    assert MPIEXEC is not None
    args = _args(corpus, out, 100_000, "float64", "--no-progress", *extra)  # no JIT warm-up
    args[args.index("--eval-every") + 1] = "3"  # checkpoints all the time
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "lstmkit", *args]
    launcher = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    deadline = time.monotonic() + 60
    while not (out / "latest.npz").is_file():  # training is under way
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline, "no checkpoint after 60 s"
        time.sleep(0.05)
    time.sleep(0.5)
    return launcher


def _ends_within(launcher: subprocess.Popen, seconds: float) -> tuple[int, str]:
    try:
        out, err = launcher.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.communicate()
        pytest.fail(f"the job still ran {seconds} s after the rank failed")
    return launcher.returncode, out + err  # MPICH's launcher reports on stdout


def _resumable(out: Path, corpus: Path) -> None:
    _, meta = checkpoint.load(out / "latest.npz")  # intact: loads, CRCs and all
    steps = meta["step"] + 2
    args = _args(corpus, out, steps, "float64", "--no-progress", "--resume")
    args[args.index("--eval-every") + 1] = "3"  # as _start_long_run
    ok(run_lstmkit(args))
    _, meta = checkpoint.load(out / "latest.npz")
    assert meta["step"] == steps


@pytest.mark.slow
@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_killed_rank_ends_the_job_and_keeps_the_checkpoint(tmp_path, runs):
    out = tmp_path / "run"
    launcher = _start_long_run(out, runs["corpus"])
    pid = _rank_pid(launcher, 1)
    assert pid is not None, "rank 1 not found"
    os.kill(pid, signal.SIGKILL)
    code, said = _ends_within(launcher, 30)
    # the outcome, not the launcher's wording (MPICH may say "BAD TERMINATION", "killed",
    # or only "process_vm_readv failed")
    assert code != 0, said
    _resumable(out, runs["corpus"])


@pytest.mark.slow
@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_hung_rank_ends_the_job_after_the_timeout(tmp_path, runs):
    out = tmp_path / "run"
    launcher = _start_long_run(out, runs["corpus"], "--mpi-timeout", "2")
    pid = _rank_pid(launcher, 1)
    assert pid is not None, "rank 1 not found"
    os.kill(pid, signal.SIGSTOP)  # alive but making no progress
    try:
        code, said = _ends_within(launcher, 30)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The watchdog's MPI_Abort(124) ends the job; the launcher usually forwards rank 0's
    # "no progress for ... --mpi-timeout" line, but may tear the job down before it has
    # (seen under load), so the outcome is what is asserted: ended, non-zero, checkpoint
    # intact and resumable.
    assert code != 0, said
    if "no progress for" in said:
        assert "--mpi-timeout is 2 s" in said, said
    _resumable(out, runs["corpus"])


@pytest.mark.slow
@needs_mpi
def test_ctrl_c_stops_every_rank_after_the_same_step_and_resumes_exactly(tmp_path, runs):
    out, oracle = tmp_path / "run", tmp_path / "oracle"
    launcher = _start_long_run(out, runs["corpus"])
    launcher.send_signal(signal.SIGINT)  # mpiexec forwards it to every rank
    code, said = _ends_within(launcher, 30)
    assert code == 130, said
    _, meta = checkpoint.load(out / "latest.npz")
    steps = meta["step"] + 2
    args = _args(runs["corpus"], oracle, steps, "float64", "--no-progress")
    args[args.index("--eval-every") + 1] = "3"
    ok(run_lstmkit(args))
    _resumable(out, runs["corpus"])
    _assert_same_run(out, oracle, rtol=1e-12, logs=False)


@pytest.mark.slow
@needs_mpi
def test_forecaster_two_ranks_equal_one_process_and_resume_on_one(tmp_path):
    import math

    csv = tmp_path / "series.csv"
    rows = [f"{t},{math.sin(t / 5) + 0.1 * math.cos(1.7 * t) + 0.01 * t:.6f}" for t in range(200)]
    csv.write_text("t,value\n" + "\n".join(rows) + "\n")

    def args(out: Path, steps: int, *extra: str) -> list[str]:
        return [
            "series", "train", "--csv", str(csv), "--column", "value", "--out", str(out),
            "--lookback", "12", "--horizon", "6", "--hidden", "8", "--batch", "8",
            "--steps", str(steps), "--eval-every", "10", "--lr", "0.01", "--dtype", "float64",
            "--no-progress", *extra,
        ]  # fmt: skip

    single, double, split = tmp_path / "single", tmp_path / "double", tmp_path / "split"
    ok(run_lstmkit(args(single, 30)))
    assert "on 2 MPI processes" in ok(run_lstmkit(args(double, 30), n=2)).stdout
    ok(run_lstmkit(args(split, 15), n=2))
    ok(run_lstmkit(args(split, 30, "--resume")))
    for got, logs in ((double, True), (split, False)):
        a, ma = checkpoint.load(got / "latest.npz")
        b, mb = checkpoint.load(single / "latest.npz")
        assert sorted(a) == sorted(b) and ma["step"] == mb["step"] == 30
        for key in b:
            assert _rel(a[key], b[key]) <= 1e-12, (got.name, key, _rel(a[key], b[key]))
        assert ma["best_val_loss"] == pytest.approx(mb["best_val_loss"], rel=1e-12)
        if logs:
            assert (got / "metrics.jsonl").read_text().count("\n") == (
                single / "metrics.jsonl"
            ).read_text().count("\n")
