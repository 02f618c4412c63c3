"""The automatic forecaster's progress file, so a killed ``series train`` can ``--resume``.

:func:`lstmkit.series.auto.fit_auto` with a :class:`Progress` saves each finished piece of
work as it ends: every validated candidate's row (validation MAE, early-stopping step and its
validation errors), then every refitted member (its LSTM and head). A resumed fit replays
the saved pieces instead of training them again and computes the rest. Each candidate trains
from its own seed (``config.seed``; a member from ``config.seed + 1000 k``), never from a
generator shared with the others, so skipping the finished ones changes nothing in what
follows: with a time budget that does not bind, a fit interrupted anywhere and resumed ends
with the same ensemble, bit for bit, as an uninterrupted one.

The time budget counts what the saved work took: the clock of a resumed fit goes on from
``spent``, the seconds at the last save, so the work lost in the kill is redone within the
budget, not on top of it. Saved candidates are replayed whatever the clock (the
interrupted fit had time for them), so a resumed fit decides as the interrupted one did
up to its last save; after that, when the budget binds, where it stops depends on the
clock, and it may stop elsewhere than an uninterrupted fit would have.

``RUN/auto-progress.npz`` is a checkpoint (:mod:`lstmkit.train.checkpoint`: atomic, checked
on load) with

========================  ================================================================
``row<i>/errors``         (origins, h) validation errors of the i-th validated candidate
``member<j>/<param>``     the j-th refitted member's LSTM and head parameters
========================  ================================================================

and in the header ``kind`` (:data:`KIND`), ``rows`` (each candidate's fields, ``val_mae``,
``steps``), ``members`` (each candidate's fields and ``seed``), ``spent`` (seconds) and the
``stamp`` a resume must match: a fingerprint of the values (and of the observed mask) and
every option that changes the result (all of :class:`~lstmkit.series.auto.AutoConfig` but
the time budget ``minutes``, the season and the horizon).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.series.auto import AutoConfig, Candidate
from lstmkit.series.data import fingerprint
from lstmkit.series.model import Forecaster
from lstmkit.train import checkpoint, files, schema

__all__ = ["FILE", "KIND", "Progress"]

KIND = "auto-forecaster-progress"
FILE = "auto-progress.npz"

Validation = tuple[float, int, np.ndarray]  # (mae, step, errors (origins, h))
_FIELDS = [f.name for f in fields(Candidate)]
_NEW_OPTIONS = (
    "combine",
    "combine_trend",
    "level_input",
    "level_if_stationary",
    "highway",
    "difference_if_unit_root",
)


def stamp(
    y: np.ndarray, m: int, h: int, config: AutoConfig, observed: np.ndarray | None = None
) -> dict[str, Any]:
    """What a resumed fit must share with the saved one, JSON-ready."""
    options = {k: v for k, v in asdict(config).items() if k != "minutes"}
    for k in _NEW_OPTIONS:  # off, as in the fits saved before these options existed
        if options[k] is False or options[k] == 0:
            del options[k]
    mask = None if observed is None else fingerprint(np.asarray(observed, np.float64))
    data = {"values": fingerprint(y), "n": len(y), "observed": mask, "season": m, "horizon": h}
    return json.loads(json.dumps({**data, **options}))  # tuples as lists, as when loaded


class Progress:
    """The memo :func:`~lstmkit.series.auto.fit_auto` consults and fills (see the module
    docstring). Make one with :meth:`start` or :meth:`resume`."""

    kind = KIND  # the file's header kind and name (a subclass saves another fit's progress)
    file = FILE
    score = "val_mae"  # the name of a row's validation score

    def __init__(self, path: Path, stamp: dict[str, Any], spent: float = 0.0) -> None:
        self.path = path
        self.stamp = stamp
        self.spent = spent  # seconds of the budget used by the saved work
        self.rows: dict[Candidate, Validation] = {}
        self.members: dict[tuple[Candidate, int], Forecaster] = {}
        self._opened = time.monotonic()

    def __repr__(self) -> str:
        return (
            f"Progress({str(self.path)!r}, rows={len(self.rows)}, members={len(self.members)}, "
            f"spent={self.spent:.1f})"
        )

    @classmethod
    def start(cls, folder: str | Path, stamp: dict[str, Any]) -> Progress:
        """A new progress file in ``folder`` (written at the first finished candidate)."""
        return cls(Path(folder) / cls.file, stamp)

    @classmethod
    def resume(cls, folder: str | Path, stamp: dict[str, Any]) -> Progress:
        """The progress saved in ``folder``; ValueError (one line) if it was saved for other
        values or options, CheckpointError if the file cannot be used."""
        path = Path(folder) / cls.file
        files.clean_temp_files(path.parent)  # a write the kill interrupted
        arrays, meta = checkpoint.load(path, partial(_check, kind=cls.kind, score=cls.score))
        _compare(meta["stamp"], stamp)
        progress = cls(path, stamp, float(meta["spent"]))
        for i, row in enumerate(meta["rows"]):
            c = _candidate(row)
            errors = progress._errors_from(arrays, i)
            progress.rows[c] = (row[cls.score], row["steps"], errors)
        for j, member in enumerate(meta["members"]):
            c, prefix = _candidate(member), f"member{j}/"
            model = progress._model(c)
            params = {k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)}
            try:
                model.load_state_dict(params)
            except (KeyError, ValueError) as e:
                raise checkpoint.CheckpointError(f"{path}: member {j}: {e}") from None
            progress.members[(c, member["seed"])] = model
        return progress

    def saved(self, c: Candidate) -> bool:
        """Whether candidate c's validation is saved."""
        return c in self.rows

    def validated(self, c: Candidate, run: Callable[[], Validation]) -> Validation:
        """Candidate c's saved validation, or ``run()``'s, saved now."""
        if c not in self.rows:
            self.rows[c] = run()
            self._save()
        return self.rows[c]

    def refitted(self, c: Candidate, seed: int, run: Callable[[], Forecaster]) -> Forecaster:
        """Candidate c's saved member for ``seed``, or ``run()``'s, saved now."""
        if (c, seed) not in self.members:
            self.members[(c, seed)] = run()
            self._save()
        return self.members[(c, seed)]

    def _model(self, c: Candidate) -> Any:
        """An untrained model of candidate c's size (a saved member's state loads into it)."""
        return Forecaster(c.model_config(), inputs=c.inputs())

    def _errors_arrays(self, i: int, errors: Any) -> dict[str, np.ndarray]:
        """Row i's validation errors as arrays of the file."""
        return {f"row{i}/errors": errors}

    def _errors_from(self, arrays: dict[str, np.ndarray], i: int) -> Any:
        """Row i's validation errors back from the file's arrays."""
        return arrays[f"row{i}/errors"]

    def remove(self) -> None:
        """Delete the file (the finished run's ``auto.npz`` holds everything)."""
        self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        arrays: dict[str, np.ndarray] = {}
        rows = []
        for i, (c, (mae, step, errors)) in enumerate(self.rows.items()):
            arrays.update(self._errors_arrays(i, errors))
            rows.append({**asdict(c), self.score: mae, "steps": step})
        members = []
        for j, ((c, seed), model) in enumerate(self.members.items()):
            arrays.update({f"member{j}/{k}": w for k, w in model.state_dict().items()})
            members.append({**asdict(c), "seed": seed})
        spent = self.spent + time.monotonic() - self._opened
        meta = {"kind": self.kind, "stamp": self.stamp, "spent": spent, "rows": rows}
        checkpoint.save(self.path, arrays, {**meta, "members": members})


def _compare(saved: dict[str, Any], now: dict[str, Any]) -> None:
    """ValueError naming what differs between the saved stamp and this fit's."""
    if (saved.get("values"), saved.get("n")) != (now["values"], now["n"]):
        raise ValueError(
            f"cannot resume: the values differ from the run's ({now['n']} values, fingerprint "
            f"{now['values']}; the run's: {saved.get('n')} values, {saved.get('values')}): "
            "pass the same --csv, --column, --holdout and --missing"
        )
    changed = [
        f"{k} {now.get(k)!r} (the run's: {saved.get(k)!r})"
        for k in sorted(set(saved) | set(now))
        if k not in ("values", "n") and saved.get(k) != now.get(k)
    ]
    if changed:
        raise ValueError(f"cannot resume: other options than the run's: {', '.join(changed)}")


def _check(
    meta: dict[str, Any], manifest: schema.Manifest, kind: str = KIND, score: str = "val_mae"
) -> None:
    if meta.get("kind") != kind:
        raise schema.HeaderError(f"kind: expected {kind!r}, got {meta.get('kind')!r}")
    schema.mapping(meta, "stamp")
    schema.number(meta, "spent", "", 0.0)
    for key, extra in (("rows", (score, "steps")), ("members", ("seed",))):
        entries = meta.get(key)
        if not isinstance(entries, list):
            raise schema.HeaderError(f"{key}: expected a list")
        for k, entry in enumerate(entries):
            where = f"{key}[{k}]."
            if not isinstance(entry, dict) or set(entry) | {"level", "highway"} != {
                *_FIELDS,
                *extra,
            }:
                raise schema.HeaderError(f"{where[:-1]}: expected the keys {_FIELDS + [*extra]}")
            for name in ("lookback", "hidden"):
                schema.integer(entry, name, where, 1)
            for name in ("deseason", "difference"):
                schema.boolean(entry, name, where)
            if key == "members":
                schema.integer(entry, "seed", where, 0)
                continue
            schema.integer(entry, "steps", where, 1)
            if not isinstance(entry[score], float):
                raise schema.HeaderError(f"{where}{score}: expected a number")
            if len(manifest.get(f"row{k}/errors", (None, ()))[1]) != 2:
                raise schema.HeaderError(f"{where[:-1]}: expected a 2-D array row{k}/errors")


def _candidate(entry: dict[str, Any]) -> Candidate:
    # older fits have no "level" or "highway": the fields' defaults
    return Candidate(**{name: entry[name] for name in _FIELDS if name in entry})
