"""What the user is working on: recently edited ranges and recently visited buffers.

Both work without a workspace index (before it is ready, or for files outside the workspace):
they hold only what the editor sent. Pure data structures, bounded in size, thread-safe, cheap
to update (the server updates them on the event loop; :mod:`.working` reads them):

* :class:`EditRing`: the last :data:`EDIT_RING_SIZE` edited ranges (from ``didChange``), as the
  lines around each edit right after it; an edit that touches a range already in the ring
  (same file, overlapping or adjacent lines) replaces it, so typing through a function keeps one
  entry;
* :class:`OpenBuffers`: the last :data:`MAX_BUFFERS` opened or visited buffers, whose windows
  of :data:`WINDOW_LINES` lines are ranked by Jaccard similarity of their identifier sets to the
  text around the cursor (Copilot's neighbouring tabs);
* :meth:`OpenBuffers.definitions`: the block that defines a name the cursor may need
  (:func:`wanted_names`) in an open buffer;
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

DEFINITION_LINES = 16
"""Lines of an open buffer's definition shown at most (its block, while indented deeper)."""

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEF_RE = re.compile(
    r"^[ \t]*(?:(?:export|default|pub(?:\([^)]*\))?|public|private|protected|static|async|"
    r"abstract|final|declare|inline|extern)[ \t]+)*"
    r"(?:def|class|function\*?|fn|func|interface|type|struct|enum|trait|const|let|var|val)"
    r"[ \t]+([A-Za-z_$][\w$]*)"
    r"|^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)",
    re.MULTILINE,
)
"""A line that defines a name: a keyword form (most languages) or a top-level assignment."""
_IMPORT_LINE_RE = re.compile(
    r"^[ \t]*(?:from[ \t]+\S+[ \t]+import\b|import\b|#include\b|use\b|require\b)[^\n]*",
    re.MULTILINE,
)
IMPORT_SCAN_CHARS = 8_000
"""The head of the file searched for import lines (names it imports are wanted names)."""


def changed_span(before: str, after: str) -> tuple[int, int, int]:
    """``(start, end_before, end_after)``: ``before[start:end_before]`` became
    ``after[start:end_after]`` (the longest common prefix and suffix are left out).

    Binary search over slice comparisons (``memcmp``), so a keystroke in a large buffer costs
    microseconds, not a Python loop over its characters."""
    limit = min(len(before), len(after))
    lo, hi = 0, limit  # before[:lo] == after[:lo]; the common prefix is < hi + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if before[lo:mid] == after[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    start = lo
    room = limit - start
    lo, hi = 0, room  # the common suffix (not overlapping the prefix)
    nb, na = len(before), len(after)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if before[nb - mid : nb - lo] == after[na - mid : na - lo]:
            lo = mid
        else:
            hi = mid - 1
    return start, nb - lo, na - lo


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
        self._record(path, text.split("\n"), 0, start_line, end_line, now)

    def record_change(self, path: str, after: str, start: int, end: int, now: float) -> None:
        """An edit of ``path`` left ``after[start:end]`` as the new text (offsets, e.g. from
        :func:`changed_span`). Reads only the lines near the edit (plus two ``str.count``)."""
        start = max(0, min(start, len(after)))
        end = max(start, min(end, len(after)))
        start_line = after.count("\n", 0, start)
        end_line = start_line + after.count("\n", start, end) + 1
        reach = EDIT_MAX_LINES + EDIT_CONTEXT_LINES + 1
        lo = start
        for _ in range(reach):
            lo = after.rfind("\n", 0, lo)
            if lo < 0:
                break
        first = 0 if lo < 0 else lo + 1
        base = start_line - after.count("\n", first, start)
        hi = start
        for _ in range(reach + 1):
            hi = after.find("\n", hi + 1)
            if hi < 0:
                hi = len(after)
                break
        self._record(path, after[first:hi].split("\n"), base, start_line, end_line, now)

    def _record(
        self, path: str, lines: list[str], base: int, start_line: int, end_line: int, now: float
    ) -> None:
        """``lines`` are the file's lines from line ``base`` on (all of them, or enough around
        the edit: a range never reaches more than :data:`EDIT_MAX_LINES` from it)."""
        start = max(0, start_line - EDIT_CONTEXT_LINES)
        end = min(base + len(lines), max(end_line, start_line + 1) + EDIT_CONTEXT_LINES)
        with self._lock:
            for old in list(self._ranges):
                if old.path == path and old.start_line <= end and start <= old.end_line:
                    self._ranges.remove(old)
                    start, end = min(start, old.start_line), max(end, old.end_line)
            if end - start > EDIT_MAX_LINES:  # keep the lines around this edit
                start = max(start, start_line - EDIT_MAX_LINES // 2)
                end = min(end, start + EDIT_MAX_LINES)
            start, end = max(start, base), min(end, base + len(lines))
            snippet = "\n".join(lines[start - base : end - base]).rstrip()
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


class _Buffer:
    """One buffer's text; its lines, windows and definitions are computed on first use (off
    the event loop: by the retrieval that needs them), never on ``visit``."""

    __slots__ = ("_defs", "_lines", "_windows", "text", "version")

    def __init__(self, text: str, version: int) -> None:
        self.text = text
        self.version = version
        self._lines: list[str] | None = None
        self._windows: tuple[tuple[int, frozenset[str]], ...] | None = None
        self._defs: dict[str, int] | None = None

    @property
    def lines(self) -> list[str]:
        lines = self._lines
        if lines is None:
            lines = self._lines = self.text.split("\n")
        return lines

    @property
    def windows(self) -> tuple[tuple[int, frozenset[str]], ...]:
        """(first line, identifiers) of each window (half-overlapping)."""
        windows = self._windows
        if windows is None:
            windows = self._windows = _windows(self.lines)
        return windows

    @property
    def definitions(self) -> dict[str, int]:
        """Names the buffer defines (see :data:`_DEF_RE`) and the line of the first one."""
        defs = self._defs
        if defs is None:
            defs = {}
            for match in _DEF_RE.finditer(self.text):
                name = match.group(1) or match.group(2)
                if name and name not in defs:
                    defs[name] = self.text.count("\n", 0, match.start())
            self._defs = defs
        return defs


def _windows(lines: list[str]) -> tuple[tuple[int, frozenset[str]], ...]:
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
        self._versions = 0

    def __len__(self) -> int:
        return len(self._buffers)

    def __contains__(self, path: object) -> bool:
        return path in self._buffers

    def visit(self, path: str, text: str) -> None:
        """``path`` was opened or shown with ``text`` (the most recent one is kept). O(1):
        windows are computed when :meth:`similar` first needs them."""
        text = text[:MAX_BUFFER_CHARS]
        with self._lock:
            old = self._buffers.get(path)
            if old is None or old.text != text:
                self._versions += 1
                old = _Buffer(text, self._versions)
            self._buffers[path] = old
            self._buffers.move_to_end(path)
            while len(self._buffers) > self.capacity:
                self._buffers.popitem(last=False)

    def version(self, path: str) -> int | None:
        """A number that changes whenever the buffer's text does (None if not held)."""
        with self._lock:
            buffer = self._buffers.get(path)
        return buffer.version if buffer is not None else None

    def close(self, path: str) -> None:
        with self._lock:
            self._buffers.pop(path, None)

    def similar(
        self, text: str, offset: int, *, exclude: str | None = None, limit: int = 2
    ) -> list[ContextSnippet]:
        """Windows of the buffers (not ``exclude``) ranked by Jaccard similarity to the
        :data:`QUERY_LINES` lines before ``offset`` in ``text``; at most one per buffer,
        none below :data:`MIN_JACCARD`."""
        query = identifiers(lines_before(text, offset, QUERY_LINES))
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
                scored.append((best[0], path, best[1], buffer))
        scored.sort(key=lambda item: (-item[0], item[1]))
        out = []
        for score, path, start, buffer in scored[:limit]:
            lines = buffer.lines[start : start + WINDOW_LINES]
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

    def definitions(
        self, names: Sequence[str], *, exclude: str | None = None, limit: int = 3
    ) -> list[ContextSnippet]:
        """Definitions of ``names`` (most wanted first) in the buffers other than ``exclude``
        (most recent first): the defining line and its indented block, at most
        :data:`DEFINITION_LINES` lines, as ``definition`` snippets."""
        with self._lock:
            buffers = [(p, b) for p, b in reversed(self._buffers.items()) if p != exclude]
        out: list[ContextSnippet] = []
        for rank, name in enumerate(names):
            for path, buffer in buffers:
                line = buffer.definitions.get(name)
                if line is None:
                    continue
                out.append(
                    ContextSnippet(
                        path=path,
                        text=_block(buffer.lines, line),
                        score=round(1.0 / (1 + rank), 4),
                        source="definition",
                        start_line=line,
                        symbol=name,
                    )
                )
                break
            if len(out) >= limit:
                break
        return out


def _block(lines: list[str], first: int) -> str:
    """The line ``first`` and the lines below it that are blank or indented deeper (a
    definition's body), at most :data:`DEFINITION_LINES` of them."""
    head = lines[first]
    depth = len(head) - len(head.lstrip(" \t"))
    end = first + 1
    while end < len(lines) and end - first < DEFINITION_LINES:
        line = lines[end]
        if line.strip() and len(line) - len(line.lstrip(" \t")) <= depth:
            if line.strip()[0] in ")]}":  # the closing bracket of a C-like block
                end += 1
            break
        end += 1
    return "\n".join(lines[first:end]).rstrip()


def lines_before(text: str, offset: int, n: int) -> str:
    """The ``n`` lines before ``offset`` (the cursor's line up to the cursor included),
    found backwards from the cursor (the cost does not grow with the file)."""
    start = offset
    for _ in range(n):
        start = text.rfind("\n", 0, start)
        if start <= 0:
            return text[:offset]
    return text[start + 1 : offset]


def wanted_names(text: str, offset: int) -> list[str]:
    """Names the cursor may need, most wanted first: identifiers of the
    :data:`QUERY_LINES` lines before the cursor (nearest first), then the names the file's
    import lines mention; less the names ``text`` defines itself."""
    near = _IDENT_RE.findall(lines_before(text, offset, QUERY_LINES))
    head = text[:IMPORT_SCAN_CHARS]
    imported = [w for m in _IMPORT_LINE_RE.finditer(head) for w in _IDENT_RE.findall(m.group(0))]
    local = {m.group(1) or m.group(2) for m in _DEF_RE.finditer(text)}
    seen: dict[str, None] = {}
    for word in [*reversed(near), *imported]:
        if len(word) > 1 and word not in local and word not in _KEYWORDS:
            seen.setdefault(word, None)
    return list(seen)


_KEYWORDS = frozenset(
    [
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "def",
        "default",
        "del",
        "do",
        "elif",
        "else",
        "enum",
        "except",
        "export",
        "extends",
        "false",
        "finally",
        "fn",
        "for",
        "from",
        "func",
        "function",
        "if",
        "impl",
        "import",
        "in",
        "include",
        "interface",
        "is",
        "lambda",
        "let",
        "match",
        "mod",
        "new",
        "none",
        "not",
        "null",
        "or",
        "pass",
        "pub",
        "raise",
        "require",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "switch",
        "this",
        "throw",
        "trait",
        "true",
        "try",
        "type",
        "use",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "None",
        "True",
        "False",
    ]
)


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
