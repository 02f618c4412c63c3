"""Generated hostile checkpoints: every one is refused with a one-line CheckpointError naming
the file, or (damage in bytes no reader interprets) loads exactly the original data. Never
another exception, never wrong data, never an allocation beyond a few megabytes.

Inputs start from checkpoints written by the writer before this suite existed
(``tests/data/checkpoints_v1``): a char-LM and a forecaster. Classes:

* ``flip``: 1-8 random byte changes anywhere in the file;
* ``truncate``: cuts at every structural boundary of the zip (local headers, names, .npy
  headers, data, central directory, end record) +-1, and at random points;
* ``header``: the JSON header edited: a field (anywhere in the tree, the manifest included)
  replaced by a value of another type, NaN, +-inf, negative, huge, or deleted, or an extra
  key added; written back consistently with the arrays;
* ``header_text``: the header's text itself edited (bad UTF-8, deep nesting, huge numbers,
  NaN literals, duplicate keys);
* ``dtype``: one array of the model, its optimizer or its carried state rewritten in another
  dtype (int8, float64, ...), the manifest updated to match;
* ``config``: model config values (hidden, layers, vocab size, ...) changed, the manifest's
  shapes changed consistently or not, arrays left as they are;
* ``directory``: the zip's central directory lies (sizes, compression method, flags);
* ``members``: extra, duplicate, foreign, directory or deflated members, zip bombs;
* ``random``: random bytes, with and without a zip signature in front.
"""

from __future__ import annotations

import copy
import io
import json
import math
import shutil
import struct
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmkit.series.train import load_model as load_forecaster
from lstmkit.text.train import load_model as load_charlm
from lstmkit.train import checkpoint
from lstmkit.train.checkpoint import CheckpointError
from robustness._outcomes import record

DATA = Path(__file__).parent.parent / "data" / "checkpoints_v1"
ORIGINALS = {"charlm": DATA / "charlm_latest.npz", "forecaster": DATA / "forecaster_latest.npz"}
PEAK_LIMIT = 16 * 2**20  # bytes traced (numpy's array data included) while loading one input


def examples(n: int) -> settings:
    """Hypothesis settings: ``n`` inputs, derandomized (the same inputs on every run)."""
    return settings(
        max_examples=n,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


KINDS = st.sampled_from(sorted(ORIGINALS))


def _raw(kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    return checkpoint.load(ORIGINALS[kind])


ORIGINAL = {kind: _raw(kind) for kind in ORIGINALS}
_KEYS_READ = (
    "kind", "model", "vocab", "step", "optimizer", "rng", "best_val_bpc", "best_val_loss",
    "scaler", "corpus", "data",
)  # fmt: skip


def _load(path: Path, kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if kind == "charlm":
        model, vocab, meta, arrays = load_charlm(path)
        assert vocab.chars == meta["vocab"]
    else:
        model, meta, arrays = load_forecaster(path)
    for name, w in model.parameters().items():  # what the model holds is what the file held
        assert np.array_equal(w, arrays[f"model/{name}"]) and w.dtype == model.dtype
    return arrays, meta


def check(path: Path, kind: str, cls: str, valid_edit: bool = False) -> str:
    """Load ``path`` as a ``kind`` checkpoint: refused in one line naming the file, or the
    original's data; with at most PEAK_LIMIT bytes allocated. Records the outcome.

    ``valid_edit``: the input's header differs from the original's by a value of the right
    type and range (a column named '' rather than 'y'), which no reader can tell from the
    truth; then header fields may differ from the original's, the arrays still may not."""
    tracemalloc.start()
    try:
        try:
            arrays, meta = _load(path, kind)
        except CheckpointError as e:
            message = str(e)
            assert message.startswith(f"{path}: "), message
            assert "\n" not in message and "MemoryError" not in message, message
            outcome = "refused"
        else:  # only bytes nobody interprets changed: the data must be the original's
            want_arrays, want_meta = ORIGINAL[kind]
            assert arrays.keys() == want_arrays.keys()
            for name, a in arrays.items():
                b = want_arrays[name]
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
            same = all(meta.get(key) == want_meta.get(key) for key in _KEYS_READ)
            assert same or valid_edit
            outcome = "harmless" if same else "accepted (a valid value)"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{cls}: {peak} bytes allocated"
    record(cls, outcome)
    return outcome


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("robust")


def write(path: Path, header: Any, arrays: dict[str, np.ndarray], text: bytes | None = None):
    """A checkpoint with this exact header (manifest included) and these arrays."""
    raw = json.dumps(header).encode("utf-8") if text is None else text
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(raw, np.uint8), **arrays)


def header_of(kind: str) -> dict[str, Any]:
    arrays, meta = ORIGINAL[kind]
    manifest = {k: [v.dtype.str, list(v.shape)] for k, v in arrays.items()}
    return {
        "format": checkpoint.FORMAT,
        "version": checkpoint.VERSION,
        **meta,
        "__arrays__": manifest,
    }


# ---- the original files load ------------------------------------------------------------


def test_checkpoints_written_by_the_previous_writer_load():
    for kind in ORIGINALS:
        assert check(ORIGINALS[kind], kind, "original") == "harmless"


# ---- byte damage ------------------------------------------------------------------------


@examples(300)
@given(kind=KINDS, data=st.data())
def test_random_byte_changes(work, kind, data):
    raw = bytearray(ORIGINALS[kind].read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    path = work / f"flip_{kind}.npz"
    path.write_bytes(bytes(raw))
    check(path, kind, "flip")


def boundaries(raw: bytes) -> list[int]:
    """Offsets where the zip's structures start and end."""
    points = {0, len(raw)}
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            start = info.header_offset
            name_len, extra_len = struct.unpack("<HH", raw[start + 26 : start + 30])
            data = start + 30 + name_len + extra_len
            points.update({start, start + 30, data, data + 10, data + info.compress_size})
            with zf.open(info) as m:  # where the .npy header ends and the array data starts
                np.lib.format.read_magic(m)
                np.lib.format.read_array_header_1_0(m)
                points.add(data + m.tell())
    eocd = raw.rindex(b"PK\x05\x06")
    cd_size, cd_start = struct.unpack("<II", raw[eocd + 12 : eocd + 20])
    at = cd_start
    while raw[at : at + 4] == b"PK\x01\x02":
        points.add(at)
        n, e, c = struct.unpack("<HHH", raw[at + 28 : at + 34])
        at += 46 + n + e + c
    points.update({cd_start, cd_start + cd_size, eocd, eocd + 22})
    return sorted(p for q in points for p in (q - 1, q, q + 1) if 0 <= p < len(raw))


@pytest.mark.parametrize("kind", sorted(ORIGINALS))
def test_truncation_at_every_boundary(work, kind):
    raw = ORIGINALS[kind].read_bytes()
    path = work / f"cut_{kind}.npz"
    for cut in boundaries(raw):
        path.write_bytes(raw[:cut])
        assert check(path, kind, "truncate") == "refused", cut


@examples(100)
@given(kind=KINDS, data=st.data())
def test_truncation_at_random_points_and_cut_out_ranges(work, kind, data):
    raw = ORIGINALS[kind].read_bytes()
    a = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(a, len(raw)))
    damaged = raw[:a] + (raw[b:] if data.draw(st.booleans()) else b"")
    path = work / f"cut_{kind}.npz"
    path.write_bytes(damaged)
    check(path, kind, "truncate")


# ---- hostile headers --------------------------------------------------------------------

HOSTILE = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            "",
            "x",
            [],
            {},
            [1, 2],
            {"a": 1},
            0,
            -1,
            1.5,
            -0.0,
            2**31,
            2**64,
            10**40,
            math.nan,
            math.inf,
            -math.inf,
            1e308,
            -1e308,
            "1" * 3000,
            [[[]]],
        ]
    ),  # fmt: skip
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


def leaf_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into the JSON tree (dict keys, list indexes), inner nodes included."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += leaf_paths(v, (*prefix, k))
    elif isinstance(value, list) and len(value) <= 64:
        for i, v in enumerate(value):
            out += leaf_paths(v, (*prefix, i))
    return out


def _parent(tree: Any, path: tuple) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


@examples(400)
@given(kind=KINDS, data=st.data())
def test_hostile_header_fields(work, kind, data):
    header = copy.deepcopy(header_of(kind))
    path_ = data.draw(st.sampled_from(leaf_paths(header)))
    parent = _parent(header, path_)
    op = data.draw(st.sampled_from(["replace", "replace", "delete", "extra"]))
    valid = False
    if op == "replace":
        old, parent[path_[-1]] = parent[path_[-1]], data.draw(HOSTILE)
        valid = _same_kind(old, parent[path_[-1]])
    elif op == "delete" and isinstance(parent, dict):
        del parent[path_[-1]]
    elif op == "delete":
        parent.pop(path_[-1])
    elif isinstance(parent, dict):  # an unknown key beside known ones is ignored
        key = data.draw(st.text(min_size=1, max_size=8))
        valid = key not in parent
        parent[key] = data.draw(HOSTILE)
    else:
        parent.append(data.draw(HOSTILE))
    arrays = ORIGINAL[kind][0]
    file = work / f"header_{kind}.npz"
    write(file, header, arrays)
    outcome = check(file, kind, "header", valid_edit=valid)
    if outcome != "refused" and not valid:  # fields nobody interprets may change unnoticed
        assert path_[0] not in _KEYS_READ + ("__arrays__", "format", "version"), path_


def _same_kind(old: Any, new: Any) -> bool:
    """``new`` is a value a writer could have put there: the same JSON type (a string or
    null for an optional string), a finite number for a number."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, str) or old is None:
        return isinstance(new, str) or new is None
    if isinstance(old, int):
        return isinstance(new, int)
    if isinstance(old, float):
        return isinstance(new, (int, float)) and math.isfinite(new)
    return False


def test_each_required_field_missing_is_named(work):
    for kind in ORIGINALS:
        header = header_of(kind)
        for key in ("model", "step", "optimizer", "rng", "__arrays__"):
            edited = {k: v for k, v in header.items() if k != key}
            file = work / f"missing_{kind}.npz"
            write(file, edited, ORIGINAL[kind][0])
            if key in ("step", "optimizer", "rng"):  # all or none of the trainer's fields
                with pytest.raises(CheckpointError, match="missing"):
                    _load(file, kind)
            else:
                with pytest.raises(CheckpointError, match=f"{key}: missing"):
                    _load(file, kind)
            record("header", "refused")


@pytest.mark.parametrize(
    "kind, edit, words",
    [
        ("charlm", ("step",), "step: expected an integer"),
        ("charlm", ("optimizer", "lr"), "optimizer.lr: expected a finite number"),
        ("forecaster", ("scaler", "scale"), "scaler.scale"),
        ("forecaster", ("scaler", "mean"), "scaler.mean: expected a finite number"),
        ("charlm", ("best_val_bpc",), "best_val_bpc: expected a finite number, got nan"),
    ],
)
def test_the_cases_of_the_issue(work, kind, edit, words):
    """step NaN, scale -1 and friends: refused, naming the field."""
    for bad in (math.nan, -1.0) if edit[-1] == "scale" else (math.nan,):
        header = copy.deepcopy(header_of(kind))
        _parent(header, edit)[edit[-1]] = bad
        file = work / f"issue_{kind}.npz"
        write(file, header, ORIGINAL[kind][0])
        with pytest.raises(CheckpointError) as info:
            _load(file, kind)
        assert words in str(info.value) and str(file) in str(info.value)
        record("header", "refused")


@pytest.mark.parametrize("kind", sorted(ORIGINALS))
def test_generator_states_must_name_the_models_dropout_layers(work, kind):
    """A header whose ``rng`` lacks a dropout layer's state, or names one the model has not,
    is refused on load (not only later, on resume), naming the field."""
    states = header_of(kind)["rng"]
    assert states, "the original has dropout states"
    name = sorted(states)[0]
    for edit in ("drop", "extra"):
        header = copy.deepcopy(header_of(kind))
        if edit == "drop":
            del header["rng"][name]
        else:
            header["rng"]["not_a_layer"] = copy.deepcopy(states[name])
        file = work / f"rng_{kind}.npz"
        write(file, header, ORIGINAL[kind][0])
        with pytest.raises(CheckpointError) as info:
            _load(file, kind)
        assert "rng: expected generator states for" in str(info.value), info.value
        assert str(file) in str(info.value)
        record("header", "refused")


TEXT_EDITS = [
    lambda t: t[: len(t) // 2],
    lambda t: b"\xff\xfe" + t,
    lambda t: b"[" * 100_000 + b"]" * 100_000,
    lambda t: b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    lambda t: t.replace(b'"step": 3', b'"step": NaN'),
    lambda t: t.replace(b'"step": 3', b'"step": 3, "step": -5'),
    lambda t: t.replace(b'"step": 3', b'"step": ' + b"9" * 10_000),
    lambda t: t.replace(b'"step": 3', b'"step": 1e999'),
    lambda t: t.replace(b'"step": 3', b'"step": 3.0'),
    lambda t: t.replace(b'"version": 1', b'"version": 1.0'),
    lambda t: t.replace(b'"version": 1', b'"version": true'),
    lambda t: b"null",
    lambda t: b'"a string"',
    lambda t: b"",
    lambda t: t + b"garbage",
]


@pytest.mark.parametrize("edit", range(len(TEXT_EDITS)))
@pytest.mark.parametrize("kind", sorted(ORIGINALS))
def test_hostile_header_text(work, kind, edit):
    text = json.dumps(header_of(kind)).encode()
    file = work / f"text_{kind}.npz"
    write(file, None, ORIGINAL[kind][0], text=TEXT_EDITS[edit](text))
    assert check(file, kind, "header_text") == "refused"


# ---- dtypes and shapes that disagree with the model -------------------------------------

OTHER_DTYPES = ["int8", "uint8", "int16", "int32", "int64", "float16", "float64", "bool"]


@examples(150)
@given(kind=KINDS, data=st.data())
def test_arrays_in_another_dtype_are_refused(work, kind, data):
    arrays = dict(ORIGINAL[kind][0])
    name = data.draw(st.sampled_from(sorted(arrays)))
    dtype = data.draw(st.sampled_from(OTHER_DTYPES))
    arrays[name] = arrays[name].astype(dtype)
    header = header_of(kind)
    header["__arrays__"][name] = [arrays[name].dtype.str, list(arrays[name].shape)]
    file = work / f"dtype_{kind}.npz"
    write(file, header, arrays)
    assert check(file, kind, "dtype") == "refused"
    with pytest.raises(CheckpointError, match="dtype"):
        _load(file, kind)


def test_float32_overflow_is_refused_after_the_cast(work):
    """1e39 fits float64 but is inf in float32: refused, not loaded as inf."""
    kind = "charlm"
    header = copy.deepcopy(header_of(kind))
    arrays = dict(ORIGINAL[kind][0])
    for dtype in ("float32", "float64"):
        header["model"]["dtype"] = dtype
        for name in list(arrays):
            arrays[name] = arrays[name].astype(dtype)
            header["__arrays__"][name] = [np.dtype(dtype).str, list(arrays[name].shape)]
        arrays["model/head.bias"] = arrays["model/head.bias"].copy()
        if dtype == "float64":
            arrays["model/head.bias"][0] = 1e39  # a float64 model holds it fine
            write(work / "big.npz", header, arrays)
            assert load_charlm(work / "big.npz")[0].parameters()["head.bias"][0] == 1e39
    # and the model itself refuses 1e39 into float32 after the cast
    model = load_charlm(ORIGINALS[kind])[0]
    sd = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    sd["head.bias"][0] = 1e39
    with pytest.raises(ValueError, match="bias: expected finite values, got inf"):
        model.load_state_dict(sd)
    record("dtype", "refused")


CONFIG_FIELDS = {
    "charlm": ["vocab_size", "embed", "hidden", "layers"],
    "forecaster": ["hidden", "layers"],
}


@examples(150)
@given(kind=KINDS, data=st.data())
def test_model_configs_that_disagree_with_the_arrays(work, kind, data):
    """hidden: 20000 and friends: refused by arithmetic, before any allocation (the
    manifest's shapes rewritten to match the config or not, the arrays left small)."""
    header = copy.deepcopy(header_of(kind))
    key = data.draw(st.sampled_from(CONFIG_FIELDS[kind]))
    old = header["model"][key]
    new = data.draw(st.sampled_from([20000, 2**31, 10**12, old + 1, old - 1, old * 2]))
    header["model"][key] = new
    if data.draw(st.booleans()):  # the manifest agrees with the lie
        for name, (dt, shape) in header["__arrays__"].items():
            header["__arrays__"][name] = [dt, [new if n == old else n for n in shape]]
    file = work / f"config_{kind}.npz"
    write(file, header, ORIGINAL[kind][0])
    assert check(file, kind, "config") == "refused"


def test_vocabulary_that_does_not_match_the_embedding(work):
    header = copy.deepcopy(header_of("charlm"))
    header["vocab"] = header["vocab"][:-1]  # one character fewer than the embedding's rows
    write(work / "vocab.npz", header, ORIGINAL["charlm"][0])
    with pytest.raises(CheckpointError, match="vocab: .* but model.vocab_size is"):
        load_charlm(work / "vocab.npz")
    record("config", "refused")


# ---- the zip's structure ----------------------------------------------------------------


def central_entries(raw: bytes) -> list[int]:
    eocd = raw.rindex(b"PK\x05\x06")
    (at,) = struct.unpack("<I", raw[eocd + 16 : eocd + 20])
    out = []
    while raw[at : at + 4] == b"PK\x01\x02":
        out.append(at)
        n, e, c = struct.unpack("<HHH", raw[at + 28 : at + 34])
        at += 46 + n + e + c
    return out


@examples(200)
@given(kind=KINDS, data=st.data())
def test_a_lying_central_directory(work, kind, data):
    raw = bytearray(ORIGINALS[kind].read_bytes())
    at = data.draw(st.sampled_from(central_entries(bytes(raw))))
    what = data.draw(st.sampled_from(["size", "csize", "both", "method", "flags"]))
    value = data.draw(st.sampled_from([0, 1, 2**16, 2**31, 2**32 - 1])) | data.draw(
        st.integers(0, 255)
    )
    if what in ("size", "both"):
        raw[at + 24 : at + 28] = struct.pack("<I", value % 2**32)
    if what in ("csize", "both"):
        raw[at + 20 : at + 24] = struct.pack("<I", value % 2**32)
    if what == "method":
        raw[at + 10 : at + 12] = struct.pack(
            "<H", data.draw(st.sampled_from([1, 8, 9, 12, 14, 99]))
        )
    if what == "flags":
        raw[at + 8 : at + 10] = struct.pack("<H", data.draw(st.sampled_from([1, 8, 0x41, 0x800])))
    file = work / f"cd_{kind}.npz"
    file.write_bytes(bytes(raw))
    check(file, kind, "directory")


def _rezip(src: Path, dst: Path, extra: list[tuple[str, bytes, int]], drop: str | None = None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != drop:
                zout.writestr(info, zin.read(info))
        for name, payload, method in extra:
            zout.writestr(zipfile.ZipInfo(name), payload, compress_type=method)


def _npy(a: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("kind", sorted(ORIGINALS))
def test_extra_duplicate_foreign_and_deflated_members(work, kind):
    src, file = ORIGINALS[kind], work / f"members_{kind}.npz"
    arrays = ORIGINAL[kind][0]
    first = next(iter(arrays))
    stored, deflated = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
    cases = [
        [("extra.npy", _npy(np.ones(3)), stored)],
        [(f"{first}.npy", _npy(arrays[first]), stored)],  # a duplicate
        [(f"{first}.npy", _npy(arrays[first] + 1), stored)],  # a duplicate that differs
        [("readme.txt", b"hello", stored)],
        [("data.pkl", b"\x80\x04.", stored)],
        [("folder/", b"", stored)],
        [("big.npy", _npy(np.zeros(2**22, np.uint8)), deflated)],  # 4 MiB of zeros: ratio 1000
    ]
    for extra in cases:
        _rezip(src, file, extra)
        assert check(file, kind, "members") == "refused", extra[0][0]
    _rezip(src, file, [], drop=f"{first}.npy")  # a member missing
    assert check(file, kind, "members") == "refused"
    # the same arrays deflated (np.savez_compressed) load: compression alone is no fault
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(file, "w", deflated) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    assert check(file, kind, "members") == "harmless"


def _bomb(path: Path, header: dict[str, Any], name: str, dtype: str, shape: tuple[int, ...]):
    """A member of zeros streamed through deflate: small on disk, huge inflated."""
    header["__arrays__"][name] = [np.dtype(dtype).str, list(shape)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__meta__.npy", _npy(np.frombuffer(json.dumps(header).encode(), np.uint8)))
        f = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        )
        with zf.open(f"{name}.npy", "w", force_zip64=True) as m:
            m.write(f.getvalue())
            chunk = bytes(2**20)
            left = np.dtype(dtype).itemsize * math.prod(shape)
            while left > 0:
                m.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)


def test_a_zip_bomb_consistent_with_its_header_is_refused_unread(work):
    """64 MiB of zeros in ~64 KiB, header and manifest agreeing: refused by the ratio."""
    header = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "__arrays__": {}}
    file = work / "bomb.npz"
    _bomb(file, header, "w", "float32", (4096, 4096))
    assert file.stat().st_size < 2**20
    _refused_unread(file)


@pytest.mark.slow
def test_a_gigabyte_zip_bomb_is_refused_unread(work):
    header = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "__arrays__": {}}
    file = work / "bomb_gb.npz"
    _bomb(file, header, "w", "float32", (2**14, 2**14))  # 1 GiB
    _refused_unread(file)


def _refused_unread(file):
    """checkpoint.load refuses the zip bomb ``file`` without inflating it (peak memory)."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="zip bomb"):
            checkpoint.load(file)
        assert tracemalloc.get_traced_memory()[1] < PEAK_LIMIT
    finally:
        tracemalloc.stop()
    record("members", "refused")


def test_size_limit(work):
    shutil.copy(ORIGINALS["charlm"], work / "limit.npz")
    with pytest.raises(CheckpointError, match="more than the limit"):
        checkpoint.load(work / "limit.npz", max_bytes=1000)
    record("members", "refused")


# ---- random bytes -----------------------------------------------------------------------


@examples(200)
@given(
    kind=KINDS,
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY"]),
    body=st.binary(max_size=4096),
)
def test_random_bytes(work, kind, prefix, body):
    file = work / f"random_{kind}.npz"
    file.write_bytes(prefix + body)
    assert check(file, kind, "random") == "refused"


# ---- through the command line -----------------------------------------------------------


def test_the_command_line_reports_each_class_in_one_line(work, capsys):
    """One input of each class through `lstmkit text sample` and `text eval`: exit 1, one
    line on stderr naming the file, no traceback."""
    from lstmkit.cli.app import main

    raw = ORIGINALS["charlm"].read_bytes()
    header = copy.deepcopy(header_of("charlm"))
    header["step"] = math.nan
    inputs = {"truncate": raw[: len(raw) // 2], "random": bytes(range(256)) * 4}
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    inputs["flip"] = bytes(flipped)
    for name, data in inputs.items():
        (work / f"cli_{name}.npz").write_bytes(data)
    write(work / "cli_header.npz", header, ORIGINAL["charlm"][0])
    arrays = dict(ORIGINAL["charlm"][0])
    arrays["model/head.bias"] = arrays["model/head.bias"].astype(np.float64)
    header = header_of("charlm")
    header["__arrays__"]["model/head.bias"][0] = "<f8"
    write(work / "cli_dtype.npz", header, arrays)
    for file in sorted(work.glob("cli_*.npz")):
        for command in (["text", "sample", "--length", "5"], ["text", "eval", "--text", __file__]):
            assert main([*command, "--run", str(file)]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and str(file) in err and "Traceback" not in err, err
            record("command line", "refused")
