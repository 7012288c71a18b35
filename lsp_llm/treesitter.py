"""The one tree-sitter loader: grammars loaded once per process, parsers one per thread.

Grammars come from the per-language wheels named in :data:`lsp_llm.languages.GRAMMARS` (no
run-time downloads). A grammar that fails to load is remembered as missing: :func:`parser_for`
returns None for it, and logs one warning line the first time.

A tree-sitter ``Parser`` must not be used by two threads at once, so :func:`parser_for` returns a
parser owned by the calling thread (the index's worker threads, the completion path on the
event loop and the docstring code each get their own). ``Language`` objects are immutable and
shared.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
from typing import TYPE_CHECKING

from lsp_llm.languages import GRAMMARS, LANGUAGES, Grammar, grammar_for

if TYPE_CHECKING:  # tree-sitter itself is imported on first use (doctor reports it missing)
    from tree_sitter import Language, Parser

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class GrammarStatus:
    """Whether one grammar loads, for ``lsp-llm doctor``."""

    grammar: Grammar
    languages: tuple[str, ...]
    """The LSP language ids that use it."""
    error: str = ""
    """``"ExceptionClass: message"`` when it does not load; "" when it does."""

    @property
    def ok(self) -> bool:
        return not self.error


_lock = threading.Lock()
_loaded: dict[str, tuple[Language | None, str]] = {}
"""Grammar name -> (tree_sitter.Language or None, error text)."""
_reported: set[str] = set()
_local = threading.local()


def _load(grammar: Grammar) -> tuple[Language | None, str]:
    """(Language, "") or (None, why); loaded once per process."""
    with _lock:
        found = _loaded.get(grammar.name)
        if found is None:
            try:
                import tree_sitter

                capsule = getattr(importlib.import_module(grammar.module), grammar.function)()
                found = (tree_sitter.Language(capsule), "")
            except Exception as exc:  # a missing or broken wheel: that language goes without
                found = (None, f"{exc.__class__.__name__}: {exc}")
            _loaded[grammar.name] = found
        return found


def language(lang: str) -> Language | None:
    """The ``tree_sitter.Language`` for an LSP id, alias or grammar name; None if missing."""
    grammar = grammar_for(lang)
    if grammar is None:
        return None
    loaded, error = _load(grammar)
    if loaded is None and grammar.name not in _reported:
        _reported.add(grammar.name)
        log.warning("tree-sitter grammar %s unavailable: %s", grammar.name, error)
    return loaded


def parser_for(lang: str) -> Parser | None:
    """A ``tree_sitter.Parser`` owned by the calling thread, or None (no grammar for ``lang``).

    ``lang`` is an LSP language id, an alias, an extension or a grammar name (``tsx``).
    """
    grammar = grammar_for(lang)
    if grammar is None:
        return None
    parsers: dict[str, Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(grammar.name)
    if parser is None:
        loaded = language(grammar.name)
        if loaded is None:
            return None
        import tree_sitter

        parser = parsers[grammar.name] = tree_sitter.Parser(loaded)
    return parser


def grammar_status() -> tuple[GrammarStatus, ...]:
    """Every grammar the registry uses, loaded (once) to see whether it works. Never raises."""
    out: list[GrammarStatus] = []
    for grammar in GRAMMARS:
        _, error = _load(grammar)
        ids = tuple(spec.id for spec in LANGUAGES if spec.grammar == grammar)
        out.append(GrammarStatus(grammar=grammar, languages=ids, error=error))
    return tuple(out)
