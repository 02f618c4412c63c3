"""The global forecaster resumes exactly: a fit interrupted in the search or in the refits and
resumed from its progress file ends with the same ensemble, bit for bit, as an uninterrupted
fit (the oracle), computing only what was not saved; a resume with other data or options is
refused in one line; `series train --id-column ... --resume` after a SIGKILL writes the
global.npz of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from interrupting import Interrupting, Killed, same

from lstmkit.cli.app import main
from lstmkit.series import many_progress
from lstmkit.series.auto import AutoConfig
from lstmkit.series.many import GlobalEnsemble, Panel, fit_global
from lstmkit.series.many_progress import GlobalProgress, stamp
from lstmkit.train import checkpoint

# no time budget: the result must not depend on the clock
CONFIG = AutoConfig(steps=10, eval_every=5, hidden=4, sizes=(3,), top=2, seeds=2, minutes=None)
M, H = 4, 3


def seasonal(n: int, level: float, seed: int) -> np.ndarray:
    t = np.arange(n)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(n)
    return level + 0.05 * t + 2 * np.sin(2 * np.pi * t / M) + noise


def panel() -> Panel:
    return Panel.of([seasonal(36, 10, 0), seasonal(30, 50, 1), seasonal(40, -5, 2)])


def arrays_of(e: GlobalEnsemble) -> dict[str, np.ndarray]:
    out = {f"errors{i}": err for i, err in enumerate(e.errors)}
    for k, mb in enumerate(e.members):
        out.update({f"{k}/{n}": w for n, w in mb.model.state_dict().items()})
        out[f"{k}/season"] = np.stack([tf.season for tf in mb.transforms])
        out[f"{k}/scales"] = np.stack(mb.scales)
    return out


def assert_same(a: GlobalEnsemble, b: GlobalEnsemble) -> None:
    """Every array bit for bit, the members and the search table equal (scores to 1e-7)."""
    assert same(a.summary(), b.summary())
    x, y = arrays_of(a), arrays_of(b)
    assert sorted(x) == sorted(y)
    for k in x:
        assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k], equal_nan=True), k


@pytest.fixture(scope="module")
def reference() -> GlobalEnsemble:
    return fit_global(panel(), M, H, CONFIG)


@pytest.mark.parametrize("where", ["search", "refit"])
def test_an_interrupted_global_fit_resumes_bit_for_bit(
    tmp_path: Path, reference: GlobalEnsemble, where: str
) -> None:
    """Killed when the second candidate starts, or when the second member's refit starts;
    resumed, it computes only what was not saved and equals the uninterrupted fit."""
    s = stamp(panel(), M, H, CONFIG)
    kill_at = 2 if where == "search" else len(reference.table) + 2
    first = Interrupting(GlobalProgress.start(tmp_path, s), kill_at)
    with pytest.raises(Killed):
        fit_global(panel(), M, H, CONFIG, progress=first)
    saved = GlobalProgress.resume(tmp_path, s)
    assert len(saved.rows) + len(saved.members) == kill_at - 1
    resumed = Interrupting(saved)
    assert_same(fit_global(panel(), M, H, CONFIG, progress=resumed), reference)
    assert resumed.computed == len(reference.table) + len(reference.members) - (kill_at - 1)
    again = Interrupting(GlobalProgress.resume(tmp_path, s))  # everything saved: a replay
    assert_same(fit_global(panel(), M, H, CONFIG, progress=again), reference)
    assert again.computed == 0


def test_a_global_resume_with_other_data_or_options_is_refused(tmp_path: Path) -> None:
    p = panel()
    progress = GlobalProgress.start(tmp_path, stamp(p, M, H, CONFIG))
    c = many_progress.Candidate(4, False, False, 4)
    progress.validated(c, lambda: (1.0, 10, [np.ones((2, H)), np.ones((3, H))]))
    saved = GlobalProgress.resume(tmp_path, stamp(p, M, H, CONFIG))
    assert [e.shape for e in saved.rows[c][2]] == [(2, H), (3, H)]  # each series' rows
    other = Panel.of([p.y[0], p.y[1] + 1e-9, p.y[2]])
    with pytest.raises(ValueError, match=r"^cannot resume: the values differ from the run's"):
        GlobalProgress.resume(tmp_path, stamp(other, M, H, CONFIG))
    with_covariate = Panel(p.y, [np.ones((len(y), 1)) for y in p.y], p.P, p.ids)
    with pytest.raises(ValueError, match=r"^cannot resume: the values differ"):
        GlobalProgress.resume(tmp_path, stamp(with_covariate, M, H, CONFIG))
    with pytest.raises(
        ValueError, match=r"^cannot resume: other options .*steps 30 \(the run's: 10\)"
    ):
        GlobalProgress.resume(tmp_path, stamp(p, M, H, replace(CONFIG, steps=30)))
    assert len(GlobalProgress.resume(tmp_path, stamp(p, M, H, replace(CONFIG, minutes=3))).rows)
    with pytest.raises(checkpoint.CheckpointError, match="kind: expected"):  # not the auto file
        from lstmkit.series.auto_progress import Progress

        (tmp_path / "auto-progress.npz").write_bytes((tmp_path / many_progress.FILE).read_bytes())
        Progress.resume(tmp_path, stamp(p, M, H, CONFIG))


# ---- the command line ------------------------------------------------------------------

FAST = ["--horizon", "3", "--season", "4", "--eval-every", "5", "--hidden", "4", "--holdout",
        "0", "--no-progress"]  # fmt: skip


def _csv(tmp_path: Path) -> Path:
    lines = ["unique_id,y"] + [f"{k},{float(v)!r}" for k, y in zip("abc", panel().y) for v in y]
    path = tmp_path / "l.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _argv(csv: Path, out: Path, steps: int = 10) -> list[str]:
    argv = ["series", "train", "--csv", str(csv), "--id-column", "--column", "y", *FAST]
    return argv + ["--out", str(out), "--steps", str(steps)]


def assert_same_run(a: Path, b: Path) -> None:
    """global.npz of two runs: every array bit for bit, the header's members and search."""
    (x, meta_x), (y, meta_y) = (checkpoint.load(r / "global.npz") for r in (a, b))
    assert sorted(x) == sorted(y)
    for k in x:
        assert np.array_equal(x[k], y[k], equal_nan=True), k
    for key in ("members", "search", "data", "season", "ids"):
        assert same(meta_x[key], meta_y[key]), key


def test_cli_resume_after_an_interrupt_equals_one_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C at the second candidate, then --resume: the same global.npz as a run in one
    go, the progress file gone; and the one-line refusals."""
    csv = _csv(tmp_path)
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(_argv(csv, full) + ["--minutes", "30"]) == 0
    assert not (full / many_progress.FILE).exists()
    real, calls = GlobalProgress.validated, []

    def interrupted(self: GlobalProgress, c: Any, run: Any) -> Any:
        calls.append(c)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, c, run)

    monkeypatch.setattr(GlobalProgress, "validated", interrupted)
    assert main(_argv(csv, part) + ["--minutes", "30"]) == 130
    monkeypatch.setattr(GlobalProgress, "validated", real)
    assert (part / many_progress.FILE).is_file() and not (part / "global.npz").exists()
    assert "saved 1 candidates and 0 members in" in capsys.readouterr().err
    refusals = [
        (_argv(csv, part), "holds an interrupted global forecaster"),
        (_argv(csv, part, 30) + ["--resume"], "steps 30 (the run's: 10)"),
        (_argv(csv, tmp_path / "new") + ["--resume"], "no interrupted global forecaster"),
        (_argv(csv, full) + ["--resume"], "the run is finished"),
    ]
    for argv, needle in refusals:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert main(_argv(csv, part) + ["--resume"]) == 0
    assert "resuming: 1 candidates and 0 members done" in capsys.readouterr().err
    assert_same_run(full, part)
    assert not (part / many_progress.FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["rows", "members"])
def test_cli_resume_after_sigkill_is_exact(tmp_path: Path, phase: str) -> None:
    """A `series train --id-column` process killed with SIGKILL once its progress file holds
    a candidate (in the search) or a member (in the refits), resumed with --resume, writes
    the global.npz of an uninterrupted run."""
    csv, killed = _csv(tmp_path), tmp_path / "killed"
    argv = _argv(csv, killed, steps=200) + ["--eval-every", "100", "--minutes", "30"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(checkpoint.load(killed / many_progress.FILE)[1][phase]) >= 1:
                    break
            except (OSError, ValueError, KeyError):
                pass  # not written yet, or being replaced right now
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert not (killed / "global.npz").exists()
    saved = checkpoint.load(killed / many_progress.FILE)[1]
    assert (len(saved["members"]) >= 1) == (phase == "members")
    assert main(argv + ["--resume"]) == 0
    full = _argv(csv, tmp_path / "full", steps=200) + ["--eval-every", "100"]
    assert main(full + ["--minutes", "30"]) == 0
    assert_same_run(tmp_path / "full", killed)
