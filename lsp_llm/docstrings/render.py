"""Renderers: a :class:`DocTarget` plus the model's prose -> the docstring text.

Python has three styles (google, numpy, rest); the other languages one each: JSDoc, Javadoc,
Rust ``///`` and Go ``// Name ...``. The style list per language is the ``docstring_styles``
column of :mod:`lsp_llm.languages`. The parameters rendered are always exactly the target's.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable

from lsp_llm.docstrings.model import DocContent, DocTarget, Param
from lsp_llm.docstrings.text import name_words, sentence
from lsp_llm.languages import resolve

_MAX_LINE = 88
"""Wrap rendered descriptions at about this column."""


def fallback_summary(target: DocTarget) -> str:
    """A summary from the name alone, for when the model gave none."""
    words = name_words(target.name) or target.name
    if target.kind == "class":
        return f"The {words}."
    return words[:1].upper() + words[1:] + "."


def fallback_param(param: Param) -> str:
    return f"The {name_words(param.name) or param.name}."


def fallback_returns(target: DocTarget) -> str:
    return "The yielded values." if target.is_generator else "The result."


def _wrap(text: str, first_prefix: str, rest_prefix: str, width: int = _MAX_LINE) -> list[str]:
    """Wrap ``text`` into lines; a text with no spaces to break at stays on one line."""
    text = " ".join(text.split())
    if not text:
        return [first_prefix.rstrip()]
    return textwrap.wrap(
        text,
        width=max(width, len(first_prefix) + 20),
        initial_indent=first_prefix,
        subsequent_indent=rest_prefix,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first_prefix.rstrip()]


def _describe(target: DocTarget, content: DocContent) -> tuple[str, list[tuple[Param, str]], str]:
    """Summary, (param, description) for exactly the real params, and the returns text."""
    summary = sentence(content.summary) or fallback_summary(target)
    items: list[tuple[Param, str]] = []
    for p in target.params:
        desc = content.params.get(p.name)
        if desc is None:
            desc = content.params.get(p.name.lstrip("*."))
        items.append((p, sentence(desc or "") or fallback_param(p)))
    returns = ""
    if target.returns_value:
        returns = sentence(content.returns) or fallback_returns(target)
    return summary, items, returns


def _raise_items(target: DocTarget, content: DocContent) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, hint in target.raises:
        desc = content.raises.get(name) or content.raises.get(name.split(".")[-1]) or ""
        if not desc:
            desc = hint or "If the operation fails"
        out.append((name, sentence(desc)))
    return out


def _py_escape(text: str) -> str:
    """Make ``text`` safe inside a triple-double-quoted (non-raw) string."""
    text = "".join(ch for ch in text if ch == "\n" or ch == "\t" or ch.isprintable())
    text = text.replace("\\", "\\\\")
    return text.replace('"""', '\\"\\"\\"')


def _py_lines(target: DocTarget, content: DocContent, style: str) -> list[str]:
    width = _MAX_LINE - len(target.body_indent.expandtabs(4))
    summary, items, returns = _describe(target, content)
    raises = _raise_items(target, content)
    description = sentence(content.description)
    ret_type = target.returns
    out: list[str] = [*_wrap(summary, "", "", width)]
    if description:
        out += ["", *_wrap(description, "", "", width)]

    if style == "numpy":
        if items:
            title = "Attributes" if target.attributes else "Parameters"
            out += ["", title, "-" * len(title)]
            for p, desc in items:
                head = p.name
                if p.type_annotation:
                    head += f" : {p.type_annotation}"
                if p.default is not None:
                    head += ", optional" if p.type_annotation else " : optional"
                out += [head, *_wrap(desc, "    ", "    ", width)]
        if returns:
            title = "Yields" if target.is_generator else "Returns"
            out += ["", title, "-" * len(title)]
            out += [ret_type or "object", *_wrap(returns, "    ", "    ", width)]
        if raises:
            out += ["", "Raises", "------"]
            for name, desc in raises:
                out += [name, *_wrap(desc, "    ", "    ", width)]
    elif style == "rest":
        if items or returns or raises:
            out.append("")
        for p, desc in items:
            tag = "ivar" if target.attributes else "param"
            bare = p.name.lstrip("*")
            out += _wrap(desc, f":{tag} {bare}: ", "    ", width)
            if p.type_annotation and not p.variadic:
                out.append(
                    f":{'vartype' if target.attributes else 'type'} {bare}: {p.type_annotation}"
                )
        if returns:
            tag = "yields" if target.is_generator else "returns"
            out += _wrap(returns, f":{tag}: ", "    ", width)
            if ret_type and not target.is_generator:
                out.append(f":rtype: {ret_type}")
        for name, desc in raises:
            out += _wrap(desc, f":raises {name}: ", "    ", width)
    else:  # google
        if items:
            out += ["", "Attributes:" if target.attributes else "Args:"]
            for p, desc in items:
                out += _wrap(desc, f"    {p.name}: ", "        ", width)
        if returns:
            out += ["", "Yields:" if target.is_generator else "Returns:"]
            out += _wrap(returns, "    ", "    ", width)
        if raises:
            out += ["", "Raises:"]
            for name, desc in raises:
                out += _wrap(desc, f"    {name}: ", "        ", width)
    return out


def _render_python(target: DocTarget, content: DocContent, style: str) -> str:
    body = [_py_escape(line) for line in _py_lines(target, content, style)]
    indent = target.body_indent
    if len(body) == 1:
        one = body[0]
        if one.endswith('"'):
            one = one[:-1] + '\\"'
        return f'{indent}"""{one}"""\n'
    first = body[0]
    lines = [f'{indent}"""{first}']
    lines += [f"{indent}{line}" if line else "" for line in body[1:]]
    lines.append(f'{indent}"""')
    return "\n".join(lines) + "\n"


def _block_comment(indent: str, body: list[str]) -> str:
    safe = [line.replace("*/", "*&#47;") for line in body]
    lines = [f"{indent}/**"]
    lines += [f"{indent} * {line}" if line else f"{indent} *" for line in safe]
    lines.append(f"{indent} */")
    return "\n".join(lines) + "\n"


def _line_comment(indent: str, marker: str, body: list[str]) -> str:
    lines = [f"{indent}{marker} {line}" if line else f"{indent}{marker}" for line in body]
    return "\n".join(lines) + "\n"


def _js_default_type(default: str | None) -> str | None:
    if default is None:
        return None
    if re.fullmatch(r"-?[\d_.]+(e-?\d+)?n?", default):
        return "number"
    if default[:1] in "'\"`":
        return "string"
    if default in ("true", "false"):
        return "boolean"
    if default.startswith("["):
        return "Array"
    if default.startswith("{"):
        return "Object"
    return None


def _comment_head(
    target: DocTarget, content: DocContent, margin: int, *, go_style: bool = False
) -> tuple[list[str], list[tuple[Param, str]], str, int]:
    """Summary and description lines of a doc comment, plus what the tags need.

    ``margin`` is the width of the comment marker (``/** ``, ``/// ``...) after the indent.
    """
    summary, items, returns = _describe(target, content)
    width = _MAX_LINE - len(target.indent.expandtabs(4)) - margin
    body = _wrap(go_summary(target.name, summary) if go_style else summary, "", "", width)
    description = sentence(content.description)
    if description:
        body += ["", *_wrap(description, "", "", width)]
    return body, items, returns, width


def _render_jsdoc(target: DocTarget, content: DocContent) -> list[str]:
    body, items, returns, width = _comment_head(target, content, 3)
    tags: list[str] = []
    typed = target.language in ("typescript", "tsx")
    for p, desc in items:
        typ = p.type_annotation if typed else _js_default_type(p.default) or "*"
        if typ and p.variadic:
            typ = "..." + (typ[:-2] if typ.endswith("[]") else typ)
        type_part = f"{{{typ}}} " if typ else ""
        name = p.name
        if p.default is not None:
            name = f"[{name}={p.default}]" if "\n" not in p.default else f"[{name}]"
        elif p.optional:
            name = f"[{name}]"
        tags += _wrap(desc, f"@param {type_part}{name} - ", "    ", width)
    if returns:
        ret = target.returns if typed and target.returns else None
        tags += _wrap(returns, f"@returns {{{ret}}} " if ret else "@returns ", "    ", width)
    if tags:
        body += ["", *tags]
    return body


def _render_java(target: DocTarget, content: DocContent) -> list[str]:
    body, items, returns, width = _comment_head(target, content, 3)
    tags: list[str] = []
    for p, desc in items:
        tags += _wrap(desc, f"@param {p.name} ", "    ", width)
    if returns:
        tags += _wrap(returns, "@return ", "    ", width)
    for name, desc in _raise_items(target, content):
        tags += _wrap(desc, f"@throws {name} ", "    ", width)
    if tags:
        body += ["", *tags]
    return body


def _render_rust(target: DocTarget, content: DocContent) -> list[str]:
    body, items, returns, width = _comment_head(target, content, 4)
    if items:
        body += ["", "# Arguments", ""]
        for p, desc in items:
            body += _wrap(desc, f"* `{p.name}` - ", "  ", width)
    if returns:
        body += ["", "# Returns", "", *_wrap(returns, "", "", width)]
    return body


_NO_S = frozenset({"is", "has", "was", "does"})


def _third_person(word: str) -> str:
    """``Return`` -> ``returns``, ``Fetch`` -> ``fetches``, ``Apply`` -> ``applies``."""
    low = word.lower()
    if low in _NO_S or (low.endswith("s") and not low.endswith("ss")):
        return low
    if low.endswith(("sh", "ch", "x", "z", "ss", "o")):
        return low + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def go_summary(name: str, summary: str) -> str:
    """Go convention: the doc comment is a sentence that starts with the declared name."""
    summary = summary.strip()
    if not summary:
        return f"{name} ..."
    first, _, rest = summary.partition(" ")
    second = rest.split(" ", 1)[0].lower()
    if first.strip("`*").rstrip(",.:") == name and (
        first.endswith((":", ",")) or second in _NO_S or (second.endswith("s") and second != "the")
    ):
        return summary  # already "Name returns ..."
    if first.lower() in ("a", "an", "the"):
        return f"{name} is {first.lower()} {rest}".rstrip()
    if first.isalpha() and first[:1].isupper() and (first[1:].islower() or len(first) == 1):
        return f"{name} {_third_person(first)} {rest}".rstrip()
    return f"{name}: {summary}"


def _render_go(target: DocTarget, content: DocContent) -> list[str]:
    body, items, returns, width = _comment_head(target, content, 3, go_style=True)
    if items:
        body += ["", "Parameters:"]
        for p, desc in items:
            body += _wrap(desc, f"  - {p.name}: ", "    ", width)
    if returns:
        body += ["", *_wrap(returns, "Returns: ", "", width)]
    return body


def render_docstring(target: DocTarget, content: DocContent, style: str = "google") -> str:
    """The full docstring / doc comment, indented, every line ending with a newline.

    ``style`` (google, numpy, rest) applies to Python; the other languages have one style each:
    JSDoc, Rust ``///``, Go ``// Name ...`` and Javadoc. The parameters rendered are always
    exactly ``target.params``: descriptions for unknown names are ignored, missing ones get a
    fallback.
    """
    spec = resolve(target.language)
    styles = spec.docstring_styles if spec is not None else ()
    if not styles:
        raise ValueError(f"unsupported language {target.language!r}")
    if styles[0] == "google":  # Python's styles: google (the default), numpy, rest
        return _render_python(target, content, style if style in styles else styles[0])
    render_body, marker = _COMMENT_STYLES[styles[0]]
    body = render_body(target, content)
    if marker == "/**":
        return _block_comment(target.indent, body)
    return _line_comment(target.indent, marker, body)


_COMMENT_STYLES: dict[str, tuple[Callable[[DocTarget, DocContent], list[str]], str]] = {
    "jsdoc": (_render_jsdoc, "/**"),
    "javadoc": (_render_java, "/**"),
    "rustdoc": (_render_rust, "///"),
    "godoc": (_render_go, "//"),
}
"""The body renderer and comment marker of each one-style language's docstring style."""
