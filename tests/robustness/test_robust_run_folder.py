"""Run folders that are not what they seem: a second trainer, planted symlinks, temporary
files left by kills, a run folder inside its own corpus, a corpus changed under a run, old
run folders, and progress output to a log file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.text.corpus import collect_files, load_corpus, split_files
from lstmkit.text.train import TrainConfig, load_model, train
from lstmkit.train import run_folder
from lstmkit.train.run_folder import LineProgress, Run, RunFolderBusy, RunFolderError
from lstmkit.train.trainer import TrainingError
from robustness._outcomes import record

SRC = Path(__file__).parents[2] / "src"
DATA = Path(__file__).parent.parent / "data" / "checkpoints_v1"
TINY = dict(embed=4, hidden=8, layers=1, seq_len=8, batch=4, eval_every=2, eval_chars=100)


def tiny(steps: int = 2) -> TrainConfig:
    return TrainConfig(steps=steps, **TINY)


def _train(out: Path, corpus: Path, steps: int = 2, resume: bool = False) -> dict:
    return train(
        tiny(steps), out, [str(corpus)], resume=resume, show_progress=False, log=lambda s: None
    )


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """The corpus the v1 char-LM checkpoint was trained on (tests/data/checkpoints_v1)."""
    folder = tmp_path / "corp"
    folder.mkdir()
    (folder / "a.txt").write_text("hello world, this is text. " * 200)
    (folder / "b.txt").write_text("more text here! " * 100)
    return folder


# ---- one trainer per run folder ---------------------------------------------------------


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    first = Run(tmp_path / "run").lock()
    with pytest.raises(
        RunFolderBusy, match=f"in use by another lstmkit process \\(pid {os.getpid()}\\)"
    ):
        Run(tmp_path / "run").lock()
    first.release()
    Run(tmp_path / "run").lock().release()  # free again
    assert not (tmp_path / "run").exists()  # created for nothing: removed again
    record("lock", "refused")


def _holder(folder: Path) -> subprocess.Popen:
    code = (
        "import sys, time; from lstmkit.train.run_folder import Run; "
        f"Run({str(folder)!r}).lock(); print('locked', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_trainer_is_refused_in_one_line_and_a_killed_holder_does_not_block(
    tmp_path, corpus, capsys
):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        args = ["text", "train", "--text", str(corpus), "--out", str(out), "--no-progress"]
        args += ["--embed", "4", "--hidden", "8", "--layers", "1", "--seq-len", "8"]
        args += ["--batch", "4", "--steps", "2", "--eval-every", "2", "--eval-chars", "100"]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {holder.pid}" in err, err
        assert not (out / "latest.npz").exists()
        record("lock", "refused")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / ".lock").exists()  # the stale lock file stays; the kernel's lock is gone
    assert main(args) == 0
    assert (out / "latest.npz").is_file()
    record("lock", "stale lock taken over")


# ---- symlinks and leftovers -------------------------------------------------------------


def test_planted_symlinks_are_never_written_through(tmp_path, corpus):
    out = tmp_path / "run"
    out.mkdir()
    victims = {}
    for name in ("metrics.tmp", "latest.npz.tmp", "loss.png", "best.npz", "metrics.jsonl"):
        victim = tmp_path / f"victim_{name}"
        victim.write_text("precious")
        (out / name).symlink_to(victim)
        victims[name] = victim
    _train(out, corpus)
    for name, victim in victims.items():
        assert victim.read_text() == "precious", name
        record("symlink", "not followed")
    assert not (out / "loss.png").is_symlink() and (out / "loss.png").stat().st_size > 0
    assert not (out / "metrics.tmp").exists()  # a leftover name: removed (the link, not its target)
    # a link planted at metrics.jsonl of a run being resumed: refused in one line
    (out / "metrics.jsonl").unlink()
    (out / "metrics.jsonl").symlink_to(victims["metrics.jsonl"])
    with pytest.raises(RunFolderError, match="metrics.jsonl is a symbolic link"):
        _train(out, corpus, steps=4, resume=True)
    assert victims["metrics.jsonl"].read_text() == "precious"
    record("symlink", "refused")


def test_temporary_files_left_by_kills_are_removed_when_the_run_is_opened(tmp_path, corpus):
    out = tmp_path / "run"
    _train(out, corpus)
    left = [".latest.npz.k3j4h2.tmp", ".best.npz.0000.tmp", "metrics.tmp", ".loss.png.x.tmp"]
    for name in left:
        (out / name).write_bytes(b"half a checkpoint")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (out / ".metrics.jsonl.zz.tmp").symlink_to(victim)
    _train(out, corpus, steps=4, resume=True)
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert victim.read_text() == "precious"
    record("leftover .tmp", "removed")


# ---- the corpus -------------------------------------------------------------------------


def test_a_run_folder_inside_its_own_corpus_is_left_out_and_resumes(tmp_path, corpus):
    out = corpus / "runs" / "one"
    _train(out, corpus)
    assert not any(out in p.parents for p in collect_files([corpus], exclude=[out]))
    assert load_corpus([corpus], exclude=[out]) == load_corpus([corpus], exclude=[corpus / "runs"])
    summary = _train(out, corpus, steps=4, resume=True)  # its own files did not become text
    assert summary["steps"] == 4


def test_a_changed_corpus_is_reported_on_resume(tmp_path, corpus):
    (corpus / "c.txt").write_text("validation text? " * 50)
    out = tmp_path / "run"
    _train(out, corpus)
    _, val = split_files(collect_files([corpus]))
    assert val
    val[0].write_text(val[0].read_text() + "an edit")  # the training text is unchanged
    with pytest.raises(TrainingError, match="the corpus changed since the run started"):
        _train(out, corpus, steps=4, resume=True)
    record("changed corpus", "refused")


# ---- what worked before still works -----------------------------------------------------


def test_an_old_run_folder_resumes(tmp_path, corpus):
    """A run folder whose latest.npz was written before this suite (no corpus selection)."""
    out = tmp_path / "old"
    out.mkdir()
    shutil.copy(DATA / "charlm_latest.npz", out / "latest.npz")
    before = load_model(out)[0].parameters()
    before = {k: v.copy() for k, v in before.items()}
    summary = _train(out, corpus, steps=5, resume=True)
    assert summary["steps"] == 5
    after = load_model(out / "latest.npz")[0].parameters()
    assert any(not np.array_equal(before[k], after[k]) for k in before)  # it trained on


# ---- progress in a log file -------------------------------------------------------------


def test_progress_is_a_line_every_n_seconds_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    bar = run_folder.progress(100, "train")  # pytest's stderr is not a terminal
    assert isinstance(bar, LineProgress)
    bar.update(0)
    for _ in range(100):
        clock[0] += 1.0
        bar.update(1)
        bar.set_postfix(loss="1.0")
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 100 // int(run_folder.PROGRESS_EVERY) + 1, lines
    assert lines[0].startswith("train: 30/100 steps") and "loss=1.0" in lines[0]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert not isinstance(run_folder.progress(10, "train"), LineProgress)  # tqdm's bar


def test_a_file_or_a_link_in_the_way_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunFolderError, match="cannot use it as a run folder"):
        Run(tmp_path / "file").lock()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunFolderError, match="cannot use it as a run folder"):
        Run(tmp_path / "run").lock()
    assert not (tmp_path / "elsewhere").exists()
    record("symlink", "refused")
