"""The on-disk index of one workspace root: msgpack, versioned, atomic, tolerant of damage.

File: ``<cache dir>/index/<blake2b of the resolved root path>.msgpack``, holding the msgpack
array ``[header, payload]``. ``header`` is a map with ``magic``, ``schema``
(:data:`SCHEMA_VERSION`), ``root``, ``saved_at``, ``count`` and ``checksum`` (blake2b of
``payload``); ``payload`` is the msgpack bytes of the list of file entries, so a damaged or
truncated payload is caught by the checksum before it is decoded.

Loading never raises: a missing, corrupt, truncated or old-format file is logged and treated as
empty (the index is rebuilt and the next save replaces it). Saving writes a temporary file in the
same directory, fsyncs it and ``os.replace``-s it over the old one, so readers (another server,
``lsp-llm index --watch``) only ever see a complete file. If the cache directory cannot be
created or written, the store logs one warning and keeps the index in memory only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgpack

from lsp_llm import config
from lsp_llm.context.parse import Chunk, Symbol

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAGIC = "lsp-llm-index"

LoadStatus = Literal["not-loaded", "loaded", "missing", "corrupt", "old-format", "memory"]


@dataclasses.dataclass(frozen=True, slots=True)
class FileEntry:
    """What the index knows about one file, as persisted."""

    rel: str
    mtime_ns: int
    size: int
    digest: bytes
    """blake2b (16 bytes) of the file's bytes."""
    language: str
    text: str
    symbols: tuple[Symbol, ...] = ()
    imports: tuple[str, ...] = ()
    chunks: tuple[Chunk, ...] = ()
    binary: bool = False
    """Read once and found to be binary or not UTF-8: remembered so it is not read again."""


def content_digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def root_key(root: Path) -> str:
    """The file-name key of a workspace root."""
    return hashlib.blake2b(str(root.resolve()).encode("utf-8"), digest_size=12).hexdigest()


def default_cache_dir() -> Path:
    return config.cache_dir()


# -- (de)serialisation --------------------------------------------------------------------------


def _encode_entry(entry: FileEntry) -> list[Any]:
    flat_chunks: list[int] = []
    for chunk in entry.chunks:
        flat_chunks += (chunk.start_line, chunk.end_line)
    return [
        entry.rel,
        entry.mtime_ns,
        entry.size,
        entry.digest,
        entry.language,
        entry.text,
        [
            [s.name, s.kind, s.start_line, s.end_line, s.signature, s.doc, s.container]
            for s in entry.symbols
        ],
        list(entry.imports),
        flat_chunks,
        entry.binary,
    ]


def _check(condition: bool) -> None:
    if not condition:
        raise ValueError("malformed entry")


def _decode_entry(raw: Any) -> FileEntry:
    _check(isinstance(raw, list) and len(raw) == 10)
    rel, mtime_ns, size, digest, language, text, symbols, imports, chunks, binary = raw
    _check(isinstance(rel, str) and bool(rel))
    _check(isinstance(mtime_ns, int) and isinstance(size, int) and isinstance(digest, bytes))
    _check(isinstance(language, str) and isinstance(text, str) and isinstance(binary, bool))
    _check(isinstance(symbols, list) and isinstance(imports, list) and isinstance(chunks, list))
    decoded_symbols = []
    for s in symbols:
        _check(isinstance(s, list) and len(s) == 7)
        name, kind, start, end, signature, doc, container = s
        _check(all(isinstance(v, str) for v in (name, kind, signature, doc, container)))
        _check(isinstance(start, int) and isinstance(end, int))
        decoded_symbols.append(
            Symbol(
                name=name,
                kind=kind,
                path=rel,
                start_line=start,
                end_line=end,
                signature=signature,
                doc=doc,
                container=container,
            )
        )
    _check(all(isinstance(i, str) for i in imports))
    _check(len(chunks) % 2 == 0 and all(isinstance(c, int) for c in chunks))
    return FileEntry(
        rel=rel,
        mtime_ns=mtime_ns,
        size=size,
        digest=digest,
        language=language,
        text=text,
        symbols=tuple(decoded_symbols),
        imports=tuple(imports),
        chunks=tuple(Chunk(chunks[i], chunks[i + 1]) for i in range(0, len(chunks), 2)),
        binary=binary,
    )


# -- the store ----------------------------------------------------------------------------------


class IndexStore:
    """Load and save the entries of one root. Not thread-safe: one writer at a time."""

    def __init__(self, root: Path, cache_dir: Path | None = None) -> None:
        self.root = root.resolve()
        base = cache_dir if cache_dir is not None else default_cache_dir()
        self.path: Path = base / "index" / f"{root_key(self.root)}.msgpack"
        self.persistent = True
        self.status: LoadStatus = "not-loaded"
        self.last_saved: float = 0.0

    def _to_memory(self, reason: str) -> None:
        if self.persistent:
            log.warning(
                "index cache %s is not writable (%s); keeping the index of %s in memory only",
                self.path.parent,
                reason,
                self.root,
            )
        self.persistent = False
        self.status = "memory"

    def load(self) -> dict[str, FileEntry]:
        """The persisted entries, or ``{}`` (never raises)."""
        if not self.persistent:
            return {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.status = "missing"
            return {}
        except OSError as exc:
            log.warning("cannot read index %s (%s); rebuilding", self.path, exc)
            self.status = "corrupt"
            return {}
        try:
            return self._decode(data)
        except _OldFormat as exc:
            log.warning("index %s has an old format (%s); rebuilding", self.path, exc)
            self.status = "old-format"
        except Exception as exc:
            log.warning("index %s is corrupt (%s); rebuilding", self.path, exc)
            self.status = "corrupt"
        return {}

    def _decode(self, data: bytes) -> dict[str, FileEntry]:
        outer = msgpack.unpackb(data, raw=False)
        if not (isinstance(outer, list) and len(outer) == 2 and isinstance(outer[0], dict)):
            raise ValueError("not an lsp-llm index file")
        header, payload = outer
        if header.get("magic") != MAGIC:
            raise ValueError("bad magic")
        if header.get("schema") != SCHEMA_VERSION:
            raise _OldFormat(f"schema {header.get('schema')!r}, expected {SCHEMA_VERSION}")
        if not isinstance(payload, bytes):
            raise ValueError("payload is not bytes")
        if header.get("checksum") != hashlib.blake2b(payload, digest_size=16).hexdigest():
            raise ValueError("checksum mismatch")
        if header.get("root") != str(self.root):
            raise ValueError(f"index belongs to {header.get('root')!r}")
        raw_entries = msgpack.unpackb(payload, raw=False)
        if not isinstance(raw_entries, list):
            raise ValueError("entries are not a list")
        entries = {}
        for raw in raw_entries:
            entry = _decode_entry(raw)
            entries[entry.rel] = entry
        self.status = "loaded"
        return entries

    def save(self, entries: Mapping[str, FileEntry]) -> bool:
        """Write all entries atomically. False (and in-memory mode) when that is impossible."""
        if not self.persistent:
            return False
        payload = msgpack.packb(
            [_encode_entry(entries[rel]) for rel in sorted(entries)], use_bin_type=True
        )
        header = {
            "magic": MAGIC,
            "schema": SCHEMA_VERSION,
            "root": str(self.root),
            "saved_at": time.time(),
            "count": len(entries),
            "checksum": hashlib.blake2b(payload, digest_size=16).hexdigest(),
        }
        blob = msgpack.packb([header, payload], use_bin_type=True)
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                dir=directory, prefix=f".{self.path.stem}.", suffix=".tmp"
            )
        except OSError as exc:
            self._to_memory(str(exc))
            return False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            self._to_memory(str(exc))
            return False
        _fsync_dir(directory)
        self.last_saved = time.monotonic()
        return True


class _OldFormat(ValueError):
    pass


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable where the platform allows it (best effort)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
