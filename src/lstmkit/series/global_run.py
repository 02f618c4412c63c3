"""The global forecaster's run folder (many series and/or covariates): ``global.npz``.

One checkpoint (see :mod:`lstmkit.train.checkpoint`; read with ``allow_pickle=False``) holds,
with K series, season m, F known-future and P past covariates:

=======================  ==============================================================
``member<k>/<param>``    member k's LSTM (input 1 + F + P) and head (output 1 + P)
``member<k>/season``     (K, m) each series' seasonal indices (zeros: not deseasoned)
``member<k>/scaler``     (K, 2) each series' target mean and scale
``member<k>/scales``     (K, F + P, 2) each series' covariate means and scales
``history/y``            (N,) the K fitted series end to end (N = sum of their lengths)
``history/X``            (N, F) and ``history/P`` (N, P) their covariates
``history/lengths``      (K,) the length of each series
``errors/values``        (R, H) every series' cross-fitted validation errors end to end
``errors/counts``        (K,) how many rows of them are each series' (the intervals)
=======================  ==============================================================

and in the JSON header ``kind`` (:data:`KIND`), ``season``, ``ids`` (K names),
``future_covariates`` and ``past_covariates`` (the column names a forecast needs),
``members`` (candidate and steps), ``search`` and ``data`` (value, time and id columns,
source, ``n_holdout``). :func:`load_global` checks every name and shape against the header
before reading an array.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.series.auto import Candidate
from lstmkit.series.covariates import CovariateLSTM
from lstmkit.series.data import Scaler
from lstmkit.series.many import GlobalEnsemble, Member, Panel
from lstmkit.series.transform import Transform
from lstmkit.train import checkpoint, schema

__all__ = ["FILE", "KIND", "is_global_run", "load_global", "save_global"]

KIND = "global-forecaster"
FILE = "global.npz"


def save_global(folder: str | Path, ensemble: GlobalEnsemble, data: dict[str, Any]) -> Path:
    """Write ``folder/global.npz``; ``data``: column, time_column, id_column, source,
    n_holdout (JSON-able)."""
    path = Path(folder) / FILE
    p = ensemble.panel
    arrays: dict[str, np.ndarray] = {
        "history/y": np.concatenate(p.y),
        "history/X": np.concatenate(p.X),
        "history/P": np.concatenate(p.P),
        "history/lengths": np.array([len(v) for v in p.y], np.int64),
        "errors/values": np.concatenate(ensemble.errors),
        "errors/counts": np.array([len(e) for e in ensemble.errors], np.int64),
    }
    for k, mb in enumerate(ensemble.members):
        arrays.update({f"member{k}/{n}": w for n, w in mb.model.state_dict().items()})
        arrays[f"member{k}/season"] = np.stack([tf.season for tf in mb.transforms])
        arrays[f"member{k}/scaler"] = np.array(
            [[tf.scaler.mean, tf.scaler.scale] for tf in mb.transforms]
        )
        arrays[f"member{k}/scales"] = np.stack(mb.scales)
    meta = {
        "kind": KIND,
        "season": ensemble.season,
        "ids": list(p.ids),
        "future_covariates": ensemble.future_names,
        "past_covariates": ensemble.past_names,
        "members": [{**asdict(mb.candidate), "steps": mb.steps} for mb in ensemble.members],
        "search": ensemble.table,
        "truncated_by_time": ensemble.truncated,
        "data": data,
    }
    checkpoint.save(path, arrays, meta)
    return path


def is_global_run(path: str | Path) -> bool:
    """Whether ``path`` is a global forecaster's run folder or its ``global.npz``."""
    path = Path(path)
    return (path / FILE).is_file() or (path.name == FILE and path.is_file())


def _names(meta: dict[str, Any], key: str) -> list[str]:
    value = meta.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise schema.HeaderError(f"{key}: expected a list of non-empty names")
    if len(set(value)) != len(value):
        raise schema.HeaderError(f"{key}: expected distinct names, got {value}")
    return value


def _check(meta: dict[str, Any], manifest: schema.Manifest) -> None:
    """The header and the arrays it implies (names, shapes, dtypes); HeaderError naming the
    field."""
    if meta.get("kind") != KIND:
        raise schema.HeaderError(f"kind: expected {KIND!r}, got {meta.get('kind')!r}")
    m = schema.integer(meta, "season", "", 1, 10_000)
    K = len(_names(meta, "ids"))
    F, P = len(_names(meta, "future_covariates")), len(_names(meta, "past_covariates"))
    data = schema.mapping(meta, "data")
    schema.string(data, "column", "data.")
    for key in ("time_column", "id_column", "source"):
        schema.string(data, key, "data.", optional=True)
    schema.integer(data, "n_holdout", "data.", 0)
    if not isinstance(meta.get("search"), list):
        raise schema.HeaderError("search: expected a list")
    members = meta.get("members")
    if not isinstance(members, list) or not members:
        raise schema.HeaderError("members: expected a non-empty list")
    N = int(manifest.get("history/y", (None, (-1,)))[1][0])
    want: dict[str, tuple[int, ...]] = {
        "history/y": (N,), "history/X": (N, F), "history/P": (N, P), "history/lengths": (K,),
    }  # fmt: skip
    if "errors/values" in manifest or "errors/counts" in manifest:  # (older runs: none)
        shape = tuple(manifest.get("errors/values", (None, (-1, -1)))[1])
        if len(shape) != 2 or shape[1] < 1:
            raise schema.HeaderError("array 'errors/values': expected shape (rows, horizon)")
        want.update({"errors/values": shape, "errors/counts": (K,)})
    keys = {f.name for f in fields(Candidate)} | {"steps"}
    for k, member in enumerate(members):
        where = f"members[{k}]."
        if not isinstance(member, dict) or set(member) | {"hybrid", "level"} != keys:  # older
            raise schema.HeaderError(f"{where[:-1]}: expected the keys {sorted(keys)}")
        if member.get("hybrid", False) is not False:
            raise schema.HeaderError(f"{where}hybrid: expected false (the global model has none)")
        for key in ("lookback", "steps"):
            schema.integer(member, key, where, 1)
        H = schema.integer(member, "hidden", where, 1, 4096)
        for key in ("deseason", "difference"):
            schema.boolean(member, key, where)
        prefix = f"member{k}/"
        want.update(schema.lstm_shapes(prefix + "lstm.", 1 + F + P, H, 1, manifest))
        want.update({prefix + "head.weight": (1 + P, H), prefix + "head.bias": (1 + P,)})
        want.update({prefix + "season": (K, m), prefix + "scaler": (K, 2)})
        want[prefix + "scales"] = (K, F + P, 2)
    for name, shape in want.items():
        if name not in manifest:
            raise schema.HeaderError(f"array {name!r}: missing (the header implies it)")
        if tuple(manifest[name][1]) != shape:
            raise schema.HeaderError(
                f"array {name!r}: shape {tuple(manifest[name][1])}, the header implies {shape}"
            )
    extra = sorted(set(manifest) - set(want))
    if extra:
        raise schema.HeaderError(f"array {extra[0]!r}: unexpected in a global forecaster")


def load_global(path: str | Path) -> tuple[GlobalEnsemble, dict[str, Any]]:
    """The global forecaster in a run folder (or its ``global.npz``) and its header; a
    CheckpointError naming the file if it cannot be used."""
    path = Path(path)
    file = path / FILE if path.is_dir() else path
    arrays, meta = checkpoint.load(file, _check)
    lengths = arrays["history/lengths"]
    if np.any(lengths < 1) or int(lengths.sum()) != arrays["history/y"].shape[0]:
        raise checkpoint.CheckpointError(f"{file}: history/lengths do not add up to history/y")
    ends = np.cumsum(lengths)[:-1]
    panel = Panel(
        list(np.split(arrays["history/y"], ends)),
        list(np.split(arrays["history/X"], ends)),
        list(np.split(arrays["history/P"], ends)),
        list(meta["ids"]),
    )
    F, P = len(meta["future_covariates"]), len(meta["past_covariates"])
    errors = _errors(file, arrays, len(panel.y))
    members = [_member(file, arrays, k, d, F, P) for k, d in enumerate(meta["members"])]
    ensemble = GlobalEnsemble(
        members,
        panel,
        int(meta["season"]),
        meta["search"],
        False,
        list(meta["future_covariates"]),
        list(meta["past_covariates"]),
        errors,
    )
    return ensemble, meta


def _errors(file: Path, arrays: dict[str, np.ndarray], K: int) -> list[np.ndarray]:
    """Each series' calibration errors (R_i, H); a (1, 1) NaN row each in an older run."""
    if "errors/values" not in arrays:
        return [np.full((1, 1), np.nan) for _ in range(K)]
    values, counts = arrays["errors/values"], arrays["errors/counts"]
    if np.any(counts < 1) or int(counts.sum()) != values.shape[0]:
        raise checkpoint.CheckpointError(f"{file}: errors/counts do not add up to errors/values")
    return list(np.split(values.astype(np.float64), np.cumsum(counts)[:-1]))


def _member(
    file: Path, arrays: dict[str, np.ndarray], k: int, d: dict[str, Any], F: int, P: int
) -> Member:
    c = Candidate(**{f.name: d[f.name] for f in fields(Candidate) if f.name in d})
    prefix = f"member{k}/"
    scaler, scales = arrays[prefix + "scaler"], arrays[prefix + "scales"]
    finite = all(np.all(np.isfinite(a)) for a in (scaler, scales, arrays[prefix + "season"]))
    if not finite or np.any(scaler[:, 1] <= 0) or np.any(scales[..., 1] <= 0):
        raise checkpoint.CheckpointError(
            f"{file}: member {k}: expected finite scalers with positive scales"
        )
    transforms = [
        Transform(s, c.difference, Scaler(float(a[0]), float(a[1])))
        for s, a in zip(arrays[prefix + "season"], scaler)
    ]
    model = CovariateLSTM(c.hidden, F, P)
    params = {
        n[len(prefix) :]: a
        for n, a in arrays.items()
        if n.startswith(prefix + "lstm.") or n.startswith(prefix + "head.")
    }
    try:
        model.load_state_dict(params)
    except (KeyError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{file}: member {k}: {e}") from None
    return Member(c, transforms, list(scales), model, int(d["steps"]))
