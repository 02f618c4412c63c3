"""The curriculum over the lag of ``lstmkit memory --curriculum L0`` (memory.train.Curriculum)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstmkit.cli.app import main
from lstmkit.memory import tasks, train


class _Always:
    """A stand-in for the model's check: every validation batch is solved (or none is)."""

    def __init__(self, solved: bool):
        self.solved = solved


def _curriculum(lag: int, start: int, name: str = "copying") -> train.Curriculum:
    return train.Curriculum(tasks.make_task(name, lag), start, np.random.default_rng(0), 8)


@pytest.mark.parametrize("name", ["adding", "copying", "temporal", "reber"])
def test_each_task_is_defined_from_its_shortest_lag(name) -> None:
    low = tasks.TASKS[name].min_lag
    assert tasks.make_task(name, low).T == low
    with pytest.raises(ValueError):
        tasks.make_task(name, low - 1)


@pytest.mark.parametrize(("name", "per_lag_extra"), [("copying", 20), ("adding", 0)])
def test_training_lags_are_drawn_from_half_to_the_current_lag(name, per_lag_extra) -> None:
    c = _curriculum(100, 10, name)
    rng = np.random.default_rng(1)
    lengths = {c.sample(2, rng).x.shape[0] - per_lag_extra for _ in range(200)}
    assert lengths == set(range(5, 11))  # every lag in [L // 2, L], nothing else


def test_the_lag_grows_by_half_on_each_solved_check_and_stops_at_the_task_lag(
    monkeypatch,
) -> None:
    c = _curriculum(100, 10)
    monkeypatch.setattr(train, "_evaluate", lambda task, model, batch: ({}, None))
    monkeypatch.setattr(tasks.CopyingTask, "solved", lambda self, m, b: True)
    for step in range(1, 10):
        c.update(step, model=None)
    assert c.history == [[0, 10], [1, 15], [2, 23], [3, 35], [4, 53], [5, 80], [6, 100]]
    assert c.lag == 100 and c.val_batch.x.shape[0] == 120  # validated at its current lag


def test_the_lag_stays_while_the_model_fails(monkeypatch) -> None:
    c = _curriculum(100, 10)
    monkeypatch.setattr(train, "_evaluate", lambda task, model, batch: ({}, None))
    monkeypatch.setattr(tasks.CopyingTask, "solved", lambda self, m, b: False)
    for step in range(1, 5):
        c.update(step, model=None)
    assert c.history == [[0, 10]] and c.lag == 10


def test_a_start_beyond_the_lag_trains_at_the_lag() -> None:
    c = _curriculum(12, 50)
    assert c.lag == 12 and c.history == [[0, 12]]


def test_the_reber_stream_has_no_lag_to_grow() -> None:
    with pytest.raises(ValueError, match="--curriculum: the reber task has no lag to grow"):
        _curriculum(50, 10, "reber")


def test_memory_command_records_the_training_lag(tmp_path, capsys) -> None:
    args = ["memory", "--task", "copying", "--lags", "8", "--models", "lstm", "--hidden", "8"]
    args += ["--curriculum", "3", "--max-steps", "20", "--eval-every", "5", "--json"]
    assert main(args + ["--out", str(tmp_path)]) == 0
    (record,) = json.loads(capsys.readouterr().out)["results"]
    assert record["curriculum"] == 3 and record["lag"] == 8
    assert record["curve_columns"][-1] == "train_lag"
    lags = [point[-1] for point in record["curve"]]
    assert lags == sorted(lags) and all(3 <= lag <= 8 for lag in lags)


def test_memory_command_refuses_a_curriculum_for_reber(tmp_path, capsys) -> None:
    args = ["memory", "--task", "reber", "--models", "lstm", "--curriculum", "5"]
    assert main(args + ["--max-steps", "2", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--curriculum: the reber task has no lag to grow" in err


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_memory_command_refuses_a_curriculum_below_one(tmp_path, capsys, bad) -> None:
    args = ["memory", "--task", "adding", "--lags", "10", "--curriculum", bad]
    assert main(args + ["--out", str(tmp_path)]) != 0
    assert "--curriculum: expected > 0" in capsys.readouterr().err
