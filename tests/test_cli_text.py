"""``lstmkit text train | sample | eval`` through real processes (``python -m lstmkit``).

Conventions checked: --help describes every option, usage errors exit 2, user mistakes exit 1
with a one-line message on stderr and no traceback, ``--json`` output for scripts; and the
numbers printed equal the Python API's (sampling with a seed, bits per character).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import build_parser, main
from lstmkit.text.evaluate import bits_per_char
from lstmkit.text.sample import generate
from lstmkit.text.train import load_model
from lstmkit.train import checkpoint

TRAIN_OPTIONS = [
    "--embed", "16", "--hidden", "32", "--layers", "1", "--seq-len", "16", "--batch", "8",
    "--steps", "60", "--lr", "0.01", "--eval-every", "20", "--eval-chars", "1000",
    "--seed", "0", "--no-progress",
]  # fmt: skip


def lstmkit(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lstmkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        encoding="utf-8",
    )


def assert_user_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 1, a message on stderr naming the problem, no traceback, nothing on stdout."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "error:" in result.stderr and result.stdout == ""
    for word in words:
        assert word in result.stderr, result.stderr


def assert_usage_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "usage:" in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for k in range(5):
        lines = [f"def add_{k}_{j}(x, y):\n    return x + y * {j}\n\n" for j in range(30)]
        (folder / f"mod{k}.py").write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = lstmkit("text", "train", "--text", corpus, "--out", out, *TRAIN_OPTIONS)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "trained 60 steps: validation" in result.stdout and str(out) in result.stdout
    return out


# ---- help -------------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@pytest.mark.slow
def test_help_lists_the_commands_and_every_option():
    result = lstmkit("--help")
    assert result.returncode == 0 and "usage: lstmkit" in result.stdout
    assert "text" in result.stdout and "character-level language model" in result.stdout
    result = lstmkit("text", "--help")
    assert result.returncode == 0
    for action in ("train", "sample", "eval"):
        assert action in result.stdout

    expected = {
        "train": ["--text", "--out", "--resume", "--embed", "--hidden", "--layers", "--dropout",
                  "--seq-len", "--batch", "--steps", "--minutes", "--lr", "--warmup",
                  "--schedule", "--clip", "--eval-every", "--eval-chars", "--seed",
                  "--no-progress"],
        "sample": ["--run", "--prime", "--length", "--temperature", "--top-k", "--seed"],
        "eval": ["--run", "--text", "--max-chars", "--json"],
    }  # fmt: skip
    text_actions = _subparsers(_subparsers(build_parser())["text"])
    for name, options in expected.items():
        result = lstmkit("text", name, "--help")
        assert result.returncode == 0, result.stderr
        for option in options:
            assert option in result.stdout, (name, option)
        # "describe every option": each has a help text (what --help prints next to it)
        undocumented = [
            a.option_strings[0]
            for a in text_actions[name]._actions
            if a.option_strings and not a.help
        ]
        assert undocumented == [], (name, undocumented)


# ---- train, sample, eval ----------------------------------------------------------------


def test_train_writes_a_complete_run_folder(run):
    for name in ("latest.npz", "best.npz", "metrics.jsonl", "loss.png"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_bpc"] for r in records if "val_bpc" in r]
    assert len(val) == 3 and val[-1] < val[0]
    _, meta = checkpoint.load(run / "latest.npz")
    assert meta["step"] == 60 and meta["kind"] == "charlm"
    assert meta["train_config"]["hidden"] == 32


@pytest.mark.slow
def test_sample_prints_prime_and_length_characters_deterministically(run):
    first = lstmkit("text", "sample", "--run", run, "--prime", "def ", "--length", "80",
                    "--seed", "1", "--temperature", "0.8", "--top-k", "10")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("def ") and first.stdout.endswith("\n")
    generated = first.stdout[len("def ") : -1]
    assert len(generated) == 80
    model, vocab, _, _ = load_model(run)
    assert set(generated) <= set(vocab.chars)
    # the same text as the Python API with the same seed
    assert generated == "".join(generate(model, vocab, "def ", 80, 0.8, 10, seed=1))
    again = lstmkit("text", "sample", "--run", run, "--prime", "def ", "--length", "80",
                    "--seed", "1", "--temperature", "0.8", "--top-k", "10")  # fmt: skip
    assert again.stdout == first.stdout
    other = lstmkit("text", "sample", "--run", run, "--length", "80", "--seed", "2")
    assert other.returncode == 0 and other.stdout != first.stdout


@pytest.mark.slow
def test_sample_edge_cases(run):
    result = lstmkit("text", "sample", "--run", run, "--prime", "xyz€", "--length", "0")
    assert result.returncode == 0 and result.stdout == "xyz€\n"  # unknown characters: fine
    result = lstmkit("text", "sample", "--run", run / "latest.npz", "--prime", "", "--length",
                     "5", "--seed", "3")  # fmt: skip
    assert result.returncode == 0 and len(result.stdout) == 6


@pytest.mark.slow
def test_eval_json_matches_the_python_api(run, corpus):
    held_out = corpus.parent / "held_out.txt"
    text = "def add(x, y):\n    return x + y\n" * 20 + "ünknown ✓\n"
    held_out.write_text(text, encoding="utf-8")
    result = lstmkit("text", "eval", "--run", run, "--text", held_out, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["characters"] == len(text)
    model, vocab, _, _ = load_model(run)
    ids = vocab.encode(text)
    assert report["unknown"] == int((ids == 0).sum()) >= 3
    # the same number (up to BLAS threading, which may differ between the two processes)
    assert report["bits_per_char"] == pytest.approx(bits_per_char(model, ids), rel=1e-6)
    assert 0 < report["bits_per_char"] < np.log2(len(vocab))

    plain = lstmkit("text", "eval", "--run", run, "--text", held_out, "--max-chars", "200")
    assert plain.returncode == 0
    assert "bits/char over 200 characters" in plain.stdout


@pytest.mark.slow
def test_eval_defaults_to_the_stdlib_validation_text(run):
    result = lstmkit("text", "eval", "--run", run, "--json", "--max-chars", "3000")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["characters"] == 3000 and report["bits_per_char"] > 0


# ---- user errors: exit 1, a message, no traceback ---------------------------------------


def test_missing_run_folder(tmp_path):
    for action in ("sample", "eval"):
        result = lstmkit("text", action, "--run", tmp_path / "nope")
        assert_user_error(result, "no such run folder", "nope")


def test_empty_run_folder(tmp_path):
    assert_user_error(lstmkit("text", "sample", "--run", tmp_path), "no such checkpoint file")


def test_corrupt_checkpoint(run, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    data = (run / "latest.npz").read_bytes()
    (bad / "latest.npz").write_bytes(data[: len(data) // 2])  # truncated
    assert_user_error(lstmkit("text", "sample", "--run", bad), "truncated")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (bad / "latest.npz").write_bytes(bytes(flipped))
    assert_user_error(lstmkit("text", "eval", "--run", bad / "latest.npz"), "corrupted")
    (bad / "latest.npz").write_text("not a checkpoint")
    assert_user_error(lstmkit("text", "sample", "--run", bad), "not an lstmkit checkpoint")


def test_a_checkpoint_of_another_kind(tmp_path):
    path = tmp_path / "series.npz"
    checkpoint.save(path, {"w": np.zeros(2)}, {"kind": "forecaster"})
    assert_user_error(lstmkit("text", "sample", "--run", path), "'forecaster'", "char-LM")


@pytest.mark.slow
def test_bad_text_paths(run, tmp_path):
    assert_user_error(
        lstmkit("text", "eval", "--run", run, "--text", tmp_path / "missing.txt"),
        "no such file or folder",
    )
    result = lstmkit("text", "train", "--text", tmp_path / "missing", "--out", tmp_path / "r",
                     *TRAIN_OPTIONS)  # fmt: skip
    assert_user_error(result, "no such file or folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = lstmkit("text", "train", "--text", empty, "--out", tmp_path / "r", *TRAIN_OPTIONS)
    assert_user_error(result, "no files found")


def in_process(capsys: pytest.CaptureFixture, *args: str | Path) -> tuple[int, str]:
    """``lstmkit.cli.app.main`` in this process (same code path, no interpreter start-up)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    return code, captured.err


def test_bad_option_values(run, corpus, tmp_path, capsys):
    out = tmp_path / "r"
    train = ["text", "train", "--text", corpus, "--out", out]
    assert_user_error(lstmkit(*train, "--hidden", "0"), "--hidden: expected > 0, got 0")
    cases = [
        (train + ["--dropout", "1.5"], "--dropout: expected a probability in [0, 1), got 1.5"),
        (train + ["--seq-len", "-3"], "--seq-len: expected > 0, got -3"),
        (train + ["--lr", "0"], "--lr: expected > 0, got 0.0"),
        (["text", "sample", "--run", run, "--temperature", "0"], "--temperature: expected > 0"),
        (["text", "sample", "--run", run, "--top-k", "0"], "--top-k: expected > 0, got 0"),
        (["text", "sample", "--run", run, "--length", "-1"], "--length: expected >= 0, got -1"),
    ]
    for args, message in cases:
        code, err = in_process(capsys, *args)
        assert code == 1 and message in err, (args, err)
        assert err.startswith("lstmkit text: error: ")
    assert not out.exists() or not any(out.iterdir())


def test_train_over_an_existing_run_and_a_mismatched_resume(run, corpus):
    result = lstmkit("text", "train", "--text", corpus, "--out", run, *TRAIN_OPTIONS)
    assert_user_error(result, "already holds a run", "--resume")
    options = [o if o != "32" else "48" for o in TRAIN_OPTIONS]  # --hidden 48
    result = lstmkit("text", "train", "--text", corpus, "--out", run, "--resume", *options)
    assert_user_error(result, "cannot resume", "--hidden 32 (now 48)")
    assert checkpoint.load(run / "latest.npz")[1]["step"] == 60  # untouched


# ---- usage errors: exit 2 ---------------------------------------------------------------


def test_usage_errors_exit_2(tmp_path):
    assert_usage_error(lstmkit())
    assert_usage_error(lstmkit("text", "sample", "--run", tmp_path, "--bogus"), "--bogus")


@pytest.mark.parametrize(
    "args,words",
    [
        (["text"], []),
        (["nonsense"], ["invalid choice"]),
        (["text", "train"], ["--out"]),  # required
        (["text", "train", "--out", "x", "--hidden", "abc"], ["invalid int value"]),
        (["text", "train", "--out", "x", "--schedule", "x"], ["invalid choice"]),
        (["text", "eval"], ["--run"]),
    ],
)
def test_more_usage_errors_exit_2(args, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and all(w in err for w in words), err


@pytest.mark.slow
def test_sample_into_a_closed_pipe_exits_quietly(run):
    """`lstmkit text sample ... | head -c 10`: the reader leaves; no traceback, exit 0."""
    cmd = [sys.executable, "-m", "lstmkit", "text", "sample", "--run", str(run), "--length",
           "20000", "--seed", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert len(first) == 10
    assert "Traceback" not in err and "BrokenPipe" not in err
