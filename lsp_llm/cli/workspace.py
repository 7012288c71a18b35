"""Bodies of the headless commands ``lsp-llm index`` and ``lsp-llm context`` (their argparse
lives in :mod:`lsp_llm.cli.main`). Results go to stdout, progress and errors to stderr; the
return value is the process exit code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lsp_llm.cli.common import line_count, offset_of
from lsp_llm.config import Settings
from lsp_llm.context.index import IndexStats, WorkspaceIndex, find_root
from lsp_llm.context.retrieve import retrieval_budget
from lsp_llm.context.scan import decode_text
from lsp_llm.context.types import ContextSnippet
from lsp_llm.context.working import from_index
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
from lsp_llm.features.completion import DocumentSnapshot, completion_prompt
from lsp_llm.languages import language_from_path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _error(message: str) -> int:
    print(f"lsp-llm: error: {message}", file=sys.stderr)
    return EXIT_USAGE


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (only when stderr is a terminal)."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _build(index: WorkspaceIndex) -> IndexStats:
    with _progress(f"indexing {index.root}") as update:
        return index.build(progress=update)


def _print_stats(stats: IndexStats, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps(stats.as_dict(), sort_keys=True), file=out, flush=True)
        return
    rows = [
        ("root", stats.root),
        ("files", stats.files),
        ("symbols", stats.symbols),
        ("chunks", stats.chunks),
        ("bytes", stats.bytes),
        ("seconds", f"{stats.seconds:.3f}"),
        ("index path", stats.index_path or "(memory only: cache directory not writable)"),
        ("reparsed", stats.reparsed),
        ("reused", stats.reused),
        ("removed", stats.removed),
        ("skipped", stats.skipped),
    ]
    if stats.truncated:
        rows.append(("truncated", "yes (index_max_files reached)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=out)
    out.flush()


def run_index(
    path: Path,
    *,
    watch: bool,
    as_json: bool,
    settings: Settings,
    cache_dir: Path | None,
) -> int:
    """``lsp-llm index PATH [--watch] [--json]``: build or update the index of a root and print
    its stats; with ``watch``, keep it fresh (one stats line per batch) until interrupted."""
    root = path.expanduser()
    if not root.exists():
        return _error(f"{path}: no such directory")
    if not root.is_dir():
        return _error(f"{path}: not a directory")
    index = WorkspaceIndex(root, settings, cache_dir)
    try:
        stats = _build(index)
    except Exception as exc:  # a one-line error and exit code, not a traceback
        print(f"lsp-llm: error: indexing {root} failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _print_stats(stats, as_json, sys.stdout)
    if not watch:
        return EXIT_OK
    print(f"watching {index.root} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        asyncio.run(_watch(index, as_json))
    except KeyboardInterrupt:
        index.flush()
    return EXIT_OK


async def _watch(index: WorkspaceIndex, as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)

    def on_update(paths: list[Path]) -> None:
        stats = index.stats()
        if as_json:
            record: dict[str, Any] = stats.as_dict()
            record["changed"] = [str(p) for p in paths]
            print(json.dumps(record, sort_keys=True), flush=True)
        else:
            print(
                f"updated {len(paths)} path(s): {stats.files} files, {stats.symbols} symbols, "
                f"{stats.chunks} chunks ({stats.seconds:.3f} s)",
                file=sys.stderr,
                flush=True,
            )

    await index.watch(stop, on_update)


def prompt_snippets(
    index: WorkspaceIndex, file: Path, text: str, offset: int
) -> tuple[ContextSnippet, ...]:
    """The snippets the completion prompt for ``offset`` in ``file`` (content ``text``) holds,
    built by the server's own ``completion_prompt`` with :class:`ApproxTokenizer` and the
    prefix-only format (what the embedded model gets)."""
    rel = index.relative(file)
    label = rel or file.name
    snap = DocumentSnapshot(
        uri=file.as_uri(),
        path=label,
        language=language_from_path(str(file)),
        version=0,
        text=text,
    )

    def retriever(snap: DocumentSnapshot, offset: int, budget: int) -> list[ContextSnippet]:
        return from_index(index, file, snap.text, offset, budget)

    prompt = completion_prompt(
        snap,
        offset,
        settings=index.settings,
        tokenizer=ApproxTokenizer(),
        template=None,
        retriever=retriever,
    )
    return prompt.snippets


def cursor_offset(text: str, line: int, col: int) -> int:
    """The character offset of a 1-based line and column (a column past the end of the line
    means its end). Raises ValueError for a line outside the file or a column below 1."""
    lines = line_count(text)
    if line < 1 or line > lines:
        raise ValueError(f"line {line} is outside the file (1-{lines})")
    if col < 1:
        raise ValueError(f"column {col} must be at least 1")
    return offset_of(text, line, col)


def run_context(
    file: Path,
    line: int,
    col: int,
    *,
    as_json: bool,
    settings: Settings,
    cache_dir: Path | None,
    root: Path | None = None,
) -> int:
    """``lsp-llm context FILE:LINE:COL [--json]``: print the snippets a completion prompt for
    that cursor holds, with scores and sources.

    The prompt is built exactly as the server builds it (``completion_prompt``: the same
    retrieval call, :func:`~lsp_llm.context.working.gather`, the same budget and the same
    packing), with the stated approximate tokenizer and no open buffers (a server also offers
    its open buffers and recent edits, and keeps a region's snippets while the cursor stays
    in it). ``root`` defaults to the nearest ancestor with ``.git`` (or another marker).
    """
    path = file.expanduser()
    if not path.is_file():
        return _error(f"{file}: no such file")
    try:
        text = decode_text(path.read_bytes())
    except OSError as exc:
        return _error(f"{file}: cannot read ({exc})")
    if text is None:
        return _error(f"{file}: binary or not UTF-8")
    try:
        offset = cursor_offset(text, line, col)
    except ValueError as exc:
        return _error(f"{file}: {exc}")
    workspace = (root.expanduser() if root is not None else find_root(path)).resolve()
    if not workspace.is_dir():
        return _error(f"{root}: not a directory")
    index = WorkspaceIndex(workspace, settings, cache_dir)
    try:
        _build(index)
    except Exception as exc:  # a one-line error and exit code, not a traceback
        print(f"lsp-llm: error: indexing {workspace} failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    used_budget = retrieval_budget(settings)
    snippets = prompt_snippets(index, path.resolve(), text, offset)
    rel = index.relative(path)
    if as_json:
        record = {
            "file": str(path),
            "path": rel,
            "line": line,
            "col": col,
            "offset": offset,
            "root": str(index.root),
            "index_path": str(index.index_path) if index.index_path else None,
            "budget": used_budget,
            "snippets": [
                {
                    "path": s.path,
                    "line": s.start_line + 1,
                    "start_line": s.start_line,
                    "score": s.score,
                    "source": s.source,
                    "symbol": s.symbol,
                    "text": s.text,
                }
                for s in snippets
            ],
        }
        print(json.dumps(record, indent=2))
        return EXIT_OK
    print(
        f"# context for {rel or path}:{line}:{col} in {index.root}: "
        f"{len(snippets)} snippet(s), budget {used_budget}"
    )
    if not settings.retrieval:
        print("# retrieval is disabled (retrieval = false)")
    for s in snippets:
        label = f"  {s.symbol}" if s.symbol else ""
        print(f"\n--- {s.source} score={s.score:.4f} {s.path}:{s.start_line + 1}{label}")
        print(s.text)
    return EXIT_OK
