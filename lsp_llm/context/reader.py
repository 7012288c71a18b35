"""Reading and parsing workspace files for the index: in the calling thread, or, for large
batches (a cold build), in a pool of worker processes.

Parsing is CPU-bound Python and C work under the GIL, so threads would not help; a cold build
of thousands of files spreads it over the machine's cores with a
``concurrent.futures.ProcessPoolExecutor`` (``spawn`` context: safe in a process with threads,
such as the language server). Workers read, hash, decode and parse the files and compute the
retrieval vocabulary; the results come back in scan order. The pool lives for one build only.
If it cannot be started or breaks, the build goes on in the calling thread (logged).

As with any ``spawn`` pool, a script that builds an index must keep its top-level code under
``if __name__ == "__main__":`` (the workers import the main module); the ``lsp-llm`` commands
and the server do.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from lsp_llm.context import scan as scan_mod
from lsp_llm.context.parse import ParseFn, parse_file
from lsp_llm.context.store import FileEntry, content_digest

log = logging.getLogger(__name__)

POOL_MIN_FILES = 200
"""A build reads files in worker processes only when at least this many need reading (fewer
are quicker in-thread than the few hundred milliseconds it takes to start the workers)."""
BATCH_FILES = 16
"""Files per task sent to a worker."""
MAX_WORKERS = 8

Unchanged = tuple[int, bytes]
"""``(size, digest)``: the content is the same as the old entry's (only ``mtime`` moved)."""
ReadResult = FileEntry | Unchanged | None
"""A new entry, :data:`Unchanged`, or None (unreadable or over the size limit)."""
Task = tuple[str, str, int, "bytes | None"]
"""``(absolute path, relative path, mtime_ns, digest of the old entry or None)``."""


def worker_count() -> int:
    """The cores this process may use (its CPU affinity), at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def read_entry(
    path: Path | str,
    rel: str,
    mtime_ns: int,
    old_digest: bytes | None,
    limit: int,
    parse: ParseFn,
) -> ReadResult:
    """Read one file and, unless its content is unchanged, parse it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    digest = content_digest(data)
    if old_digest is not None and old_digest == digest:
        return (len(data), digest)
    text = scan_mod.decode_text(data)
    if text is None:
        return FileEntry(
            rel=rel, mtime_ns=mtime_ns, size=len(data), digest=digest, language="", text="",
            binary=True,
        )  # fmt: skip
    return parsed_entry(rel, mtime_ns, len(data), digest, text, parse)


def parsed_entry(
    rel: str, mtime_ns: int, size: int, digest: bytes, text: str, parse: ParseFn
) -> FileEntry:
    """The index entry of a text file: ``text`` parsed for symbols, imports and chunks."""
    result = parse(rel, text)
    return FileEntry(
        rel=rel,
        mtime_ns=mtime_ns,
        size=size,
        digest=digest,
        language=result.language,
        text=text,
        symbols=result.symbols,
        imports=result.imports,
        chunks=result.chunks,
    )


def _warm() -> int:
    """Run once per worker at start: the imports and the commonest grammar."""
    from lsp_llm.treesitter import parser_for

    parser_for("python")
    return os.getpid()


def _read_batch(
    tasks: Sequence[Task], limit: int
) -> list[tuple[ReadResult, frozenset[str] | None]]:
    """Worker side: read and parse a batch; also each new text file's vocabulary."""
    from lsp_llm.context.retrieve import vocabulary

    out: list[tuple[ReadResult, frozenset[str] | None]] = []
    for path, rel, mtime_ns, old in tasks:
        result = read_entry(path, rel, mtime_ns, old, limit, parse_file)
        words = None
        if isinstance(result, FileEntry) and not result.binary and result.chunks:
            words = vocabulary(result.text)
        out.append((result, words))
    return out


class ParsePool:
    """Worker processes for one build. Use as a context manager; :meth:`start` early so that
    the workers start while the caller scans the tree."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or worker_count()
        self._executor: ProcessPoolExecutor | None = None
        self._warming: list[Future[int]] = []
        self.failed = False

    def start(self) -> bool:
        """Start the workers (idempotent). False when no pool is possible."""
        if self._executor is not None:
            return True
        if self.failed or self.workers < 2:
            return False
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # We are a worker re-running an unguarded main script: fail like multiprocessing
            # does, so the parent falls back at once instead of every worker building too.
            raise RuntimeError(
                "lsp-llm: WorkspaceIndex.build() ran while a worker process imported the main "
                "module; guard the script's code with `if __name__ == '__main__':`"
            )
        try:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
            self._warming = [self._executor.submit(_warm) for _ in range(self.workers)]
        except Exception as exc:  # no processes here (sandbox, no /dev/shm...): in-thread; logged
            log.warning("cannot start index worker processes (%s); parsing in-thread", exc)
            self.failed = True
            self.close()
            return False
        return True

    def read(
        self, tasks: Sequence[Task], limit: int, progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[ReadResult, frozenset[str] | None]]:
        """Results in the order of ``tasks``. Raises if the pool breaks (the caller falls
        back to reading in-thread)."""
        if not self.start() or self._executor is None:
            raise RuntimeError("no worker pool")
        executor = self._executor
        futures = [
            executor.submit(_read_batch, tasks[i : i + BATCH_FILES], limit)
            for i in range(0, len(tasks), BATCH_FILES)
        ]
        done = 0
        for future in futures:
            batch = future.result()
            done += len(batch)
            if progress is not None:
                progress(done)
            yield from batch

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
