"""The snippets of other files a prompt gets: the workspace index's, and what the user is working
on (recent edits, open buffers), in one budget.

:func:`gather` is the one composition: the server's retriever
(:meth:`lsp_llm.server.indexing.Workspaces.retriever_for`), ``lsp-llm complete`` and
``lsp-llm context`` all call it, so they hold the same snippets for the same state. The sources
of :class:`WorkingSet` need no index (before it is ready, or for files outside the workspace).

Order and budget (tokens counted with ``count``, :func:`default_token_count` by default):

1. working-set candidates, best first: definitions of names near the cursor found in open
   buffers, then recently edited ranges, then the open-buffer windows most like the cursor
   (:mod:`.recent`); secrets are dropped, and so is whatever the current file's window around
   the cursor already shows; candidates of files the index holds are left to the index
   (its overlay has their unsaved text), except recent edits;
2. they are packed first into at most :data:`WORKING_SHARE` of the budget (all of it when
   there is no index); the index gets the rest, so with no working set (the benchmarks, a
   one-shot command) the index's snippets are exactly ``index.retrieve``'s;
3. working-set snippets that an index snippet already holds are dropped; the result is the
   index's snippets, then the working set's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lsp_llm.context.recent import EditRing, OpenBuffers, dedupe, wanted_names
from lsp_llm.context.retrieve import default_token_count
from lsp_llm.context.types import ContextSnippet
from lsp_llm.security import is_secret_path

if TYPE_CHECKING:
    from lsp_llm.context.index import WorkspaceIndex

WORKING_SHARE = 0.4
"""The most of the retrieval budget recent edits and open buffers take when there is an index."""
MAX_BUFFER_DEFINITIONS = 3
MAX_EDITS = 3
MAX_BUFFER_WINDOWS = 2
WINDOW_CHARS = 6_000
"""Characters on each side of the cursor taken as the prompt's own window (for dedupe)."""

IndexRetrieve = Callable[[int], Sequence[ContextSnippet]]
"""budget -> the index's snippets for the cursor (``WorkspaceIndex.retrieve`` bound to it)."""


@dataclasses.dataclass(frozen=True)
class WorkingSet:
    """What the editor told us the user works on. Thread-safe (its parts are)."""

    edits: EditRing = dataclasses.field(default_factory=EditRing)
    buffers: OpenBuffers = dataclasses.field(default_factory=OpenBuffers)

    def version(self, path: str) -> int | None:
        """Changes whenever the open buffer ``path`` does (None when it is not open)."""
        return self.buffers.version(path)


def working_candidates(
    working: WorkingSet,
    current: str | None,
    text: str,
    offset: int,
    *,
    secret_patterns: tuple[str, ...],
    indexed: Callable[[str], bool] = lambda path: False,
) -> list[ContextSnippet]:
    """Step 1 of the module docstring: the working set's candidates, best first, for a cursor
    at ``offset`` in ``text`` (the document labelled ``current``)."""
    buffers = working.buffers
    candidates = [
        *(
            s
            for s in buffers.definitions(
                wanted_names(text, offset), exclude=current, limit=MAX_BUFFER_DEFINITIONS
            )
            if not indexed(s.path)
        ),
        *working.edits.snippets(exclude=current, limit=MAX_EDITS),
        *(
            s
            for s in buffers.similar(text, offset, exclude=current, limit=MAX_BUFFER_WINDOWS)
            if not indexed(s.path)
        ),
    ]
    candidates = [s for s in candidates if not is_secret_path(s.path, secret_patterns)]
    window = text[max(0, offset - WINDOW_CHARS) : offset + WINDOW_CHARS]
    return dedupe(candidates, (), window)


def gather(
    index_retrieve: IndexRetrieve | None,
    working: WorkingSet | None,
    current: str | None,
    text: str,
    offset: int,
    *,
    budget: int,
    secret_patterns: tuple[str, ...],
    indexed: Callable[[str], bool] = lambda path: False,
    count: Callable[[str], int] = default_token_count,
) -> list[ContextSnippet]:
    """The snippets of other files for the cursor, within ``budget`` (see the module
    docstring). ``current`` is the current document's label (its snippets are never offered);
    ``indexed(path)`` says whether the index holds ``path``."""
    if budget <= 0:
        return []
    extras: list[ContextSnippet] = []
    used = 0
    if working is not None:
        limit = budget if index_retrieve is None else int(budget * WORKING_SHARE)
        for snippet in working_candidates(
            working, current, text, offset, secret_patterns=secret_patterns, indexed=indexed
        ):
            cost = count(f"{snippet.path}\n{snippet.text}\n")
            if used + cost <= limit:
                extras.append(snippet)
                used += cost
    held = list(index_retrieve(budget - used)) if index_retrieve is not None else []
    if extras and held:
        symbols = {(s.symbol, s.path) for s in held if s.symbol}
        extras = [
            s for s in dedupe(extras, held) if (s.symbol, s.path) not in symbols or not s.symbol
        ]
    return [*held, *extras]


def from_index(
    index: WorkspaceIndex, file: Path, text: str, offset: int, budget: int
) -> list[ContextSnippet]:
    """:func:`gather` with ``index`` alone (no open buffers: a one-shot command such as
    ``lsp-llm complete`` or ``lsp-llm context``)."""
    return gather(
        lambda room: index.retrieve(file, text, offset, budget=room),
        None,
        index.relative(file),
        text,
        offset,
        budget=budget,
        secret_patterns=index.settings.secret_patterns,
    )
