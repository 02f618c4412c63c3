"""The whole command line against a generated matrix of bad values (issue 15, items 5 and 6).

The numeric and path options are read from the parser itself (every leaf subcommand, every
option of type int or float, every path-like option), so an option added later is probed
too; ``BASE`` gives each subcommand a small valid command line that the bad value is put
into. Every case runs in this process through ``lstmkit.cli.app.main`` and must end with:

* exit 1 (runtime error) or 2 (usage error) when the value is bad ("refused"), or any of
  0, 1, 2 when the value may be fine in context ("clean", e.g. ``--seed 0``);
* stderr, when the exit is not 0, exactly one line, ``lstmkit ...: error: ...``, and never a
  traceback;
* nothing written to the working directory (a fresh folder in ``tmp_path``): every output
  goes where the command line says.

The cases that train or read a run finish in well under a second (tiny corpus, CSV, model
and ``--steps 1``); the subcommands whose valid cases are slower (``demo`` reads the whole
standard library) are in the slow tier.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmkit.cli.app import build_parser, main

# ---- the subcommands and their small valid command lines --------------------------------

# {corpus}, {csv}, {trun}, {srun}, {out}: filled per case. Every leaf subcommand of the
# parser must be here (bench runs the benchmark script: it has no options of its own).
BASE: dict[str, list[str]] = {
    "text train": ["--text", "{corpus}", "--out", "{out}", "--embed", "4", "--hidden", "4",
                   "--layers", "1", "--seq-len", "8", "--batch", "2", "--steps", "1",
                   "--eval-every", "1", "--eval-chars", "50", "--no-progress"],
    "text sample": ["--run", "{trun}", "--length", "3", "--seed", "0"],
    "text eval": ["--run", "{trun}", "--text", "{corpus}", "--max-chars", "100"],
    "series train": ["--csv", "{csv}", "--column", "y", "--out", "{out}", "--lookback", "4",
                     "--horizon", "2", "--hidden", "4", "--batch", "4", "--steps", "1",
                     "--eval-every", "1", "--no-progress"],
    "series forecast": ["--run", "{srun}", "--csv", "{csv}", "--horizon", "3", "--out",
                        "{out}.csv", "--no-plot"],
    "series eval": ["--run", "{srun}", "--csv", "{csv}", "--holdout", "3"],
    "series dataset": ["co2", "--out", "{out}.csv"],
    "series backtest": ["--csv", "{csv}", "--column", "y", "--out", "{out}", "--lookback", "4",
                        "--horizon", "2", "--origins", "2", "--hidden", "4", "--batch", "4",
                        "--steps", "1", "--eval-every", "1", "--models", "Naive",
                        "--no-progress"],
    "memory": ["--task", "adding", "--lags", "5", "--models", "lstm", "--budget-seconds", "5",
               "--max-steps", "1", "--hidden", "4", "--batch", "2", "--reber-test-steps", "20",
               "--out", "{out}"],
    "gradients": ["--task", "adding", "--lag", "5", "--models", "lstm", "--train-seconds", "5",
                  "--train-steps", "1", "--hidden", "4", "--batch", "2", "--out", "{out}"],
    "explain": ["--run", "{trun}", "--text", "def f(x): return x", "--out", "{out}",
                "--max-chars", "20", "--html-chars", "20", "--top", "2"],
    "export onnx": ["--run", "{trun}", "--out", "{out}.onnx"],
    "demo": ["--out", "{out}", "--minutes", "0.002", "--hidden", "4", "--seed", "0"],
    "study gates": ["--out", "{out}", "--variants", "vanilla,NP", "--tasks", "charlm,adding",
                    "--seeds", "1", "--steps", "1", "--hidden", "4", "--batch", "2", "--text",
                    "{corpus}", "--embed", "4", "--seq-len", "8", "--eval-chars", "50", "--lag",
                    "5", "--reber-test-steps", "20"],
}  # fmt: skip
SKIPPED = {"bench"}
SLOW = {"demo"}

# Options for which 0 is a valid value (anything else must be > 0); --level 0: a backtest
# without prediction intervals.
ZERO_OK = {"--seed", "--warmup", "--holdout", "--val", "--dropout", "--length", "--mpi-timeout",
           "--recurrent-dropout", "--zoneout-cell", "--zoneout-hidden", "--lr-spread",
           "--level"}  # fmt: skip
# Options for which a huge float (1e300) may be valid (a limit that is never reached).
HUGE_OK = {"--clip", "--temperature", "--minutes", "--budget-seconds", "--train-seconds",
           "--mpi-timeout", "--lr", "--charlm-lr", "--memory-lr"}  # fmt: skip
# Path-like options: what each one expects.
INPUT_FILE, INPUT_ANY, OUTPUT_FILE, OUTPUT_DIR, TEXT_OR_FILE = (
    "input file", "input file or folder", "output file", "output folder", "text or file"
)  # fmt: skip
PATHS = {
    ("text train", "--text"): INPUT_ANY,
    ("text eval", "--text"): INPUT_ANY,
    ("study gates", "--text"): INPUT_ANY,
    ("explain", "--text"): TEXT_OR_FILE,
    ("series forecast", "--out"): OUTPUT_FILE,
    ("series forecast", "--plot"): OUTPUT_FILE,
    ("series forecast", "--future-csv"): INPUT_FILE,
    ("series dataset", "--out"): OUTPUT_FILE,
    ("series backtest", "--plot"): OUTPUT_FILE,
    ("export onnx", "--out"): OUTPUT_FILE,
}
PATH_DESTS = {"out", "run", "text", "csv", "plot", "future_csv"}


def leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    """'text train' -> its parser, for every leaf subcommand."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[name] = parser
        for action in subs:
            for sub_name, sub in action.choices.items():
                walk(sub, f"{name} {sub_name}".strip())

    walk(build_parser(), "")
    return found


def numeric_options(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(flag, "int" | "float") of every option that takes a number."""
    out = []
    for a in parser._actions:
        if not a.option_strings or a.nargs == 0:
            continue
        kind = getattr(a.type, "numeric_kind", None) or {int: "int", float: "float"}.get(a.type)
        if kind:
            out.append((a.option_strings[-1], kind))
    return out


def path_options(parser: argparse.ArgumentParser) -> list[str]:
    return [a.option_strings[-1] for a in parser._actions if a.dest in PATH_DESTS]


# ---- the cases -------------------------------------------------------------------------

REFUSED, CLEAN = "refused", "clean"
NUMBERS = {"zero": "0", "negative": "-3", "nan": "nan", "inf": "inf", "-inf": "-inf",
           "huge": "1e300", "not a number": "abc", "empty": ""}  # fmt: skip
PATH_KINDS = ["empty", "dir for file", "file for dir", "missing parent", "unwritable",
              "random bytes", "latin-1 csv"]  # fmt: skip


@dataclass(frozen=True)
class Case:
    command: str
    option: str
    kind: str  # a key of NUMBERS or one of PATH_KINDS
    expect: str  # REFUSED or CLEAN

    @property
    def id(self) -> str:
        return f"{self.command}|{self.option}|{self.kind}"


def numeric_expectation(option: str, kind: str, value_kind: str) -> str:
    if kind == "zero" and option in ZERO_OK:
        return CLEAN
    if kind == "huge" and value_kind == "float" and option in HUGE_OK:
        return CLEAN
    return REFUSED


def path_expectation(command: str, option: str, kind: str) -> str | None:
    """REFUSED, CLEAN, or None when the kind does not apply to the option."""
    role = PATHS.get((command, option)) or {
        "--out": OUTPUT_DIR, "--run": INPUT_ANY, "--csv": INPUT_FILE,
    }[option]  # fmt: skip
    if kind == "empty":
        return REFUSED
    if kind == "dir for file":
        return REFUSED if role in (INPUT_FILE, OUTPUT_FILE) or option == "--run" else CLEAN
    if kind == "file for dir":
        return REFUSED if role == OUTPUT_DIR else None
    if kind == "missing parent":  # outputs: the parents made, or refused; a text is text
        return CLEAN if role in (OUTPUT_FILE, OUTPUT_DIR, TEXT_OR_FILE) else REFUSED
    if kind == "unwritable":
        return REFUSED if role in (OUTPUT_FILE, OUTPUT_DIR) else None
    if kind == "random bytes":
        if role in (OUTPUT_FILE, OUTPUT_DIR):
            return None  # covered by "file for dir" / overwriting a file is fine
        return CLEAN if option == "--text" else REFUSED
    if kind == "latin-1 csv":
        return REFUSED if option == "--csv" else None
    raise AssertionError(kind)


def all_cases() -> Iterator[Case]:
    parsers = leaf_parsers()
    assert set(parsers) - SKIPPED == set(BASE), "every subcommand needs a BASE command line"
    for command in BASE:
        parser = parsers[command]
        for option, value_kind in numeric_options(parser):
            for kind in NUMBERS:
                if (command, option, kind) == ("demo", "--minutes", "huge"):
                    continue  # valid: a demo that trains for ever
                yield Case(command, option, kind, numeric_expectation(option, kind, value_kind))
        for option in path_options(parser):
            for kind in PATH_KINDS:
                expect = path_expectation(command, option, kind)
                if expect is not None:
                    yield Case(command, option, kind, expect)


CASES = list(all_cases())


def params() -> list[object]:
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.command in SLOW else [])
        for c in CASES
    ]


# ---- shared inputs ---------------------------------------------------------------------

CORPUS = "def add(a, b):\n    return a + b\n\n\nclass Point:\n    x = 1\n    y = 2\n" * 12


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny corpus, a CSV, a trained char-LM run and a trained forecaster run."""
    root = tmp_path_factory.mktemp("inputs")
    corpus = root / "corpus.py"
    corpus.write_text(CORPUS, encoding="utf-8")
    csv = root / "series.csv"
    v = 10 + np.sin(np.arange(40) / 3)
    csv.write_text("t,y\n" + "".join(f"{k},{x:.4f}\n" for k, x in enumerate(v)), encoding="utf-8")
    paths = {"corpus": corpus, "csv": csv, "trun": root / "trun", "srun": root / "srun"}
    fill = {k: str(p) for k, p in paths.items()}
    for command, run in [("text train", "trun"), ("series train", "srun")]:
        argv = command.split() + [a.format(**fill, out=fill[run]) for a in BASE[command]]
        assert main(argv) == 0, argv
    return paths


def bad_path(kind: str, tmp: Path, role_file: bool) -> str:
    """A path of the given kind, made inside ``tmp``."""
    if kind == "empty":
        return ""
    if kind == "dir for file":
        d = tmp / "a_folder"
        d.mkdir()
        (d / "inside.txt").write_text("x")  # not empty: not a fresh run folder either
        return str(d)
    if kind == "file for dir":
        f = tmp / "a_file"
        f.write_text("x")
        return str(f)
    if kind == "missing parent":
        return str(tmp / "no" / "such" / ("x.out" if role_file else "x"))
    if kind == "unwritable":
        if os.geteuid() == 0:  # root writes into a 0o500 folder; not into /proc
            return str(Path("/proc") / ("lstmkit-no-such.out" if role_file else "lstmkit-no-such"))
        d = tmp / "read_only"
        d.mkdir()
        d.chmod(0o500)
        return str(d / ("x.out" if role_file else "x"))
    if kind == "random bytes":
        f = tmp / "random.bin"
        f.write_bytes(np.random.default_rng(0).bytes(4096))
        return str(f)
    if kind == "latin-1 csv":
        f = tmp / "latin1.csv"
        f.write_bytes(b"t,y\n" + "".join(f"caf\xe9{k},{k}\n" for k in range(30)).encode(
            "latin-1"))  # fmt: skip
        return str(f)
    raise AssertionError(kind)


def argv_for(case: Case, inputs: dict[str, Path], tmp: Path) -> list[str]:
    fill = {k: str(p) for k, p in inputs.items()}
    argv = [a.format(**fill, out=str(tmp / "out")) for a in BASE[case.command]]
    if case.kind in NUMBERS:
        value = NUMBERS[case.kind]
    else:
        role = PATHS.get((case.command, case.option), "")
        value = bad_path(case.kind, tmp, role_file=role == OUTPUT_FILE or case.option == "--plot")
    if case.option in argv:  # as --option=VALUE: argparse reads "-inf" as a value then
        del argv[argv.index(case.option) : argv.index(case.option) + 2]
    argv.append(f"{case.option}={value}")
    if case.option == "--plot" and "--no-plot" in argv:
        argv.remove("--no-plot")
    return case.command.split() + argv


def run_case(case: Case, inputs: dict[str, Path], tmp: Path, capsys: pytest.CaptureFixture,
             monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:  # fmt: skip
    cwd = tmp / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = argv_for(case, inputs, tmp)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code if isinstance(e.code, int) else 1
    finally:
        for p in tmp.rglob("*"):  # let pytest remove what it made read-only
            if p.is_dir():
                p.chmod(0o700)
    err = capsys.readouterr().err
    assert not list(cwd.iterdir()), f"wrote into the working directory: {list(cwd.iterdir())}"
    return code, err


@pytest.mark.parametrize("case", params())
def test_bad_value(case: Case, inputs, tmp_path, capsys, monkeypatch) -> None:
    code, err = run_case(case, inputs, tmp_path, capsys, monkeypatch)
    assert "Traceback" not in err, err
    allowed = (1, 2) if case.expect == REFUSED else (0, 1, 2)
    assert code in allowed, f"exit {code} for {case.id}; stderr: {err!r}"
    out = tmp_path / "out"
    if case.expect == REFUSED and out.is_dir():  # refused: nothing in --out
        assert not any(out.iterdir()), f"{case.id} left {list(out.iterdir())}"
    if code != 0:
        lines = err.splitlines()
        assert lines and lines[-1].startswith("lstmkit ") and ": error: " in lines[-1], err
        assert len(lines) == 1, f"{len(lines)} lines on stderr: {err!r}"


def test_the_matrix_covers_every_class() -> None:
    """The generated matrix, counted by class (the numbers the issue's closing note gives)."""
    by_kind: dict[str, int] = {}
    for c in CASES:
        by_kind[c.kind] = by_kind.get(c.kind, 0) + 1
    assert set(by_kind) == set(NUMBERS) | set(PATH_KINDS)
    assert len(CASES) >= 300, len(CASES)


# ---- the cases the probe named, each on its own -----------------------------------------


def one_error(capsys: pytest.CaptureFixture, argv: list[str], code: int = 1) -> str:
    """Run ``argv``; it must fail with ``code`` and one line on stderr; that line."""
    try:
        got = main(argv)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == code, (got, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def write_csv(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8") -> Path:
    path.write_bytes(("t,y\n" + "".join(f"{t},{v}\n" for t, v in rows)).encode(encoding))
    return path


def test_csv_values_whose_scale_overflows_are_refused(tmp_path, capsys) -> None:
    rows = [(str(2000 + k), f"{(-1) ** k * 1.7e300:.3g}") for k in range(40)]
    csv = write_csv(tmp_path / "huge.csv", rows)
    argv = ["series", "train", "--csv", str(csv), "--column", "y", "--out", str(tmp_path / "r")]
    err = one_error(capsys, argv)
    assert "huge.csv: row 2, column 'y'" in err and "too large to scale" in err
    assert not (tmp_path / "r").exists()
    # the scaler itself refuses what it cannot represent (for callers of the library)
    from lstmkit.series.data import Scaler

    with pytest.raises(ValueError, match="cannot be scaled"):
        Scaler.fit(np.array([1.7e300, -1.7e300] * 20))


def test_a_latin1_csv_error_names_the_file(tmp_path, capsys) -> None:
    csv = write_csv(tmp_path / "café.csv", [(f"caf\xe9 {k}", str(k)) for k in range(30)], "latin-1")
    argv = ["series", "train", "--csv", str(csv), "--column", "y", "--out", str(tmp_path / "r")]
    err = one_error(capsys, argv)
    assert str(csv) in err and "not UTF-8" in err and "0xe9" in err


def test_duplicate_time_stamps_are_refused(tmp_path, capsys) -> None:
    rows = [(f"2001-{m:02d}", str(m)) for m in range(1, 13)] + [("2001-3", "99")]
    rows += [(f"2002-{m:02d}", str(m)) for m in range(1, 13)]
    csv = write_csv(tmp_path / "dup.csv", rows)
    argv = ["series", "train", "--csv", str(csv), "--column", "y", "--time-column", "t",
            "--out", str(tmp_path / "r")]  # fmt: skip
    err = one_error(capsys, argv)
    assert "row 14, column 't': time stamp '2001-3' repeats row 4" in err


def test_a_gap_in_the_time_stamps_is_refused(tmp_path, capsys) -> None:
    rows = [(f"2001-{m:02d}", str(m)) for m in range(1, 13) if m != 7]  # July is missing
    rows += [(f"2002-{m:02d}", str(m)) for m in range(1, 13)]
    csv = write_csv(tmp_path / "gap.csv", rows)
    argv = ["series", "train", "--csv", str(csv), "--column", "y", "--time-column", "t",
            "--out", str(tmp_path / "r")]  # fmt: skip
    err = one_error(capsys, argv)
    assert "skip from '2001-06' to '2001-08' (a gap of 1; 1 missing in all)" in err
    assert "--missing interpolate" in err


@pytest.mark.parametrize("command", ["series train", "series forecast", "series eval",
                                     "series backtest"])  # fmt: skip
@pytest.mark.parametrize("value", ["drop", "", "ERROR"])
def test_a_bad_missing_choice_is_one_line(inputs, tmp_path, capsys, command, value) -> None:
    fill = {k: str(p) for k, p in inputs.items()}
    argv = command.split() + [a.format(**fill, out=str(tmp_path / "out")) for a in BASE[command]]
    err = one_error(capsys, argv + [f"--missing={value}"], code=2)
    assert "argument --missing: invalid choice" in err
    assert not (tmp_path / "out").exists()


def test_unsorted_and_irregular_time_stamps_are_refused(tmp_path, capsys) -> None:
    rows = [(f"2001-{m:02d}", str(m)) for m in (1, 2, 4, 3, 5, 6, 7, 8, 9, 10, 11, 12)]
    argv = ["series", "train", "--csv", "", "--column", "y", "--time-column", "t",
            "--out", str(tmp_path / "r")]  # fmt: skip
    argv[3] = str(write_csv(tmp_path / "unsorted.csv", rows))
    err = one_error(capsys, argv)
    assert "row 5, column 't': time stamp '2001-03' comes before '2001-04' of row 4" in err
    days = [(f"2001-01-{d:02d}", str(d)) for d in (1, 2, 3, 5, 8, 13, 21, 30)]
    argv[3] = str(write_csv(tmp_path / "irregular.csv", days))
    assert "follow no regular frequency" in one_error(capsys, argv)


def test_mask_with_one_lstm_is_refused(inputs, tmp_path, capsys) -> None:
    fill = {k: str(p) for k, p in inputs.items()}
    argv = ["series", "train"] + [a.format(**fill, out=str(tmp_path / "r"))
                                  for a in BASE["series train"]]  # fmt: skip
    err = one_error(capsys, argv + ["--missing", "mask"])
    assert "--missing mask goes with the automatic forecaster" in err


def test_a_forecast_past_the_year_9999_is_refused(inputs, tmp_path, capsys) -> None:
    csv = write_csv(tmp_path / "late.csv", [(str(9960 + k), f"{k % 5}") for k in range(40)])
    argv = ["series", "forecast", "--run", str(inputs["srun"]), "--csv", str(csv), "--column",
            "y", "--time-column", "t", "--horizon", "3", "--out", str(tmp_path / "f.csv"),
            "--no-plot"]  # fmt: skip
    err = one_error(capsys, argv)
    assert "past the year 9999 at step 1" in err and "'9999'" in err
    assert not (tmp_path / "f.csv").exists()


def test_a_full_disk_is_one_line(inputs, tmp_path, capsys) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    argv = ["series", "forecast", "--run", str(inputs["srun"]), "--csv", str(inputs["csv"]),
            "--horizon", "3", "--out", "/dev/full", "--no-plot"]  # fmt: skip
    err = one_error(capsys, argv)
    assert "cannot write /dev/full: No space left on device" in err


@pytest.mark.slow
def test_a_write_that_fails_during_training_is_one_line(inputs, tmp_path) -> None:
    """A real write failure while a checkpoint is saved: the file size limit (RLIMIT_FSIZE,
    EFBIG) stands in for a full disk; the process ends with exit 1 and one line."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    argv = ["text", "train", *[a.format(corpus=inputs["corpus"], out=tmp_path / "r")
                               for a in BASE["text train"]]]  # fmt: skip
    argv[argv.index("--hidden") + 1] = "64"  # a checkpoint over the limit
    env = {**os.environ, "PYTHONPATH": str(Path(main.__code__.co_filename).parents[2])}
    proc = subprocess.run([sys.executable, "-m", "lstmkit", *argv], capture_output=True,
                          text=True, preexec_fn=limit, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "file too large" in proc.stderr


def test_more_memory_than_there_is_is_refused_up_front(inputs, tmp_path, capsys) -> None:
    argv = ["text", "train", "--text", str(inputs["corpus"]), "--out", str(tmp_path / "r"),
            "--hidden", "100000", "--steps", "1"]  # fmt: skip
    err = one_error(capsys, argv)
    assert "not enough memory for --hidden 100000" in err and "GiB" in err
    assert not (tmp_path / "r").exists()


def test_memory_error_and_other_escapes_are_one_line_unless_debug(inputs, capsys, monkeypatch):
    """What escapes a handler: one line (exit 1); with --debug, the exception itself."""
    import lstmkit.text.sample as sample

    def boom(*args: object, **kwargs: object) -> None:
        raise MemoryError("Unable to allocate 1.2 TiB")

    monkeypatch.setattr(sample, "generate", boom)
    argv = ["text", "sample", "--run", str(inputs["trun"])]
    err = one_error(capsys, argv)
    assert err.startswith("lstmkit text: error: not enough memory") and "1.2 TiB" in err
    with pytest.raises(MemoryError):
        main(["--debug", *argv])
    with pytest.raises(MemoryError):
        main([*argv, "--debug"])

    def bug(*args: object, **kwargs: object) -> None:
        raise KeyError("x")

    monkeypatch.setattr(sample, "generate", bug)
    err = one_error(capsys, argv)
    assert "unexpected KeyError" in err and "--debug" in err

    def diverged(*args: object, **kwargs: object) -> None:
        from lstmkit.train.trainer import TrainingError

        raise TrainingError("loss is nan at step 3\nthe last good checkpoint is kept")

    monkeypatch.setattr(sample, "generate", diverged)
    err = one_error(capsys, argv)  # reported on purpose: the message alone, on one line
    assert err == "lstmkit text: error: loss is nan at step 3; the last good checkpoint is kept\n"


def test_a_text_shorter_than_one_window_is_refused(tmp_path, capsys) -> None:
    text = tmp_path / "short.py"
    text.write_text("ab" * 8)
    argv = ["text", "train", "--text", str(text), "--out", str(tmp_path / "r"), "--hidden",
            "4", "--embed", "4", "--batch", "2", "--seq-len", "8", "--steps", "2"]  # fmt: skip
    err = one_error(capsys, argv)
    assert "too few for one --batch 2 x --seq-len 8 window (needs 17)" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_sample_refuses_a_temperature_that_is_not_finite(inputs, capsys, value) -> None:
    argv = ["text", "sample", "--run", str(inputs["trun"]), f"--temperature={value}"]
    err = one_error(capsys, argv, code=2)
    assert "--temperature: expected a finite number" in err


def test_demo_refuses_a_folder_that_is_not_a_run(tmp_path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    err = one_error(capsys, ["demo", "--out", str(mine), "--minutes", "0.01"])
    assert "is not empty and holds more than a run" in err
    assert (mine / "thesis.tex").read_text() == "precious"
    (mine / "thesis.tex").unlink()
    (mine / "sub").mkdir()
    (mine / "latest.npz").write_bytes(b"")
    one_error(capsys, ["demo", "--out", str(mine), "--minutes", "0.01"])  # a folder inside
    assert (mine / "sub").is_dir()


# ---- and values no list would think of --------------------------------------------------

NUMERIC = [(c, o) for c in BASE if c not in SLOW for o, _ in numeric_options(leaf_parsers()[c])]


def _quick(text: str) -> bool:
    """False for a value that could make a valid run long (a large positive number)."""
    for parse in (int, float):
        try:
            value = parse(text)
        except (ValueError, OverflowError):
            continue
        if value > 100:
            return False
    return True


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=st.sampled_from(NUMERIC),
    value=st.one_of(
        st.text(max_size=12),
        st.floats().map(repr),
        st.integers(max_value=0).map(str),
        st.sampled_from(["1e309", "-0", "0x10", "1_0", "\u0665", " 3 ", "+inf", "nan(1)"]),
    ).filter(_quick),
)
def test_any_value_ends_in_a_result_or_one_line(where, value, inputs, tmp_path_factory, capsys):
    """Whatever string an option gets, the command ends with exit 0, or 1 or 2 and one line
    (hypothesis draws the subcommand, the option and the string)."""
    command, option = where
    tmp = tmp_path_factory.mktemp("h")
    fill = {k: str(p) for k, p in inputs.items()}
    argv = [a.format(**fill, out=str(tmp / "out")) for a in BASE[command]]
    if option in argv:
        del argv[argv.index(option) : argv.index(option) + 2]
    capsys.readouterr()
    try:
        code = main([*command.split(), *argv, f"{option}={value}"])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code in (0, 1, 2), (code, err)
    if code != 0:
        assert len(err.splitlines()) == 1 and ": error: " in err, err
