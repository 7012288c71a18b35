"""A reference model of a text document under LSP edits (UTF-16 positions)."""

from __future__ import annotations


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def lines_of(text: str) -> list[str]:
    """Lines as LSP counts them (a trailing newline opens one more, empty line)."""
    return text.split("\n")


def offset_of(text: str, line: int, character: int) -> int:
    """Python offset of an LSP position that is valid (on a code point boundary)."""
    lines = lines_of(text)
    assert 0 <= line < len(lines), (line, len(lines))
    base = sum(len(x) + 1 for x in lines[:line])
    units = 0
    for i, ch in enumerate(lines[line]):
        if units >= character:
            return base + i
        units += utf16_len(ch)
    assert units >= character, "character past the end of the line"
    return base + len(lines[line])


def position_of(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n")
    col = utf16_len(before[before.rfind("\n") + 1 :])
    return line, col


def apply(text: str, start: tuple[int, int], end: tuple[int, int], new: str) -> str:
    a = offset_of(text, *start)
    b = offset_of(text, *end)
    return text[:a] + new + text[b:]
