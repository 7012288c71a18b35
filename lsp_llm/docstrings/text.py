"""Line and word helpers shared by the target finders, the renderers and the edits."""

from __future__ import annotations

import re


def split_lines(text: str) -> list[str]:
    """Lines without their endings (``\\n``, ``\\r\\n``), as editors count them."""
    return text.split("\n")


def line_text(lines: list[str], index: int) -> str:
    return lines[index].rstrip("\r") if 0 <= index < len(lines) else ""


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def line_ending(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def detect_indent_unit(text: str, base: str = "") -> str:
    """The file's indentation step: a tab, or the most common increase in leading spaces."""
    if "\t" in base:
        return "\t"
    counts: dict[int, int] = {}
    prev = 0
    tabs = 0
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        ws = leading_ws(line)
        if ws.startswith("\t"):
            tabs += 1
            continue
        width = len(ws)
        if width > prev:
            counts[width - prev] = counts.get(width - prev, 0) + 1
        prev = width
    spaces = sum(counts.values())
    if tabs > spaces:
        return "\t"
    if not counts:
        return "    "
    best = max(counts.items(), key=lambda kv: (kv[1], -abs(kv[0] - 4)))[0]
    return " " * best if 1 <= best <= 8 else "    "


def name_words(name: str) -> str:
    """``compute_total`` / ``computeTotal`` / ``HTTPClient`` -> ``compute total`` ..."""
    name = name.strip("*._ ")
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name)
    return re.sub(r"[_\s]+", " ", name).strip().lower()


def sentence(text: str) -> str:
    """Collapse whitespace and end with a period when the text ends in a word."""
    text = " ".join(text.split())
    if text and (text[-1].isalnum() or text[-1] in ")`'\""):
        text += "."
    return text
