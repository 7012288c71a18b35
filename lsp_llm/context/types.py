"""Values the workspace index hands to prompt building (no LSP types, no torch)."""

from __future__ import annotations

import dataclasses
from typing import Literal

SnippetSource = Literal["definition", "similar", "recent"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContextSnippet:
    """A piece of another file to show the model, labelled with its workspace-relative path."""

    path: str
    """Workspace-relative, forward slashes."""
    text: str
    score: float
    source: SnippetSource
    start_line: int = 0
    """0-based first line of ``text`` in ``path``."""
    symbol: str = ""
    """The defined name, for ``definition`` snippets."""
