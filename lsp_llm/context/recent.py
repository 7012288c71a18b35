"""What the user is working on: recently edited ranges and recently visited buffers.

Both work without a workspace index (before it is ready, or for files outside the workspace):
they hold only what the editor sent. Pure data structures, bounded in size, thread-safe:

* :class:`EditRing`: the last :data:`EDIT_RING_SIZE` edited ranges (from ``didChange``), as the
  lines around each edit right after it; an edit that touches a range already in the ring
  (same file, overlapping or adjacent lines) replaces it, so typing through a function keeps one
  entry;
* :class:`OpenBuffers`: the last :data:`MAX_BUFFERS` opened or visited buffers, whose windows
  of :data:`WINDOW_LINES` lines are ranked by Jaccard similarity of their identifier sets to the
  text around the cursor (Copilot's neighbouring tabs);
* :func:`dedupe`: drops candidates that the prompt already holds (the current file's window,
  retrieved snippets) and repeats among themselves.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence

from lsp_llm.context.types import ContextSnippet

EDIT_RING_SIZE = 16
EDIT_CONTEXT_LINES = 2
"""Lines kept above and below an edited range."""
EDIT_MAX_LINES = 24
MAX_BUFFERS = 20
MAX_BUFFER_CHARS = 200_000
"""A longer buffer is kept only up to this many characters."""
WINDOW_LINES = 20
MIN_JACCARD = 0.1
QUERY_LINES = 20

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifiers(text: str) -> frozenset[str]:
    """The distinct identifiers of ``text`` longer than one character."""
    return frozenset(w for w in _IDENT_RE.findall(text) if len(w) > 1)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b| (0.0 for two empty sets)."""
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


@dataclasses.dataclass(frozen=True, slots=True)
class EditedRange:
    path: str
    start_line: int
    end_line: int
    """Exclusive."""
    text: str
    """The lines of the range right after the edit (with context lines)."""
    at: float


class EditRing:
    """The most recently edited ranges, newest first (see the module docstring)."""

    def __init__(self, capacity: int = EDIT_RING_SIZE) -> None:
        self._ranges: deque[EditedRange] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ranges)

    def record(self, path: str, text: str, start_line: int, end_line: int, now: float) -> None:
        """An edit of ``path`` (whose text after the edit is ``text``) changed the lines
        ``start_line`` up to ``end_line`` (exclusive; as many lines as the new text has)."""
        lines = text.split("\n")
        start = max(0, start_line - EDIT_CONTEXT_LINES)
        end = min(len(lines), max(end_line, start_line + 1) + EDIT_CONTEXT_LINES)
        with self._lock:
            for old in list(self._ranges):
                if old.path == path and old.start_line <= end and start <= old.end_line:
                    self._ranges.remove(old)
                    start, end = min(start, old.start_line), max(end, old.end_line)
            if end - start > EDIT_MAX_LINES:  # keep the lines around this edit
                start = max(start, start_line - EDIT_MAX_LINES // 2)
                end = min(end, start + EDIT_MAX_LINES)
            snippet = "\n".join(lines[start:end]).rstrip()
            self._ranges.appendleft(EditedRange(path, start, end, snippet, now))

    def forget(self, path: str) -> None:
        with self._lock:
            for old in [r for r in self._ranges if r.path == path]:
                self._ranges.remove(old)

    def ranges(self) -> list[EditedRange]:
        with self._lock:
            return list(self._ranges)

    def snippets(self, *, exclude: str | None = None, limit: int = 4) -> list[ContextSnippet]:
        """The newest edited ranges of other files than ``exclude``, as ``recent`` snippets."""
        out: list[ContextSnippet] = []
        for r in self.ranges():
            if r.path != exclude and r.text.strip():
                score = 1.0 / (1 + len(out))
                out.append(
                    ContextSnippet(
                        path=r.path,
                        text=r.text,
                        score=score,
                        source="recent",
                        start_line=r.start_line,
                    )
                )
            if len(out) >= limit:
                break
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class _Buffer:
    text: str
    windows: tuple[tuple[int, frozenset[str]], ...]
    """(first line, identifiers) of each window (half-overlapping)."""


def _windows(text: str) -> tuple[tuple[int, frozenset[str]], ...]:
    lines = text.split("\n")
    step = max(1, WINDOW_LINES // 2)
    return tuple(
        (start, identifiers("\n".join(lines[start : start + WINDOW_LINES])))
        for start in range(0, max(1, len(lines) - step), step)
    )


class OpenBuffers:
    """Recently opened or visited buffers (an LRU), and their windows most like the cursor's."""

    def __init__(self, capacity: int = MAX_BUFFERS) -> None:
        self.capacity = capacity
        self._buffers: OrderedDict[str, _Buffer] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buffers)

    def visit(self, path: str, text: str) -> None:
        """``path`` was opened or shown with ``text`` (the most recent one is kept)."""
        text = text[:MAX_BUFFER_CHARS]
        with self._lock:
            old = self._buffers.get(path)
        buffer = old if old is not None and old.text == text else _Buffer(text, _windows(text))
        with self._lock:
            self._buffers[path] = buffer
            self._buffers.move_to_end(path)
            while len(self._buffers) > self.capacity:
                self._buffers.popitem(last=False)

    def close(self, path: str) -> None:
        with self._lock:
            self._buffers.pop(path, None)

    def similar(
        self, text: str, offset: int, *, exclude: str | None = None, limit: int = 2
    ) -> list[ContextSnippet]:
        """Windows of the buffers (not ``exclude``) ranked by Jaccard similarity to the
        :data:`QUERY_LINES` lines before ``offset`` in ``text``; at most one per buffer,
        none below :data:`MIN_JACCARD`."""
        before = text[:offset].split("\n")[-QUERY_LINES:]
        query = identifiers("\n".join(before))
        if not query:
            return []
        with self._lock:
            buffers = list(self._buffers.items())
        scored = []
        for path, buffer in buffers:
            if path == exclude:
                continue
            best = max(
                ((jaccard(query, words), start) for start, words in buffer.windows),
                key=lambda pair: (pair[0], -pair[1]),
                default=(0.0, 0),
            )
            if best[0] >= MIN_JACCARD:
                scored.append((best[0], path, best[1], buffer.text))
        scored.sort(key=lambda item: (-item[0], item[1]))
        out = []
        for score, path, start, buffer_text in scored[:limit]:
            lines = buffer_text.split("\n")[start : start + WINDOW_LINES]
            out.append(
                ContextSnippet(
                    path=path,
                    text="\n".join(lines).rstrip(),
                    score=round(score, 4),
                    source="similar",
                    start_line=start,
                )
            )
        return out


def dedupe(
    candidates: Iterable[ContextSnippet], held: Sequence[ContextSnippet], prompt_text: str = ""
) -> list[ContextSnippet]:
    """``candidates`` less those the prompt already holds: a candidate whose text (stripped)
    is inside a held snippet of the same file, inside ``prompt_text`` (the current file's
    window), or inside an earlier candidate of the same file."""
    kept: list[ContextSnippet] = []
    for candidate in candidates:
        body = candidate.text.strip()
        if not body or (prompt_text and body in prompt_text):
            continue
        if any(s.path == candidate.path and body in s.text for s in (*held, *kept)):
            continue
        kept.append(candidate)
    return kept
