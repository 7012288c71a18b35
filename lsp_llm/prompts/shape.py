"""One line or several: decided from the cursor before the model runs, then used as a stop rule.

Rules (:func:`decide_shape`), first match wins:

1. Inside a string or a comment: one line.
2. Mid-line (code after the cursor on its line): one line, unless the rest of the line is
   ``}`` (and closers) and the text before the cursor ends with ``{`` (``{|}``, an empty block
   the editor closed for us): several.
3. At the end of a non-blank line: several only when the line ends with a block opener of the
   language (``:`` in Python, ``{`` in C-like languages, brackets, ``=>``) and the block has no
   body yet (the next code line is not indented deeper); else one line.
4. On a blank line: several when the next code line is not at the cursor's indentation (the end
   of a block, an empty block, the end of the file), or tree-sitter finds the cursor in an empty
   block; one line when the next line of code is at the same indentation (a hole in the middle
   of a function).

The per-language data is the ``shape`` column of :mod:`lsp_llm.languages` (:class:`ShapeRules`);
the tree-sitter grammar is the row's ``grammar``, parsed with :func:`lsp_llm.treesitter.parser_for`
(the one loader). Languages without a row, or without a grammar, use the text rules alone.

Pure: no model, no I/O; tree-sitter parses only the text it is given.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

from lsp_llm.languages import DEFAULT_SHAPE, ShapeRules, resolve
from lsp_llm.prompts.postprocess import lexer_mode_at

__all__ = ["DEFAULT_RULES", "Shape", "ShapeReason", "ShapeRules", "decide_shape"]

log = logging.getLogger(__name__)

ShapeReason = Literal[
    "string or comment",
    "mid-line",
    "empty block",
    "block opener",
    "block has a body",
    "end of line",
    "end of file",
    "next line dedented",
    "next line indented",
    "next line at the same indentation",
]

_MAX_TREE_SITTER_CHARS = 300_000
"""Larger documents use the text rules alone (a parse would cost more than the decision)."""
_MAX_SCAN_LINES = 200


DEFAULT_RULES = DEFAULT_SHAPE
"""The rules of a language without shape data (text rules only)."""

_TRAILING_PUNCT = frozenset(";,")


@dataclasses.dataclass(frozen=True)
class Shape:
    multiline: bool
    reason: ShapeReason


def _width(whitespace: str) -> int:
    return len(whitespace.expandtabs(8))


def _indent(line: str) -> int:
    return _width(line[: len(line) - len(line.lstrip(" \t"))])


def _previous_code_line(prefix: str, line_start: int) -> str | None:
    end = line_start
    for _ in range(_MAX_SCAN_LINES):
        if end <= 0:
            return None
        start = prefix.rfind("\n", 0, end - 1) + 1
        line = prefix[start:end].rstrip("\r\n")
        if line.strip():
            return line
        end = start
    return None


def _next_code_line(suffix: str) -> str | None:
    """The first non-blank line after the cursor's line (None: none, the end of the file)."""
    pos = suffix.find("\n")
    for _ in range(_MAX_SCAN_LINES):
        if pos < 0:
            return None
        end = suffix.find("\n", pos + 1)
        line = suffix[pos + 1 : end if end >= 0 else len(suffix)].rstrip("\r")
        if line.strip():
            return line
        pos = end
    return None


def _ends_with_opener(line: str, rules: ShapeRules) -> bool:
    code = line.rstrip()
    return any(code.endswith(opener) for opener in rules.openers)


def _tree_sitter_shape(
    prefix: str, suffix: str, rules: ShapeRules, grammar: str | None
) -> ShapeReason | None:
    """ "string or comment" / "empty block" from the syntax tree, or None (no opinion)."""
    if grammar is None or len(prefix) + len(suffix) > _MAX_TREE_SITTER_CHARS:
        return None
    from lsp_llm.treesitter import parser_for  # the one grammar loader (lazy: tree-sitter)

    try:
        parser = parser_for(grammar)
        if parser is None:
            return None
        cursor = len(prefix.encode("utf-8", "surrogatepass"))
        tree = parser.parse((prefix + suffix).encode("utf-8", "surrogatepass"))
        node = tree.root_node.descendant_for_byte_range(cursor, cursor)
    except Exception:  # a grammar problem never stops a completion
        log.debug("tree-sitter shape failed", exc_info=True)
        return None
    while node is not None:
        if node.start_byte < cursor < node.end_byte:
            if node.type in rules.literal_nodes:
                return "string or comment"
            if node.type in rules.block_nodes:
                body = [c for c in node.named_children if c.type not in rules.literal_nodes]
                return "empty block" if not body else None
        node = node.parent
    return None


def decide_shape(prefix: str, suffix: str, language: str) -> Shape:
    """Whether the completion at the cursor between ``prefix`` and ``suffix`` may span lines."""
    spec = resolve(language)
    rules = spec.shape if spec is not None else DEFAULT_RULES
    grammar = spec.grammar.name if spec is not None and spec.grammar is not None else None
    line_start = prefix.rfind("\n") + 1
    before = prefix[line_start:]
    newline = suffix.find("\n")
    after = (suffix if newline < 0 else suffix[:newline]).strip()

    syntax = _tree_sitter_shape(prefix, suffix, rules, grammar)
    if syntax == "string or comment" or lexer_mode_at(prefix, language) is not None:
        return Shape(False, "string or comment")

    if after:
        closers = after.rstrip(";,")
        opener = before.rstrip()[-1:]
        if (
            opener == "{"  # a block; ``(|)`` and ``[|]`` are one-line argument lists
            and closers
            and closers[0] == "}"
            and all(c in ")]}" or c in _TRAILING_PUNCT or c.isspace() for c in closers)
        ):
            return Shape(True, "empty block")
        return Shape(False, "mid-line")

    following = _next_code_line(suffix)
    if before.strip():
        if not _ends_with_opener(before, rules):
            return Shape(False, "end of line")
        if following is not None and _indent(following) > _indent(before):
            return Shape(False, "block has a body")
        return Shape(True, "block opener")

    if syntax == "empty block":
        return Shape(True, "empty block")
    if following is None:
        return Shape(True, "end of file")
    if before:
        cursor_indent = _width(before)
    else:  # a line with nothing on it yet: where the editor would indent it
        previous = _previous_code_line(prefix, line_start)
        cursor_indent = 0 if previous is None else _indent(previous)
        if previous is not None and _ends_with_opener(previous, rules):
            # Inside the block the previous line opens: its body's indentation, if it has one.
            cursor_indent = max(cursor_indent + 1, _indent(following))
    target = _indent(following)
    if target < cursor_indent:
        return Shape(True, "next line dedented")
    if target > cursor_indent:
        return Shape(True, "next line indented")
    return Shape(False, "next line at the same indentation")
