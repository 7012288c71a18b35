"""Turning raw model output into the text to insert at the cursor.

Rules, in order (:func:`postprocess_completion`):

1. Cut at the first leaked FIM / end-of-text special token.
2. Cursor mid-line (non-blank text after it on its line): keep only the first line.
3. Block end. Python: cut before the first line indented less than the cursor's block.
   All code languages: at the first closing bracket that closes more than the completion
   opened, cut *before* it when the text after the cursor starts with that bracket (the
   suffix already closes it: brackets balanced against the suffix), else keep it with the
   closers / ``;`` / ``,`` right after it and cut the rest.
4. Drop a tail that repeats the start of the suffix (characters, or whole lines), unless
   that would unbalance the completion's own brackets.
5. Repetition (several lines only): drop a line that repeats the line before it (the first
   line: the code line above a blank cursor line), and cut at the first line that re-types the
   next code line after the cursor.
6. Mid-line: cut where the completion starts re-typing the rest of the cursor's line.
7. Strip trailing whitespace; whitespace-only becomes "".

``multiline`` (the shape decided before generation, :mod:`lsp_llm.prompts.shape`) overrides
rule 2: False keeps one line wherever the cursor is (at the end of a non-blank line that line
may be the next one: a leading newline is kept; on a blank line leading blank lines and the
indentation are dropped; mid-line never a leading newline); True keeps several lines even
mid-line (``{|}``). None: rule 2 as written.

:func:`make_stop_predicate` finds the same cut points on the text generated so far and says
True only once a cut is certain, so stopping early never changes the post-processed result.
A lightweight lexer skips brackets inside strings and comments.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator

from lsp_llm.languages import DEFAULT_LEXER, LexerSyntax, resolve
from lsp_llm.prompts.templates import TEMPLATES

_OPENERS = "([{"
_CLOSERS = ")]}"
_RUN_CHARS = ";, \t"

_UNSAFE_LEAKS = frozenset({"", "</s>", "<s>", "<PRE>", "[PREFIX]", "[SUFFIX]", "[MIDDLE]"})
"""Template strings that also occur in ordinary code (HTML tags, index expressions)."""
_EXTRA_LEAKS = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|im_start|>",
    "<eos>",
    "<end_of_turn>",
    "<|EOT|>",
    "<EOT>",
    "<|file_separator|>",
    "<|fim_pad|>",
    "<fim_pad>",
    "<｜end▁of▁sentence｜>",
)


def _leak_tokens() -> list[str]:
    found: set[str] = set(_EXTRA_LEAKS)
    for template in TEMPLATES.values():
        found.update(t.strip() for t in (template.prefix, template.suffix, template.middle))
        found.update(t for t in (template.file_sep, template.repo_name) if t)
        found.update(template.stop_tokens)
    return sorted(found - _UNSAFE_LEAKS, key=lambda t: (-len(t), t))


LEAKED_TOKENS: tuple[str, ...] = tuple(_leak_tokens())
"""Special-token strings that end a completion wherever they appear in it."""
_LEAK_RE = re.compile("|".join(re.escape(t) for t in LEAKED_TOKENS))


def _leak_index(text: str) -> int | None:
    match = _LEAK_RE.search(text)
    return match.start() if match else None


def is_mid_line(suffix: str) -> bool:
    """True when the cursor's line has non-whitespace text after the cursor."""
    newline = suffix.find("\n")
    rest = suffix if newline < 0 else suffix[:newline]
    return bool(rest.strip())


# --- a small lexer: which characters are code (not strings or comments) ---------------------


# The per-language lexer rules are the ``lexer`` column of lsp_llm.languages (LexerSyntax).
_CHAR_LITERAL_RE = re.compile(r"'(?:\\[^'\n]{1,10}|[^\\'\n])'")


class _Lexer:
    """Walks text; ``mode`` is None in code, else the open string delimiter or comment kind."""

    __slots__ = ("mode", "syntax")

    def __init__(self, syntax: LexerSyntax, mode: str | None = None) -> None:
        self.syntax = syntax
        self.mode = mode

    def _line_comment_at(self, text: str, i: int) -> str | None:
        for marker in self.syntax.line_comments:
            if text.startswith(marker, i):
                if (
                    marker == "#"
                    and self.syntax.hash_needs_space
                    and i > 0
                    and text[i - 1] not in " \t\n"
                ):
                    continue
                return marker
        return None

    def walk(self, text: str) -> Iterator[tuple[int, str, bool]]:
        """Yield ``(index, char, is_code)`` for every character of ``text``, in order."""
        syntax = self.syntax
        block = syntax.block_comment
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            mode = self.mode
            width = 1
            if mode is None:
                if ch == "\n":
                    pass
                elif self._line_comment_at(text, i):
                    self.mode = "comment"
                elif block is not None and text.startswith(block[0], i):
                    self.mode, width = "block", len(block[0])
                elif ch == "'" and syntax.char_literals:
                    match = _CHAR_LITERAL_RE.match(text, i)
                    width = match.end() - i if match else 1
                elif ch in syntax.quotes:
                    if syntax.triple_quotes and text.startswith(ch * 3, i):
                        self.mode, width = ch * 3, 3
                    else:
                        self.mode = ch
                yield i, ch, True
                for j in range(i + 1, min(i + width, n)):
                    yield j, text[j], False
                i += width
                continue
            if mode == "comment":
                if ch == "\n":
                    self.mode = None
            elif mode == "block":
                assert block is not None
                if text.startswith(block[1], i):
                    self.mode, width = None, len(block[1])
            elif ch == "\\":
                width = 2  # an escape (or a line continuation) inside a string
            elif text.startswith(mode, i):
                self.mode, width = None, len(mode)
            elif ch == "\n" and len(mode) == 1 and mode not in syntax.multiline_quotes:
                self.mode = None  # unterminated one-line string: recover at the line end
            for j in range(i, min(i + width, n)):
                yield j, text[j], False
            i += width


def _mode_after(text: str, syntax: LexerSyntax, mode: str | None) -> str | None:
    lexer = _Lexer(syntax, mode)
    for _ in lexer.walk(text):
        pass
    return lexer.mode


# --- the cursor's context, computed once per request -----------------------------------------

_BLOCK_OPENER_RE = re.compile(
    r"^\s*(?:(?:async\s+)?(?:def|class|if|elif|else|for|while|try|except|finally|with|match|case)"
    r"\b|\)).*:\s*(?:#.*)?$"
)
_LEADING_WS_RE = re.compile(r"[ \t]*")
_SPACE_RE = re.compile(r"\s*")
_MAX_LOOKBACK_LINES = 200


def _width(whitespace: str) -> int:
    return len(whitespace.expandtabs(8))


def _indent_of(line: str) -> int:
    match = _LEADING_WS_RE.match(line)
    return _width(match.group()) if match else 0


def _previous_nonblank_line(text: str, end: int) -> str | None:
    """The last non-blank line of ``text[:end]`` (looking back a bounded number of lines)."""
    for _ in range(_MAX_LOOKBACK_LINES):
        if end <= 0:
            return None
        start = text.rfind("\n", 0, end - 1) + 1
        line = text[start:end].rstrip("\r\n")
        if line.strip():
            return line
        end = start
    return None


@dataclasses.dataclass(frozen=True)
class _Context:
    syntax: LexerSyntax
    mode: str | None
    """Lexer mode at the cursor (inside a string or comment, or None)."""
    mid_line: bool
    brackets: bool
    min_indent: int
    """Python: a non-blank completion line indented less than this ends the block (0: off)."""
    check_first_line: bool
    """The cursor line is blank before the cursor, so the first line's indent counts too."""
    cursor_col: int
    cursor_line_blank: bool
    suffix_head: str
    """The suffix after leading whitespace (a few characters)."""
    single: bool = False
    """Keep one line (mid-line, or the shape decided so)."""
    shaped: bool = False
    """``single`` comes from a shape decision (leading newlines handled, not just cut)."""


def _context(prefix: str, suffix: str, language: str, multiline: bool | None = None) -> _Context:
    spec = resolve(language)
    syntax = spec.lexer if spec is not None else DEFAULT_LEXER
    line_start = prefix.rfind("\n") + 1
    cursor_line = prefix[line_start:]
    blank = not cursor_line.strip()
    mid_line = is_mid_line(suffix)

    mode: str | None = None
    if syntax.triple_quotes:
        before = prefix[:line_start]
        if before.count('"""') % 2:
            mode = '"""'
        elif before.count("'''") % 2:
            mode = "'''"
    mode = _mode_after(cursor_line, syntax, mode)

    min_indent = 0
    if spec is not None and spec.offside:
        base = _indent_of(cursor_line)
        if blank:
            previous = _previous_nonblank_line(prefix, line_start)
            opener = previous is not None and _BLOCK_OPENER_RE.match(previous) is not None
            min_indent = max(base, _indent_of(previous) + 1) if opener and previous else base
        elif not mid_line and _BLOCK_OPENER_RE.match(cursor_line):
            min_indent = base + 1
        else:
            min_indent = base

    head_start = _SPACE_RE.match(suffix)
    start = head_start.end() if head_start else 0
    return _Context(
        syntax=syntax,
        mode=mode,
        mid_line=mid_line,
        brackets=spec is None or not spec.prose,
        min_indent=min_indent,
        check_first_line=blank,
        cursor_col=_width(cursor_line) if blank else 0,
        cursor_line_blank=blank,
        suffix_head=suffix[start : start + 8],
        single=mid_line if multiline is None else not multiline,
        shaped=multiline is False,
    )


def lexer_mode_at(prefix: str, language: str) -> str | None:
    """Inside a string or comment at the end of ``prefix``: its delimiter / kind; else None."""
    return _context(prefix, "", language).mode


def block_indent(prefix: str, language: str) -> int:
    """Python: the least indentation a completion line may have (0: no dedent cut)."""
    return _context(prefix, "", language).min_indent


# --- rules -------------------------------------------------------------------------------------


def _block_end(text: str, ctx: _Context) -> tuple[int, bool] | None:
    """Where the block ends in ``text``: (cut index, True when more text cannot move it)."""
    lexer = _Lexer(ctx.syntax, ctx.mode)
    stack: list[str] = []
    line_start = 0
    first_line = True
    looking = True  # for the first non-blank character of the current line
    n = len(text)
    # Comments dedented past the block: outside it unless indented code follows them.
    pending: int | None = None
    pending_lines = 0
    for i, ch, code in lexer.walk(text):
        if ch == "\n":
            line_start, first_line, looking = i + 1, False, True
            continue
        if looking and ch not in " \t\r\f\v":
            looking = False
            if (
                ctx.min_indent > 0
                and code
                and not stack
                and ch not in _CLOSERS
                and (ctx.check_first_line or not first_line)
            ):
                indent = _width(text[line_start:i]) + (ctx.cursor_col if first_line else 0)
                if ch == "#":  # a comment line (the marker itself lexes as code)
                    if indent < ctx.min_indent:
                        pending = line_start if pending is None else pending
                        pending_lines += 1
                elif indent < ctx.min_indent:
                    return (line_start if pending is None else pending), True
                else:
                    pending, pending_lines = None, 0
        if not code or not ctx.brackets:
            continue
        if ch in _OPENERS:
            stack.append(ch)
        elif ch in _CLOSERS:
            if stack:
                stack.pop()
                continue
            if ctx.suffix_head.startswith(ch):
                return i, True
            j = i + 1
            while j < n:
                c = text[j]
                if c in _CLOSERS:
                    if ctx.suffix_head.startswith(c):
                        return j, True
                elif c not in _RUN_CHARS:
                    return j, True
                j += 1
            return n, False
    if pending is not None:
        # Several dedented comment lines in a row and no code: the block is over.
        return pending, pending_lines >= 3
    return None


def _open_brackets(text: str, ctx: _Context) -> int:
    """How many brackets ``text`` opens and leaves open (unmatched closers are ignored)."""
    depth = 0
    for _, ch, code in _Lexer(ctx.syntax, ctx.mode).walk(text):
        if not code:
            continue
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS and depth:
            depth -= 1
    return depth


def _overlap_worth_dropping(overlap: str) -> bool:
    core = overlap.strip()
    return len(core) >= 2 or (len(core) == 1 and core in ")]};,:\"'`")


def _drop_char_overlap(text: str, suffix: str, ctx: _Context) -> str:
    """Drop the longest tail of ``text`` that equals the start of ``suffix``."""
    for k in range(min(len(text), len(suffix)), 0, -1):
        head = suffix[:k]
        if (
            text.endswith(head)
            and _overlap_worth_dropping(head)
            and (not ctx.brackets or _open_brackets(text[:-k], ctx) == _open_brackets(text, ctx))
        ):
            return text[:-k]
    return text


def _suffix_lines(suffix: str, limit: int) -> list[str]:
    """Up to ``limit`` stripped non-blank lines after the cursor's line."""
    lines: list[str] = []
    pos = suffix.find("\n")
    scanned = 0
    while pos >= 0 and len(lines) < limit and scanned < 1000:
        end = suffix.find("\n", pos + 1)
        line = suffix[pos + 1 : end if end >= 0 else len(suffix)].strip()
        if line:
            lines.append(line)
        pos = end
        scanned += 1
    return lines


def _drop_line_overlap(text: str, suffix: str, ctx: _Context) -> str:
    """Drop the completion's last lines when they repeat the suffix's next lines."""
    lines = text.split("\n")
    if len(lines) == 1 and not ctx.cursor_line_blank:
        return text
    wanted = _suffix_lines(suffix, len(lines))
    if not wanted:
        return text
    for i, line in enumerate(lines):
        if not line.strip() or (i == 0 and not ctx.cursor_line_blank):
            continue
        tail = [candidate.strip() for candidate in lines[i:] if candidate.strip()]
        if len(tail) > len(wanted) or tail != wanted[: len(tail)]:
            continue
        kept = "\n".join(lines[:i])
        if not ctx.brackets or _open_brackets(kept, ctx) == _open_brackets(text, ctx):
            return kept
    return text


def _line_start(text: str) -> int:
    return text.rfind("\n") + 1


def _worth_comparing(line: str) -> bool:
    """A line whose repetition is a model loop, not code (``}``, ``end``, ``)`` repeat)."""
    return len(line) >= 3 and any(c.isalnum() for c in line)


def _drop_repeated_lines(text: str, prefix: str, ctx: _Context) -> str:
    """Drop lines equal to the (non-blank) line right before them."""
    lines = text.split("\n")
    previous: str | None = None
    if ctx.cursor_line_blank:
        above = _previous_nonblank_line(prefix, prefix.rfind("\n") + 1)
        previous = above.strip() if above else None
    kept: list[str] = []
    for i, line in enumerate(lines):
        core = line.strip()
        if not core:
            kept.append(line)
            continue
        if (i > 0 or ctx.cursor_line_blank) and core == previous and _worth_comparing(core):
            continue
        if i > 0 and not kept:  # the first line went: this one now starts at the cursor
            line = line[
                min(len(line) - len(line.lstrip(" \t")), len(prefix) - _line_start(prefix)) :
            ]
        kept.append(line)
        previous = core
    if len(kept) == len(lines):
        return text
    result = "\n".join(kept)
    if ctx.brackets and _open_brackets(result, ctx) != _open_brackets(text, ctx):
        return text
    return result


def _cut_at_suffix_retype(text: str, suffix: str, ctx: _Context) -> str:
    """Cut at the first line that re-types the next code line after the cursor."""
    wanted = _suffix_lines(suffix, 1)
    if not wanted or not _worth_comparing(wanted[0]):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i == 0 and not ctx.cursor_line_blank:
            continue
        if line.strip() == wanted[0]:
            kept = "\n".join(lines[:i])
            if not ctx.brackets or _open_brackets(kept, ctx) in (0, _open_brackets(text, ctx)):
                return kept
            return text
    return text


def _cut_at_line_retype(text: str, suffix: str, ctx: _Context) -> str:
    """Mid-line: cut where the completion re-types the rest of the cursor's line."""
    newline = suffix.find("\n")
    rest = (suffix if newline < 0 else suffix[:newline]).strip()
    if not _overlap_worth_dropping(rest):
        return text
    at = text.find(rest)
    if at < 0:
        return text
    kept = text[:at]
    if ctx.brackets and _open_brackets(kept, ctx) != _open_brackets(text[: at + len(rest)], ctx):
        return text
    return kept


def _one_line(text: str, ctx: _Context) -> str:
    """The single line a shaped completion keeps (see the module docstring)."""
    if ctx.mid_line or not ctx.shaped:
        newline = text.find("\n")
        return text if newline < 0 else text[:newline]
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return ""
    if first == 0:
        return lines[0]
    if ctx.cursor_line_blank:
        return lines[first].lstrip(" \t")
    return "\n" + lines[first]


def _finish(text: str, suffix: str, ctx: _Context) -> str:
    if not text.strip():
        return ""
    if not ctx.mid_line:
        return text.rstrip()
    return text.rstrip(" \t\r") if suffix[:1] in (" ", "\t") else text.rstrip("\r")


def _process(text: str, suffix: str, ctx: _Context, prefix: str) -> str:
    leak = _leak_index(text)
    if leak is not None:
        text = text[:leak]
    if ctx.single:
        text = _one_line(text, ctx)
    cut = _block_end(text, ctx)
    if cut is not None:
        text = text[: cut[0]]
    if text.strip():
        if ctx.mid_line:
            text = _cut_at_line_retype(text, suffix, ctx)
        text = _drop_char_overlap(text, suffix, ctx)
        if not ctx.mid_line:
            text = _drop_line_overlap(text, suffix, ctx)
        if not ctx.single or ctx.cursor_line_blank:
            text = _cut_at_suffix_retype(text, suffix, ctx)
        if (not ctx.single and "\n" in text) or ctx.cursor_line_blank:
            text = _drop_repeated_lines(text, prefix, ctx)
    return _finish(text, suffix, ctx)


def postprocess_completion(
    text: str, *, prefix: str, suffix: str, language: str, multiline: bool | None = None
) -> str:
    """The text to insert at the cursor, given the raw model output and the cursor context.

    ``prefix`` / ``suffix`` are the document before / after the cursor (the full text, or at
    least the lines around the cursor). ``multiline``: the shape decided before generation
    (None: one line mid-line, several elsewhere).
    """
    return _process(text, suffix, _context(prefix, suffix, language, multiline), prefix)


def _single_line_done(generated: str, ctx: _Context) -> bool:
    if not ctx.shaped or ctx.mid_line:
        return "\n" in generated
    # Leading blank lines do not count: the one line may start on the next line.
    content = generated.lstrip(" \t\r\n")
    return "\n" in content


def make_stop_predicate(
    *, prefix: str, suffix: str, language: str, multiline: bool | None = None
) -> Callable[[str], bool]:
    """A predicate on the text generated so far: True once the rest would be cut anyway."""
    ctx = _context(prefix, suffix, language, multiline)

    def should_stop(generated: str) -> bool:
        if _leak_index(generated) is not None:
            return True
        if ctx.single and _single_line_done(generated, ctx):
            return True
        cut = _block_end(generated, ctx)
        return cut is not None and cut[1]

    return should_stop
