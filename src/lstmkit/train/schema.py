"""What a checkpoint's JSON header may hold: types, ranges, finiteness, and its consistency
with the arrays the header's manifest lists.

:func:`lstmkit.train.checkpoint.load` reads the header and the manifest (each array's dtype
and shape, itself checked against the zip's directory and every member's ``.npy`` header)
before it reads any array, and then calls the loader's ``check(meta, manifest)``. The checks
here are the pieces such a ``check`` is built from; each raises :class:`HeaderError` naming
the field (``model.hidden: expected an integer >= 1, got 'x'``), which ``load`` turns into a
one-line :class:`~lstmkit.train.checkpoint.CheckpointError` naming the file.

Nothing here allocates anything whose size the header chooses: sizes are computed with
Python integers and compared with the manifest, whose arrays are bounded by the file's size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lstmkit.nn.cells.lstm import LSTMOptions
from lstmkit.nn.recurrent import param_shapes

Manifest = dict[str, tuple[np.dtype, tuple[int, ...]]]  # array name -> (dtype, shape)

# Numeric dtypes a checkpoint may hold (kind, item size); no objects, strings or records.
NUMERIC_KINDS = "biuf"
MODEL_DTYPES = ("float32", "float64")


class HeaderError(ValueError):
    """A header field of the wrong type, out of range, or inconsistent with the arrays."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field(meta: Mapping[str, Any], key: str, where: str = "") -> Any:
    """``meta[key]``, or HeaderError naming ``where + key`` if it is missing."""
    if not isinstance(meta, Mapping):
        raise HeaderError(f"{where.rstrip('.') or 'header'}: expected an object, got {_show(meta)}")
    if key not in meta:
        raise HeaderError(f"{where}{key}: missing")
    return meta[key]


def mapping(meta: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = field(meta, key, where)
    if not isinstance(value, dict):
        raise HeaderError(f"{where}{key}: expected an object, got {_show(value)}")
    return value


def integer(
    meta: Mapping[str, Any], key: str, where: str = "", lo: int = 0, hi: int | None = None
) -> int:
    """An integer (not a bool, not a float) in [lo, hi]."""
    value = field(meta, key, where)
    if not isinstance(value, int) or isinstance(value, bool):
        raise HeaderError(f"{where}{key}: expected an integer, got {_show(value)}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise HeaderError(f"{where}{key}: expected an integer {bound}, got {value}")
    return value


def number(
    meta: Mapping[str, Any],
    key: str,
    where: str = "",
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    finite: bool = True,
) -> float:
    """A real number (int or float, not a bool), finite unless ``finite=False`` (never NaN)."""
    value = field(meta, key, where)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise HeaderError(f"{where}{key}: expected a number, got {_show(value)}")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond float range
        raise HeaderError(f"{where}{key}: expected a finite number, got {_show(value)}") from None
    if math.isnan(x) or (finite and math.isinf(x)):
        raise HeaderError(f"{where}{key}: expected a finite number, got {x}")
    low_bad = x <= lo if lo_open else x < lo
    high_bad = x >= hi if hi_open else x > hi
    if low_bad or high_bad:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise HeaderError(f"{where}{key}: expected a number in {interval}, got {x}")
    return x


def boolean(meta: Mapping[str, Any], key: str, where: str = "") -> bool:
    value = field(meta, key, where)
    if not isinstance(value, bool):
        raise HeaderError(f"{where}{key}: expected true or false, got {_show(value)}")
    return value


def string(
    meta: Mapping[str, Any],
    key: str,
    where: str = "",
    choices: tuple[str, ...] | None = None,
    optional: bool = False,
) -> str | None:
    value = field(meta, key, where)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise HeaderError(f"{where}{key}: expected a string, got {_show(value)}")
    if choices is not None and value not in choices:
        raise HeaderError(f"{where}{key}: expected one of {list(choices)}, got {_show(value)}")
    return value


# ---- the trainer's fields ---------------------------------------------------------------


def pcg64_state(state: Any, where: str) -> None:
    """A numpy PCG64 ``bit_generator.state`` dict (128-bit integers, as JSON keeps them)."""
    if not isinstance(state, dict):
        raise HeaderError(f"{where}: expected a generator state object, got {_show(state)}")
    if set(state) != {"bit_generator", "state", "has_uint32", "uinteger"}:
        raise HeaderError(f"{where}: expected a PCG64 generator state, got keys {sorted(state)}")
    string(state, "bit_generator", f"{where}.", ("PCG64",))
    inner = mapping(state, "state", f"{where}.")
    if set(inner) != {"state", "inc"}:
        raise HeaderError(f"{where}.state: expected keys ['inc', 'state'], got {sorted(inner)}")
    integer(inner, "state", f"{where}.state.", 0, 2**128 - 1)
    integer(inner, "inc", f"{where}.state.", 0, 2**128 - 1)
    integer(state, "has_uint32", f"{where}.", 0, 1)
    integer(state, "uinteger", f"{where}.", 0, 2**32 - 1)


def rng_states(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise HeaderError(f"{where}: expected an object of generator states, got {_show(value)}")
    for name, state in value.items():
        pcg64_state(state, f"{where}.{name}")


def trainer_fields(meta: Mapping[str, Any], best_key: str) -> None:
    """``step``, the best score, ``optimizer`` (Adam's scalars), ``rng`` (and ``rng_ranks``):
    all present or all absent (a model saved outside a training run has none)."""
    keys = ("step", "optimizer", "rng", best_key)
    if not any(k in meta for k in keys):
        return
    integer(meta, "step", "", 0)
    number(meta, best_key, "", finite=False)  # inf until the first evaluation; never NaN
    opt = mapping(meta, "optimizer")
    string(opt, "type", "optimizer.", ("Adam",))
    integer(opt, "step", "optimizer.", 0)
    number(opt, "lr", "optimizer.", 0.0, lo_open=True)
    betas = field(opt, "betas", "optimizer.")
    if not isinstance(betas, list) or len(betas) != 2:
        raise HeaderError(f"optimizer.betas: expected two numbers, got {_show(betas)}")
    for k in range(2):
        number({f"betas[{k}]": betas[k]}, f"betas[{k}]", "optimizer.", 0.0, 1.0, hi_open=True)
    number(opt, "eps", "optimizer.", 0.0, lo_open=True)
    number(opt, "weight_decay", "optimizer.", 0.0)
    boolean(opt, "amsgrad", "optimizer.")
    rng_states(field(meta, "rng"), "rng")
    if "rng_ranks" in meta:
        ranks = meta["rng_ranks"]
        if not isinstance(ranks, list) or not ranks:
            raise HeaderError(f"rng_ranks: expected a list of generator states, got {_show(ranks)}")
        for r, states in enumerate(ranks):
            rng_states(states, f"rng_ranks[{r}]")


# ---- arrays -----------------------------------------------------------------------------


def lstm_variant(m: Mapping[str, Any], where: str = "model.") -> LSTMOptions:
    """The model config's LSTM ``variant`` (see :mod:`lstmkit.train.variant`) as cell
    options; a config without one (written before variants were kept) is the plain LSTM."""
    from lstmkit.train import variant

    if "variant" not in m:
        return LSTMOptions()
    try:
        return variant.options(m["variant"])
    except (ValueError, TypeError) as e:
        raise HeaderError(f"{where}variant: {e}") from None


def lstm_shapes(
    prefix: str,
    input_size: int,
    hidden: int,
    layers: int,
    manifest: Manifest,
    options: LSTMOptions | None = None,
) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of a unidirectional ``lk.LSTM`` with these cell ``options``
    (torch's names); HeaderError if the ``manifest`` cannot hold that many layers (checked
    before counting them out)."""
    if 4 * layers > len(manifest):
        raise HeaderError(
            f"model.layers: {layers} layers need {4 * layers} arrays, "
            f"the checkpoint holds {len(manifest)}"
        )
    shapes = param_shapes(4, input_size, hidden, layers, options=options)
    return {prefix + name: shape for name, shape in shapes.items()}


def model_keys(m: Mapping[str, Any], keys: set[str], optional: set[str]) -> None:
    """The model config holds every key of ``keys`` and nothing but ``keys | optional``."""
    if not keys <= set(m) <= keys | optional:
        raise HeaderError(f"model: expected the keys {sorted(keys)}, got {sorted(m)}")


_OPTIM_BUFFERS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def model_arrays(
    manifest: Manifest,
    shapes: Mapping[str, tuple[int, ...]],
    dtype: str,
    extra: Mapping[str, tuple[int, ...]] | None = None,
) -> None:
    """The manifest holds exactly ``model/<name>`` with ``shapes`` (what the header's model
    config implies) in the model's ``dtype``; ``optim/<buffer>.<name>`` entries match their
    parameter; ``extra`` names further arrays (``carry/h``) of the model's dtype; nothing else.

    Parameter counts are compared before anything compares shapes, so a header claiming a
    huge model is refused by arithmetic on Python integers alone.
    """
    want = np.dtype(dtype)
    implied = sum(math.prod(s) for s in shapes.values())
    stored = sum(
        math.prod(shape) for name, (_, shape) in manifest.items() if name.startswith("model/")
    )
    if implied != stored:
        raise HeaderError(
            f"model: the header's model config implies {implied} parameters, "
            f"the checkpoint's arrays hold {stored}"
        )
    allowed = {f"model/{n}": s for n, s in shapes.items()}
    allowed.update(extra or {})
    for name in allowed:
        if name not in manifest:
            raise HeaderError(f"array {name!r}: missing (the header's model config needs it)")
    for name, (dt, shape) in manifest.items():
        if name in allowed:
            expected = allowed[name]
        elif name.startswith("optim/"):
            buffer, _, param = name[len("optim/") :].partition(".")
            if buffer not in _OPTIM_BUFFERS or param not in shapes:
                raise HeaderError(f"array {name!r}: not an optimizer buffer of this model")
            expected = shapes[param]
        else:
            raise HeaderError(f"array {name!r}: unexpected in a checkpoint of this model")
        if tuple(shape) != tuple(expected):
            raise HeaderError(
                f"array {name!r}: shape {tuple(shape)}, "
                f"the header's config implies {tuple(expected)}"
            )
        if dt != want:
            raise HeaderError(f"array {name!r}: dtype {dt.name}, the model's dtype is {want.name}")
