"""``lstmkit series ...`` through real subprocesses: train, forecast, eval, resume, errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# A small model and few steps: every command here runs in well under a few seconds.
TINY = ["--lookback", "12", "--hidden", "8", "--batch", "16", "--no-progress"]


def lstmkit(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "lstmkit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def monthly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 months of a seasonal series with a trend and noise, with a time column."""
    rng = np.random.default_rng(0)
    t = np.arange(80)
    v = 50 + 0.1 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.standard_normal(80)
    path = tmp_path_factory.mktemp("data") / "monthly.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "sales", "note"])
        for k, x in enumerate(v):
            w.writerow([f"{2010 + k // 12}-{k % 12 + 1:02d}-01", f"{x:.4f}", "ok"])
    return path


def params(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "__meta__"}


def meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz["__meta__"].tobytes())


def test_help_lists_every_action() -> None:
    out = lstmkit("series", "--help").stdout
    for action in ("train", "forecast", "eval", "dataset"):
        assert action in out
    out = lstmkit("series", "train", "--help").stdout
    for option in ("--csv", "--column", "--time-column", "--horizon", "--lookback", "--resume"):
        assert option in out


@pytest.mark.slow
def test_train_forecast_eval(monthly: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = lstmkit(
        "series", "train", "--csv", monthly, "--column", "sales", "--time-column", "date",
        "--horizon", "6", "--steps", "30", "--eval-every", "10", "--out", run, *TINY,
    )  # fmt: skip
    assert "trained 30 steps on 68 values" in proc.stdout
    assert "6 values held out" in proc.stdout
    for name in ("latest.npz", "best.npz", "metrics.jsonl", "loss.png"):
        assert (run / name).is_file(), name
    m = meta(run / "latest.npz")
    assert m["kind"] == "forecaster" and m["step"] == 30
    assert m["data"]["split"] == {"n_fit": 68, "n_val": 6, "n_holdout": 6}

    # forecast after the end of the CSV: dates continue monthly
    out = tmp_path / "fc.csv"
    proc = lstmkit("series", "forecast", "--run", run, "--csv", monthly, "--horizon", "4",
                   "--out", out)  # fmt: skip
    assert (tmp_path / "fc.png").stat().st_size > 1000
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["date", "forecast"]
    assert [r[0] for r in rows[1:]] == ["2016-09-01", "2016-10-01", "2016-11-01", "2016-12-01"]
    assert all(np.isfinite(float(r[1])) for r in rows[1:])

    # forecast from before a held-out tail: actuals next to the forecast
    out2 = tmp_path / "tail.csv"
    lstmkit("series", "forecast", "--run", run, "--csv", monthly, "--horizon", "6",
            "--holdout", "6", "--out", out2, "--plot", tmp_path / "tail.png")  # fmt: skip
    rows = list(csv.reader(out2.open()))
    assert rows[0] == ["date", "forecast", "actual"]
    assert rows[1][0] == "2016-03-01" and len(rows) == 7
    original = list(csv.reader(monthly.open()))
    assert [float(r[2]) for r in rows[1:]] == [float(r[1]) for r in original[-6:]]
    assert (tmp_path / "tail.png").is_file()

    # eval: the same forecast, scored next to the baselines; the season comes from the dates
    proc = lstmkit("series", "eval", "--run", run, "--csv", monthly, "--json")
    report = json.loads(proc.stdout)
    assert report["holdout"] == 6 and report["season"] == 12
    assert set(report["models"]) == {"lstm", "naive", "seasonal_naive"}
    for scores in report["models"].values():
        assert set(scores) == {"mae", "rmse", "smape", "mase"}
    forecast = [float(r[1]) for r in rows[1:]]
    np.testing.assert_allclose(report["forecast"], forecast, rtol=1e-12)
    assert report["overlaps_training"] is False
    text = lstmkit("series", "eval", "--run", run, "--csv", monthly, "--season", "4").stdout
    assert "seasonal-naive" in text and "season 4 (--season)" in text


@pytest.mark.slow
def test_resume_is_exact(monthly: Path, tmp_path: Path) -> None:
    """N steps in one go == k steps, then --resume to N: identical bits."""
    common: list[str | Path] = ["series", "train", "--csv", monthly, "--column", "sales",
                                "--eval-every", "4", "--dropout", "0.1", "--layers", "2",
                                *TINY]  # fmt: skip
    lstmkit(*common, "--steps", "10", "--out", tmp_path / "full")
    lstmkit(*common, "--steps", "6", "--out", tmp_path / "part")
    proc = lstmkit(*common, "--steps", "10", "--out", tmp_path / "part", "--resume")
    assert "resuming" in proc.stderr
    a, b = params(tmp_path / "full" / "latest.npz"), params(tmp_path / "part" / "latest.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert meta(tmp_path / "part" / "latest.npz")["step"] == 10


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(monthly: Path, tmp_path: Path) -> None:
    """A run killed with SIGKILL mid-training and resumed ends bit-identical."""
    common: list[str | Path] = ["series", "train", "--csv", monthly, "--column", "sales",
                                "--eval-every", "5", "--steps", "400", *TINY]  # fmt: skip
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lstmkit", *map(str, common), "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            latest = killed / "latest.npz"
            try:
                if latest.is_file() and meta(latest)["step"] >= 5:
                    break
            except (OSError, ValueError, KeyError):
                pass  # being replaced right now
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    step_at_kill = meta(killed / "latest.npz")["step"]
    assert proc.returncode == -signal.SIGKILL
    assert 5 <= step_at_kill < 400, "the run was not killed mid-training"
    lstmkit(*common, "--out", killed, "--resume")
    lstmkit(*common, "--out", tmp_path / "full")
    a, b = params(tmp_path / "full" / "latest.npz"), params(killed / "latest.npz")
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "cells, message",
    [
        (["1", "", "3"], "row 3, column 'y': missing value"),
        (["1", "2", "n/a"], "row 4, column 'y': missing value (empty or NaN cell)"),
    ],
)
def test_bad_csv_is_a_clear_error(tmp_path: Path, cells: list[str], message: str) -> None:
    path = tmp_path / "bad.csv"
    rows = [f"2001-{k + 1:02d},{cell}" for k, cell in enumerate(cells)]
    path.write_text("t,y\n" + "\n".join(rows) + "\n")
    proc = lstmkit("series", "train", "--csv", path, "--column", "y", "--out", tmp_path / "r",
                   check=False)  # fmt: skip
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    proc = lstmkit("series", "train", "--csv", path, "--column", "z", "--out", tmp_path / "r",
                   check=False)  # fmt: skip
    assert (
        proc.returncode == 1 and "no column 'z' (--column); the header has: 't', 'y'" in proc.stderr
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_user_mistakes_exit_1_without_traceback(monthly: Path, tmp_path: Path) -> None:
    cases: list[tuple[list[str | Path], str]] = [
        (["series", "train", "--csv", tmp_path / "none.csv", "--column", "a", "--out",
          tmp_path / "r"], "no such CSV file"),
        (["series", "train", "--csv", monthly, "--column", "sales", "--lookback", "70",
          "--out", tmp_path / "r"], "--lookback 70 needs at least 72"),
        (["series", "forecast", "--run", tmp_path / "nope", "--csv", monthly, "--horizon", "3",
          "--out", tmp_path / "f.csv"], "no such run folder"),
        (["series", "train", "--csv", monthly, "--column", "sales", "--horizon", "0",
          "--out", tmp_path / "r"], "--horizon: expected > 0, got 0"),
    ]  # fmt: skip
    for args, message in cases:
        proc = lstmkit(*args, check=False)
        assert proc.returncode == 1, args
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    # a usage error (missing required option) is argparse's exit 2
    assert lstmkit("series", "train", "--csv", monthly, check=False).returncode == 2


@pytest.mark.slow
def test_real_dataset_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("statsmodels", reason="`lstmkit series dataset` needs statsmodels")
    path = tmp_path / "co2.csv"
    assert "wrote 526 values of co2" in lstmkit("series", "dataset", "co2", "--out", path).stdout
    run = tmp_path / "co2run"
    lstmkit("series", "train", "--csv", path, "--column", "value", "--time-column", "month",
            "--difference", "--horizon", "12", "--steps", "20", "--out", run, *TINY)  # fmt: skip
    report = json.loads(lstmkit("series", "eval", "--run", run, "--csv", path, "--json").stdout)
    assert report["season"] == 12 and report["holdout"] == 12
    assert all(np.isfinite(list(s.values())).all() for s in report["models"].values())
