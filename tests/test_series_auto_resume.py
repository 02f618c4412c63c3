"""The automatic forecaster resumes exactly: a fit interrupted in the search or in the refits
and resumed from its progress file ends with the same ensemble, bit for bit, as an
uninterrupted fit (the oracle), skipping the work that was saved; a resume with other values
or options is refused in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from interrupting import Interrupting, Killed, same

from lstmkit.cli.app import main
from lstmkit.series import auto_progress
from lstmkit.series.auto import AutoConfig, Ensemble, fit_auto
from lstmkit.series.auto_progress import Progress, stamp
from lstmkit.train import checkpoint

# no time budget: the result must not depend on the clock; with the ES-hybrid forms (off
# by default) so that their search rows and members resume too
CONFIG = AutoConfig(
    steps=10, eval_every=5, hidden=4, sizes=(3,), top=2, seeds=2, minutes=None, hybrid=True
)
M, H = 4, 4


def series(n: int = 40, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(n)
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / M) + noise


def arrays_of(e: Ensemble) -> dict[str, np.ndarray]:
    out = {"errors": e.errors, "history": e.history}
    for k, (_, tf, model, _) in enumerate(e.members):
        out.update({f"{k}/{n}": w for n, w in model.state_dict().items()})
        out[f"{k}/season"] = tf.season
    return out


def test_same_tells_a_score_apart() -> None:
    assert same({"s": [1.0, "a", float("nan")]}, {"s": [1.0, "a", float("nan")]})
    assert not same({"s": [1.0, "a"]}, {"s": [1.0 + 1e-15, "a"]})
    assert not same({"s": [0.0]}, {"s": [-0.0]})
    assert not same({"s": [1.0, "a"]}, {"s": [1.0, "b"]})


def assert_same(a: Ensemble, b: Ensemble) -> None:
    """Every array bit for bit, the members and the search table equal (scores bit for
    bit too)."""
    timed = ("calibration_cut_seconds",)  # how long the earlier cuts took
    sa, sb = ({k: v for k, v in e.summary().items() if k not in timed} for e in (a, b))
    assert same(sa, sb)
    x, y = arrays_of(a), arrays_of(b)
    assert sorted(x) == sorted(y)
    for k in x:
        assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k], equal_nan=True), k
    assert [tf.scaler for _, tf, _, _ in a.members] == [tf.scaler for _, tf, _, _ in b.members]


@pytest.fixture(scope="module")
def reference() -> Ensemble:
    return fit_auto(series(), M, H, CONFIG)


def test_progress_replays_the_search_without_computing_it(tmp_path: Path, reference) -> None:
    """A progress file holding the whole fit: a resumed fit computes nothing and gives the
    same ensemble (and the first fit with a progress file equals the one without)."""
    y, s = series(), stamp(series(), M, H, CONFIG)
    first = Interrupting(Progress.start(tmp_path, s))
    assert_same(fit_auto(y, M, H, CONFIG, progress=first), reference)
    pieces = len(reference.table) + len(reference.members)
    assert first.computed == pieces
    again = Interrupting(Progress.resume(tmp_path, s))
    assert_same(fit_auto(y, M, H, CONFIG, progress=again), reference)
    assert again.computed == 0


@pytest.mark.parametrize("where", ["search", "refit"])
def test_an_interrupted_fit_resumes_bit_for_bit(tmp_path: Path, reference, where: str) -> None:
    """Killed when the second candidate starts, or when the second member's refit starts;
    resumed, it computes only what was not saved and equals the uninterrupted fit."""
    y, s = series(), stamp(series(), M, H, CONFIG)
    kill_at = 2 if where == "search" else len(reference.table) + 2
    with pytest.raises(Killed):
        fit_auto(y, M, H, CONFIG, progress=Interrupting(Progress.start(tmp_path, s), kill_at))
    saved = Progress.resume(tmp_path, s)
    assert len(saved.rows) + len(saved.members) == kill_at - 1
    assert saved.spent > 0
    resumed = Interrupting(saved)
    assert_same(fit_auto(y, M, H, CONFIG, progress=resumed), reference)
    assert resumed.computed == len(reference.table) + len(reference.members) - (kill_at - 1)


def test_a_resume_past_the_budget_replays_every_saved_candidate(tmp_path: Path, reference) -> None:
    """Killed at the fourth candidate and resumed once its budget is spent: the three saved
    candidates are replayed whatever the clock, the others are skipped, and the fit says the
    budget cut it."""
    y, budget = series(), AutoConfig(**{**CONFIG.__dict__, "minutes": 1.0})
    s = stamp(y, M, H, budget)
    with pytest.raises(Killed):
        fit_auto(y, M, H, budget, progress=Interrupting(Progress.start(tmp_path, s), 4))
    late = Progress.resume(tmp_path, s)
    late.spent = 120.0  # two minutes: past the whole budget
    e = fit_auto(y, M, H, budget, progress=late)
    assert e.truncated and e.table == reference.table[:3]


def test_a_resume_with_other_values_or_options_is_refused(tmp_path: Path) -> None:
    y = series()
    progress = Progress.start(tmp_path, stamp(y, M, H, CONFIG))
    progress.validated(
        auto_progress.Candidate(4, False, False, 4), lambda: (1.0, 10, np.ones((3, H)))
    )
    with pytest.raises(ValueError, match=r"^cannot resume: the values differ from the run's"):
        Progress.resume(tmp_path, stamp(y + 1e-9, M, H, CONFIG))
    other = AutoConfig(**{**CONFIG.__dict__, "steps": 30, "lr": 1e-3})
    with pytest.raises(
        ValueError, match=r"lr 0.001 \(the run's: 0.003\), steps 30 \(the run's: 10\)"
    ):
        Progress.resume(tmp_path, stamp(y, M, H, other))
    with pytest.raises(ValueError, match=r"horizon 5 \(the run's: 4\)"):
        Progress.resume(tmp_path, stamp(y, M, 5, CONFIG))
    longer = AutoConfig(**{**CONFIG.__dict__, "minutes": 5.0})  # the budget may change
    assert len(Progress.resume(tmp_path, stamp(y, M, H, longer)).rows) == 1
    (tmp_path / auto_progress.FILE).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="auto-progress.npz: not an lstmkit"):
        Progress.resume(tmp_path, stamp(y, M, H, CONFIG))


# ---- the command line ------------------------------------------------------------------

CLI = ["--horizon", "4", "--season", "4", "--eval-every", "5", "--hidden", "4", "--no-progress"]


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "s.csv"
    path.write_text("v\n" + "\n".join(repr(float(x)) for x in series(44)) + "\n")
    return path


def _train_argv(csv: Path, out: Path, steps: int = 10) -> list[str]:
    argv = ["series", "train", "--csv", str(csv), "--column", "v", *CLI, "--out", str(out)]
    return argv + ["--steps", str(steps)]


def assert_same_run(a: Path, b: Path) -> None:
    """auto.npz of two runs: every array bit for bit, the header's members and search equal."""
    (x, meta_x), (y, meta_y) = checkpoint.load(a / "auto.npz"), checkpoint.load(b / "auto.npz")
    assert sorted(x) == sorted(y)
    for k in x:
        assert np.array_equal(x[k], y[k], equal_nan=True), k
    for key in ("members", "search", "data", "season"):
        assert same(meta_x[key], meta_y[key]), key


def test_train_resume_after_an_interrupt_equals_one_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the first saved candidate, then --resume: the same auto.npz as a run in
    one go; the progress file is gone once auto.npz is written. And the one-line refusals."""
    csv = _csv(tmp_path)
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(_train_argv(csv, full) + ["--minutes", "30"]) == 0
    assert not (full / auto_progress.FILE).exists()
    real, calls = Progress.validated, []

    def interrupted(self: Progress, c: Any, run: Any) -> Any:
        calls.append(c)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, c, run)

    monkeypatch.setattr(Progress, "validated", interrupted)
    assert main(_train_argv(csv, part) + ["--minutes", "30"]) == 130
    monkeypatch.setattr(Progress, "validated", real)
    assert (part / auto_progress.FILE).is_file() and not (part / "auto.npz").exists()
    assert "saved 1 candidates and 0 members in" in capsys.readouterr().err
    refusals = [
        (_train_argv(csv, part), "holds an interrupted automatic forecaster"),
        (_train_argv(csv, part, 30) + ["--resume"], "steps 30 (the run's: 10)"),
        (_train_argv(csv, tmp_path / "new") + ["--resume"], "no interrupted automatic"),
        (_train_argv(csv, full) + ["--resume"], "the run is finished"),
    ]
    for argv, needle in refusals:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert main(_train_argv(csv, part) + ["--resume"]) == 0  # another budget is allowed
    assert "resuming: 1 candidates and 0 members done" in capsys.readouterr().err
    assert_same_run(full, part)
    assert not (part / auto_progress.FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["rows", "members"])
def test_train_resume_after_sigkill_is_exact(tmp_path: Path, phase: str) -> None:
    """A `series train` process killed with SIGKILL once its progress file holds a candidate
    (in the search) or a member (in the refits), resumed with --resume, writes the auto.npz
    of an uninterrupted run."""
    csv, killed = _csv(tmp_path), tmp_path / "killed"
    argv = _train_argv(csv, killed, steps=200) + ["--eval-every", "100", "--minutes", "30"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(checkpoint.load(killed / auto_progress.FILE)[1][phase]) >= 1:
                    break
            except (OSError, ValueError, KeyError):
                pass  # not written yet, or being replaced right now
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert not (killed / "auto.npz").exists()
    saved = checkpoint.load(killed / auto_progress.FILE)[1]
    assert (len(saved["members"]) >= 1) == (phase == "members")
    assert main(argv + ["--resume"]) == 0
    full = _train_argv(csv, tmp_path / "full", steps=200) + ["--eval-every", "100"]
    assert main(full + ["--minutes", "30"]) == 0
    assert_same_run(tmp_path / "full", killed)
