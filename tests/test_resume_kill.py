"""Nothing lost: exact resume (in process, after SIGKILL, after Ctrl-C), refused resumes,
and divergence that stops with a message and keeps the last good checkpoint.

The oracle for "exact" is an uninterrupted run with the same seed: its final ``latest.npz``
must equal the interrupted-and-resumed run's bit for bit (model parameters, Adam's moments,
the carried recurrent state) and the logged losses must be the same numbers.
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

import lstmkit.text.train as text_train
from lstmkit.nn.feedforward import Dropout
from lstmkit.nn.optim import Adam
from lstmkit.text.train import TrainConfig, TrainingError, load_model, train
from lstmkit.train import checkpoint
from lstmkit.train.run_folder import Run

SMALL = dict(embed=8, hidden=16, layers=2, dropout=0.3, seq_len=16, batch=4, lr=5e-3, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> str:
    """~3 KB over 4 files: about 9 training windows per pass, so runs cross pass boundaries."""
    folder = tmp_path_factory.mktemp("corpus")
    for k in range(4):
        lines = [f"def f{k}_{j}(x):\n    return x * {j} + {k}\n" for j in range(25)]
        (folder / f"m{k}.py").write_text("".join(lines), encoding="utf-8")
    return str(folder)


def _train(out: Path, text: str, resume: bool = False, **overrides) -> dict:
    config = TrainConfig(**{**SMALL, "eval_every": 7, "eval_chars": 400, **overrides})
    return train(config, out, [text], resume=resume, show_progress=False, log=lambda s: None)


def _final(run: Path) -> tuple[dict[str, np.ndarray], dict]:
    return checkpoint.load(run / "latest.npz")


def _assert_identical(a: Path, b: Path) -> None:
    """latest.npz of two runs: every array bit for bit, and the training meta equal."""
    arrays_a, meta_a = _final(a)
    arrays_b, meta_b = _final(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    kinds = {k.split("/")[0] for k in arrays_a}
    assert kinds == {"model", "optim", "carry"}
    for key in arrays_a:
        assert arrays_a[key].dtype == arrays_b[key].dtype, key
        assert np.array_equal(arrays_a[key], arrays_b[key]), f"{key} differs"
    for key in ("step", "optimizer", "rng", "corpus", "vocab", "model"):
        assert meta_a[key] == meta_b[key], key


def _losses(run: Path) -> list[tuple[int, str, float]]:
    """The logged numbers that must repeat exactly (not tokens/s)."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key in ("train_loss", "grad_norm", "val_bpc"):
            if key in record:
                out.append((record["step"], key, record[key]))
    return out


# ---- in process ---------------------------------------------------------------------------


def test_resume_in_process_is_bit_exact(tmp_path, corpus):
    """k = 17 steps, then resume to 45: dropout > 0, k not a multiple of eval_every (7),
    passes over the text of 9 windows, so the RNG, Adam and the carried state all matter."""
    _train(tmp_path / "whole", corpus, steps=45)
    first = _train(tmp_path / "split", corpus, steps=17)
    assert first["steps"] == 17 and _final(tmp_path / "split")[1]["step"] == 17
    resumed = _train(tmp_path / "split", corpus, resume=True, steps=45)
    assert resumed["steps"] == 45
    _assert_identical(tmp_path / "whole", tmp_path / "split")
    # the resumed log re-logs nothing twice and only adds the extra validation at step 17
    whole, split = _losses(tmp_path / "whole"), _losses(tmp_path / "split")
    assert [r for r in split if r[0] != 17 or r[1] != "val_bpc"] == whole


def test_the_model_state_matters_for_the_resume(tmp_path, corpus):
    """Control for the test above: without the carried state the result would differ."""
    _train(tmp_path / "a", corpus, steps=20)
    arrays, meta = _final(tmp_path / "a")
    arrays["carry/h"] = np.zeros_like(arrays["carry/h"])  # forget the carried state
    checkpoint.save(tmp_path / "a" / "latest.npz", arrays, meta)
    _train(tmp_path / "a", corpus, resume=True, steps=30)
    _train(tmp_path / "b", corpus, steps=30)
    a = _final(tmp_path / "a")[0]["model/lstm.weight_hh_l0"]
    b = _final(tmp_path / "b")[0]["model/lstm.weight_hh_l0"]
    assert not np.array_equal(a, b)


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)  # the handler has run by now


def _signal_inside(where: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Send this process SIGINT from inside one part of training; returns the step that the
    checkpoint saved on interrupt must hold."""
    if where == "update":  # between two parameters' updates of step 12
        real_update = Adam._update

        def update(self, name, p, g):
            real_update(self, name, p, g)
            if self.step_count == 12 and name == "lstm.weight_ih_l0":
                _sigint()

        monkeypatch.setattr(Adam, "_update", update)
        return 12
    if where == "forward":  # after the dropout mask of step 12 was drawn
        real_forward, calls = Dropout.forward, []

        def forward(self, x):
            y = real_forward(self, x)
            if self.training:
                calls.append(1)
                if len(calls) == 12:
                    _sigint()
            return y

        monkeypatch.setattr(Dropout, "forward", forward)
        return 12
    assert where == "validation"  # after logging step 14's validation, before its save
    real_log = Run.log

    def log(self, record):
        real_log(self, record)
        if record.get("step") == 14 and "val_bpc" in record:
            _sigint()

    monkeypatch.setattr(Run, "log", log)
    return 14


@pytest.mark.parametrize("where", ["update", "forward", "validation"])
def test_ctrl_c_anywhere_saves_a_consistent_checkpoint(tmp_path, corpus, monkeypatch, where):
    """A signal inside a training step is held until the step is complete (the forward has
    drawn dropout masks, the update moves parameters and Adam), so the checkpoint saved on
    interrupt resumes to exactly the uninterrupted run (here with a cosine schedule)."""
    options = dict(steps=30, schedule="cosine", warmup=5)
    handler = signal.getsignal(signal.SIGINT)
    _train(tmp_path / "whole", corpus, **options)
    with monkeypatch.context() as patch:
        expected_step = _signal_inside(where, patch)
        with pytest.raises(KeyboardInterrupt):
            _train(tmp_path / "split", corpus, **options)
    assert _final(tmp_path / "split")[1]["step"] == expected_step
    _train(tmp_path / "split", corpus, resume=True, **options)
    _assert_identical(tmp_path / "whole", tmp_path / "split")
    assert signal.getsignal(signal.SIGINT) is handler  # put back afterwards


def test_mismatched_resumes_are_explained(tmp_path, corpus):
    run = tmp_path / "run"
    _train(run, corpus, steps=7)
    with pytest.raises(TrainingError, match=r"--hidden 16 \(now 24\)"):
        _train(run, corpus, resume=True, steps=14, hidden=24)
    with pytest.raises(TrainingError, match=r"--dropout 0.3 \(now 0.0\).*--seq-len 16 \(now 8\)"):
        _train(run, corpus, resume=True, steps=14, dropout=0.0, seq_len=8)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.py").write_text("something else entirely\n" * 40, encoding="utf-8")
    with pytest.raises(TrainingError, match="training text differs"):
        _train(run, str(other), resume=True, steps=14)
    with pytest.raises(TrainingError, match="already holds a run; pass --resume"):
        _train(run, corpus, steps=14)
    with pytest.raises(TrainingError, match="nothing to resume"):
        _train(tmp_path / "empty", corpus, resume=True, steps=14)
    cosine = tmp_path / "cosine"
    _train(cosine, corpus, steps=7, schedule="cosine")
    with pytest.raises(TrainingError, match=r"--steps 7 \(now 14\)"):
        _train(cosine, corpus, resume=True, steps=14, schedule="cosine")
    # nothing above touched the run: it still resumes exactly
    assert _final(run)[1]["step"] == 7
    _train(run, corpus, resume=True, steps=14)
    assert _final(run)[1]["step"] == 14


def test_resume_after_a_crash_mid_log_line(tmp_path, corpus):
    """A kill can cut metrics.jsonl's last line short; resuming drops it and goes on."""
    run = tmp_path / "run"
    _train(run, corpus, steps=14)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 15, "train_lo')
    _train(run, corpus, resume=True, steps=21)
    _train(tmp_path / "clean", corpus, steps=21)
    _assert_identical(run, tmp_path / "clean")
    assert _losses(run) == _losses(tmp_path / "clean")


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(
    tmp_path, corpus, monkeypatch
):
    real = text_train.softmax_cross_entropy
    calls = []

    def poisoned(logits, targets, **kw):
        calls.append(1)
        loss, dlogits = real(logits, targets, **kw)
        return (float("nan"), dlogits) if len(calls) == 17 else (loss, dlogits)

    monkeypatch.setattr(text_train, "softmax_cross_entropy", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        _train(run, corpus, steps=40)
    message = str(info.value)
    assert "loss became nan at step 17" in message
    assert f"last good checkpoint is {run / 'latest.npz'}" in message
    assert "--lr" in message  # what to try
    model, vocab, meta, _ = load_model(run / "latest.npz")
    assert meta["step"] == 14  # the last validation before the NaN (eval_every 7)
    assert all(np.isfinite(w).all() for w in model.parameters().values())
    # and that checkpoint resumes to the same place as a run that never saw the NaN
    monkeypatch.setattr(text_train, "softmax_cross_entropy", real)
    _train(run, corpus, resume=True, steps=21)
    _train(tmp_path / "clean", corpus, steps=21)
    _assert_identical(run, tmp_path / "clean")


def test_overflowing_parameters_stop_training_before_any_checkpoint(tmp_path, corpus):
    with pytest.raises(TrainingError, match="overflowed to inf/NaN at step 1.*no checkpoint yet"):
        with np.errstate(all="ignore"):
            _train(tmp_path / "run", corpus, steps=10, lr=1e300)
    assert not (tmp_path / "run" / "latest.npz").exists()


# ---- real processes -----------------------------------------------------------------------

N_STEPS = 400  # >10x the step at which the runs are signalled: still running by then
CLI_OPTIONS = [
    "--embed", "8", "--hidden", "24", "--layers", "2", "--dropout", "0.2", "--seq-len", "16",
    "--batch", "4", "--lr", "0.005", "--eval-every", "20", "--eval-chars", "300",
    "--seed", "5", "--no-progress",
]  # fmt: skip


def _start(out: Path, text: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lstmkit", "text", "train", "--text", text, "--out", str(out)]
    return subprocess.Popen(
        cmd + CLI_OPTIONS + ["--steps", str(N_STEPS), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a child of a shell script may inherit SIGINT ignored; Ctrl-C must reach it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_validation(proc: subprocess.Popen, out: Path, step: int) -> None:
    """Poll metrics.jsonl until a validation record at ``step`` or later is there; the
    checkpoint of the validation before it is then complete on disk."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended early:\n{proc.communicate()[1]}"
        path = out / "metrics.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                record = json.loads(line) if line.endswith("}") else {}
                if "val_bpc" in record and record["step"] >= step:
                    return
        time.sleep(0.02)
    raise AssertionError("no validation record within 120 s")


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, corpus: str) -> Path:
    """The uninterrupted run, in a process of its own like the runs it is compared with."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, stdout, stderr = _finish(_start(out, corpus))
    assert code == 0, stderr
    assert f"trained {N_STEPS} steps" in stdout
    return out


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, corpus, reference):
    victim = _start(tmp_path / "killed", corpus)
    _wait_for_validation(victim, tmp_path / "killed", step=40)
    victim.send_signal(signal.SIGKILL)
    assert _finish(victim)[0] == -signal.SIGKILL
    killed_at = _final(tmp_path / "killed")[1]["step"]
    assert 20 <= killed_at < N_STEPS and killed_at % 20 == 0

    resumed = _start(tmp_path / "killed", corpus, "--resume")
    code, stdout, stderr = _finish(resumed)
    assert code == 0, stderr
    assert f"resuming {tmp_path / 'killed'} at step {killed_at}" in stderr
    assert f"trained {N_STEPS} steps" in stdout
    _assert_identical(reference, tmp_path / "killed")
    assert _losses(tmp_path / "killed") == _losses(reference)


@pytest.mark.slow
def test_ctrl_c_saves_exits_130_and_resumes_exactly(tmp_path, corpus, reference):
    victim = _start(tmp_path / "interrupted", corpus)
    _wait_for_validation(victim, tmp_path / "interrupted", step=20)
    victim.send_signal(signal.SIGINT)
    code, stdout, stderr = _finish(victim)
    assert code == 130, stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout
    step = _final(tmp_path / "interrupted")[1]["step"]
    assert 20 <= step < N_STEPS
    assert f"interrupted at step {step}; saved {tmp_path / 'interrupted' / 'latest.npz'}" in stderr
    assert stderr.rstrip().endswith("lstmkit text: interrupted")
    assert not list((tmp_path / "interrupted").glob(".*.tmp"))

    code, stdout, stderr = _finish(_start(tmp_path / "interrupted", corpus, "--resume"))
    assert code == 0, stderr
    _assert_identical(reference, tmp_path / "interrupted")


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path, corpus):
    victim = _start(tmp_path / "run", corpus)
    _wait_for_validation(victim, tmp_path / "run", step=20)
    victim.send_signal(signal.SIGTERM)
    code, _, stderr = _finish(victim)
    assert code == 130 and "Traceback" not in stderr, stderr
    assert "interrupted at step" in stderr
    arrays, meta = _final(tmp_path / "run")
    assert 20 <= meta["step"] < N_STEPS


@pytest.mark.slow
def test_divergence_in_a_real_process_is_a_clear_failure(tmp_path, corpus):
    cmd = [sys.executable, "-m", "lstmkit", "text", "train", "--text", corpus]
    cmd += ["--out", str(tmp_path / "run"), *CLI_OPTIONS, "--steps", "20", "--lr", "1e300"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "lstmkit text: error: the parameters overflowed to inf/NaN at step 1" in result.stderr
    assert "Try a lower --lr" in result.stderr
