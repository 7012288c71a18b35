"""Edits: where a rendered docstring goes in the file, as one :class:`TextEdit`."""

from __future__ import annotations

from lsp_llm.docstrings.model import DocTarget, TextEdit
from lsp_llm.docstrings.text import line_ending, line_text, split_lines


def docstring_edit(
    text: str, target: DocTarget, docstring: str, replace_existing: bool = True
) -> TextEdit | None:
    """The edit that puts ``docstring`` (from :func:`render_docstring`) into ``text``.

    Inserts at the right place, or replaces the existing docstring / doc comment. Returns
    None when the target already has one and ``replace_existing`` is False.
    Python one-line definitions (``def f(x): return x``) are split so the result stays valid.
    Line endings follow the file (CRLF files get CRLF).
    """
    if target.existing is not None and not replace_existing:
        return None
    eol = line_ending(text)
    block = docstring if docstring.endswith("\n") else docstring + "\n"
    block = block.replace("\r\n", "\n")
    lines = split_lines(text)
    if target.language == "python":
        return _python_edit(lines, target, block, eol)
    block = block.replace("\n", eol)
    if target.existing is not None and target.existing_span is not None:
        s_line, s_col, e_line, e_col = target.existing_span
        line = line_text(lines, s_line)
        after = line_text(lines, e_line)[e_col:]
        if not line[:s_col].strip() and not after.strip() and e_line + 1 < len(lines):
            return TextEdit(s_line, 0, e_line + 1, 0, block)
        return TextEdit(s_line, s_col, e_line, e_col, block.strip(" \t\r\n").lstrip())
    row, col = target.decl_start
    line = line_text(lines, row)
    if line[:col].strip():  # the declaration shares its line with earlier code
        return TextEdit(row, col, row, col, eol + block + target.indent)
    return TextEdit(row, 0, row, 0, block)


def _python_edit(lines: list[str], target: DocTarget, block: str, eol: str) -> TextEdit:
    assert target.header_end is not None and target.body_start is not None
    h_line, h_col = target.header_end
    b_line, b_col = target.body_start
    indent = target.body_indent
    block_eol = block.replace("\n", eol)

    if target.existing is not None and target.existing_span is not None:
        s_line, _, e_line, e_col = target.existing_span
        rest_line = line_text(lines, e_line)
        rest = rest_line[e_col:]
        skip = len(rest) - len(rest.lstrip(" \t"))
        if rest[skip : skip + 1] == ";":
            skip += 1
            skip += len(rest[skip:]) - len(rest[skip:].lstrip(" \t"))
        remainder = rest[skip:]
        code_follows = bool(remainder.strip()) and not remainder.lstrip().startswith("#")
        if s_line == h_line:  # def f(): "doc"; return 1
            if code_follows:
                return TextEdit(h_line, h_col, e_line, e_col + skip, eol + block_eol + indent)
            return TextEdit(h_line, h_col, e_line, e_col, eol + block_eol.rstrip("\r\n"))
        if code_follows:  # """doc"""; x = 1
            return TextEdit(s_line, 0, e_line, e_col + skip, block_eol + indent)
        if remainder.strip() or e_line + 1 >= len(lines):  # trailing comment / last line
            return TextEdit(s_line, 0, e_line, e_col, block_eol.rstrip("\r\n"))
        return TextEdit(s_line, 0, e_line + 1, 0, block_eol)

    if b_line == h_line:  # def f(x): return x
        return TextEdit(h_line, h_col, b_line, b_col, eol + block_eol + indent)
    if target.kind == "class" and line_text(lines, h_line + 1).strip():
        block_eol += eol  # PEP 257: a blank line after a class docstring
    return TextEdit(h_line + 1, 0, h_line + 1, 0, block_eol)


def apply_edit(text: str, edit: TextEdit) -> str:
    """Apply one :class:`TextEdit` (for tests, the CLI's ``--write`` and its diff)."""
    lines = text.split("\n")

    def offset(line: int, col: int) -> int:
        if line >= len(lines):
            return len(text)
        return sum(len(x) + 1 for x in lines[:line]) + min(col, len(lines[line]))

    start = offset(edit.start_line, edit.start_col)
    end = offset(edit.end_line, edit.end_col)
    return text[:start] + edit.new_text + text[end:]
