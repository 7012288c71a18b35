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

Cost story
----------
* A **cold build** (nothing persisted, or ``force``) reads and parses in worker processes, one
  per core (:mod:`.reader`), when there are at least ``reader.POOL_MIN_FILES`` files to read.
* A **restart** loads only the small per-file records of the store (:meth:`IndexStore.load_meta`)
  and stat-checks the tree against them; unchanged files are not read. Their text, symbols and
  chunks stay on disk until retrieval first needs them (:meth:`WorkspaceIndex.materialize`:
  the first reader that finds no writer at work, or :meth:`watch` right after its first build,
  in a worker thread). A reader that arrives while a writer holds the work lock does not wait:
  it uses the snapshot published so far, as it always did during a build; a reader on an
  event loop never loads inline either, it starts the load in a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from lsp_llm import heap
from lsp_llm.config import Settings
from lsp_llm.context import reader as reader_mod
from lsp_llm.context import scan as scan_mod
from lsp_llm.context.parse import ParseFn, Symbol, parse_file
from lsp_llm.context.reader import ParsePool, ReadResult, Task, parsed_entry, read_entry
from lsp_llm.context.retrieve import (
    FileData,
    IndexSnapshot,
    default_token_count,
    retrieval_budget,
)
from lsp_llm.context.retrieve import retrieve as retrieve_snippets
from lsp_llm.context.scan import IGNORE_FILES, IgnoreRules
from lsp_llm.context.store import FileEntry, FileMeta, IndexStore, LoadStatus, content_digest
from lsp_llm.context.types import ContextSnippet

log = logging.getLogger(__name__)

IndexState = Literal["empty", "building", "ready", "error"]

SAVE_INTERVAL_S = 5.0
"""The watcher saves the store once changes have been quiet this long (a save of a large
workspace takes a few hundred milliseconds: not while someone is saving files one after
another); :meth:`WorkspaceIndex.flush` forces it."""
SAVE_MAX_INTERVAL_S = 60.0
"""...and, while changes never stop, at least this often."""
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
    workers: int = 1
    """Processes the last build read and parsed files with (1: in the calling thread)."""
    deferred: int = 0
    """Persisted files whose text, symbols and chunks are not loaded yet (they are counted;
    retrieval loads them on first use)."""

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
        self._disk: dict[str, FileEntry | FileMeta] = {}
        self._loaded = False
        self._lazy = False
        """Some of ``_disk`` are :class:`FileMeta` (not in the snapshot yet)."""
        self._workers = 1
        self._deferred = 0
        self._loading = threading.Event()
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

    def accepts(self, path: Path) -> str | None:
        """The workspace-relative path of ``path`` if the index may hold it and show it to the
        model (path rules and ``stat`` only, see :meth:`.scan.IgnoreRules.accepts`), else None."""
        return self._rules.accepts(path)

    # -- writers --------------------------------------------------------------------------------

    def build(
        self,
        progress: Callable[[int, int], None] | None = None,
        *,
        force: bool = False,
        save: bool = True,
    ) -> IndexStats:
        """Bring the index in line with the disk (blocking). Loads the persisted index on the
        first call, re-parses only changed files, publishes, saves (unless ``save`` is False:
        the caller flushes later). ``force`` re-parses all."""
        with self._work_lock:
            try:
                self._build_locked(progress, force=force, save=save)
            except Exception:  # only to record the state; logged and re-raised
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
            except Exception:  # must not stop the watcher; the next change retries; logged
                log.exception("updating the index of %s failed", self.root)

    def flush(self) -> bool:
        """Save now if anything changed since the last save. True when the store is current."""
        with self._work_lock:
            return self._save_locked()

    def materialize(self) -> None:
        """Load what the snapshot lacks after a restart (blocking; a no-op when complete)."""
        with self._work_lock:
            self._materialize_locked()
            self._save_locked()  # when the store could not supply everything

    def _save_locked(self) -> bool:
        if not self._dirty:
            return True
        self._materialize_locked()
        entries = {rel: e for rel, e in self._disk.items() if isinstance(e, FileEntry)}
        if self._store.save(entries):
            self._dirty = False
            return True
        return False

    def _load_locked(self) -> None:
        if self._loaded:
            return
        self._disk = dict(self._store.load_meta())
        self._loaded = True
        self._lazy = bool(self._disk)

    def _materialize_locked(self) -> None:
        """Replace the :class:`FileMeta` records of ``_disk`` by full entries from the store
        (or, where it cannot supply them, from the files) and publish them."""
        if not self._lazy:
            return
        pending = {rel: e for rel, e in self._disk.items() if isinstance(e, FileMeta)}
        entries = self._store.load_entries(pending)
        upserts: dict[str, FileData] = {}
        removals: list[str] = []
        missing: list[tuple[str, int, int, FileMeta]] = []
        for rel, meta in pending.items():
            entry = entries.get(rel)
            if entry is None:
                try:
                    st = (self.root / rel).stat()
                except OSError:
                    st = None
                if st is None or not stat_mod.S_ISREG(st.st_mode):
                    del self._disk[rel]
                    removals.append(rel)
                else:
                    missing.append((rel, st.st_mtime_ns, st.st_size, meta))
                continue
            self._disk[rel] = entry
            upserts[rel] = FileData.from_entry(entry)
        if missing:  # the store could not supply them: read the files again
            self._dirty = True
            tasks: list[Task] = [(str(self.root / rel), rel, m, None) for rel, m, _, _ in missing]
            counters = _Counters()
            results = self._read_all(tasks, None, None)
            for (rel, mtime_ns, _, _meta), (result, words) in zip(missing, results, strict=True):
                reread = self._apply_result(mtime_ns, None, result, counters)
                if isinstance(reread, FileEntry):
                    self._disk[rel] = reread
                    upserts[rel] = FileData.from_entry(reread, words)
                else:
                    del self._disk[rel]
                    removals.append(rel)
        self._lazy = False
        self._publish(upserts, removals)

    def _build_locked(
        self, progress: Callable[[int, int], None] | None, *, force: bool, save: bool = True
    ) -> None:
        start = time.perf_counter()
        self._state = "building" if self._state != "ready" else "ready"
        self._load_locked()
        if force:
            self._dirty = True
        pool = ParsePool() if self._parse is parse_file else None
        try:
            if pool is not None and (force or not self._disk):
                pool.start()  # a cold build: the workers start while the tree is scanned
            self._build_with(pool, progress, force=force)
        finally:
            if pool is not None:
                pool.close()
        self._finish(start, self._last)
        if save:
            self._save_locked()

    def _build_with(
        self,
        pool: ParsePool | None,
        progress: Callable[[int, int], None] | None,
        *,
        force: bool,
    ) -> None:
        rules = self._rules = IgnoreRules(self.root, self.settings)
        found = list(scan_mod.scan(self.root, self.settings, rules))
        self._truncated = len(found) >= self.settings.index_max_files
        total = len(found)
        if progress is not None:
            progress(0, total)
        counters = _Counters()
        old_disk = self._disk
        kept: dict[str, FileEntry | FileMeta] = {}
        to_read: list[tuple[scan_mod.ScannedFile, FileEntry | FileMeta | None]] = []
        for item in found:
            old = None if force else old_disk.get(item.rel)
            if old is not None and old.mtime_ns == item.mtime_ns and old.size == item.size:
                counters.reused += 1
                kept[item.rel] = old
            else:
                to_read.append((item, old))
        reused = len(kept)

        def reading(done: int) -> None:
            if progress is not None:
                progress(reused + done, total)

        tasks: list[Task] = [
            (str(item.path), item.rel, item.mtime_ns, old.digest if old is not None else None)
            for item, old in to_read
        ]
        results = self._read_all(tasks, pool, reading)
        changed: dict[str, FileData] = {}
        for (item, old), (result, words) in zip(to_read, results, strict=True):
            entry = self._apply_result(item.mtime_ns, old, result, counters)
            if entry is not None:
                kept[item.rel] = entry
                if isinstance(entry, FileEntry):
                    changed[item.rel] = FileData.from_entry(entry, words)
        new_disk = {item.rel: kept[item.rel] for item in found if item.rel in kept}
        if progress is not None:
            progress(total, total)
        removed = [rel for rel in old_disk if rel not in new_disk]
        counters.removed = len(removed)
        if changed or removed or self._store.status != "loaded":
            self._dirty = True
        self._disk = new_disk
        self._lazy = any(isinstance(e, FileMeta) for e in new_disk.values())
        self._publish(changed, removed)
        self._last = counters

    def _read_all(
        self,
        tasks: list[Task],
        pool: ParsePool | None,
        progress: Callable[[int], None] | None,
    ) -> list[tuple[ReadResult, frozenset[str] | None]]:
        """Read (and parse) files: in worker processes when there are many, else here."""
        limit = self.settings.index_max_file_bytes
        if pool is None and len(tasks) >= reader_mod.POOL_MIN_FILES and self._parse is parse_file:
            with ParsePool() as own:
                return self._read_all(tasks, own, progress)
        if pool is not None and len(tasks) >= reader_mod.POOL_MIN_FILES and pool.start():
            try:
                results = list(pool.read(tasks, limit, progress))
            except Exception as exc:  # any worker failure (pickling, a killed process): in-thread
                log.warning("index worker processes failed (%s); parsing in-thread", exc)
            else:
                self._workers = pool.workers
                return results
        self._workers = 1
        out: list[tuple[ReadResult, frozenset[str] | None]] = []
        for i, (path, rel, mtime_ns, old_digest) in enumerate(tasks, 1):
            out.append((read_entry(path, rel, mtime_ns, old_digest, limit, self._parse), None))
            if progress is not None and i % 16 == 0:
                progress(i)
        return out

    @staticmethod
    def _apply_result(
        mtime_ns: int,
        old: FileEntry | FileMeta | None,
        result: ReadResult,
        counters: _Counters,
    ) -> FileEntry | FileMeta | None:
        """The entry a read produced (``old`` with a new mtime when the content is the same)."""
        if result is None:
            return None
        if isinstance(result, tuple):
            assert old is not None
            counters.reused += 1
            size, _ = result
            return dataclasses.replace(old, mtime_ns=mtime_ns, size=size)
        if not result.binary:
            counters.reparsed += 1
        return result

    def _update_locked(self, paths: list[Path]) -> None:
        start = time.perf_counter()
        self._materialize_locked()  # from here on, every entry of _disk is a FileEntry
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
        disk: dict[str, FileEntry] = {
            rel: e for rel, e in self._disk.items() if isinstance(e, FileEntry)
        }
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
        self._disk = dict(disk)
        self._dirty = True
        self._publish(changed, removed)
        self._touch(changed)
        self._finish(start, counters)
        if time.monotonic() - self._store.last_saved >= SAVE_MAX_INTERVAL_S:
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
        result = read_entry(
            path, rel, mtime_ns, old.digest if old is not None else None, limit, self._parse
        )
        entry = self._apply_result(mtime_ns, old, result, counters)
        assert entry is None or isinstance(entry, FileEntry)
        return entry

    def _publish(self, upserts: Mapping[str, FileData], removals: Iterable[str]) -> None:
        snapshot = self._snapshot.apply(upserts, removals)
        self._snapshot = snapshot
        files = symbols = chunks = size = skipped = deferred = 0
        for e in self._disk.values():  # what is indexed, loaded into the snapshot or not yet
            if e.binary:
                skipped += 1
                continue
            files += 1
            size += e.size
            if isinstance(e, FileEntry):
                symbols += len(e.symbols)
                chunks += len(e.chunks)
            else:
                symbols += e.n_symbols
                chunks += e.n_chunks
                deferred += 1
        self._counts = (files, symbols, chunks, size)
        self._skipped = skipped
        self._deferred = deferred

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
        entry = parsed_entry(rel, -1, len(data), digest, text, self._parse)
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
            self._current(),
            rel,
            text,
            offset,
            budget=retrieval_budget(self.settings) if budget is None else budget,
            count=count or default_token_count,
            allowed=rules.allows,
            overlay=self._overlay,
            recent=self._recent,
        )

    def lookup_symbol(self, name: str) -> list[Symbol]:
        """Every definition of ``name`` (open documents' content wins), sorted by path, line."""
        overlay = self._overlay
        found = [s for s in self._current().symbols.get(name, ()) if s.path not in overlay]
        for data in overlay.values():
            found += [s for s in data.entry.symbols if s.name == name]
        return sorted(found, key=lambda s: (s.path, s.start_line))

    def digest(self, rel: str) -> bytes | None:
        """The content digest retrieval reads for ``rel`` (an open document's unsaved text
        wins over the disk), or None when the index does not hold it."""
        data = self._overlay.get(rel) or self._snapshot.files.get(rel)
        return data.entry.digest if data is not None else None

    def snapshot(self) -> IndexSnapshot:
        """The current disk snapshot (immutable)."""
        return self._current()

    def _current(self) -> IndexSnapshot:
        """The published snapshot, completed first if a restart left files unloaded and no
        writer is at work (a reader never waits for a writer; see the module docstring)."""
        if not self._lazy:
            return self._snapshot
        if _on_event_loop():  # never block the loop for seconds: load in a worker thread
            if not self._loading.is_set():
                self._loading.set()
                threading.Thread(target=self._background_materialize, daemon=True).start()
            return self._snapshot
        if self._work_lock.acquire(blocking=False):
            try:
                self._materialize_locked()
                self._save_locked()  # when the store could not supply everything
            except Exception:  # readers get the snapshot they have; logged
                log.exception("loading the index of %s failed", self.root)
            finally:
                self._work_lock.release()
        return self._snapshot

    def _background_materialize(self) -> None:
        try:
            self.materialize()
        except Exception:  # a background thread: nobody to raise to; logged
            log.exception("loading the index of %s failed", self.root)
        finally:
            self._loading.clear()

    @property
    def index_path(self) -> Path | None:
        return self._store.path if self._store.persistent else None

    def stats(self) -> IndexStats:
        files, symbols, chunks, size = self._counts
        overlay = self._overlay
        disk_files = self._snapshot.files
        disk = self._disk
        for rel, data in overlay.items():
            if rel not in disk_files and rel not in disk:
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
            workers=self._workers,
            deferred=self._deferred,
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
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        """Keep the index fresh until ``stop`` is set (builds first if never built).

        Each batch of changes is applied by :meth:`update_paths` in a worker thread, so the
        event loop never waits on parsing; ``on_update`` runs on the loop after each batch.

        A root that goes away (deleted, moved, or replaced by a new directory) does not end
        the watch: the index drops what went with it, reports ``WAITING`` through
        ``on_state`` (with a warning in the log) until the folder is back, then indexes it
        and follows it with a new watcher (``WATCHING`` again). A root that cannot be
        watched for another reason raises :class:`~lsp_llm.context.watch.WatchStopped`.
        """
        from lsp_llm.context.watch import WAITING, WatchStopped, wait_for_root

        if not self._loaded:
            await asyncio.to_thread(self.build)
        await asyncio.to_thread(self.materialize)  # after a restart: load before it is needed
        # A watched index lives as long as the process: keep its objects out of full GCs.
        await asyncio.to_thread(heap.settle, f"indexing {self.root.name}")
        try:
            while not stop.is_set():
                try:
                    await self._follow(stop, on_update, on_state, debounce_ms, force_polling)
                    return
                except WatchStopped as exc:
                    if not exc.gone:
                        raise
                    log.warning(
                        "stopped watching %s: %s; waiting for it to reappear", self.root, exc
                    )
                # Catch up: the files went with the folder (or a new folder holds others).
                await asyncio.to_thread(functools.partial(self.build, save=False))
                if on_update is not None:
                    on_update([])
                if not await asyncio.to_thread(self.root.is_dir):
                    if on_state is not None:
                        on_state(WAITING)
                    if not await wait_for_root(self.root, stop):
                        return
                    log.warning("%s is back: indexing and watching it again", self.root)
        finally:
            await asyncio.to_thread(self.flush)

    async def _follow(
        self,
        stop: asyncio.Event,
        on_update: Callable[[list[Path]], None] | None,
        on_state: Callable[[str], None] | None,
        debounce_ms: int,
        force_polling: bool | None,
    ) -> None:
        """One watcher's life: until ``stop`` is set or it raises ``WatchStopped``."""
        from lsp_llm.context.watch import WATCHING, watch_changes

        caught_up = False
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
                # Saved by the next quiet-period flush, not in front of the next change.
                await asyncio.to_thread(functools.partial(self.build, save=False))
                if on_state is not None:
                    on_state(WATCHING)
                if on_update is not None:
                    on_update(paths)
            if not paths:  # quiet for a while: persist what the last batches changed
                await asyncio.to_thread(self.flush)
                continue
            await asyncio.to_thread(self.update_paths, paths)
            if on_update is not None:
                on_update(paths)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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
