"""File-system changes of a workspace root, in batches, through ``watchfiles``.

``watchfiles`` reports a rename as a deletion plus an addition and coalesces bursts (a
``git checkout`` of hundreds of files) into one batch per ``debounce_ms``; a batch is yielded
once ``step_ms`` pass without a new event (30 ms: an editor's save is a few events within a
millisecond, and every millisecond here is save-to-retrievable latency). This module only
turns those batches into sorted, de-duplicated path lists; applying them (blocking work) is
:meth:`lsp_llm.context.index.WorkspaceIndex.update_paths`, which the caller runs off the loop.

The root itself is checked too. inotify watches inodes: once the root directory is deleted,
moved away or replaced (``rm -rf root && mkdir root``), the watcher reports nothing ever again
and raises nothing either. So the root's own deletion event is kept, every ``ROOT_CHECK_MS``
(and with every batch) the root is stat-checked against the directory that was registered,
and :func:`watch_changes` raises :class:`WatchStopped` when it is no longer there;
:func:`wait_for_root` then waits for it to come back, and the caller starts a new watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)

WatchFilter = Callable[[watchfiles.Change, str], bool]

ROOT_CHECK_MS = 1000
"""How often a quiet watcher checks that its root is still the directory it registered."""
ROOT_POLL_S = 0.5
"""How often a root that went away is looked for again (one ``stat``)."""

WATCHING = "watching"
"""Watcher states, as ``lspLlm/status`` shows them (a failure reads ``stopped: <reason>``)."""
STARTING = "starting"
WAITING = "waiting for the folder to reappear"
STOPPED = "stopped"


class WatchStopped(Exception):
    """The watcher ended before it was told to. ``gone``: because its root went away (it may
    come back); otherwise the root could not be watched (too many inotify watches, ...)."""

    def __init__(self, reason: str, *, gone: bool) -> None:
        super().__init__(reason)
        self.gone = gone


def _identity(root: Path) -> tuple[int, int] | None:
    """The root directory's (device, inode), or None when it is not a directory now."""
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _gone(identity: tuple[int, int] | None) -> WatchStopped:
    if identity is None:
        return WatchStopped("the folder was deleted or moved away", gone=True)
    return WatchStopped("the folder was replaced", gone=True)


async def watch_changes(
    root: Path,
    stop: asyncio.Event,
    watch_filter: WatchFilter,
    *,
    debounce_ms: int = 400,
    step_ms: int = 30,
    force_polling: bool | None = None,
    idle_ms: int | None = None,
    check_ms: int = ROOT_CHECK_MS,
) -> AsyncIterator[list[Path]]:
    """Yield batches of changed paths under ``root`` until ``stop`` is set. With ``idle_ms``,
    also yield an empty batch as soon as the watcher is registered (within ``check_ms``: a
    caller catches up on what changed before) and after ``idle_ms`` without changes (a chance
    to save).

    Raises :class:`WatchStopped` when ``root`` is deleted, moved away or replaced, or cannot be
    watched; it never ends silently while ``stop`` is unset.
    """
    identity = _identity(root)
    if identity is None:
        raise WatchStopped("the folder does not exist", gone=True)
    root_text = str(root)

    def accept(change: watchfiles.Change, path: str) -> bool:
        # The root's own events are kept: its deletion is the last thing inotify reports.
        return path == root_text or watch_filter(change, path)

    timeout_ms = check_ms if idle_ms is None else min(check_ms, idle_ms)
    registered = False
    quiet_since = time.monotonic()
    changes_iter = watchfiles.awatch(
        root,
        watch_filter=accept,
        stop_event=stop,
        debounce=debounce_ms,
        step=step_ms,
        force_polling=force_polling,
        recursive=True,
        ignore_permission_denied=True,
        rust_timeout=timeout_ms,
        yield_on_timeout=True,
    )
    try:
        async with contextlib.aclosing(changes_iter):
            async for changes in changes_iter:
                current = _identity(root)
                # The same inode number may come back at once for a new directory: the root's
                # own deletion event says it is another one.
                deleted = (watchfiles.Change.deleted, root_text) in changes
                if deleted or current != identity:
                    raise _gone(current)
                paths = sorted({Path(path) for _, path in changes if path != root_text})
                now = time.monotonic()
                if paths:
                    registered, quiet_since = True, now
                    yield paths
                elif idle_ms is not None and (
                    not registered or (now - quiet_since) * 1000 >= idle_ms
                ):
                    registered, quiet_since = True, now
                    yield []
    except (OSError, RuntimeError) as exc:
        current = _identity(root)
        if current != identity:
            raise _gone(current) from exc
        raise WatchStopped(f"cannot watch it ({exc})", gone=False) from exc
    if not stop.is_set():  # watchfiles ended on its own: never silently
        current = _identity(root)
        raise (
            _gone(current) if current != identity else WatchStopped("the watcher ended", gone=False)
        )


async def wait_for_root(
    root: Path, stop: asyncio.Event, *, interval_s: float = ROOT_POLL_S
) -> bool:
    """Wait until ``root`` is a directory again (True) or ``stop`` is set (False)."""
    while not stop.is_set():
        if await asyncio.to_thread(_identity, root) is not None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
    return False
