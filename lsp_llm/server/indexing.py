"""The workspace indexes of a server process: one per root, shared by every session.

Builds and watcher batches run off the event loop (``asyncio.to_thread``); retrieval reads the
index's immutable snapshot on the loop. Sessions report build progress as work-done progress.
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
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_llm.config import Settings, cache_dir
from lsp_llm.context.index import WorkspaceIndex
from lsp_llm.context.stable import StableContexts, region_of
from lsp_llm.context.types import ContextSnippet
from lsp_llm.context.watch import STARTING, STOPPED, WATCHING, WatchStopped
from lsp_llm.features.completion import DocumentSnapshot, Retriever
from lsp_llm.server.documents import fs_path, workspace_roots

if TYPE_CHECKING:
    from lsp_llm.server.app import LlmServer

log = logging.getLogger(__name__)

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
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.to_thread(entry.index.flush)

    def session_started(self, ls: LlmServer) -> None:
        for root in workspace_roots(ls.workspace):
            self.ensure(root.resolve(), ls)

    def ensure(self, root: Path, ls: LlmServer | None) -> _Root | None:
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

    async def _build_then_watch(self, entry: _Root, ls: LlmServer | None) -> None:
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
            with contextlib.suppress(Exception):
                await task

    async def _restart_watching(self, entry: _Root, ls: LlmServer | None) -> None:
        """A new watcher for the root (the old one, dead or alive, is stopped first)."""
        async with entry.restarting:
            await self._stop_watching(entry)
            if self._closed:
                return
            entry.stop = asyncio.Event()
            entry.watcher = STARTING
            entry.watch_task = asyncio.ensure_future(self._watch(entry, ls, entry.stop))

    async def _watch(self, entry: _Root, ls: LlmServer | None, stop: asyncio.Event) -> None:
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
        except Exception as exc:
            if not isinstance(exc, WatchStopped):
                log.exception("watching %s failed", root)
            on_state(f"{STOPPED}: {exc}")
            message = f"stopped watching {root} for changes: {exc} (lspLlm.reindex tries again)"
            if ls is not None and entry.stop is stop:
                ls.warn(message)  # logged too
            else:
                log.warning("%s", message)

    def _changed(self, ls: LlmServer | None) -> None:
        if ls is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(ls.publish_status_now)

    async def _build(self, entry: _Root, ls: LlmServer | None, *, force: bool) -> None:
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
        except Exception as exc:
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

    async def reindex(self, ls: LlmServer) -> dict[str, Any]:
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

    def retriever_for(self, ls: LlmServer) -> Retriever:
        """Retrieval for a session's prompts.

        Candidates are packed with the index's cheap token estimate, exactly as
        ``lsp-llm context`` shows them; the prompt builder then packs them again with the
        model's own tokenizer into the exact budget.
        """

        def retrieve(snap: DocumentSnapshot, offset: int, budget: int) -> Sequence[ContextSnippet]:
            path = fs_path(snap.uri)
            if path is None:
                return []
            index = self.index_for(Path(path))
            if index is None:
                return []
            # The same snippets while the cursor stays in one region (stable prompt head).
            return self.stable.get(
                snap.uri,
                region_of(snap.text, offset, snap.path),
                now=time.monotonic(),
                budget=budget,
                digest_of=index.digest,
                compute=lambda: index.retrieve(Path(path), snap.text, offset, budget=budget),
            ).snippets

        return retrieve

    def cli_retriever(self, root: Path, file: Path) -> Retriever | None:
        """For one-shot commands: load (or build) the index of ``root`` synchronously."""
        if _refuse_root(root):
            return None
        index = WorkspaceIndex(root, self.settings, self.index_cache or cache_dir())
        index.build()

        def retrieve(snap: DocumentSnapshot, offset: int, budget: int) -> Sequence[ContextSnippet]:
            return index.retrieve(file, snap.text, offset, budget=budget)

        return retrieve

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
            except Exception:
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


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("index update failed: %s", task.exception())


class _BuildProgress:
    """Work-done progress for an index build, if the session's client supports it."""

    def __init__(self, ls: LlmServer | None, title: str) -> None:
        self.ls = ls if ls is not None and ls.client_supports("window.work_done_progress") else None
        self.title = title
        self.token = f"lsp-llm-index-{uuid.uuid4().hex[:8]}"
        self.last_pct = -1

    def begin(self) -> None:
        if self.ls is None:
            return
        with contextlib.suppress(Exception):
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
        with contextlib.suppress(Exception):
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
        with contextlib.suppress(Exception):
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
