"""Docstrings without a model: find the target, render the text, compute the edit.

The model only ever supplies prose (a summary and one description per parameter, see
:mod:`lsp_llm.prompts.instructions`). Everything structural comes from the parsed signature,
so the documented parameters are always exactly the real ones and the file stays valid.

Pure functions, no LSP types: lines are 0-based, columns are Python ``str`` indices (the
server converts them to UTF-16 code units).

One job per module:

- :mod:`~lsp_llm.docstrings.model`: the values (:class:`DocTarget`, :class:`DocContent`,
  :class:`TextEdit`...);
- :mod:`~lsp_llm.docstrings.python_targets`: Python targets, read with :mod:`ast`;
- :mod:`~lsp_llm.docstrings.tree_sitter_targets`: JavaScript, TypeScript, TSX, Rust, Go and
  Java targets, read with tree-sitter;
- :mod:`~lsp_llm.docstrings.render`: the renderers (Python google/numpy/rest, JSDoc, Javadoc,
  Rust, Go);
- :mod:`~lsp_llm.docstrings.edits`: where the text goes in the file;
- :mod:`~lsp_llm.docstrings.text`: line and word helpers they share.

Which languages are supported, and in which styles, is the ``docstring_styles`` column of
:mod:`lsp_llm.languages` (:func:`~lsp_llm.languages.docstring_language`).
"""

from __future__ import annotations

from lsp_llm.docstrings.edits import apply_edit, docstring_edit
from lsp_llm.docstrings.model import DocContent, DocTarget, Param, TargetKind, TextEdit
from lsp_llm.docstrings.python_targets import python_target
from lsp_llm.docstrings.render import (
    fallback_param,
    fallback_returns,
    fallback_summary,
    go_summary,
    render_docstring,
)
from lsp_llm.docstrings.text import detect_indent_unit
from lsp_llm.docstrings.tree_sitter_targets import parse_tree, tree_sitter_target
from lsp_llm.languages import docstring_language

__all__ = [
    "DocContent",
    "DocTarget",
    "Param",
    "TargetKind",
    "TextEdit",
    "apply_edit",
    "detect_indent_unit",
    "docstring_edit",
    "docstring_language",
    "fallback_param",
    "fallback_returns",
    "fallback_summary",
    "find_target",
    "go_summary",
    "parse_tree",
    "render_docstring",
]


def find_target(text: str, line: int, language: str) -> DocTarget | None:
    """The innermost function, method or class containing or starting at 0-based ``line``.

    "Containing" includes the declaration's decorators / attributes and its existing doc
    comment. Returns None for an unsupported language, a line outside any definition, or a
    Python file that does not parse.
    """
    lang = docstring_language(language)
    if lang is None:
        return None
    if lang == "python":
        return python_target(text, line)
    return tree_sitter_target(text, line, lang)
