"""Checkpoint files (lstmkit.train.checkpoint): round trip, atomic writes, and refusing bad files.

Every unusable file must be refused with a :class:`CheckpointError` whose message says what
is wrong, and loading must never unpickle anything.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lstmkit.train import checkpoint
from lstmkit.train.checkpoint import CheckpointError

META = {
    "kind": "test",
    "config": {"hidden": 32, "layers": 2, "dropout": 0.25, "names": ["a", "é", "中"]},
    "vocab": ["\n", " ", '"', "\\", "a", "\U0001f600"],
    "step": 1234,
    "best": float("inf"),
    "big": 2**127 + 12345,  # PCG64 states hold 128-bit integers: they must stay exact
}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "model/lstm.weight_ih_l0": rng.standard_normal((8, 3)).astype(np.float32),
        "model/head.bias": rng.standard_normal(5),  # float64
        "optim/exp_avg/x": np.asfortranarray(rng.standard_normal((3, 4))),  # not C-contiguous
        "carry/h": rng.standard_normal((2, 4, 3)).astype(np.float32)[:, ::2],  # a strided view
        "ids": np.arange(7, dtype=np.int32),
        "mask": np.array([True, False, True]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 4), np.float32),
    }


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k])
        for k in a
    )


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "latest.npz"
    checkpoint.save(path, _arrays(), META)
    return path


def test_round_trip_arrays_and_meta(saved):
    arrays, meta = checkpoint.load(saved)
    assert _same(arrays, _arrays())
    assert meta == {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, **META}
    assert meta["big"] == 2**127 + 12345 and meta["best"] == float("inf")
    # the file is a plain .npz: any numpy reads it without pickle
    with np.load(saved, allow_pickle=False) as npz:
        header = json.loads(npz["__meta__"].tobytes().decode("utf-8"))
    assert header["format"] == "lstmkit-checkpoint" and header["version"] == 1


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    rng = np.random.default_rng(42)
    rng.random(10)
    path = tmp_path / "rng.npz"
    checkpoint.save(path, {}, {"rng": checkpoint.rng_state(rng)})
    expected = rng.random(5)
    other = np.random.default_rng(0)
    checkpoint.set_rng_state(other, checkpoint.load(path)[1]["rng"])
    assert np.array_equal(other.random(5), expected)


def test_save_refuses_reserved_names_and_object_arrays(tmp_path):
    path = tmp_path / "x.npz"
    with pytest.raises(ValueError, match="reserved"):
        checkpoint.save(path, {"__meta__": np.zeros(1)}, {})
    with pytest.raises(ValueError, match="object arrays"):
        checkpoint.save(path, {"o": np.array([{"a": 1}], dtype=object)}, {})
    with pytest.raises(TypeError):  # meta must be JSON
        checkpoint.save(path, {}, {"x": object()})
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left


# ---- atomic writes ----------------------------------------------------------------------


def _fail_savez_midway(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    real = np.savez

    def broken(file, *args, **kwargs):
        real(file, *args, **kwargs)  # bytes really reach the temp file ...
        file.seek(file.tell() // 2)
        file.truncate()  # ... then the "crash" leaves half of them
        raise exc

    monkeypatch.setattr(np, "savez", broken)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(saved, monkeypatch, exc):
    before = saved.read_bytes()
    _fail_savez_midway(monkeypatch, exc)
    new = {"model/lstm.weight_ih_l0": np.zeros((8, 3), np.float32)}
    with pytest.raises(type(exc)):
        checkpoint.save(saved, new, {"step": 9999})
    assert saved.read_bytes() == before
    assert _same(checkpoint.load(saved)[0], _arrays())
    assert sorted(p.name for p in saved.parent.iterdir()) == ["latest.npz"]


def test_a_failed_rename_keeps_the_previous_file_and_leaves_no_temp_file(saved, monkeypatch):
    before = saved.read_bytes()
    renamed = []

    def no_replace(src, dst):
        renamed.append((Path(src), Path(dst)))
        assert Path(src).parent == Path(dst).parent  # the temp file is in the same folder
        raise OSError("crash before the rename")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="crash before the rename"):
        checkpoint.save(saved, {"a": np.ones(3)}, {})
    assert renamed and renamed[0][1] == saved
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["latest.npz"]


def test_the_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1]
    )
    checkpoint.save(tmp_path / "c.npz", {"a": np.ones(3)}, {})
    assert events[:2] == ["fsync", "replace"]
    assert checkpoint.load(tmp_path / "c.npz")[0]["a"].tolist() == [1, 1, 1]


# ---- refusing unusable files ------------------------------------------------------------


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.npz", "no such checkpoint file")
    _refused(tmp_path, "no such checkpoint file")  # a folder is not a checkpoint file


def test_truncated_file_is_refused_at_every_length(saved):
    data = saved.read_bytes()
    bad = saved.parent / "truncated.npz"
    for n in (0, 1, 10, len(data) // 3, len(data) // 2, len(data) - 22, len(data) - 1):
        bad.write_bytes(data[:n])
        _refused(bad, "truncated")
    # a cut inside the data, with the zip directory kept, is caught by the members' CRCs
    start = data.index(np.arange(7, dtype=np.int32).tobytes())
    bad.write_bytes(data[:start] + data[start + 4 :] + b"\0" * 4)
    _refused(bad)


def test_flipped_byte_in_the_data_fails_the_crc(saved):
    data = bytearray(saved.read_bytes())
    weights = _arrays()["model/lstm.weight_ih_l0"]
    at = bytes(data).index(weights.tobytes())
    data[at + 5] ^= 0x10
    bad = saved.parent / "flipped.npz"
    bad.write_bytes(bytes(data))
    _refused(bad, "corrupted", "CRC")
    # and in the JSON header
    data = bytearray(saved.read_bytes())
    at = bytes(data).index(b'"vocab"')
    data[at + 2] ^= 0x01
    bad.write_bytes(bytes(data))
    _refused(bad, "corrupted", "CRC")


def test_any_single_flipped_bit_is_refused_or_harmless(tmp_path):
    """Every byte of a small checkpoint: a CheckpointError, or the same data."""
    path = tmp_path / "small.npz"
    arrays = {"w": np.arange(6, dtype=np.float32), "i": np.array([1, 2], np.int64)}
    checkpoint.save(path, arrays, {"x": 1})
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    outcomes = {"refused": 0, "harmless": 0}
    for pos in range(len(data)):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (pos % 8)  # every bit position, over the bytes
        bad.write_bytes(bytes(flipped))
        try:
            got, meta = checkpoint.load(bad)
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        # zip fields nobody reads (timestamps, attributes) may change unnoticed, the
        # content may not: e.g. a damaged directory that hides a member
        assert _same(got, arrays) and meta["x"] == 1, pos
        outcomes["harmless"] += 1
    assert outcomes["refused"] > len(data) // 2  # most flips hit CRC-protected bytes


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    bad = tmp_path / "random.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    _refused(bad, "not an lstmkit checkpoint", "not a zip")
    bad.write_text("just some text\n")
    _refused(bad, "not an lstmkit checkpoint")


def test_torch_files_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"weight": torch.zeros(3, 2)}
    new = tmp_path / "model.pt"
    torch.save(state, new)  # a zip archive holding a pickle
    _refused(new, "foreign", "torch")
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)  # a bare pickle stream
    _refused(legacy, "not an lstmkit checkpoint", "torch")


def test_npz_without_the_header_is_foreign(tmp_path):
    bad = tmp_path / "plain.npz"
    np.savez(bad, weight=np.ones(3))
    _refused(bad, "without lstmkit's header", "foreign")
    other_zip = tmp_path / "other.npz"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    _refused(other_zip, "foreign")


def _write_npz_with_header(path: Path, header: object, **arrays: np.ndarray) -> None:
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    np.savez(path, __meta__=blob, **arrays)


class _Trap:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "UNPICKLED"
    bad = tmp_path / "pickled.npz"
    header = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION}
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(str(marker))
    _write_npz_with_header(bad, header, weight=np.ones(2), trap=trap)
    _refused(bad, "refused", "pickled")
    assert not marker.exists()
    # the pickled payload even as the header itself
    bad2 = tmp_path / "pickled_header.npz"
    np.savez(bad2, __meta__=trap)
    with pytest.raises(CheckpointError, match="pickled"):
        checkpoint.load(bad2)
    assert not marker.exists()


def test_load_passes_allow_pickle_false(saved, monkeypatch):
    calls = []
    real = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle", "default"))
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    checkpoint.load(saved)
    assert calls == [False]


def test_version_and_format_mismatch(tmp_path):
    bad = tmp_path / "future.npz"
    _write_npz_with_header(bad, {"format": checkpoint.FORMAT, "version": 99}, w=np.ones(2))
    message = _refused(bad, "version 99", f"version {checkpoint.VERSION}")
    assert "release" in message  # says how to get out of it
    _write_npz_with_header(bad, {"format": "something-else", "version": 1}, w=np.ones(2))
    _refused(bad, "format tag missing")
    _write_npz_with_header(bad, ["not", "a", "dict"], w=np.ones(2))
    _refused(bad, "not an lstmkit checkpoint")
    np.savez(bad, __meta__=np.frombuffer(b"{not json", dtype=np.uint8))
    _refused(bad, "corrupted header")
    np.savez(bad, __meta__=np.frombuffer(b"\xff\xfe\x00", dtype=np.uint8))
    _refused(bad, "corrupted header")


def test_arrays_must_match_the_header_manifest(saved, tmp_path):
    arrays, meta = checkpoint.load(saved)
    header = {**meta, "__arrays__": {k: [v.dtype.str, list(v.shape)] for k, v in arrays.items()}}
    bad = tmp_path / "edited.npz"
    fewer = dict(arrays)
    del fewer["ids"]
    _write_npz_with_header(bad, header, **fewer)
    _refused(bad, "do not match its header", "missing ['ids']")
    changed = {**arrays, "ids": arrays["ids"].astype(np.int64)}
    _write_npz_with_header(bad, header, **changed)
    _refused(bad, "changed ['ids']")


def test_a_write_of_a_few_megabytes_round_trips(tmp_path):
    """A realistic size (a 2x256 LSTM char-LM is ~3 MB), not just toy arrays."""
    big = {"w": np.random.default_rng(1).standard_normal((1024, 768)).astype(np.float32)}
    path = tmp_path / "big.npz"
    checkpoint.save(path, big, {"step": 1})
    assert _same(checkpoint.load(path)[0], big)
