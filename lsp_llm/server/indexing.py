"""The workspace indexes of a server process: one per root, shared by every session.

Builds and watcher batches run off the event loop (``asyncio.to_thread``); retrieval reads the
index's immutable snapshot on the loop. Sessions report build progress as work-done progress.

What the user works on needs no index: ``observe_open`` / ``observe_change`` /
``observe_close`` (cheap on the loop: a path check per document, an O(changed span) edit
record; windows and definitions of a buffer are computed by the first retrieval that reads
them) feed :class:`~lsp_llm.context.working.WorkingSet`, which the retriever combines with the
index through :func:`~lsp_llm.context.working.gather`. Secrets, and files inside a root that
its index refuses, are never recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from lsprotocol import types

from lsp_llm.config import Settings, cache_dir
from lsp_llm.context.index import WorkspaceIndex
from lsp_llm.context.recent import changed_span
from lsp_llm.context.stable import StableContexts, region_of
from lsp_llm.context.types import ContextSnippet
from lsp_llm.context.watch import STARTING, STOPPED, WATCHING, WatchStopped
from lsp_llm.context.working import WorkingSet, from_index, gather
from lsp_llm.features.completion import DocumentSnapshot, Retriever
from lsp_llm.security import is_secret_path
from lsp_llm.server.documents import fs_path, workspace_roots

log = logging.getLogger(__name__)


class IndexHost(Protocol):
    """What indexing needs from the session (``IndexHost`` is one): its workspace, a warning
    for the user, a status refresh and work-done progress. A protocol, so this module does not
    import the session that holds it (no circle)."""

    @property
    def workspace(self) -> Any: ...

    @property
    def work_done_progress(self) -> Any: ...

    def warn(self, message: str) -> None: ...

    def publish_status_now(self) -> None: ...

    def client_supports(self, dotted: str) -> bool: ...


OVERLAY_DELAY_S = 0.3
"""Unsaved edits reach the index at most this often per document."""
WATCH_DEBOUNCE_MS = 100
"""Disk changes are batched this long (a checkout of hundreds of files is still one batch)."""


@dataclasses.dataclass
class _Root:
    index: WorkspaceIndex
    state: str = "queued"
    error: str = ""
    watcher: str = STARTING
    """``starting``, ``watching``, ``waiting for the folder to reappear`` or ``stopped: ...``."""
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Stops the current watcher (a restart replaces it)."""
    watch_task: asyncio.Task[None] | None = None
    restarting: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    tasks: list[asyncio.Task[Any]] = dataclasses.field(default_factory=list)


def _refuse_root(root: Path) -> str:
    """A reason not to index ``root`` (the whole disk or a home directory), or ""."""
    resolved = root.resolve()
    if resolved == Path(resolved.anchor):
        return "the workspace root is the file-system root"
    with contextlib.suppress(RuntimeError):
        if resolved == Path.home().resolve():
            return "the workspace root is your home directory"
    if not resolved.is_dir():
        return "the workspace root is not a directory"
    return ""


class Workspaces:
    """Index registry. All methods run on the event loop."""

    def __init__(self, settings: Settings, index_cache: Path | None = None) -> None:
        self.settings = settings
        self.index_cache = index_cache
        self.roots: dict[Path, _Root] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending_overlay: dict[str, asyncio.TimerHandle] = {}
        self._closed = False
        self.stable = StableContexts()
        """Per document: the snippets of the cursor's region (:mod:`lsp_llm.context.stable`)."""
        self.working = WorkingSet()
        """Recent edits and open buffers of every session (:mod:`lsp_llm.context.working`;
        no index needed)."""
        self._labels: dict[str, str | None] = {}
        """Per open URI: the path its snippets are labelled with, or None when it must never
        be offered (a secret, or a file its workspace's index refuses)."""

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def stop(self) -> None:
        self._closed = True
        for entry in self.roots.values():
            entry.stop.set()
            for task in self._tasks_of(entry):
                task.cancel()
        for entry in self.roots.values():
            for task in self._tasks_of(entry):
                with contextlib.suppress(BaseException):  # cancelled above; failures logged in-task
                    await task
            try:
                await asyncio.to_thread(entry.index.flush)
            except Exception:  # shutting down: an unsaved index is rebuilt next time; logged
                log.exception("saving the index of %s failed", entry.index.root)

    def session_started(self, ls: IndexHost) -> None:
        for root in workspace_roots(ls.workspace):
            self.ensure(root.resolve(), ls)

    def ensure(self, root: Path, ls: IndexHost | None) -> _Root | None:
        if root in self.roots:
            return self.roots[root]
        reason = _refuse_root(root)
        if reason:
            log.warning("not indexing %s: %s", root, reason)
            if ls is not None:
                ls.warn(f"not indexing {root}: {reason} (open a project folder instead)")
            return None
        entry = _Root(index=WorkspaceIndex(root, self.settings, self.index_cache or cache_dir()))
        self.roots[root] = entry
        entry.tasks.append(asyncio.ensure_future(self._build_then_watch(entry, ls)))
        return entry

    async def _build_then_watch(self, entry: _Root, ls: IndexHost | None) -> None:
        await self._build(entry, ls, force=False)
        if entry.state == "ready":
            await self._restart_watching(entry, ls)

    @staticmethod
    def _tasks_of(entry: _Root) -> list[asyncio.Task[Any]]:
        return [*entry.tasks, *([entry.watch_task] if entry.watch_task is not None else [])]

    async def _stop_watching(self, entry: _Root, reason: str = "restarting") -> None:
        """Stop the root's watcher, if one runs, and wait until it has (it flushes the store)."""
        entry.stop.set()
        task, entry.watch_task = entry.watch_task, None
        if task is not None:
            entry.watcher = f"{STOPPED}: {reason}"
            with contextlib.suppress(Exception):  # the watcher logs its own failures (_watch)
                await task

    async def _restart_watching(self, entry: _Root, ls: IndexHost | None) -> None:
        """A new watcher for the root (the old one, dead or alive, is stopped first)."""
        async with entry.restarting:
            await self._stop_watching(entry)
            if self._closed:
                return
            entry.stop = asyncio.Event()
            entry.watcher = STARTING
            entry.watch_task = asyncio.ensure_future(self._watch(entry, ls, entry.stop))

    async def _watch(self, entry: _Root, ls: IndexHost | None, stop: asyncio.Event) -> None:
        root = entry.index.root

        def on_state(state: str) -> None:
            if entry.stop is stop:  # not a watcher that a restart replaced
                entry.watcher = state
                if ls is not None:
                    ls.publish_status_now()

        try:
            await entry.index.watch(
                stop,
                on_update=lambda paths: self._changed(ls),
                on_state=on_state,
                debounce_ms=WATCH_DEBOUNCE_MS,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a dead watcher must not take the server down; logged, reported
            if not isinstance(exc, WatchStopped):
                log.exception("watching %s failed", root)
            on_state(f"{STOPPED}: {exc}")
            message = f"stopped watching {root} for changes: {exc} (lspLlm.reindex tries again)"
            if ls is not None and entry.stop is stop:
                ls.warn(message)  # logged too
            else:
                log.warning("%s", message)

    def _changed(self, ls: IndexHost | None) -> None:
        if ls is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(ls.publish_status_now)

    async def _build(self, entry: _Root, ls: IndexHost | None, *, force: bool) -> None:
        root = entry.index.root
        progress = _BuildProgress(ls, f"lsp-llm: indexing {root.name}")
        entry.state = "indexing"
        progress.begin()
        try:
            stats = await asyncio.to_thread(
                entry.index.build, progress.from_thread(self.loop), force=force
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # completions go on without the index; logged, reported
            log.exception("indexing %s failed", root)
            entry.state, entry.error = "error", str(exc)
            progress.end(f"failed: {exc}")
            if ls is not None:
                ls.warn(f"indexing {root} failed: {exc}; completions continue without it")
            return
        entry.state = "ready"
        log.info(
            "indexed %s: %d files, %d symbols in %.1fs (%s)",
            root,
            stats.files,
            stats.symbols,
            stats.seconds,
            stats.store,
        )
        progress.end(f"{stats.files} files, {stats.symbols} symbols")
        if ls is not None:
            ls.publish_status_now()

    async def reindex(self, ls: IndexHost) -> dict[str, Any]:
        """Rebuild every root of the session from scratch and start its watcher anew (whatever
        became of the old one)."""
        entries = [e for r in workspace_roots(ls.workspace) if (e := self.ensure(r.resolve(), ls))]
        for entry in entries:
            async with entry.restarting:
                await self._stop_watching(entry, "reindexing")
                await self._build(entry, ls, force=True)
            if entry.state == "ready":
                await self._restart_watching(entry, ls)
            else:
                entry.watcher = f"{STOPPED}: indexing failed"
        return self.status_for(workspace_roots(ls.workspace))

    # -- queries -----------------------------------------------------------------------------
    def index_for(self, path: Path) -> WorkspaceIndex | None:
        best: WorkspaceIndex | None = None
        for root, entry in self.roots.items():
            if path.is_relative_to(root) and (
                best is None or len(root.parts) > len(best.root.parts)
            ):
                best = entry.index
        return best

    def status_for(self, roots: Sequence[Path]) -> dict[str, Any]:
        entries = [self.roots[r.resolve()] for r in roots if r.resolve() in self.roots]
        if not entries:
            return {"state": "off", "files": 0, "symbols": 0, "roots": []}
        per_root = []
        for entry in entries:
            stats = entry.index.stats()
            state = entry.state
            if state == "ready" and entry.watcher not in (STARTING, WATCHING):
                state = "stale"  # built, but no longer following the disk
            per_root.append(
                {
                    "root": str(entry.index.root),
                    "state": state,
                    "watcher": entry.watcher,
                    "error": entry.error,
                    "files": stats.files,
                    "symbols": stats.symbols,
                    "chunks": stats.chunks,
                    "bytes": stats.bytes,
                    "seconds": round(stats.seconds, 3),
                    "store": stats.store,
                    "indexPath": str(stats.index_path) if stats.index_path else None,
                }
            )
        states = {r["state"] for r in per_root}
        if states & {"queued", "indexing"}:
            state = "indexing"
        elif "error" in states:
            state = "error"
        else:
            state = "stale" if "stale" in states else "ready"
        return {
            "state": state,
            "files": sum(r["files"] for r in per_root),
            "symbols": sum(r["symbols"] for r in per_root),
            "roots": per_root,
        }

    def retriever_for(self) -> Retriever:
        """Retrieval for a session's prompts: :func:`lsp_llm.context.working.gather` over the
        document's index (if any) and the open buffers and recent edits, kept per region
        (:mod:`lsp_llm.context.stable`).

        Candidates are packed with the index's cheap token estimate, exactly as
        ``lsp-llm context`` shows them; the prompt builder then packs them again with the
        model's own tokenizer into the exact budget.
        """

        def retrieve(snap: DocumentSnapshot, offset: int, budget: int) -> Sequence[ContextSnippet]:
            patterns = self.settings.secret_patterns
            if is_secret_path(snap.uri, patterns) or is_secret_path(snap.path, patterns):
                return []
            path = fs_path(snap.uri)
            index = self.index_for(Path(path)) if path is not None else None
            current = self._label_of(snap.uri)
            working = self.working

            def digest_of(label: str) -> object:
                return (index.digest(label) if index is not None else None), working.version(label)

            def compute() -> list[ContextSnippet]:
                return gather(
                    (
                        (lambda room: index.retrieve(Path(path), snap.text, offset, budget=room))
                        if index is not None and path is not None
                        else None
                    ),
                    working,
                    current,
                    snap.text,
                    offset,
                    budget=budget,
                    secret_patterns=patterns,
                    indexed=(
                        (lambda label: index.digest(label) is not None)
                        if index is not None
                        else (lambda label: False)
                    ),
                )

            # The same snippets while the cursor stays in one region (stable prompt head).
            return self.stable.get(
                snap.uri,
                region_of(snap.text, offset, snap.path),
                now=time.monotonic(),
                budget=budget,
                digest_of=digest_of,
                compute=compute,
            ).snippets

        return retrieve

    def cli_retriever(self, root: Path, file: Path) -> Retriever | None:
        """For one-shot commands: load (or build) the index of ``root`` synchronously."""
        if _refuse_root(root):
            return None
        index = WorkspaceIndex(root, self.settings, self.index_cache or cache_dir())
        index.build()
        return index_retriever(index, file)

    # -- what the user is working on (cheap, on the loop, never raise) ------------------------
    def observe_open(self, uri: str, text: str, language_id: str = "") -> None:
        """``uri`` was opened (or shown) with ``text``. O(1) apart from the path checks: the
        buffer's windows are computed by the first retrieval that reads them."""
        try:
            label = self._label_of(uri, refresh=True)
            if label is not None:
                self.working.buffers.visit(label, text)
        except Exception:  # bookkeeping must never fail a didOpen; logged
            log.exception("recording the opened document %s failed", uri)

    def observe_change(self, uri: str, before: str, after: str) -> None:
        """``uri``'s text went from ``before`` to ``after``: the edited range joins the ring of
        recent edits (only the lines near the edit are read) and the buffer is updated."""
        try:
            label = self._label_of(uri)
            if label is None or before == after:
                return
            start, _, end = changed_span(before, after)
            self.working.edits.record_change(label, after, start, end, time.monotonic())
            self.working.buffers.visit(label, after)
        except Exception:  # bookkeeping must never fail a didChange; logged
            log.exception("recording an edit of %s failed", uri)

    def observe_close(self, uri: str) -> None:
        """``uri`` was closed: its buffer and edits are no longer offered (unsaved text the
        user threw away must not reach later prompts; the index holds the saved file)."""
        try:
            label = self._labels.pop(uri, None)
            if label is not None:
                self.working.buffers.close(label)
                self.working.edits.forget(label)
        except Exception:  # bookkeeping must never fail a didClose; logged
            log.exception("forgetting the closed document %s failed", uri)

    def _label_of(self, uri: str, *, refresh: bool = False) -> str | None:
        """The snippet label of ``uri`` (workspace-relative inside a root, else the absolute
        path or the URI itself), or None for a document never to offer: a secret anywhere, or
        inside a root, a file that root's index refuses (ignored, oversized, outside through
        a symlink). Cached per URI until it closes (the check stats the file once)."""
        if not refresh and uri in self._labels:
            return self._labels[uri]
        label: str | None
        path = fs_path(uri)
        if is_secret_path(uri, self.settings.secret_patterns) or (
            path is not None and is_secret_path(path, self.settings.secret_patterns)
        ):
            label = None
        elif path is None:
            label = uri
        elif (index := self.index_for(Path(path))) is not None:
            label = index.accepts(Path(path))
        else:
            label = path
        self._labels[uri] = label
        return label

    # -- open documents ----------------------------------------------------------------------
    def document_changed(self, uri: str, text_of: Any) -> None:
        """Debounced: unsaved content wins over disk for retrieval."""
        if self.loop is None:
            return
        old = self._pending_overlay.pop(uri, None)
        if old is not None:
            old.cancel()
        self._pending_overlay[uri] = self.loop.call_later(
            OVERLAY_DELAY_S, self._apply_overlay, uri, text_of
        )

    def _apply_overlay(self, uri: str, text_of: Any) -> None:
        self._pending_overlay.pop(uri, None)
        path = fs_path(uri)
        text = text_of()
        if path is None or text is None:
            return
        index = self.index_for(Path(path))
        if index is not None:
            try:
                index.set_open_document(Path(path), text)
            except Exception:  # the saved file stays indexed; logged
                log.exception("indexing unsaved content of %s failed", uri)

    def document_saved(self, uri: str) -> None:
        """A save is on disk now: update the index at once instead of waiting for the watcher."""
        path = fs_path(uri)
        if path is None or self.loop is None:
            return
        index = self.index_for(Path(path))
        if index is not None:
            task = self.loop.create_task(asyncio.to_thread(index.update_paths, [Path(path)]))
            task.add_done_callback(_log_failure)

    def document_closed(self, uri: str) -> None:
        self.stable.forget(uri)
        pending = self._pending_overlay.pop(uri, None)
        if pending is not None:
            pending.cancel()
        path = fs_path(uri)
        if path is not None and (index := self.index_for(Path(path))) is not None:
            index.close_document(Path(path))


def index_retriever(index: WorkspaceIndex, file: Path) -> Retriever:
    """Retrieval from ``index`` alone (:func:`lsp_llm.context.working.from_index`)."""

    def retrieve(snap: DocumentSnapshot, offset: int, budget: int) -> Sequence[ContextSnippet]:
        return from_index(index, file, snap.text, offset, budget)

    return retrieve


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("index update failed: %s", task.exception())


class _BuildProgress:
    """Work-done progress for an index build, if the session's client supports it."""

    def __init__(self, ls: IndexHost | None, title: str) -> None:
        self.ls = ls if ls is not None and ls.client_supports("window.work_done_progress") else None
        self.title = title
        self.token = f"lsp-llm-index-{uuid.uuid4().hex[:8]}"
        self.last_pct = -1

    def begin(self) -> None:
        if self.ls is None:
            return
        with contextlib.suppress(Exception):  # progress is a courtesy: the build goes on
            self.ls.work_done_progress.create(self.token)
            self.ls.work_done_progress.begin(
                self.token, types.WorkDoneProgressBegin(title=self.title, percentage=0)
            )

    def report(self, done: int, total: int) -> None:
        if self.ls is None or total <= 0:
            return
        pct = int(done * 100 / total)
        if pct == self.last_pct:
            return
        self.last_pct = pct
        with contextlib.suppress(Exception):  # progress is a courtesy: the build goes on
            self.ls.work_done_progress.report(
                self.token,
                types.WorkDoneProgressReport(message=f"{done}/{total} files", percentage=pct),
            )

    def from_thread(self, loop: asyncio.AbstractEventLoop | None) -> Any:
        def callback(done: int, total: int) -> None:
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self.report, done, total)

        return callback

    def end(self, message: str) -> None:
        if self.ls is None:
            return
        with contextlib.suppress(Exception):  # progress is a courtesy: the build is done
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
