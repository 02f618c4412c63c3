"""numba's cache is cleared when a kernel source changes (lstmkit.kernels.numba_cache)."""

from __future__ import annotations

from pathlib import Path

from lstmkit.kernels import numba_cache


def _kernels(tmp_path: Path) -> Path:
    (tmp_path / "cell.py").write_text("def f(x):\n    return x\n")
    (tmp_path / "loops.py").write_text("from cell import f\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    for name in ("loops.f-1.py311.nbi", "loops.f-1.py311.1.nbc", "cell.cpython-311.pyc"):
        (cache / name).write_bytes(b"cached")
    return tmp_path


def test_a_changed_source_clears_the_cache_once(tmp_path: Path) -> None:
    folder = _kernels(tmp_path)
    cache = folder / "__pycache__"
    assert numba_cache.check(folder)  # no stamp yet: cleared
    assert sorted(p.name for p in cache.iterdir()) == ["cell.cpython-311.pyc", numba_cache.STAMP]
    (cache / "loops.f-1.py311.nbi").write_bytes(b"compiled again")
    assert not numba_cache.check(folder)  # same sources: kept
    assert (cache / "loops.f-1.py311.nbi").exists()
    (folder / "cell.py").write_text("def f(x):\n    return 2 * x\n")  # only the inlined file
    assert numba_cache.check(folder)
    assert not (cache / "loops.f-1.py311.nbi").exists()
    assert not numba_cache.check(folder)


def test_no_cache_folder_and_a_read_only_one_are_harmless(tmp_path: Path) -> None:
    (tmp_path / "cell.py").write_text("x = 1\n")
    assert not numba_cache.check(tmp_path)  # nothing to clear; the folder is made for the stamp
    cache = tmp_path / "__pycache__"
    (cache / numba_cache.STAMP).unlink()
    (cache / "a.nbi").write_bytes(b"")
    cache.chmod(0o500)
    try:
        numba_cache.check(tmp_path)  # cannot delete or stamp: no error
    finally:
        cache.chmod(0o700)


def test_the_digest_covers_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("1")
    first = numba_cache.sources_digest(tmp_path)
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    assert numba_cache.sources_digest(tmp_path) != first
