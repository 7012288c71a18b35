"""The real watcher (``watchfiles``) keeps the index fresh.

Timing-tolerant: every expectation is polled for with a generous deadline, and the watcher is
proven live (a canary file is seen) before the test starts to change things.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lsp_llm.config import Settings
from lsp_llm.context.index import WorkspaceIndex
from lsp_llm.context.watch import WAITING, WATCHING, WatchStopped, watch_changes

from .conftest import SECRET_VALUE, write

pytestmark = [pytest.mark.watch, pytest.mark.timeout(120)]

DEADLINE_S = 30.0


async def until(
    predicate: Callable[[], bool], what: str, poke: Callable[[], object] | None = None
) -> None:
    """Wait until ``predicate()`` holds; ``poke`` (if given) is repeated every second."""
    start = last_poke = time.monotonic()
    if poke is not None:
        poke()
    while not predicate():
        now = time.monotonic()
        if now - start > DEADLINE_S:
            raise AssertionError(f"watcher never saw: {what}")
        if poke is not None and now - last_poke > 1.0:
            poke()
            last_poke = now
        await asyncio.sleep(0.05)


async def start_watching(
    index: WorkspaceIndex, root: Path
) -> tuple[asyncio.Event, asyncio.Task[None], list[list[Path]]]:
    await asyncio.to_thread(index.build)
    stop = asyncio.Event()
    batches: list[list[Path]] = []
    task = asyncio.create_task(index.watch(stop, batches.append, debounce_ms=100))
    counter = iter(range(10_000))

    def canary() -> None:
        write(root, "canary.py", f"def canary_alive():\n    return {next(counter)}\n")

    await until(lambda: bool(index.lookup_symbol("canary_alive")), "the canary", poke=canary)
    return stop, task, batches


async def stop_watching(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, timeout=DEADLINE_S)


async def test_write_edit_rename_delete(repo: Path, settings: Settings, cache: Path) -> None:
    index = WorkspaceIndex(repo, settings, cache)
    stop, task, batches = await start_watching(index, repo)
    try:

        def paths_of(name: str) -> list[str]:
            return [s.path for s in index.lookup_symbol(name)]

        # write
        write(repo, "lib/new_mod.py", "def watched_new(a):\n    return a\n")
        await until(lambda: paths_of("watched_new") == ["lib/new_mod.py"], "a new file")

        # edit
        write(repo, "lib/new_mod.py", "def watched_edited(a):\n    return a * 2\n")
        await until(
            lambda: (
                paths_of("watched_edited") == ["lib/new_mod.py"] and not paths_of("watched_new")
            ),
            "an edit",
        )

        # rename (a deletion plus an addition)
        os.rename(repo / "lib/new_mod.py", repo / "lib/renamed.py")
        await until(lambda: paths_of("watched_edited") == ["lib/renamed.py"], "a rename")

        # delete
        (repo / "lib/renamed.py").unlink()
        await until(lambda: not paths_of("watched_edited"), "a deletion")

        # secrets and ignored files written meanwhile never get in
        write(repo, ".env.production", f"KEY={SECRET_VALUE}\n")
        write(repo, "node_modules/pkg/index.js", "function vendored_fn() {}\n")
        write(repo, "lib/after.py", "def written_after():\n    pass\n")
        await until(lambda: bool(paths_of("written_after")), "a file after the secret")
        assert ".env.production" not in index.snapshot().files
        assert not paths_of("vendored_fn")

        # the new file is retrievable as a cross-file definition
        text = "from lib.after import written_after\nwritten_after("
        snippets = index.retrieve(repo / "app/main.py", text, len(text))
        # (first: the file's other imports, here compute_area from its indexed copy, follow)
        assert next(s.symbol for s in snippets if s.source == "definition") == "written_after"

        # an ignore-file change applies the new rules
        write(repo, ".gitignore", "lib/\n")
        await until(lambda: not paths_of("written_after"), "a .gitignore change")
        assert batches and all(isinstance(p, Path) for batch in batches for p in batch)
    finally:
        await stop_watching(stop, task)

    # Stopping flushed the store: a restart re-parses nothing.
    again = WorkspaceIndex(repo, settings, cache)
    stats = await asyncio.to_thread(again.build)
    assert stats.reparsed == 0
    # On the event loop the deferred part of the store loads in a thread, without blocking.
    await until(lambda: bool(again.lookup_symbol("canary_alive")), "the deferred index load")
    assert not again.lookup_symbol("written_after")


async def test_a_file_storm_does_not_stall_the_loop(
    tmp_path: Path, settings: Settings, cache: Path
) -> None:
    root = tmp_path / "storm"
    write(root, "seed.py", "x = 1\n")
    index = WorkspaceIndex(root, settings, cache)
    stop, task, _ = await start_watching(index, root)
    max_gap = 0.0
    ticking = True

    async def ticker() -> None:
        nonlocal max_gap
        last = time.monotonic()
        while ticking:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            max_gap = max(max_gap, now - last)
            last = now

    tick_task = asyncio.create_task(ticker())
    try:
        body = "".join(f"    value_{j} = arg + {j}\n" for j in range(30))

        def storm() -> None:  # like a `git checkout` of 300 files
            for i in range(300):
                write(root, f"pkg{i % 10}/mod_{i}.py", f"def storm_{i}(arg):\n{body}")

        await asyncio.to_thread(storm)
        await until(
            lambda: (
                all(index.lookup_symbol(f"storm_{i}") for i in (0, 150, 299))
                and index.stats().files >= 302
            ),
            "300 new files",
        )
    finally:
        ticking = False
        await tick_task
        await stop_watching(stop, task)
    # Parsing ran in a worker thread: the loop kept ticking (a generous bound for busy CI).
    assert max_gap < 2.0, f"event loop stalled for {max_gap:.2f} s"


async def test_a_deleted_root_is_waited_for_and_followed_again(
    tmp_path: Path, settings: Settings, cache: Path
) -> None:
    root = tmp_path / "ws"
    write(root, "seed.py", "def seeded():\n    pass\n")
    index = WorkspaceIndex(root, settings, cache)
    await asyncio.to_thread(index.build)
    stop = asyncio.Event()
    states: list[str] = []
    task = asyncio.create_task(index.watch(stop, on_state=states.append, debounce_ms=100))
    try:
        await until(lambda: states[-1:] == [WATCHING], "the watcher registered")

        shutil.rmtree(root)
        await until(lambda: states[-1:] == [WAITING], "the root gone")
        assert index.stats().files == 0 and not index.lookup_symbol("seeded")

        write(root, "back.py", "def came_back():\n    pass\n")  # re-created with a file in it
        await until(lambda: bool(index.lookup_symbol("came_back")), "the files of the new root")
        await until(lambda: states[-1:] == [WATCHING], "the new root watched")
        write(root, "later.py", "def written_later():\n    pass\n")
        await until(lambda: bool(index.lookup_symbol("written_later")), "a later file")
        assert not task.done()
    finally:
        await stop_watching(stop, task)


async def test_a_replaced_root_is_followed_again(
    tmp_path: Path, settings: Settings, cache: Path
) -> None:
    """``rm -rf root && mkdir root``: the new directory is a different inode, which inotify
    never reports on; the watcher notices it, catches up and watches the new one."""
    root = tmp_path / "ws"
    write(root, "seed.py", "def seeded():\n    pass\n")
    index = WorkspaceIndex(root, settings, cache)
    stop, task, _ = await start_watching(index, root)
    try:
        shutil.rmtree(root)
        root.mkdir()
        write(root, "fresh.py", "def fresh():\n    pass\n")
        await until(
            lambda: bool(index.lookup_symbol("fresh")) and not index.lookup_symbol("seeded"),
            "the replaced root's files",
        )
        write(root, "later.py", "def written_later():\n    pass\n")
        await until(lambda: bool(index.lookup_symbol("written_later")), "a later file")
    finally:
        await stop_watching(stop, task)


async def test_watch_changes_raises_when_the_root_goes(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    stop = asyncio.Event()

    async def consume() -> None:
        async for _ in watch_changes(root, stop, lambda change, path: True, idle_ms=5000):
            if root.exists():
                shutil.rmtree(root)

    with pytest.raises(WatchStopped, match="deleted or moved") as caught:
        await asyncio.wait_for(consume(), DEADLINE_S)
    assert caught.value.gone
    with pytest.raises(WatchStopped, match="does not exist"):
        await asyncio.wait_for(consume(), DEADLINE_S)
