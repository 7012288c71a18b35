"""The msgpack store: round trip, atomic writes, damage of every kind, unwritable caches."""

from __future__ import annotations

import logging
from pathlib import Path

import msgpack
import pytest

from lsp_llm.context.parse import parse_file
from lsp_llm.context.store import (
    SCHEMA_VERSION,
    FileEntry,
    IndexStore,
    content_digest,
)


def entry(rel: str, text: str) -> FileEntry:
    result = parse_file(rel, text)
    data = text.encode()
    return FileEntry(
        rel=rel,
        mtime_ns=123,
        size=len(data),
        digest=content_digest(data),
        language=result.language,
        text=text,
        symbols=result.symbols,
        imports=result.imports,
        chunks=result.chunks,
    )


ENTRIES = {
    "a.py": entry("a.py", "import os\n\ndef f(x):\n    '''Doc.'''\n    return x\n"),
    "b/c.go": entry("b/c.go", "package c\n\nfunc G() {}\n"),
    "d.bin": FileEntry(
        rel="d.bin", mtime_ns=1, size=3, digest=b"\0" * 16, language="", text="", binary=True
    ),
}


def test_round_trip(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "root", tmp_path / "cache")
    assert store.load() == {}
    assert store.status == "missing"
    assert store.save(ENTRIES)
    assert store.path.parent == tmp_path / "cache" / "index"
    assert store.path.suffix == ".msgpack"
    again = IndexStore(tmp_path / "root", tmp_path / "cache")
    assert again.load() == ENTRIES
    assert again.status == "loaded"
    assert [p.name for p in store.path.parent.iterdir()] == [store.path.name]  # no temp files


def test_one_file_per_root(tmp_path: Path) -> None:
    a = IndexStore(tmp_path / "one", tmp_path / "cache")
    b = IndexStore(tmp_path / "two", tmp_path / "cache")
    assert a.path != b.path
    assert a.path == IndexStore(tmp_path / "one" / ".." / "one", tmp_path / "cache").path


def damage_truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def damage_flip(data: bytes) -> bytes:
    middle = len(data) - 40
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def damage_garbage(data: bytes) -> bytes:
    return b"this is not msgpack at all \x00\xff\xfe"


def damage_empty(data: bytes) -> bytes:
    return b""


def damage_other_shape(data: bytes) -> bytes:
    return msgpack.packb({"files": [1, 2, 3]})


@pytest.mark.parametrize(
    "damage",
    [damage_truncate, damage_flip, damage_garbage, damage_empty, damage_other_shape],
)
def test_damaged_files_load_empty_with_a_warning(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    store = IndexStore(tmp_path / "root", tmp_path / "cache")
    store.save(ENTRIES)
    assert callable(damage)
    store.path.write_bytes(damage(store.path.read_bytes()))
    with caplog.at_level(logging.WARNING):
        assert IndexStore(tmp_path / "root", tmp_path / "cache").load() == {}
    assert "rebuilding" in caplog.text


def test_old_schema_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = IndexStore(tmp_path / "root", tmp_path / "cache")
    store.path.parent.mkdir(parents=True)
    header = {"magic": "lsp-llm-index", "schema": SCHEMA_VERSION - 1, "root": str(store.root)}
    store.path.write_bytes(msgpack.packb([header, b"whatever"]))
    with caplog.at_level(logging.WARNING):
        assert store.load() == {}
    assert store.status == "old-format"
    assert "old format" in caplog.text


def test_index_of_another_root_is_not_used(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "root", tmp_path / "cache")
    store.save(ENTRIES)
    other = IndexStore(tmp_path / "other", tmp_path / "cache")
    other.path.parent.mkdir(parents=True, exist_ok=True)
    other.path.write_bytes(store.path.read_bytes())
    assert other.load() == {}
    assert other.status == "corrupt"


def test_unwritable_cache_falls_back_to_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a directory")
    store = IndexStore(tmp_path / "root", blocker)
    assert store.load() == {}
    with caplog.at_level(logging.WARNING):
        assert not store.save(ENTRIES)
    assert not store.persistent
    assert store.status == "memory"
    assert "memory" in caplog.text
    assert not store.save(ENTRIES)  # one warning, then quiet
    assert caplog.text.count("not writable") == 1


def test_meta_then_entries_and_a_newer_save_in_between(tmp_path: Path) -> None:
    """Schema 2: the meta section alone answers a restart; the heavy section is read later,
    and only from the same save (another process saving in between is noticed)."""
    store = IndexStore(tmp_path / "root", tmp_path / "cache")
    store.save(ENTRIES)
    reader = IndexStore(tmp_path / "root", tmp_path / "cache")
    meta = reader.load_meta()
    assert reader.status == "loaded"
    assert meta["a.py"] == ENTRIES["a.py"].meta()
    assert meta["a.py"].n_symbols == len(ENTRIES["a.py"].symbols) > 0
    assert reader.load_entries({"a.py": meta["a.py"]}) == {"a.py": ENTRIES["a.py"]}
    store.save(ENTRIES)  # a new generation
    assert reader.load_entries(meta) == {}
