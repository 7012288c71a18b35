"""File-system changes of a workspace root, in batches, through ``watchfiles``.

``watchfiles`` reports a rename as a deletion plus an addition and coalesces bursts (a
``git checkout`` of hundreds of files) into one batch per ``debounce_ms``; a batch is yielded
once ``step_ms`` pass without a new event (30 ms: an editor's save is a few events within a
millisecond, and every millisecond here is save-to-retrievable latency). This module only
turns those batches into sorted, de-duplicated path lists; applying them (blocking work) is
:meth:`lsp_llm.context.index.WorkspaceIndex.update_paths`, which the caller runs off the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)

WatchFilter = Callable[[watchfiles.Change, str], bool]


async def watch_changes(
    root: Path,
    stop: asyncio.Event,
    watch_filter: WatchFilter,
    *,
    debounce_ms: int = 400,
    step_ms: int = 30,
    force_polling: bool | None = None,
    idle_ms: int | None = None,
) -> AsyncIterator[list[Path]]:
    """Yield batches of changed paths under ``root`` until ``stop`` is set; with ``idle_ms``,
    also yield an empty batch after that long without changes (a chance to save).

    A root that cannot be watched (removed, too many inotify watches) logs a warning and ends
    the iteration instead of raising.
    """
    try:
        async for changes in watchfiles.awatch(
            root,
            watch_filter=watch_filter,
            stop_event=stop,
            debounce=debounce_ms,
            step=step_ms,
            force_polling=force_polling,
            recursive=True,
            ignore_permission_denied=True,
            rust_timeout=idle_ms,
            yield_on_timeout=idle_ms is not None,
        ):
            paths = sorted({Path(path) for _, path in changes})
            if paths or idle_ms is not None:
                yield paths
    except (OSError, RuntimeError) as exc:
        log.warning("cannot watch %s (%s); the index will not follow changes", root, exc)
