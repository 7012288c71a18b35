"""``WorkspaceIndex``: the one object the server and the CLI use for a workspace root.

Concurrency story
-----------------
Three kinds of callers touch an index, and none of them waits long for another:

* **Writers** (``build``, ``update_paths``, ``flush``) do blocking work: stat, read, parse,
  save. The server runs them in a worker thread (``asyncio.to_thread``); :meth:`watch` does so
  itself. They are serialised by ``_work_lock``, which only writers ever take. A writer works on
  private data and ends by *publishing*: it assigns a new immutable :class:`IndexSnapshot` to
  ``self._snapshot`` (a single reference assignment, atomic under the GIL).
* **Open documents** (``set_open_document``, ``close_document``) are called on the event loop
  (from ``didOpen``/``didChange``/``didClose``). They parse one file (milliseconds) and publish a
  new overlay map (``self._overlay``), again by one reference assignment. They never wait for a
  writer: the overlay is separate from the snapshot and wins over it at read time.
* **Readers** (``retrieve``, ``lookup_symbol``, ``stats``) read ``self._snapshot`` and
  ``self._overlay`` once each and use those values, never mutated by anyone, to the end.

The one lock readers and open documents share with writers is ``_recent_lock``, held only to
copy a small dict of edit times. Snapshots are copy-on-write (``IndexSnapshot.apply`` shares
every untouched file), so a watcher batch costs in proportion to what changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from lsp_llm.config import Settings
from lsp_llm.context import scan as scan_mod
from lsp_llm.context.parse import ParseFn, Symbol, parse_file
from lsp_llm.context.retrieve import (
    FileData,
    IndexSnapshot,
    default_token_count,
    retrieval_budget,
)
from lsp_llm.context.retrieve import retrieve as retrieve_snippets
from lsp_llm.context.scan import IGNORE_FILES, IgnoreRules
from lsp_llm.context.store import FileEntry, IndexStore, LoadStatus, content_digest
from lsp_llm.context.types import ContextSnippet

log = logging.getLogger(__name__)

IndexState = Literal["empty", "building", "ready", "error"]

SAVE_INTERVAL_S = 5.0
"""Watcher batches save the store at most this often; :meth:`WorkspaceIndex.flush` forces it."""
MAX_RECENT = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndexStats:
    """Counts for ``lsp-llm index``, ``lspLlm/status`` and benchmarks."""

    root: str
    state: IndexState
    files: int
    """Indexed text files (open documents included once)."""
    symbols: int
    chunks: int
    bytes: int
    seconds: float
    """Wall time of the last build or update."""
    index_path: str | None
    """The msgpack file, or None when the index lives in memory only."""
    store: LoadStatus
    """What the persisted index was found to be at load: loaded, missing, corrupt, ..."""
    reparsed: int
    """Files parsed by the last build or update (unchanged files are not)."""
    reused: int
    """Files taken unchanged from the persisted or previous index by the last build/update."""
    removed: int
    skipped: int
    """Binary or undecodable files (remembered, not re-read while unchanged)."""
    truncated: bool
    """The scan stopped at ``index_max_files``."""
    open_documents: int
    builds: int
    """Completed builds and updates since start."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class _Counters:
    reparsed: int = 0
    reused: int = 0
    removed: int = 0


class WorkspaceIndex:
    """The workspace index of one root. See the module docstring for the threading rules."""

    def __init__(
        self,
        root: Path,
        settings: Settings,
        cache_dir: Path | None = None,
        *,
        parse: ParseFn = parse_file,
    ) -> None:
        self.root = root.resolve()
        self.settings = settings
        self._parse = parse
        self._rules = IgnoreRules(self.root, settings)
        self._store = IndexStore(self.root, cache_dir)
        self._work_lock = threading.Lock()
        self._recent_lock = threading.Lock()
        # Published values (replaced, never mutated):
        self._snapshot = IndexSnapshot.empty()
        self._overlay: Mapping[str, FileData] = {}
        self._recent: Mapping[str, float] = {}
        # Writer-private (only touched under _work_lock):
        self._disk: dict[str, FileEntry] = {}
        self._loaded = False
        self._dirty = False
        # Status (plain values, written by writers, read by anyone):
        self._state: IndexState = "empty"
        self._seconds = 0.0
        self._last = _Counters()
        self._counts = (0, 0, 0, 0)
        self._skipped = 0
        self._truncated = False
        self._builds = 0

    # -- paths ----------------------------------------------------------------------------------

    def relative(self, path: Path) -> str | None:
        """The workspace-relative form of ``path`` (None outside the root)."""
        rules = self._rules
        return rules.lexical_relative(path) or rules.relative(path)

    def is_indexable(self, path: Path) -> bool:
        """Whether ``path`` may be indexed and shown to the model (see :mod:`.scan`)."""
        rules = self._rules
        rel = rules.accepts(path)
        if rel is None:
            return False
        full = rules.root / rel
        return not (full.exists() and scan_mod.looks_binary(full))

    # -- writers --------------------------------------------------------------------------------

    def build(
        self, progress: Callable[[int, int], None] | None = None, *, force: bool = False
    ) -> IndexStats:
        """Bring the index in line with the disk (blocking). Loads the persisted index on the
        first call, re-parses only changed files, publishes, saves. ``force`` re-parses all."""
        with self._work_lock:
            try:
                self._build_locked(progress, force=force)
            except Exception:
                self._state = "error"
                log.exception("indexing %s failed", self.root)
                raise
        return self.stats()

    def update_paths(self, paths: Iterable[Path]) -> None:
        """Re-check these paths (added, modified, deleted files or directories; blocking)."""
        with self._work_lock:
            if not self._loaded:
                self._build_locked(None, force=False)
                return
            try:
                self._update_locked(list(paths))
            except Exception:
                log.exception("updating the index of %s failed", self.root)

    def flush(self) -> bool:
        """Save now if anything changed since the last save. True when the store is current."""
        with self._work_lock:
            return self._save_locked()

    def _save_locked(self) -> bool:
        if not self._dirty:
            return True
        if self._store.save(self._disk):
            self._dirty = False
            return True
        return False

    def _load_locked(self) -> None:
        if self._loaded:
            return
        self._disk = self._store.load()
        self._loaded = True
        if self._disk:  # usable at once, verified by the scan that follows
            self._publish({rel: FileData.from_entry(e) for rel, e in self._disk.items()}, ())

    def _build_locked(self, progress: Callable[[int, int], None] | None, *, force: bool) -> None:
        start = time.perf_counter()
        self._state = "building" if self._state != "ready" else "ready"
        self._load_locked()
        if force:
            self._dirty = True
        rules = self._rules = IgnoreRules(self.root, self.settings)
        found = list(scan_mod.scan(self.root, self.settings, rules))
        self._truncated = len(found) >= self.settings.index_max_files
        total = len(found)
        if progress is not None:
            progress(0, total)
        counters = _Counters()
        new_disk: dict[str, FileEntry] = {}
        changed: dict[str, FileData] = {}
        for i, item in enumerate(found, 1):
            old = None if force else self._disk.get(item.rel)
            entry = self._entry_for(item.path, item.rel, item.size, item.mtime_ns, old, counters)
            if entry is not None:
                new_disk[item.rel] = entry
                if entry is not self._disk.get(item.rel):
                    changed[item.rel] = FileData.from_entry(entry)
            if progress is not None and (i % 16 == 0 or i == total):
                progress(i, total)
        removed = [rel for rel in self._disk if rel not in new_disk]
        counters.removed = len(removed)
        if changed or removed or self._store.status != "loaded":
            self._dirty = True
        self._disk = new_disk
        self._publish(changed, removed)
        self._finish(start, counters)
        self._save_locked()

    def _update_locked(self, paths: list[Path]) -> None:
        start = time.perf_counter()
        rules = self._rules
        rels: set[str] = set()
        for path in paths:
            rel = rules.lexical_relative(path)
            if rel is None:
                continue
            if rel.rsplit("/", 1)[-1] in IGNORE_FILES:
                self._build_locked(None, force=False)  # the rules changed: rescan everything
                return
            rels.add(rel)
        counters = _Counters()
        disk = dict(self._disk)
        changed: dict[str, FileData] = {}
        removed: set[str] = set()

        def drop(prefix: str) -> None:
            for key in [k for k in disk if k == prefix or k.startswith(prefix + "/")]:
                del disk[key]
                removed.add(key)

        for rel in sorted(rels):
            full = rules.root / rel
            try:
                st = full.lstat()
            except OSError:
                drop(rel)  # deleted (a file, or a whole directory)
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                seen = set()
                for item in scan_mod.scan(self.root, self.settings, rules, subdir=rel):
                    seen.add(item.rel)
                    old = disk.get(item.rel)
                    entry = self._entry_for(
                        item.path, item.rel, item.size, item.mtime_ns, old, counters
                    )
                    if entry is not None and entry is not old:
                        disk[item.rel] = entry
                        changed[item.rel] = FileData.from_entry(entry)
                for key in [k for k in disk if k.startswith(rel + "/") and k not in seen]:
                    del disk[key]
                    removed.add(key)
                continue
            accepted = rules.accepts(full)
            if accepted is None:
                drop(rel)
                continue
            try:
                st = full.stat()
            except OSError:
                drop(rel)
                continue
            old = disk.get(rel)
            entry = self._entry_for(full, rel, st.st_size, st.st_mtime_ns, old, counters)
            if entry is None:
                drop(rel)
            elif entry is not old:
                disk[rel] = entry
                changed[rel] = FileData.from_entry(entry)
        removed -= set(changed)
        counters.removed = len(removed)
        if not changed and not removed:
            return
        self._disk = disk
        self._dirty = True
        self._publish(changed, removed)
        self._touch(changed)
        self._finish(start, counters)
        if time.monotonic() - self._store.last_saved >= SAVE_INTERVAL_S:
            self._save_locked()

    def _entry_for(
        self,
        path: Path,
        rel: str,
        size: int,
        mtime_ns: int,
        old: FileEntry | None,
        counters: _Counters,
    ) -> FileEntry | None:
        """The entry for a file: ``old`` itself when unchanged, else read (and parsed)."""
        if old is not None and old.mtime_ns == mtime_ns and old.size == size:
            counters.reused += 1
            return old
        limit = self.settings.index_max_file_bytes
        try:
            with path.open("rb") as fh:
                data = fh.read(limit + 1)
        except OSError:
            return None
        if len(data) > limit:
            return None
        digest = content_digest(data)
        if old is not None and old.digest == digest:
            counters.reused += 1
            return dataclasses.replace(old, mtime_ns=mtime_ns, size=len(data))
        text = scan_mod.decode_text(data)
        if text is None:
            return FileEntry(
                rel=rel, mtime_ns=mtime_ns, size=len(data), digest=digest, language="", text="",
                binary=True,
            )  # fmt: skip
        counters.reparsed += 1
        result = self._parse(rel, text)
        return FileEntry(
            rel=rel,
            mtime_ns=mtime_ns,
            size=len(data),
            digest=digest,
            language=result.language,
            text=text,
            symbols=result.symbols,
            imports=result.imports,
            chunks=result.chunks,
        )

    def _publish(self, upserts: Mapping[str, FileData], removals: Iterable[str]) -> None:
        snapshot = self._snapshot.apply(upserts, removals)
        self._snapshot = snapshot
        self._counts = snapshot.stats()
        self._skipped = sum(1 for d in snapshot.files.values() if d.entry.binary)

    def _finish(self, start: float, counters: _Counters) -> None:
        self._seconds = time.perf_counter() - start
        self._last = counters
        self._state = "ready"
        self._builds += 1

    def _touch(self, rels: Iterable[str]) -> None:
        now = time.monotonic()
        with self._recent_lock:
            recent = dict(self._recent)
            recent.update(dict.fromkeys(rels, now))
            if len(recent) > MAX_RECENT:
                recent = dict(sorted(recent.items(), key=lambda kv: kv[1])[-MAX_RECENT:])
            self._recent = recent

    # -- open documents (event loop) -------------------------------------------------------------

    def set_open_document(self, path: Path, text: str) -> bool:
        """Use ``text`` (unsaved editor content) for ``path`` instead of the disk.

        Parses one file on the calling thread. Returns False (and keeps nothing) for files the
        index must not hold: outside the root, ignored, secret, oversized.
        """
        rel = self._rules.accepts(path)
        if rel is None or len(text.encode("utf-8", errors="replace")) > (
            self.settings.index_max_file_bytes
        ):
            self.close_document(path)
            return False
        data = text.encode("utf-8", errors="surrogatepass")
        digest = content_digest(data)
        current = self._overlay.get(rel)
        if current is not None and current.entry.digest == digest:
            return True
        result = self._parse(rel, text)
        entry = FileEntry(
            rel=rel,
            mtime_ns=-1,
            size=len(data),
            digest=digest,
            language=result.language,
            text=text,
            symbols=result.symbols,
            imports=result.imports,
            chunks=result.chunks,
        )
        overlay = dict(self._overlay)
        overlay[rel] = FileData.from_entry(entry)
        self._overlay = overlay
        if current is not None:  # an edit, not the first open
            self._touch([rel])
        return True

    def close_document(self, path: Path) -> None:
        """Forget the unsaved content of ``path``; the disk version (if indexed) applies again."""
        rel = self.relative(path)
        if rel is not None and rel in self._overlay:
            overlay = dict(self._overlay)
            del overlay[rel]
            self._overlay = overlay

    # -- readers --------------------------------------------------------------------------------

    def retrieve(
        self,
        path: Path,
        text: str,
        offset: int,
        *,
        budget: int | None = None,
        count: Callable[[str], int] | None = None,
    ) -> list[ContextSnippet]:
        """Snippets of other files for a cursor at ``offset`` (characters into ``text``).

        ``budget`` is in units of ``count`` (default: ``retrieval_budget(settings)`` tokens,
        counted with ``default_token_count``; pass the model tokenizer's counter for exact
        packing). Empty when retrieval is off or the current file is a secret.
        """
        if not self.settings.retrieval:
            return []
        rules = self._rules
        rel = self.relative(path)
        if rel is not None and rules.is_secret(rel):
            return []
        return retrieve_snippets(
            self._snapshot,
            rel,
            text,
            offset,
            budget=retrieval_budget(self.settings) if budget is None else budget,
            count=count or default_token_count,
            allowed=lambda r: not rules.is_ignored_path(r),
            overlay=self._overlay,
            recent=self._recent,
        )

    def lookup_symbol(self, name: str) -> list[Symbol]:
        """Every definition of ``name`` (open documents' content wins), sorted by path, line."""
        overlay = self._overlay
        found = [s for s in self._snapshot.symbols.get(name, ()) if s.path not in overlay]
        for data in overlay.values():
            found += [s for s in data.entry.symbols if s.name == name]
        return sorted(found, key=lambda s: (s.path, s.start_line))

    def snapshot(self) -> IndexSnapshot:
        """The current disk snapshot (immutable)."""
        return self._snapshot

    @property
    def index_path(self) -> Path | None:
        return self._store.path if self._store.persistent else None

    def stats(self) -> IndexStats:
        files, symbols, chunks, size = self._counts
        overlay = self._overlay
        disk_files = self._snapshot.files
        for rel, data in overlay.items():
            if rel not in disk_files:
                files += 1
                symbols += len(data.entry.symbols)
                chunks += len(data.entry.chunks)
                size += data.entry.size
        last = self._last
        index_path = self.index_path
        return IndexStats(
            root=str(self.root),
            state=self._state,
            files=files,
            symbols=symbols,
            chunks=chunks,
            bytes=size,
            seconds=round(self._seconds, 4),
            index_path=str(index_path) if index_path is not None else None,
            store=self._store.status,
            reparsed=last.reparsed,
            reused=last.reused,
            removed=last.removed,
            skipped=self._skipped,
            truncated=self._truncated,
            open_documents=len(overlay),
            builds=self._builds,
        )

    # -- watching -------------------------------------------------------------------------------

    def watch_filter(self, change: object, path: str) -> bool:
        """The ``watchfiles`` filter: the same path rules as the scan (content checks later)."""
        rules = self._rules
        rel = rules.lexical_relative(Path(path))
        if not rel:
            return False
        if rel.rsplit("/", 1)[-1] in IGNORE_FILES:
            return True
        return not rules.is_ignored_path(rel)

    async def watch(
        self,
        stop: asyncio.Event,
        on_update: Callable[[list[Path]], None] | None = None,
        *,
        debounce_ms: int = 400,
        force_polling: bool | None = None,
    ) -> None:
        """Keep the index fresh until ``stop`` is set (builds first if never built).

        Each batch of changes is applied by :meth:`update_paths` in a worker thread, so the
        event loop never waits on parsing; ``on_update`` runs on the loop after each batch.
        """
        from lsp_llm.context.watch import watch_changes

        if not self._loaded:
            await asyncio.to_thread(self.build)
        caught_up = False
        try:
            async for paths in watch_changes(
                self.root,
                stop,
                self.watch_filter,
                debounce_ms=debounce_ms,
                force_polling=force_polling,
                idle_ms=int(SAVE_INTERVAL_S * 1000),
            ):
                if not caught_up:
                    # The watcher is registered now (it yielded). Files changed between the
                    # build and this point produced no event: one incremental pass finds them.
                    caught_up = True
                    await asyncio.to_thread(self.build)
                    if on_update is not None:
                        on_update(paths)
                if not paths:  # quiet for a while: persist what the last batches changed
                    await asyncio.to_thread(self.flush)
                    continue
                await asyncio.to_thread(self.update_paths, paths)
                if on_update is not None:
                    on_update(paths)
        finally:
            await asyncio.to_thread(self.flush)


def find_root(path: Path) -> Path:
    """The workspace root of a file: the nearest ancestor with a VCS or lsp-llm marker,
    else the file's directory."""
    start = path.resolve()
    directory = start if start.is_dir() else start.parent
    for candidate in (directory, *directory.parents):
        for marker in (".git", ".hg", ".svn", ".jj", ".lsp-llm.toml"):
            if os.path.lexists(candidate / marker):
                return candidate
    return directory
