"""The automatic forecaster's run folder: ``auto.npz``, one checkpoint holding the ensemble.

Arrays (see :mod:`lstmkit.train.checkpoint`; read with ``allow_pickle=False``):

=====================  =====================================================
``member<k>/<param>``  member k's LSTM and head parameters (``lstm.weight_ih_l0`` ...)
``member<k>/season``   (m,) its seasonal indices (zeros when it does not deseason); for an
                       ES-hybrid member, the smoothing's initial season
``errors``             (R, h) cross-fitted validation errors behind the intervals
``history``            (n_fit,) the values it was fitted on (``predict(h)`` follows them)
``combination/season`` (m,) with a combination (:mod:`lstmkit.series.combination`): the
                       Holt-Winters smoothing's initial season
=====================  =====================================================

and in the JSON header ``kind`` (:data:`KIND`), ``season``, ``members`` (each one's
candidate, scaler and steps; an ES-hybrid member also its ``smoothing``: alpha, beta,
gamma, level0, trend0, a level-input member its ``level_scaler``; runs from before the
hybrid have no ``hybrid`` key, from before the level input no ``level``, from before the
highway no ``highway``), ``search``
(the validation table) and ``data`` (column, time column, source, n, ``n_fit`` values it
saw, ``n_holdout`` left for ``series eval``, and a fingerprint of the values it saw); with a
combination, ``combination`` (the LSTM's ``weight`` and the Holt-Winters smoothing's alpha,
beta, gamma, level0, trend0); with ``AutoConfig.difference_if_unit_root``, ``unit_root``
(whether ADF left a unit root standing, so only differenced forms were searched).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.series.auto import Candidate, Ensemble
from lstmkit.series.combination import Combination
from lstmkit.series.data import Scaler, Series, fingerprint
from lstmkit.series.hybrid import LevelTransform
from lstmkit.series.level_input import LevelInput
from lstmkit.series.model import Forecaster
from lstmkit.series.smoothing import Smoothing
from lstmkit.series.transform import Transform
from lstmkit.train import checkpoint, schema

__all__ = ["FILE", "KIND", "is_auto_run", "load_ensemble", "save_ensemble"]

KIND = "auto-forecaster"
FILE = "auto.npz"


def save_ensemble(folder: str | Path, ensemble: Ensemble, series: Series, n_holdout: int) -> Path:
    """Write ``folder/auto.npz`` for an ensemble fitted on the first n - n_holdout values."""
    path = Path(folder) / FILE
    arrays: dict[str, np.ndarray] = {"errors": ensemble.errors, "history": ensemble.history}
    members = []
    for k, (c, tf, model, steps) in enumerate(ensemble.members):
        arrays.update({f"member{k}/{name}": w for name, w in model.state_dict().items()})
        arrays[f"member{k}/season"] = tf.season
        members.append({**asdict(c), "steps": steps, "scaler": tf.scaler.to_dict()})
        if c.hybrid:
            members[-1]["smoothing"] = _smoothing_dict(tf.smoothing)
        if c.level:
            members[-1]["level_scaler"] = tf.level.to_dict()
    n_fit = len(series) - n_holdout
    meta = {
        "kind": KIND,
        "season": ensemble.season,
        "members": members,
        "search": ensemble.table,
        "truncated_by_time": ensemble.truncated,
        "data": {
            "column": series.column,
            "time_column": series.time_column,
            "source": series.source,
            "n": len(series),
            "split": {"n_fit": n_fit, "n_val": 0, "n_holdout": n_holdout},
            "fingerprint": fingerprint(series.values[:n_fit]),
        },
    }
    if ensemble.unit_root is not None:  # AutoConfig.difference_if_unit_root's test
        meta["unit_root"] = ensemble.unit_root
    mix = ensemble.combination
    if mix is not None:
        meta["combination"] = {"weight": mix.weight, **_smoothing_dict(mix.smoothing)}
        arrays["combination/season"] = mix.smoothing.season0
    checkpoint.save(path, arrays, meta)
    return path


def _smoothing_dict(sm: Smoothing) -> dict[str, float]:
    """A smoothing's parameters and initial level and trend (its season is an array)."""
    return {
        "alpha": sm.alpha, "beta": sm.beta, "gamma": sm.gamma,
        "level0": sm.level0, "trend0": sm.trend0,
    }  # fmt: skip


def is_auto_run(path: str | Path) -> bool:
    """Whether ``path`` is an automatic forecaster's run folder or its ``auto.npz``."""
    path = Path(path)
    return (path / FILE).is_file() or (path.name == FILE and path.is_file())


def _check(meta: dict[str, Any], manifest: schema.Manifest) -> None:
    if meta.get("kind") != KIND:
        raise schema.HeaderError(f"kind: expected {KIND!r}, got {meta.get('kind')!r}")
    m = schema.integer(meta, "season", "", 1)
    data = schema.mapping(meta, "data")
    schema.string(data, "column", "data.")
    schema.string(data, "time_column", "data.", optional=True)
    split = schema.mapping(data, "split", "data.")
    for key in ("n_fit", "n_holdout"):
        schema.integer(split, key, "data.split.", 0)
    if not isinstance(meta.get("search"), list):
        raise schema.HeaderError("search: expected a list")
    if len(manifest.get("errors", (None, ()))[1]) != 2:
        raise schema.HeaderError("errors: expected a 2-D array of validation errors")
    n_fit = split["n_fit"]
    if manifest.get("history", (None, None))[1] != (n_fit,):
        raise schema.HeaderError(f"history: expected the {n_fit} values the ensemble saw")
    members = meta.get("members")
    if not isinstance(members, list) or not members:
        raise schema.HeaderError("members: expected a non-empty list")
    keys = {f.name for f in fields(Candidate)} | {"steps", "scaler"}
    for k, member in enumerate(members):
        where = f"members[{k}]."
        hybrid = isinstance(member, dict) and member.get("hybrid") is True
        want = keys | {"smoothing"} if hybrid else keys
        with_level = isinstance(member, dict) and member.get("level") is True
        want = want | {"level_scaler"} if with_level else want
        if not isinstance(member, dict) or set(member) | {"hybrid", "level", "highway"} != want:
            raise schema.HeaderError(f"{where[:-1]}: expected the keys {sorted(want)}")
        if hybrid:
            _check_smoothing(member, where)
        for key in ("lookback", "hidden", "steps"):
            schema.integer(member, key, where, 1)
        for key in ("deseason", "difference", "hybrid", "level"):
            if key in member:  # a run from before the hybrid (level) has no "hybrid" ("level")
                schema.boolean(member, key, where)
        if "highway" in member:  # a run from before the highway has none
            schema.integer(member, "highway", where, 0)
        for key in ("scaler", "level_scaler") if with_level else ("scaler",):
            scaler = schema.mapping(member, key, where)
            schema.number(scaler, "mean", f"{where}{key}.")
            schema.number(scaler, "scale", f"{where}{key}.", 0.0, lo_open=True)
        if manifest.get(f"member{k}/season", (None, None))[1] != (m,):
            raise schema.HeaderError(f"members[{k}]: expected seasonal indices of shape ({m},)")
    if "unit_root" in meta:
        schema.boolean(meta, "unit_root")
    if "combination" in meta:
        _check_smoothing(meta, "", "combination")
        schema.number(meta["combination"], "weight", "combination.", 0.0, 1.0)
        if manifest.get("combination/season", (None, None))[1] != (m,):
            raise schema.HeaderError(f"combination: expected a season of shape ({m},)")


def load_ensemble(path: str | Path) -> tuple[Ensemble, dict[str, Any]]:
    """The ensemble in a run folder (or its ``auto.npz``) and the header; a CheckpointError
    naming the file if it cannot be used."""
    path = Path(path)
    file = path / FILE if path.is_dir() else path
    arrays, meta = checkpoint.load(file, _check)
    members = []
    for k, d in enumerate(meta["members"]):
        c = Candidate(**{f.name: d[f.name] for f in fields(Candidate) if f.name in d})
        prefix = f"member{k}/"
        tf = _transform(c, d, arrays[prefix + "season"])
        model = Forecaster(c.model_config(), inputs=c.inputs())
        params = {n[len(prefix) :]: a for n, a in arrays.items() if n.startswith(prefix)}
        del params["season"]
        try:
            model.load_state_dict(params)
        except (KeyError, ValueError) as e:
            raise checkpoint.CheckpointError(f"{file}: member {k}: {e}") from None
        members.append((c, tf, model, int(d["steps"])))
    history, errors = arrays["history"], arrays["errors"]
    ensemble = Ensemble(members, history, int(meta["season"]), meta["search"], False, errors)
    ensemble.unit_root = meta.get("unit_root")  # a run without the option has none
    if "combination" in meta:
        d = meta["combination"]
        sm = _smoothing(d, arrays["combination/season"])
        ensemble.combination = Combination(float(d["weight"]), sm)
    return ensemble, meta


def _check_smoothing(member: dict[str, Any], where: str, key: str = "smoothing") -> None:
    """The smoothing parameters under ``member[key]``."""
    smoothing = schema.mapping(member, key, where)
    for name in ("alpha", "beta", "gamma"):
        schema.number(smoothing, name, f"{where}{key}.", 0.0, 1.0)
    for name in ("level0", "trend0"):
        schema.number(smoothing, name, f"{where}{key}.")


def _transform(
    c: Candidate, d: dict[str, Any], season: np.ndarray
) -> Transform | LevelTransform | LevelInput:
    """A member's transform from its header entry d and its ``season`` array (m,)."""
    scaler = Scaler.from_dict(d["scaler"])
    if c.level:
        return LevelInput(Transform(season, True, scaler), Scaler.from_dict(d["level_scaler"]))
    if not c.hybrid:
        return Transform(season, c.difference, scaler)
    return LevelTransform(_smoothing(d["smoothing"], season), scaler)


def _smoothing(d: dict[str, Any], season: np.ndarray) -> Smoothing:
    """A smoothing from its header entry d and its initial ``season`` (m,)."""
    return Smoothing(d["alpha"], d["gamma"], d["level0"], season, d["beta"], d["trend0"])
