"""``lstmkit study gates``: the statistics against hand computations, and the study itself on
tiny budgets (a few steps per run): its files, resuming an interrupted study, refusing to
mix settings, and one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.explain.study import gates, report, stats
from lstmkit.nn.cells.lstm import LSTMOptions

scipy_stats = pytest.importorskip("scipy.stats")

CORPUS = "def add(a, b):\n    return a + b\n\n\nclass Point:\n    x = 1\n    y = 2\n" * 12


def records(task: str, values: dict[str, list[float | None]], lower: bool = True) -> list[dict]:
    """Study records of one task: ``values[variant]`` per seed (None: diverged)."""
    return [
        {"task": task, "variant": name, "seed": k, "metric": "m", "lower_is_better": lower}
        | {"value": v, "diverged": v is None}
        for name, vs in values.items()
        for k, v in enumerate(vs)
    ]


# ---- statistics ---------------------------------------------------------------------------


def test_holm_by_hand():
    # m = 3 finite: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> kept at 0.06
    assert stats.holm([0.01, 0.04, 0.03, math.nan])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(stats.holm([0.01, 0.04, 0.03, math.nan])[3])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]


def test_welch_p_values_and_verdicts_by_hand():
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    worse = [2.0, 2.6, 1.4, 2.3, 1.7, 2.2]  # other n, other variance: Student's p differs
    rows = stats.compare(
        records("t", {"vanilla": base, "NFG": worse, "NP": [1.02, 0.97, 1.01, None, 1.0]})
    )
    by = {r["variant"]: r for r in rows}
    a, b = np.array(worse), np.array(base)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    p = 2 * scipy_stats.t.sf(abs(t), df)
    assert by["NFG"]["p_welch"] == pytest.approx(p, rel=1e-10)
    assert by["NFG"]["p_holm"] == pytest.approx(min(1.0, 2 * p))  # the smaller of 2 p-values
    assert by["NFG"]["verdict"] == "worse" and by["NFG"]["diff"] == pytest.approx(
        a.mean() - b.mean()
    )
    assert by["NFG"]["sd"] == pytest.approx(a.std(ddof=1))
    assert (by["NP"]["n"], by["NP"]["diverged"], by["NP"]["verdict"]) == (4, 1, "same")
    assert by["vanilla"]["verdict"] == "base" and math.isnan(by["vanilla"]["p_welch"])
    # the same numbers as accuracies (higher is better): the variant is better
    flipped = stats.compare(records("t", {"vanilla": base, "NFG": worse}, lower=False))
    assert flipped[1]["verdict"] == "better"
    # one run a side is no test
    few = stats.compare(records("t", {"vanilla": [1.0], "NFG": [2.0, 3.0]}))
    assert few[1]["verdict"] == "untested" and math.isnan(few[1]["p_holm"])


def test_findings_name_the_significant_variants_and_compare_with_greff():
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    rows = stats.compare(
        records(
            "charlm",
            {"vanilla": base, "NFG": [2.0, 2.1, 1.9, 2.05, 1.95], "CIFG": base, "NOAF": base},
        )
    )
    text = report.findings(rows)
    assert "significantly worse than vanilla: NFG (+1)" in text
    assert (
        "As in Greff et al.: NFG was significantly worse, CIFG was not significantly worse" in text
    )
    assert "Unlike Greff et al." in text and "NOAF was not significantly worse" in text
    table = report.format_table(rows)
    assert "1 ± 0.079" in table and "worse" in table
    assert "Caution" not in text  # the char-LM has no memoryless baseline


def test_findings_warn_when_the_full_cell_did_not_beat_the_baseline():
    runs = records("adding", {"vanilla": [0.17, 0.16, 0.18], "NFG": [0.16, 0.17, 0.15]})
    for baseline, warned in [(0.167, True), (0.5, False)]:
        text = report.findings(stats.compare([r | {"baseline": baseline} for r in runs]))
        assert ("did not beat the memoryless baseline (0.167)" in text) == warned, text


def test_runs_no_better_than_the_baseline_are_counted_as_failed():
    """A variant that blows up on some seeds: its variance can keep Welch's test from
    significance, but the table and the findings count the runs that ended at or past the
    memoryless baseline (lower or higher is better alike; diverged runs apart)."""
    bpc = {"vanilla": [3.0, 3.1, 2.9], "NOAF": [2.9, 26.0, 18.0, None]}
    rows = stats.compare([r | {"baseline": 7.8} for r in records("charlm", bpc)])
    by = {r["variant"]: r for r in rows}
    assert (by["vanilla"]["failed"], by["NOAF"]["failed"], by["NOAF"]["diverged"]) == (0, 2, 1)
    assert by["NOAF"]["verdict"] == "same"
    assert "3 (1 diverged, 2 failed)" in report.format_table(rows)
    assert "no better than the memoryless baseline: NOAF (2 of 3)" in report.findings(rows)
    acc = {"vanilla": [0.99, 1.0], "NFG": [0.5, 0.51]}  # higher is better: 0.5 itself fails
    rows = stats.compare([r | {"baseline": 0.5} for r in records("reber", acc, lower=False)])
    assert [r["failed"] for r in rows] == [0, 1]
    assert stats.compare(records("t", {"vanilla": [1.0, 2.0]}))[0]["failed"] == 0  # no baseline


def test_the_variants_are_greffs():
    full = LSTMOptions(peepholes=True)
    assert gates.VARIANTS["vanilla"] == {"peepholes": True}
    assert LSTMOptions(**gates.VARIANTS["NP"]) == LSTMOptions()
    for name, option in [
        ("NIG", "input_gate"),
        ("NFG", "forget_gate"),
        ("NOAF", "output_activation"),
    ]:
        changed = {k for k, v in LSTMOptions(**gates.VARIANTS[name]).changed().items()}
        assert changed == {"peepholes", option} and full.changed() == {"peepholes": True}


# ---- the study ----------------------------------------------------------------------------


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.py"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def study(out: Path, corpus: Path, *extra: str, tasks: str = "adding") -> list[str]:
    return ["study", "gates", "--out", str(out), "--variants", "vanilla,NFG", "--tasks", tasks,
            "--steps", "2", "--no-time-limit", "--hidden", "4", "--batch", "2", "--text",
            str(corpus), "--embed", "4", "--seq-len", "8", "--eval-chars", "60", "--lag", "5",
            *extra]  # fmt: skip


def lines(out: Path) -> list[str]:
    return (out / "results.jsonl").read_text().splitlines()


def test_a_tiny_study_writes_its_report_and_resumes(tmp_path, corpus, capsys):
    out = tmp_path / "study"
    assert main(study(out, corpus, "--seeds", "2", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["rows"]) == 2 and "Welch" in summary["findings"]
    first = lines(out)
    assert len(first) == 4  # 2 variants x 2 seeds
    for name in ("summary.json", "table.txt", "report.md", "boxplot.png", "settings.json"):
        assert (out / name).is_file(), name
    assert "lstmkit study gates --out" in (out / "report.md").read_text()
    # more seeds: only the new runs, the old lines kept as they were
    assert main(study(out, corpus, "--seeds", "3")) == 0
    assert lines(out)[:4] == first and len(lines(out)) == 6
    # a kill while the last record was written: its line cut short; the run is done again,
    # to the same value (a --steps budget is reproducible), on a line of its own
    last = json.loads(lines(out)[-1])
    (out / "results.jsonl").write_text("\n".join(lines(out)[:-1]) + "\n" + lines(out)[-1][:20])
    assert main(study(out, corpus, "--seeds", "3")) == 0
    again = json.loads(lines(out)[-1])
    assert again["value"] == last["value"] and len(lines(out)) == 7  # 6 + the cut line
    # other settings in the same folder: refused in one line
    capsys.readouterr()
    assert main(study(out, corpus, "--seeds", "3", "--hidden", "5")) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "hidden 4 (now 5)" in err


def test_an_interrupted_char_lm_run_starts_again(tmp_path, corpus, capsys):
    """Its run folder is there, its record is not: the folder is replaced by a whole run."""
    out = tmp_path / "study"
    argv = study(out, corpus, "--seeds", "1", "--variants", "CIFG", tasks="charlm")
    assert main(argv) == 0
    (record,) = [json.loads(x) for x in lines(out)]
    folder = out / "runs" / "charlm" / "CIFG" / "seed0"
    assert record["run"] == str(folder) and (folder / "latest.npz").is_file()
    (out / "results.jsonl").write_text("")
    (folder / "left-over").write_text("from the killed run")
    assert main(argv) == 0
    assert json.loads(lines(out)[0])["value"] == record["value"]
    assert not (folder / "left-over").exists()


def test_one_process_per_study_folder(tmp_path, corpus, capsys):
    from lstmkit.train.run_folder import Run

    held = Run(tmp_path / "s").lock()
    try:
        code = main(study(tmp_path / "s", corpus, "--seeds", "1"))
    finally:
        held.release()
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "in use by another lstmkit process" in err, err
    assert not (tmp_path / "s" / "results.jsonl").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--variants", "vanilla,XYZ"], "--variants"),
        (["--tasks", "charlm,chess"], "--tasks"),
        (["--seeds", "0"], "--seeds"),
        (["--lr-spread", "4"], "--lr-spread"),
        (["--alpha", "1.5"], "--alpha"),
        (["--text", "/no/such/file"], "no such file"),
        (["--reber-test-steps", "0"], "--reber-test-steps"),
    ],
)
def test_bad_values_are_one_line(tmp_path, corpus, capsys, extra, words):
    code = main(study(tmp_path / "s", corpus, tasks="charlm,adding") + extra)
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and words in err, err
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_a_timed_study_on_the_default_corpus(tmp_path, capsys):
    """The defaults' path: Python's stdlib as the corpus, a wall-time budget, the Reber
    stream, a random search over the learning rate; every run finishes and is reported."""
    out = tmp_path / "study"
    argv = ["study", "gates", "--out", str(out), "--variants", "vanilla,NFG,CIFG", "--tasks",
            "charlm,reber", "--seeds", "2", "--minutes", "0.02", "--hidden", "8",
            "--reber-test-steps", "200", "--lr-spread", "0.5", "--json"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {(r["task"], r["variant"]) for r in rows} == {
        (t, v) for t in ("charlm", "reber") for v in ("vanilla", "NFG", "CIFG")
    }
    runs = [json.loads(x) for x in lines(out)]
    assert all(r["steps"] and r["steps"] > 0 for r in runs)
    lrs = {r["seed"]: r["lr"] for r in runs if r["task"] == "charlm"}
    assert lrs[0] != lrs[1] and all(
        r["lr"] == lrs[r["seed"]] for r in runs if r["task"] == "charlm"
    )
