"""Text corpora and the character vocabulary (lstmkit.text.corpus).

The split must depend only on the files (not on where the corpus lives), a single file is
split by text, folders are read recursively, the default corpus (this interpreter's stdlib)
is found, and the vocabulary maps every character (known or not) without crashing.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from lstmkit.text.corpus import (
    Vocab,
    collect_files,
    default_corpus_files,
    load_corpus,
    split_files,
)


def _write_tree(root: Path, n: int) -> list[Path]:
    """n small files spread over nested folders; each file's text names the file."""
    files = []
    for k in range(n):
        path = root / f"pkg{k % 3}" / ("sub" if k % 2 else "") / f"m{k:03d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# file {k}\nx = {k}\n", encoding="utf-8")
        files.append(path)
    return files


def _names(paths: list[Path], root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in paths)


# ---- split ------------------------------------------------------------------------------


def test_split_is_by_file_deterministic_and_independent_of_location(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "elsewhere" / "b"
    _write_tree(a, 200)
    shutil.copytree(a, b)
    train_a, val_a = split_files(collect_files([a]))
    again_train, again_val = split_files(collect_files([a]))
    train_b, val_b = split_files(collect_files([b]))
    # the same answer every time ...
    assert (again_train, again_val) == (train_a, val_a)
    # ... and for a copy elsewhere, or the same folder spelled as a relative path
    assert _names(val_b, b) == _names(val_a, a)
    monkeypatch.chdir(tmp_path)
    train_rel, val_rel = split_files(collect_files(["a"]))
    assert _names(val_rel, Path("a")) == _names(val_a, a)
    # a partition of the files, about val_fraction of them in validation (crc32 % 20)
    assert sorted(train_a + val_a) == sorted(collect_files([a]))
    assert not set(train_a) & set(val_a)
    expected = [
        n for n in _names(train_a + val_a, a) if zlib.crc32(n.encode()) % 20 == 0
    ]  # an independent statement of the rule: hash of the path relative to the root
    assert _names(val_a, a) == expected
    assert 2 <= len(val_a) <= 25


def test_split_whole_files_and_corpus_text(tmp_path):
    files = _write_tree(tmp_path, 40)
    corpus = load_corpus([tmp_path])
    train, val = split_files(collect_files([tmp_path]))
    assert corpus.train_files == len(train) and corpus.val_files == len(val) >= 1
    assert corpus.train_files + corpus.val_files == len(files)
    # each file's text lands whole on exactly one side
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert (text in corpus.train) != (text in corpus.val), path
    for path in val:
        assert path.read_text(encoding="utf-8") in corpus.val


def test_small_corpora_get_one_validation_file(tmp_path):
    # two files whose hashes both miss the validation bucket: the last one is validation
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name * 10, encoding="utf-8")
    train, val = split_files(collect_files([tmp_path]), val_fraction=0.001)
    assert len(train) == 1 and len(val) == 1
    # every file hashed into validation (fraction 1): still one training file left
    train, val = split_files(collect_files([tmp_path]), val_fraction=1.0)
    assert len(train) == 1 and len(val) == 1


def test_single_file_is_split_by_text(tmp_path):
    path = tmp_path / "one.txt"
    text = "".join(f"line {k}\n" for k in range(1000))
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus([path], val_fraction=0.1)
    assert corpus.train + corpus.val == text
    assert len(corpus.val) == len(text) - int(len(text) * 0.9)
    assert (corpus.train_files, corpus.val_files) == (1, 0)


def test_folders_are_read_recursively_without_hidden_files(tmp_path):
    files = _write_tree(tmp_path / "data", 7)
    (tmp_path / "data" / ".hidden.py").write_text("secret", encoding="utf-8")
    (tmp_path / "data" / ".git" / "objects").mkdir(parents=True)
    (tmp_path / "data" / ".git" / "objects" / "ab").write_bytes(b"\x00\x01binary")
    single = tmp_path / "single.txt"
    single.write_text("hello", encoding="utf-8")
    got = collect_files([tmp_path / "data", single])
    assert got == sorted(files) + [single]
    assert any(len(p.relative_to(tmp_path / "data").parts) == 3 for p in got[:-1])  # nested


def test_missing_paths_and_empty_folders_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        collect_files([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no files found"):
        collect_files([tmp_path / "empty"])


def test_undecodable_bytes_do_not_crash(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe bytes\n" * 50)
    corpus = load_corpus([tmp_path / "bad.txt"])
    assert "\ufffd" in corpus.train and "ok " in corpus.train


@pytest.mark.slow
def test_default_corpus_is_the_stdlib_and_not_trivial():
    files = default_corpus_files()
    names = {p.name for p in files}
    assert len(files) > 200
    assert {"os.py", "json", "__init__.py"} - names == {"json"}  # json is a package folder
    assert any(p.parent.name == "json" and p.name == "decoder.py" for p in files)
    assert not any("site-packages" in p.parts or "__pycache__" in p.parts for p in files)
    assert files == sorted(files)
    corpus = load_corpus(None)  # ~1 s: the only full load in the suite
    assert len(corpus.train) > 2_000_000 and len(corpus.val) > 50_000
    assert corpus.train_files > 10 * corpus.val_files > 0
    assert "def " in corpus.train and "import " in corpus.val
    assert 90 <= len(set(corpus.val)) <= 5000  # printable ASCII and some more


# ---- vocabulary ---------------------------------------------------------------------------


def test_vocab_round_trip_and_ids():
    text = "def f(x):\n    return x * 2  # é, 𝔘, 中\n"
    vocab = Vocab.build(text)
    assert len(vocab) == len(set(text)) + 1  # + <unk>
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    assert ids.min() >= 1 and ids.max() == len(vocab) - 1
    assert vocab.decode(ids) == text
    # an independent mapping: id = 1 + position in the sorted characters
    table = {c: k + 1 for k, c in enumerate(sorted(set(text)))}
    assert ids.tolist() == [table[c] for c in text]


def test_unknown_characters_map_to_unk_and_never_crash():
    vocab = Vocab.build("abc")
    ids = vocab.encode("axb\U0001f600c\x00\udcff")  # unseen, astral, NUL, lone surrogate
    assert ids.tolist() == [1, 0, 2, 0, 3, 0, 0]
    assert vocab.decode(ids) == "a\ufffdb\ufffdc\ufffd\ufffd"
    # characters above and below every known code point
    assert vocab.encode("\x01\uffff").tolist() == [0, 0]
    assert vocab.encode("").shape == (0,)
    assert Vocab([]).encode("xyz").tolist() == [0, 0, 0]  # an empty vocabulary too
    assert Vocab.build("a", min_count=2).encode("a").tolist() == [0]


def test_vocab_json_round_trip():
    vocab = Vocab.build('quote " backslash \\ newline \n tab \t é 中 \U0001f600')
    data = vocab.to_json()
    assert isinstance(json.loads(data), list)
    again = Vocab.from_json(data)
    assert again == vocab and hash(again) == hash(vocab)
    text = "é\n中 \\ unknown!"
    assert again.encode(text).tolist() == vocab.encode(text).tolist()
    assert Vocab.build("ab") != vocab


def test_vocab_rejects_bad_character_lists():
    with pytest.raises(ValueError, match="distinct single characters"):
        Vocab(["a", "a"])
    with pytest.raises(ValueError, match="distinct single characters"):
        Vocab(["ab"])
