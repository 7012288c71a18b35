"""The on-disk index of one workspace root: msgpack, versioned, atomic, tolerant of damage.

File: ``<cache dir>/index/<blake2b of the resolved root path>.msgpack``: a msgpack ``header``
map followed by two raw sections. ``header`` holds ``magic``, ``schema``
(:data:`SCHEMA_VERSION`), ``root``, ``saved_at``, ``count``, ``generation`` (random, new on
every save) and the length and blake2b checksum of each section:

* **meta** (``meta_len``, ``meta_checksum``): the msgpack list of small per-file records
  (path, mtime, size, content digest, language, binary flag, symbol and chunk counts). This is
  all a restart needs to check the tree against the disk: :meth:`IndexStore.load_meta` reads
  only the header and this section (a few hundred KiB for thousands of files).
* **heavy** (``heavy_len``, ``heavy_checksum``): the msgpack list, in the same order, of one
  msgpack ``bin`` per file holding its text, symbols, imports and chunks. Read only when
  retrieval needs the files (:meth:`IndexStore.load_entries`), and then decoded per file.

Damage is caught by the checksums before anything is decoded. Loading never raises: a
missing, corrupt, truncated or old-format file is logged and treated as empty (the index is
rebuilt and the next save replaces it); a heavy section that is damaged, or that belongs to a
newer save than the meta that was loaded (another process saved in between: ``generation``
differs), is logged and its files are read from the workspace again. Saving writes a temporary
file in the same directory, fsyncs it and ``os.replace``-s it over the old one, so readers
(another server, ``lsp-llm index --watch``) only ever see a complete file. If the cache
directory cannot be created or written, the store logs one warning and keeps the index in
memory only.
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

SCHEMA_VERSION = 2
"""1: one msgpack array ``[header, payload]`` read whole. 2: header + meta + heavy sections."""
MAGIC = "lsp-llm-index"
_HEADER_READ = 4096
"""Bytes read to find the header (it is about 300 bytes)."""

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

    def meta(self) -> FileMeta:
        return FileMeta(
            rel=self.rel,
            mtime_ns=self.mtime_ns,
            size=self.size,
            digest=self.digest,
            language=self.language,
            binary=self.binary,
            n_symbols=len(self.symbols),
            n_chunks=len(self.chunks),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class FileMeta:
    """The small part of a persisted :class:`FileEntry`: enough to tell whether the file
    changed and to count it, without its text, symbols or chunks."""

    rel: str
    mtime_ns: int
    size: int
    digest: bytes
    language: str
    binary: bool
    n_symbols: int
    n_chunks: int


def content_digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def root_key(root: Path) -> str:
    """The file-name key of a workspace root."""
    return hashlib.blake2b(str(root.resolve()).encode("utf-8"), digest_size=12).hexdigest()


def default_cache_dir() -> Path:
    return config.cache_dir()


def _checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# -- (de)serialisation --------------------------------------------------------------------------


def _encode_meta(entry: FileEntry) -> list[Any]:
    return [
        entry.rel,
        entry.mtime_ns,
        entry.size,
        entry.digest,
        entry.language,
        entry.binary,
        len(entry.symbols),
        len(entry.chunks),
    ]


def _encode_heavy(entry: FileEntry) -> bytes:
    flat_chunks: list[int] = []
    for chunk in entry.chunks:
        flat_chunks += (chunk.start_line, chunk.end_line)
    return msgpack.packb(
        [
            entry.text,
            [
                [s.name, s.kind, s.start_line, s.end_line, s.signature, s.doc, s.container]
                for s in entry.symbols
            ],
            list(entry.imports),
            flat_chunks,
        ],
        use_bin_type=True,
    )


def _check(condition: bool) -> None:
    if not condition:
        raise ValueError("malformed entry")


def _decode_meta(raw: Any) -> FileMeta:
    _check(isinstance(raw, list) and len(raw) == 8)
    rel, mtime_ns, size, digest, language, binary, n_symbols, n_chunks = raw
    _check(isinstance(rel, str) and bool(rel))
    _check(isinstance(mtime_ns, int) and isinstance(size, int) and isinstance(digest, bytes))
    _check(isinstance(language, str) and isinstance(binary, bool))
    _check(isinstance(n_symbols, int) and isinstance(n_chunks, int))
    return FileMeta(rel, mtime_ns, size, digest, language, binary, n_symbols, n_chunks)


def _decode_heavy(meta: FileMeta, blob: Any) -> FileEntry:
    _check(isinstance(blob, bytes))
    raw = msgpack.unpackb(blob, raw=False)
    _check(isinstance(raw, list) and len(raw) == 4)
    text, symbols, imports, chunks = raw
    _check(isinstance(text, str))
    _check(isinstance(symbols, list) and isinstance(imports, list) and isinstance(chunks, list))
    rel = meta.rel
    decoded_symbols = []
    for s in symbols:
        _check(isinstance(s, list) and len(s) == 7)
        name, kind, start, end, signature, doc, container = s
        _check(all(isinstance(v, str) for v in (name, kind, signature, doc, container)))
        _check(isinstance(start, int) and isinstance(end, int))
        decoded_symbols.append(Symbol(name, kind, rel, start, end, signature, doc, container))
    _check(all(isinstance(i, str) for i in imports))
    _check(len(chunks) % 2 == 0 and all(isinstance(c, int) for c in chunks))
    _check(len(decoded_symbols) == meta.n_symbols and len(chunks) == 2 * meta.n_chunks)
    return FileEntry(
        rel=rel,
        mtime_ns=meta.mtime_ns,
        size=meta.size,
        digest=meta.digest,
        language=meta.language,
        text=text,
        symbols=tuple(decoded_symbols),
        imports=tuple(imports),
        chunks=tuple(Chunk(chunks[i], chunks[i + 1]) for i in range(0, len(chunks), 2)),
        binary=meta.binary,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Heavy:
    """Where the heavy section of the file whose meta was loaded lies."""

    generation: str
    offset: int
    length: int
    checksum: str
    order: tuple[FileMeta, ...]


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
        self._heavy: _Heavy | None = None

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
        """All persisted entries, or ``{}`` (never raises)."""
        meta = self.load_meta()
        if not meta:
            return {}
        entries = self.load_entries(meta)
        if len(entries) != len(meta):
            self.status = "corrupt"
            return {}
        return entries

    def load_meta(self) -> dict[str, FileMeta]:
        """The persisted per-file records without their heavy parts, or ``{}`` (never raises).

        Remembers where the heavy section lies, for :meth:`load_entries`."""
        self._heavy = None
        if not self.persistent:
            return {}
        try:
            with self.path.open("rb") as fh:
                head = fh.read(_HEADER_READ)
                header, offset = self._header(head, fh)
                fh.seek(offset)
                meta_len = header.get("meta_len")
                heavy_len = header.get("heavy_len")
                if not (isinstance(meta_len, int) and isinstance(heavy_len, int)):
                    raise ValueError("bad section lengths")
                if os.fstat(fh.fileno()).st_size != offset + meta_len + heavy_len:
                    raise ValueError("truncated or extended")  # the cheap check of the rest
                meta_bytes = fh.read(meta_len)
        except FileNotFoundError:
            self.status = "missing"
            return {}
        except _OldFormat as exc:
            log.warning("index %s has an old format (%s); rebuilding", self.path, exc)
            self.status = "old-format"
            return {}
        except OSError as exc:
            log.warning("cannot read index %s (%s); rebuilding", self.path, exc)
            self.status = "corrupt"
            return {}
        except Exception as exc:  # garbage fails in any way (msgpack, TypeError...): rebuild
            log.warning("index %s is corrupt (%s); rebuilding", self.path, exc)
            self.status = "corrupt"
            return {}
        try:
            return self._decode_meta(header, offset, meta_bytes)
        except Exception as exc:  # garbage fails in any way (msgpack, TypeError...): rebuild
            log.warning("index %s is corrupt (%s); rebuilding", self.path, exc)
            self.status = "corrupt"
            return {}

    def _header(self, head: bytes, fh: Any) -> tuple[dict[str, Any], int]:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(head) + 1)
        unpacker.feed(head)
        try:
            header = unpacker.unpack()
        except msgpack.OutOfData:
            # Not complete in the first bytes: an old-format file (one array) or garbage.
            fh.seek(0)
            header = msgpack.unpackb(fh.read(), raw=False)
            self._reject(header)
            raise ValueError("not an lsp-llm index file") from None
        self._reject(header)
        return header, unpacker.tell()

    def _reject(self, header: Any) -> None:
        """Raise unless ``header`` is a current header of this root."""
        if isinstance(header, list) and len(header) == 2 and isinstance(header[0], dict):
            old = header[0]
            if old.get("magic") == MAGIC:
                raise _OldFormat(f"schema {old.get('schema')!r}, expected {SCHEMA_VERSION}")
        if not isinstance(header, dict):
            raise ValueError("not an lsp-llm index file")
        if header.get("magic") != MAGIC:
            raise ValueError("bad magic")
        if header.get("schema") != SCHEMA_VERSION:
            raise _OldFormat(f"schema {header.get('schema')!r}, expected {SCHEMA_VERSION}")
        if header.get("root") != str(self.root):
            raise ValueError(f"index belongs to {header.get('root')!r}")

    def _decode_meta(
        self, header: dict[str, Any], offset: int, meta_bytes: bytes
    ) -> dict[str, FileMeta]:
        if len(meta_bytes) != header["meta_len"] or header.get("meta_checksum") != _checksum(
            meta_bytes
        ):
            raise ValueError("meta checksum mismatch")
        raw = msgpack.unpackb(meta_bytes, raw=False)
        _check(isinstance(raw, list) and len(raw) == header.get("count"))
        order = tuple(_decode_meta(r) for r in raw)
        heavy_len = header.get("heavy_len")
        heavy_sum = header.get("heavy_checksum")
        generation = header.get("generation")
        if not (
            isinstance(heavy_len, int)
            and isinstance(heavy_sum, str)
            and isinstance(generation, str)
        ):
            raise ValueError("bad header")
        self._heavy = _Heavy(generation, offset + len(meta_bytes), heavy_len, heavy_sum, order)
        self.status = "loaded"
        return {m.rel: m for m in order}

    def load_entries(self, wanted: Mapping[str, FileMeta]) -> dict[str, FileEntry]:
        """Full entries for ``wanted`` (records from :meth:`load_meta`) from the heavy
        section of the same save. Files it cannot supply are left out (never raises): a
        damaged section is logged once, and the caller reads those files again."""
        heavy = self._heavy
        if heavy is None or not wanted:
            return {}
        try:
            with self.path.open("rb") as fh:
                header, _ = self._header(fh.read(_HEADER_READ), fh)
                if header.get("generation") != heavy.generation:
                    log.info("index %s was saved again by another process; re-reading", self.path)
                    return {}
                fh.seek(heavy.offset)
                data = fh.read(heavy.length)
            if len(data) != heavy.length or _checksum(data) != heavy.checksum:
                raise ValueError("checksum mismatch")
            blobs = msgpack.unpackb(data, raw=False)
            _check(isinstance(blobs, list) and len(blobs) == len(heavy.order))
            out: dict[str, FileEntry] = {}
            for meta, blob in zip(heavy.order, blobs, strict=True):
                want = wanted.get(meta.rel)
                if want is not None and want.digest == meta.digest:
                    entry = _decode_heavy(meta, blob)
                    if want.mtime_ns != meta.mtime_ns or want.size != meta.size:
                        entry = dataclasses.replace(entry, mtime_ns=want.mtime_ns, size=want.size)
                    out[meta.rel] = entry
            return out
        except FileNotFoundError:
            log.warning("index %s disappeared; rebuilding from the files", self.path)
        except Exception as exc:  # garbage fails in any way (msgpack, TypeError...): rebuild
            log.warning("index %s is corrupt (%s); rebuilding from the files", self.path, exc)
            self.status = "corrupt"
        self._heavy = None
        return {}

    def save(self, entries: Mapping[str, FileEntry]) -> bool:
        """Write all entries atomically. False (and in-memory mode) when that is impossible."""
        if not self.persistent:
            return False
        ordered = [entries[rel] for rel in sorted(entries)]
        meta = msgpack.packb([_encode_meta(e) for e in ordered], use_bin_type=True)
        heavy = msgpack.packb([_encode_heavy(e) for e in ordered], use_bin_type=True)
        generation = os.urandom(8).hex()
        heavy_checksum = _checksum(heavy)
        header = {
            "magic": MAGIC,
            "schema": SCHEMA_VERSION,
            "root": str(self.root),
            "saved_at": time.time(),
            "count": len(ordered),
            "generation": generation,
            "meta_len": len(meta),
            "meta_checksum": _checksum(meta),
            "heavy_len": len(heavy),
            "heavy_checksum": heavy_checksum,
        }
        head = msgpack.packb(header, use_bin_type=True)
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
                fh.write(head)
                fh.write(meta)
                fh.write(heavy)
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
        self._heavy = _Heavy(
            generation,
            len(head) + len(meta),
            len(heavy),
            heavy_checksum,
            tuple(e.meta() for e in ordered),
        )
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
