"""Stable cross-file context: the same snippets, in the same order, while the user types in one
region of a file.

A prompt's repository-context head must not change from keystroke to keystroke, or a model
server that reuses the KV cache of the previous prompt (FIM KV reuse) has to prefill it again.
It also makes most keystrokes skip retrieval entirely. The snippets chosen for a region are
kept until one of these happens:

* the cursor leaves the region (:func:`region_of`: the innermost enclosing scope);
* a file a snippet came from changes (its content digest differs), or the budget changes;
* the context is older than ``ttl_s``.

:func:`stable_context` is a pure function of its arguments; :class:`StableContexts` keeps one
:class:`StableContext` per document in a small LRU (memory stays flat however many documents
a session opens, and an edit never adds an entry: the key is the document, not its version).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from lsp_llm.context.types import ContextSnippet

STABLE_TTL_S = 30.0
"""Retrieval runs again at least this often in one region (other files may have become
relevant; recent-edit boosts decay)."""
MAX_SCAN_LINES = 400
"""Lines above the cursor searched for the enclosing scope; beyond that the region is the
block of lines the cursor is in (:data:`REGION_LINES`)."""
REGION_LINES = 80
"""Without a scope header nearby, the file is cut into regions of this many lines."""
MAX_DOCUMENTS = 64

_SCOPE_RE = re.compile(
    r"[ \t]*(?:(?:export|pub(?:\([^)]*\))?|public|private|protected|static|async|abstract|"
    r"final|default|inline|unsafe|extern)[ \t]+)*"
    r"(?:def|class|function|fn|func|impl|trait|struct|enum|interface|module|namespace|mod|"
    r"type|object|record)\b"
)
"""A line that opens a scope (the line's start only)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Region:
    """Where the cursor is, coarsely: equal regions share their context."""

    path: str
    header: str
    """The enclosing scope's first line (stripped), or "" at the top of the file."""
    block: int = 0
    """Which :data:`REGION_LINES` block, when no scope header is near."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def region_of(text: str, offset: int, path: str) -> Region:
    """The innermost scope around ``offset``: the nearest line above the cursor's line that
    opens a scope (``def``, ``class``, ``function``, ``impl``...) with less indentation than
    the cursor's line, or the nearest non-blank line at column 0 above it.

    Only lines above the cursor's line count, so typing on the cursor's line (even a new
    top-level ``def``) keeps the region; the lines are read backwards from the cursor, at most
    :data:`MAX_SCAN_LINES` of them (the cost does not grow with the file).
    """
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    cursor_line = text[line_start:offset]
    # The cursor line's indentation: what is before the cursor when it is all blank, else
    # the line's own indentation.
    indent = _indent(cursor_line) if cursor_line.strip() else len(cursor_line)
    end = line_start - 1  # the newline ending the line above
    for _ in range(MAX_SCAN_LINES):
        if end < 0:
            return Region(path, "")
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end]
        end = start - 1
        if not line.strip():
            continue
        depth = _indent(line)
        if depth == 0 and line[0] not in "})]#/*@" and not line.startswith(("'''", '"""')):
            return Region(path, line.strip())
        if depth < indent and _SCOPE_RE.match(line):
            return Region(path, line.strip())
    return Region(path, "", block=1 + text.count("\n", 0, offset) // REGION_LINES)


@dataclasses.dataclass(frozen=True, slots=True)
class StableContext:
    """The snippets chosen for a region, and what they depend on."""

    region: Region
    budget: int
    snippets: tuple[ContextSnippet, ...]
    sources: tuple[tuple[str, object], ...]
    """(path, content digest) of every file a snippet came from, when they were chosen."""
    computed_at: float
    reused: bool = False
    """This value was kept from the previous keystroke (retrieval did not run)."""


def stable_context(
    prev: StableContext | None,
    region: Region,
    now: float,
    digest_of: Callable[[str], object],
    compute: Callable[[], Sequence[ContextSnippet]],
    ttl_s: float = STABLE_TTL_S,
    budget: int = 0,
) -> StableContext:
    """``prev`` again (marked ``reused``) when it still holds for ``region``; else the result
    of ``compute()``. ``digest_of(path)`` is the current content digest of a snippet's file
    (``None`` when it is gone); ``now`` is a monotonic clock in seconds."""
    if (
        prev is not None
        and prev.region == region
        and prev.budget == budget
        and 0.0 <= now - prev.computed_at < ttl_s
        and all(digest_of(path) == digest for path, digest in prev.sources)
    ):
        return prev if prev.reused else dataclasses.replace(prev, reused=True)
    snippets = tuple(compute())
    paths = dict.fromkeys(s.path for s in snippets)
    return StableContext(
        region=region,
        budget=budget,
        snippets=snippets,
        sources=tuple((path, digest_of(path)) for path in paths),
        computed_at=now,
    )


class StableContexts:
    """One :class:`StableContext` per document (an LRU of :data:`MAX_DOCUMENTS`).
    Thread-safe."""

    def __init__(self, capacity: int = MAX_DOCUMENTS, ttl_s: float = STABLE_TTL_S) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._states: OrderedDict[object, StableContext] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def get(
        self,
        key: object,
        region: Region,
        *,
        now: float,
        budget: int,
        digest_of: Callable[[str], object],
        compute: Callable[[], Sequence[ContextSnippet]],
    ) -> StableContext:
        """The context for document ``key`` at ``region`` (see :func:`stable_context`)."""
        with self._lock:
            prev = self._states.get(key)
        state = stable_context(prev, region, now, digest_of, compute, self.ttl_s, budget)
        with self._lock:
            self._states[key] = state
            self._states.move_to_end(key)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)
        return state

    def peek(self, key: object) -> StableContext | None:
        """The context last chosen for document ``key`` (None if none)."""
        with self._lock:
            return self._states.get(key)

    def forget(self, key: object) -> None:
        with self._lock:
            self._states.pop(key, None)
