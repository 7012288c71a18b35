"""Docstrings without a model: find the target, render the text, compute the edit.

The model only ever supplies prose (a summary and one description per parameter, see
:mod:`lsp_llm.prompts.instructions`). Everything structural comes from the parsed signature,
so the documented parameters are always exactly the real ones and the file stays valid.

Pure functions, no LSP types: lines are 0-based, columns are Python ``str`` indices (the
server converts them to UTF-16 code units).

Python is read with :mod:`ast` (plus :mod:`tokenize` for the header colon); JavaScript,
TypeScript, Rust, Go and Java with tree-sitter.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import io
import re
import textwrap
import tokenize
from collections.abc import Iterator
from typing import Any, Literal

TargetKind = Literal["function", "method", "class"]
PyStyle = Literal["google", "numpy", "rest"]

LANGUAGE_ALIASES: dict[str, str] = {
    "python": "python",
    "py": "python",
    "python3": "python",
    "javascript": "javascript",
    "js": "javascript",
    "javascriptreact": "javascript",
    "jsx": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "typescript": "typescript",
    "ts": "typescript",
    "mts": "typescript",
    "cts": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
    "rust": "rust",
    "rs": "rust",
    "go": "go",
    "golang": "go",
    "java": "java",
}
"""LSP language ids and file extensions -> the language names used here."""

SUPPORTED_LANGUAGES = ("python", "javascript", "typescript", "tsx", "rust", "go", "java")

_MAX_LINE = 88
"""Wrap rendered descriptions at about this column."""


def normalize_language(language: str) -> str | None:
    """The internal language name for an LSP language id or file extension, or None."""
    return LANGUAGE_ALIASES.get(language.strip().lower().lstrip("."))


# --------------------------------------------------------------------------------------------
# Values


@dataclasses.dataclass(frozen=True)
class Param:
    """One documented parameter of a signature."""

    name: str
    """As documented: Python keeps ``*args``/``**kwargs``; other languages the bare name."""
    type_annotation: str | None = None
    default: str | None = None
    variadic: bool = False
    """``*args``/``**kwargs``, JS/TS ``...rest``, Go ``...T``, Java ``T...``."""
    optional: bool = False
    """TypeScript ``x?: T`` (a default value also makes a parameter optional)."""


@dataclasses.dataclass(frozen=True)
class DocTarget:
    """The function, method or class a docstring is written for."""

    language: str
    """Normalized: python, javascript, typescript, tsx, rust, go or java."""
    kind: TargetKind
    name: str
    params: tuple[Param, ...]
    """Exactly the parameters to document (no ``self``/``cls``/receiver)."""
    returns: str | None
    """The return annotation / type as written, if any."""
    code: str
    """The declaration's source (decorators and body included), dedented."""
    body_indent: str
    """Python: the indentation of the body. Others: the declaration's own indentation."""
    insert_line: int
    """0-based line where a new docstring goes (before this line)."""
    existing: tuple[int, int] | None
    """0-based first and last line of the existing docstring / doc comment."""
    decl_start: tuple[int, int] = (0, 0)
    """(line, column) where the declaration begins, decorators/attributes/export included."""
    end_line: int = 0
    """0-based last line of the declaration."""
    indent: str = ""
    """The declaration line's indentation."""
    returns_value: bool = False
    """Whether a Returns section is warranted."""
    is_generator: bool = False
    is_async: bool = False
    raises: tuple[tuple[str, str], ...] = ()
    """(exception name, hint from the raise message or ``throws``) in order of appearance."""
    attributes: bool = False
    """The params are class fields (dataclass) rather than ``__init__`` arguments."""
    header_end: tuple[int, int] | None = None
    """Python: the position just after the header's ``:``."""
    body_start: tuple[int, int] | None = None
    """Python: the position of the first statement of the body."""
    existing_span: tuple[int, int, int, int] | None = None
    """Exact (line, col, end_line, end_col) of the existing docstring node / doc comment."""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


@dataclasses.dataclass(frozen=True)
class DocContent:
    """The prose of a docstring. Rendering takes structure from the :class:`DocTarget`."""

    summary: str
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    returns: str = ""
    raises: dict[str, str] = dataclasses.field(default_factory=dict)
    description: str = ""
    """Optional extended description (only when the model gave one explicitly)."""
    fallbacks: tuple[str, ...] = ()
    """Which pieces were not in the model's answer: "summary", "param:x", "returns", ..."""


@dataclasses.dataclass(frozen=True)
class TextEdit:
    """Replace [start, end) with ``new_text``. 0-based lines, ``str`` index columns."""

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    new_text: str


# --------------------------------------------------------------------------------------------
# Text helpers


def _lines(text: str) -> list[str]:
    """Lines without their endings (``\\n``, ``\\r\\n``), as editors count them."""
    return text.split("\n")


def _line_text(lines: list[str], index: int) -> str:
    return lines[index].rstrip("\r") if 0 <= index < len(lines) else ""


def _leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _eol(text: str) -> str:
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
        ws = _leading_ws(line)
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


def _words(name: str) -> str:
    """``compute_total`` / ``computeTotal`` / ``HTTPClient`` -> ``compute total`` ..."""
    name = name.strip("*._ ")
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name)
    return re.sub(r"[_\s]+", " ", name).strip().lower()


def fallback_summary(target: DocTarget) -> str:
    """A summary from the name alone, for when the model gave none."""
    words = _words(target.name) or target.name
    if target.kind == "class":
        return f"The {words}."
    return words[:1].upper() + words[1:] + "."


def fallback_param(param: Param) -> str:
    return f"The {_words(param.name) or param.name}."


def fallback_returns(target: DocTarget) -> str:
    return "The yielded values." if target.is_generator else "The result."


def _sentence(text: str) -> str:
    """Collapse whitespace and end with a period when the text ends in a word."""
    text = " ".join(text.split())
    if text and (text[-1].isalnum() or text[-1] in ")`'\""):
        text += "."
    return text


# --------------------------------------------------------------------------------------------
# Finding the target


def find_target(text: str, line: int, language: str) -> DocTarget | None:
    """The innermost function, method or class containing or starting at 0-based ``line``.

    "Containing" includes the declaration's decorators / attributes and its existing doc
    comment. Returns None for an unsupported language, a line outside any definition, or a
    Python file that does not parse.
    """
    lang = normalize_language(language)
    if lang is None:
        return None
    if lang == "python":
        return _python_target(text, line)
    return _ts_target(text, line, lang)


# ---- Python ---------------------------------------------------------------------------------

_PyDef = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_PY_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _char_col(lines: list[str], lineno: int, byte_col: int) -> int:
    """ast columns are UTF-8 byte offsets; convert to a str index on 1-based ``lineno``."""
    line = _line_text(lines, lineno - 1)
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _py_header_end(lines: list[str], node: _PyDef) -> tuple[int, int] | None:
    """(0-based line, col after ':') of the def/class header, found with tokenize."""
    start = node.lineno - 1
    body_line = node.body[0].lineno - 1
    chunk = "\n".join(lines[start : body_line + 1]) + "\n"
    depth = 0
    seen_keyword = False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(chunk).readline):
            if tok.type == tokenize.NAME and tok.string in ("def", "class"):
                seen_keyword = True
            elif tok.type == tokenize.OP:
                if tok.string in "([{":
                    depth += 1
                elif tok.string in ")]}":
                    depth -= 1
                elif tok.string == ":" and depth == 0 and seen_keyword:
                    return (start + tok.end[0] - 1, tok.end[1])
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return None


def _py_params(node: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[Param]:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    out: list[Param] = []

    def ann(a: ast.arg) -> str | None:
        return ast.unparse(a.annotation) if a.annotation is not None else None

    for i, (a, d) in enumerate(zip(positional, defaults, strict=True)):
        if i == 0 and is_method:
            continue  # self / cls
        out.append(Param(a.arg, ann(a), ast.unparse(d) if d is not None else None))
    if args.vararg is not None:
        out.append(Param("*" + args.vararg.arg, ann(args.vararg), None, variadic=True))
    for a, kd in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append(Param(a.arg, ann(a), ast.unparse(kd) if kd is not None else None))
    if args.kwarg is not None:
        out.append(Param("**" + args.kwarg.arg, ann(args.kwarg), None, variadic=True))
    return out


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Descendants of a def's body, not entering nested defs, classes or lambdas."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(child, (*_PY_DEF_TYPES, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(child))


def _py_raise_hint(exc: ast.expr | None) -> tuple[str, str] | None:
    if exc is None:
        return None
    call = exc if isinstance(exc, ast.Call) else None
    func = call.func if call is not None else exc
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute):
        name = ast.unparse(func)
    else:
        return None
    hint = ""
    if call is not None and call.args:
        first = call.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            hint = first.value
        elif isinstance(first, ast.JoinedStr):
            hint = "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "..."
                for v in first.values
            )
    return name, " ".join(hint.split())[:160]


def _is_staticmethod(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Name) and target.id == "staticmethod":
            return True
        if isinstance(target, ast.Attribute) and target.attr == "staticmethod":
            return True
    return False


def _is_dataclass_like(node: ast.ClassDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = ast.unparse(target)
        if name.split(".")[-1] in ("dataclass", "define", "frozen", "mutable", "attrs", "s"):
            return True
    for base in node.bases:
        if ast.unparse(base).split(".")[-1] in ("NamedTuple", "TypedDict", "BaseModel"):
            return True
    return False


def _py_class_params(node: ast.ClassDef) -> tuple[list[Param], bool]:
    """(params, as_attributes): ``__init__`` arguments, else dataclass-like fields."""
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "__init__":
            return _py_params(stmt, is_method=True), False
    if _is_dataclass_like(node):
        fields: list[Param] = []
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                annotation = ast.unparse(stmt.annotation)
                if annotation.startswith(("ClassVar", "typing.ClassVar", "InitVar")):
                    continue
                default = ast.unparse(stmt.value) if stmt.value is not None else None
                fields.append(Param(stmt.target.id, annotation, default))
        return fields, True
    return [], False


_PY_DEF_LINE = re.compile(r"^([ \t]*)(?:async[ \t]+def|def|class)[ \t]")


def _python_target_in_broken_file(text: str, line: int) -> DocTarget | None:
    """When the whole file does not parse (mid-edit), parse just the enclosing definition.

    Tries the ``def``/``class`` lines at or above ``line``, innermost first; a definition's
    block ends before the next non-blank line indented no deeper than its header.
    """
    lines = _lines(text)
    for start in range(min(line, len(lines) - 1), -1, -1):
        header = _line_text(lines, start)
        match = _PY_DEF_LINE.match(header)
        if match is None:
            continue
        indent = match.group(1)
        end = start
        for i in range(start + 1, len(lines)):
            cur = _line_text(lines, i)
            if not cur.strip() or cur.lstrip().startswith("#"):
                continue
            if len(_leading_ws(cur)) <= len(indent):
                break
            end = i
        if end < line:
            continue  # the cursor is below this definition's block
        chunk = [
            _line_text(lines, i)[len(indent) :]
            if _line_text(lines, i).startswith(indent)
            else _line_text(lines, i).lstrip(" \t")
            for i in range(start, end + 1)
        ]
        try:
            tree = ast.parse("\n".join(chunk) + "\n")
        except (SyntaxError, ValueError):
            continue
        node = tree.body[0] if tree.body else None
        if not isinstance(node, _PY_DEF_TYPES):
            continue
        in_class = False
        for above in range(start - 1, -1, -1):
            prev = _line_text(lines, above)
            outer = prev.strip() and len(_leading_ws(prev)) < len(indent)
            if outer and not prev.lstrip().startswith(("#", "@")):
                in_class = prev.lstrip().startswith("class ")
                break
        sub = _python_target(
            "\n".join(chunk) + "\n", line - start, fallback=False, top_in_class=in_class
        )
        if sub is None:
            continue
        return _shift(sub, start, len(indent), indent)
    return None


def _shift(target: DocTarget, rows: int, cols: int, indent: str) -> DocTarget:
    """``target`` found in a dedented excerpt, moved back to its place in the file."""

    def pos(p: tuple[int, int] | None) -> tuple[int, int] | None:
        return None if p is None else (p[0] + rows, p[1] + cols)

    span = target.existing_span
    return dataclasses.replace(
        target,
        body_indent=indent + target.body_indent,
        indent=indent + target.indent,
        insert_line=target.insert_line + rows,
        existing=None
        if target.existing is None
        else (target.existing[0] + rows, target.existing[1] + rows),
        decl_start=(target.decl_start[0] + rows, target.decl_start[1] + cols),
        end_line=target.end_line + rows,
        header_end=pos(target.header_end),
        body_start=pos(target.body_start),
        existing_span=None
        if span is None
        else (span[0] + rows, span[1] + cols, span[2] + rows, span[3] + cols),
    )


def _python_target(
    text: str, line: int, fallback: bool = True, top_in_class: bool = False
) -> DocTarget | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _python_target_in_broken_file(text, line) if fallback else None
    lines = _lines(text)
    best: tuple[_PyDef, bool] | None = None

    def visit(parent: ast.AST, in_class: bool) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(parent):
            if isinstance(child, _PY_DEF_TYPES):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list]) - 1
                last = (child.end_lineno or child.lineno) - 1
                if first <= line <= last:
                    best = (child, in_class)
                    visit(child, isinstance(child, ast.ClassDef))
            elif isinstance(child, ast.expr):
                continue  # no definitions inside expressions (lambdas are not targets)
            elif not hasattr(child, "lineno") or (
                child.lineno - 1 <= line <= (getattr(child, "end_lineno", None) or child.lineno) - 1
            ):
                visit(child, False)

    visit(tree, top_in_class)
    if best is None:
        return None
    node, in_class = best
    return _python_doc_target(lines, node, in_class)


def _python_doc_target(lines: list[str], node: _PyDef, in_class: bool) -> DocTarget | None:
    decl_line = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    end_line = (node.end_lineno or node.lineno) - 1
    header_end = _py_header_end(lines, node)
    if header_end is None:
        return None
    def_line = _line_text(lines, node.lineno - 1)
    indent = _leading_ws(def_line)
    first = node.body[0]
    body_start = (first.lineno - 1, _char_col(lines, first.lineno, first.col_offset))
    if body_start[0] > header_end[0]:
        body_indent = _line_text(lines, body_start[0])[: body_start[1]]
        if body_indent.strip():  # e.g. "x = 1; y = 2" continuation: should not happen
            body_indent = _leading_ws(body_indent)
    else:
        body_indent = indent + detect_indent_unit("\n".join(lines), indent)

    existing: tuple[int, int] | None = None
    existing_span: tuple[int, int, int, int] | None = None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        end_l = first.end_lineno or first.lineno
        existing = (first.lineno - 1, end_l - 1)
        existing_span = (
            first.lineno - 1,
            body_start[1],
            end_l - 1,
            _char_col(lines, end_l, first.end_col_offset or 0),
        )

    kind: TargetKind
    raises: list[tuple[str, str]] = []
    returns: str | None = None
    returns_value = False
    is_generator = False
    is_async = isinstance(node, ast.AsyncFunctionDef)
    attributes = False
    if isinstance(node, ast.ClassDef):
        kind = "class"
        params, attributes = _py_class_params(node)
    else:
        kind = "method" if in_class else "function"
        params = _py_params(node, is_method=in_class and not _is_staticmethod(node))
        returns = ast.unparse(node.returns) if node.returns is not None else None
        seen: set[str] = set()
        has_value_return = False
        for sub in _own_nodes(node):
            if isinstance(sub, ast.Raise):
                hint = _py_raise_hint(sub.exc)
                if hint and hint[0] not in seen:
                    seen.add(hint[0])
                    raises.append(hint)
            elif isinstance(sub, (ast.Yield, ast.YieldFrom)):
                is_generator = True
            elif (
                isinstance(sub, ast.Return)
                and sub.value is not None
                and not (isinstance(sub.value, ast.Constant) and sub.value.value is None)
            ):
                has_value_return = True
        if node.name == "__init__":
            returns_value = False
        elif returns is not None:
            returns_value = returns not in ("None", "NoReturn", "Never", "typing.NoReturn")
        else:
            returns_value = has_value_return or is_generator

    code = textwrap.dedent("\n".join(_line_text(lines, i) for i in range(decl_line, end_line + 1)))
    return DocTarget(
        language="python",
        kind=kind,
        name=node.name,
        params=tuple(params),
        returns=returns,
        code=code,
        body_indent=body_indent,
        insert_line=header_end[0] + 1,
        existing=existing,
        decl_start=(decl_line, len(_leading_ws(_line_text(lines, decl_line)))),
        end_line=end_line,
        indent=indent,
        returns_value=returns_value,
        is_generator=is_generator,
        is_async=is_async,
        raises=tuple(raises),
        attributes=attributes,
        header_end=header_end,
        body_start=body_start,
        existing_span=existing_span,
    )


# ---- tree-sitter languages --------------------------------------------------------------------


@functools.cache
def _ts_parser(lang: str) -> Any:
    from tree_sitter import Language, Parser

    module = {
        "javascript": "tree_sitter_javascript",
        "typescript": "tree_sitter_typescript",
        "tsx": "tree_sitter_typescript",
        "rust": "tree_sitter_rust",
        "go": "tree_sitter_go",
        "java": "tree_sitter_java",
    }[lang]
    grammar = importlib.import_module(module)
    if lang == "typescript":
        capsule = grammar.language_typescript()
    elif lang == "tsx":
        capsule = grammar.language_tsx()
    else:
        capsule = grammar.language()
    return Parser(Language(capsule))


def parse_tree(text: str, language: str) -> Any:
    """A tree-sitter tree for ``text`` (used by tests to check the result has no errors)."""
    lang = normalize_language(language)
    if lang is None or lang == "python":
        raise ValueError(f"no tree-sitter grammar here for {language!r}")
    return _ts_parser(lang).parse(text.encode("utf-8"))


_COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment"})
_JS_FUNCS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_signature",
        "method_definition",
        "method_signature",
        "abstract_method_signature",
        "class_declaration",
        "abstract_class_declaration",
        "interface_declaration",
        "lexical_declaration",
        "variable_declaration",
        "field_definition",
        "public_field_definition",
    }
)
_JS_FUNC_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_RUST_DEFS = frozenset(
    {
        "function_item",
        "function_signature_item",
        "struct_item",
        "enum_item",
        "trait_item",
        "union_item",
        "type_item",
    }
)
_GO_DEFS = frozenset({"function_declaration", "method_declaration", "type_declaration"})
_JAVA_DEFS = frozenset(
    {
        "method_declaration",
        "constructor_declaration",
        "compact_constructor_declaration",
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "annotation_type_declaration",
    }
)


class _Src:
    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self.lines = _lines(text)

    def of(self, node: Any) -> str:
        if node is None:
            return ""
        return str(self.data[node.start_byte : node.end_byte].decode("utf-8", errors="replace"))

    def col(self, row: int, byte_col: int) -> int:
        line = _line_text(self.lines, row)
        return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _is_doc_comment(src: _Src, node: Any, lang: str) -> bool:
    text = src.of(node)
    if lang == "rust":
        return (text.startswith("///") and not text.startswith("////")) or (
            text.startswith("/**") and not text.startswith("/***")
        )
    if lang == "go":
        return text.startswith(("//", "/*")) and not re.match(r"//(go:|line |nolint|export )", text)
    return text.startswith("/**") and not text.startswith("/***") and text != "/**/"


def _decl_outer(node: Any, lang: str) -> Any:
    """The node whose start is where the declaration begins (export wrapper included)."""
    outer = node
    if lang in ("javascript", "typescript", "tsx"):
        parent = outer.parent
        if parent is not None and parent.type == "export_statement":
            outer = parent
    return outer


def _decl_prefix_start(node: Any, lang: str) -> Any:
    """Include decorators (TS class members) and attributes (Rust) right before ``node``."""
    start = node
    prev = start.prev_named_sibling
    while prev is not None:
        wanted = "attribute_item" if lang == "rust" else "decorator"
        if prev.type != wanted:
            break
        start = prev
        prev = start.prev_named_sibling
    return start


def _doc_comments(src: _Src, first: Any, lang: str) -> list[Any]:
    """The doc comment nodes directly above ``first`` (no blank line in between)."""
    found: list[Any] = []
    row = first.start_point[0]
    prev = first.prev_sibling
    while prev is not None and prev.type in _COMMENT_TYPES:
        if prev.end_point[0] < row - 1 or not _is_doc_comment(src, prev, lang):
            break
        # The comment must not share its line with earlier code (a trailing comment).
        start_line = _line_text(src.lines, prev.start_point[0])
        if start_line[: src.col(prev.start_point[0], prev.start_point[1])].strip():
            break
        found.insert(0, prev)
        row = prev.start_point[0]
        if lang in ("rust", "go") and src.of(prev).startswith(("///", "//")):
            prev = prev.prev_sibling
            continue
        break  # a block comment is a whole doc comment
    return found


def _ts_candidates(node: Any, lang: str) -> Iterator[tuple[Any, Any]]:
    """(definition node, the node holding its name/params) for nodes that are targets."""
    t = node.type
    if lang in ("javascript", "typescript", "tsx"):
        if t in ("lexical_declaration", "variable_declaration"):
            declarators = [c for c in node.named_children if c.type == "variable_declarator"]
            if len(declarators) == 1:
                value = declarators[0].child_by_field_name("value")
                if value is not None and value.type in _JS_FUNC_VALUES:
                    yield node, declarators[0]
        elif t in ("field_definition", "public_field_definition"):
            value = node.child_by_field_name("value")
            if value is not None and value.type in _JS_FUNC_VALUES:
                yield node, node
        elif t in _JS_FUNCS:
            yield node, node
    elif lang == "rust":
        if t in _RUST_DEFS:
            yield node, node
    elif lang == "go":
        if t in _GO_DEFS:
            yield node, node
    elif lang == "java" and t in _JAVA_DEFS:
        yield node, node


def _ts_target(text: str, line: int, lang: str) -> DocTarget | None:
    src = _Src(text)
    tree = _ts_parser(lang).parse(src.data)
    best: tuple[Any, Any, Any, list[Any]] | None = None

    def visit(parent: Any) -> None:
        nonlocal best
        for child in parent.named_children:
            end_row = child.end_point[0]
            hit = False
            for defn, holder in _ts_candidates(child, lang):
                first = _decl_prefix_start(_decl_outer(defn, lang), lang)
                docs = _doc_comments(src, first, lang)
                start_row = (docs[0] if docs else first).start_point[0]
                if start_row <= line <= end_row:
                    best = (defn, holder, first, docs)
                    hit = True
            if hit or child.start_point[0] <= line <= end_row:
                visit(child)

    visit(tree.root_node)
    if best is None:
        return None
    defn, holder, first, docs = best
    return _ts_doc_target(src, lang, defn, holder, first, docs)


def _ts_doc_target(
    src: _Src, lang: str, defn: Any, holder: Any, first: Any, docs: list[Any]
) -> DocTarget | None:
    info = _ts_signature(src, lang, defn, holder)
    if info is None:
        return None
    kind, name, params, returns, returns_value, raises = info
    decl_row = first.start_point[0]
    decl_col = src.col(decl_row, first.start_point[1])
    indent = _leading_ws(_line_text(src.lines, decl_row))
    end_line = defn.end_point[0]
    existing = (docs[0].start_point[0], docs[-1].end_point[0]) if docs else None
    existing_span = None
    if docs:
        existing_span = (
            docs[0].start_point[0],
            src.col(docs[0].start_point[0], docs[0].start_point[1]),
            docs[-1].end_point[0],
            src.col(docs[-1].end_point[0], docs[-1].end_point[1]),
        )
    code_lines = [_line_text(src.lines, i) for i in range(decl_row, end_line + 1)]
    if code_lines:
        code_lines[0] = indent + code_lines[0][decl_col:]
    code = textwrap.dedent("\n".join(code_lines))
    return DocTarget(
        language=lang,
        kind=kind,
        name=name,
        params=tuple(params),
        returns=returns,
        code=code,
        body_indent=indent,
        insert_line=decl_row,
        existing=existing,
        decl_start=(decl_row, decl_col),
        end_line=end_line,
        indent=indent,
        returns_value=returns_value,
        raises=tuple(raises),
        existing_span=existing_span,
    )


_SigInfo = tuple[TargetKind, str, list[Param], "str | None", bool, list[tuple[str, str]]]


def _ts_signature(src: _Src, lang: str, defn: Any, holder: Any) -> _SigInfo | None:
    if lang in ("javascript", "typescript", "tsx"):
        return _js_signature(src, defn, holder)
    if lang == "rust":
        return _rust_signature(src, defn)
    if lang == "go":
        return _go_signature(src, defn)
    return _java_signature(src, defn)


def _strip_type_annotation(text: str) -> str:
    return text[1:].strip() if text.startswith(":") else text.strip()


def _js_has_value_return(src: _Src, body: Any) -> bool:
    if body is None:
        return False
    if body.type != "statement_block":
        return True  # arrow function with an expression body
    stack = list(body.named_children)
    while stack:
        node = stack.pop()
        if node.type == "return_statement" and node.named_child_count > 0:
            return True
        if node.type in _JS_FUNC_VALUES or node.type in (
            "function_declaration",
            "class_declaration",
            "method_definition",
        ):
            continue
        stack.extend(node.named_children)
    return False


def _js_params(src: _Src, params_node: Any) -> list[Param]:
    if params_node is None:
        return []
    if params_node.type == "identifier":  # x => ...
        return [Param(src.of(params_node))]
    out: list[Param] = []
    destructured = 0
    for p in params_node.named_children:
        if p.type in _COMMENT_TYPES:
            continue
        typ: str | None = None
        default: str | None = None
        optional = p.type == "optional_parameter"
        pattern = p
        if p.type in ("required_parameter", "optional_parameter"):
            pattern = p.child_by_field_name("pattern")
            type_node = p.child_by_field_name("type")
            typ = _strip_type_annotation(src.of(type_node)) if type_node is not None else None
            value = p.child_by_field_name("value")
            default = src.of(value) if value is not None else None
        elif p.type == "assignment_pattern":
            pattern = p.child_by_field_name("left")
            default = src.of(p.child_by_field_name("right"))
        if pattern is None or pattern.type == "this":
            continue
        variadic = False
        if pattern.type == "rest_pattern":
            variadic = True
            inner = pattern.named_children[0] if pattern.named_child_count else None
            pattern = inner if inner is not None else pattern
        if pattern.type in ("identifier", "shorthand_property_identifier_pattern"):
            name = src.of(pattern)
        elif pattern.type in ("object_pattern", "array_pattern"):
            destructured += 1
            name = "options" if pattern.type == "object_pattern" else "values"
            name += str(destructured) if destructured > 1 else ""
        else:
            name = src.of(pattern)
        out.append(Param(name, typ, default, variadic=variadic, optional=optional))
    return out


def _js_signature(src: _Src, defn: Any, holder: Any) -> _SigInfo | None:
    t = defn.type
    if t in ("lexical_declaration", "variable_declaration"):
        name = src.of(holder.child_by_field_name("name"))
        fn = holder.child_by_field_name("value")
        kind: TargetKind = "function"
    elif t in ("field_definition", "public_field_definition"):
        name_node = defn.child_by_field_name("property") or defn.child_by_field_name("name")
        name = src.of(name_node)
        fn = defn.child_by_field_name("value")
        kind = "method"
    elif t in ("class_declaration", "abstract_class_declaration", "interface_declaration"):
        name = src.of(defn.child_by_field_name("name"))
        params: list[Param] = []
        body = defn.child_by_field_name("body")
        for member in body.named_children if body is not None else []:
            if member.type == "method_definition" and src.of(
                member.child_by_field_name("name")
            ) in ("constructor",):
                params = _js_params(src, member.child_by_field_name("parameters"))
        return "class", name, params, None, False, []
    else:
        name = src.of(defn.child_by_field_name("name")) or "default"
        fn = defn
        kind = "method" if t in ("method_definition", "method_signature") else "function"
        if t == "abstract_method_signature":
            kind = "method"
    if fn is None:
        return None
    params_node = fn.child_by_field_name("parameters") or fn.child_by_field_name("parameter")
    params = _js_params(src, params_node)
    ret_node = fn.child_by_field_name("return_type")
    returns = _strip_type_annotation(src.of(ret_node)) if ret_node is not None else None
    if returns is not None:
        returns_value = returns not in ("void", "never", "Promise<void>", "undefined")
    else:
        returns_value = _js_has_value_return(src, fn.child_by_field_name("body"))
    if name == "constructor":
        returns_value = False
    return kind, name, params, returns, returns_value, []


def _rust_signature(src: _Src, defn: Any) -> _SigInfo | None:
    name = src.of(defn.child_by_field_name("name"))
    if defn.type not in ("function_item", "function_signature_item"):
        return "class", name, [], None, False, []
    parent = defn.parent
    grand = parent.parent if parent is not None else None
    in_impl = (
        parent is not None
        and parent.type == "declaration_list"
        and grand is not None
        and grand.type in ("impl_item", "trait_item")
    )
    kind: TargetKind = "method" if in_impl else "function"
    params: list[Param] = []
    params_node = defn.child_by_field_name("parameters")
    for p in params_node.named_children if params_node is not None else []:
        if p.type != "parameter":
            continue
        pattern = p.child_by_field_name("pattern")
        type_node = p.child_by_field_name("type")
        params.append(Param(src.of(pattern), src.of(type_node) or None))
    ret = defn.child_by_field_name("return_type")
    returns = src.of(ret) if ret is not None else None
    returns_value = returns is not None and returns.replace(" ", "") not in ("()", "!")
    return kind, name, params, returns, returns_value, []


def _go_signature(src: _Src, defn: Any) -> _SigInfo | None:
    if defn.type == "type_declaration":
        spec = next((c for c in defn.named_children if c.type in ("type_spec", "type_alias")), None)
        name = src.of(spec.child_by_field_name("name")) if spec is not None else ""
        return ("class", name, [], None, False, []) if name else None
    name = src.of(defn.child_by_field_name("name"))
    kind: TargetKind = "method" if defn.type == "method_declaration" else "function"
    params: list[Param] = []
    params_node = defn.child_by_field_name("parameters")
    for p in params_node.named_children if params_node is not None else []:
        type_text = src.of(p.child_by_field_name("type")) or None
        if p.type == "parameter_declaration":
            for n in p.children_by_field_name("name"):
                if src.of(n) != "_":
                    params.append(Param(src.of(n), type_text))
        elif p.type == "variadic_parameter_declaration":
            n = p.child_by_field_name("name")
            if n is not None:
                params.append(Param(src.of(n), "..." + (type_text or ""), variadic=True))
    result = defn.child_by_field_name("result")
    returns = src.of(result) if result is not None else None
    return kind, name, params, returns, returns is not None, []


def _java_signature(src: _Src, defn: Any) -> _SigInfo | None:
    name = src.of(defn.child_by_field_name("name"))
    params: list[Param] = []
    params_node = defn.child_by_field_name("parameters")
    for p in params_node.named_children if params_node is not None else []:
        if p.type == "formal_parameter":
            params.append(
                Param(src.of(p.child_by_field_name("name")), src.of(p.child_by_field_name("type")))
            )
        elif p.type == "spread_parameter":
            declarator = next(
                (c for c in p.named_children if c.type == "variable_declarator"), None
            )
            type_node = next(
                (c for c in p.named_children if c.type not in ("variable_declarator", "modifiers")),
                None,
            )
            if declarator is not None:
                params.append(
                    Param(
                        src.of(declarator.child_by_field_name("name")),
                        src.of(type_node) + "...",
                        variadic=True,
                    )
                )
    if defn.type not in ("method_declaration", "constructor_declaration"):
        return "class", name, params, None, False, []
    raises: list[tuple[str, str]] = []
    for child in defn.named_children:
        if child.type == "throws":
            raises.extend((src.of(t), "") for t in child.named_children)
    if defn.type == "constructor_declaration":
        return "method", name, params, None, False, raises
    type_node = defn.child_by_field_name("type")
    returns = src.of(type_node) if type_node is not None else None
    return "method", name, params, returns, returns not in (None, "void"), raises


# --------------------------------------------------------------------------------------------
# Rendering


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
    summary = _sentence(content.summary) or fallback_summary(target)
    items: list[tuple[Param, str]] = []
    for p in target.params:
        desc = content.params.get(p.name)
        if desc is None:
            desc = content.params.get(p.name.lstrip("*."))
        items.append((p, _sentence(desc or "") or fallback_param(p)))
    returns = ""
    if target.returns_value:
        returns = _sentence(content.returns) or fallback_returns(target)
    return summary, items, returns


def _raise_items(target: DocTarget, content: DocContent) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, hint in target.raises:
        desc = content.raises.get(name) or content.raises.get(name.split(".")[-1]) or ""
        if not desc:
            desc = hint or "If the operation fails"
        out.append((name, _sentence(desc)))
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
    description = _sentence(content.description)
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
    description = _sentence(content.description)
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
    lang = target.language
    if lang == "python":
        return _render_python(target, content, style if style in ("numpy", "rest") else "google")
    if lang in ("javascript", "typescript", "tsx"):
        return _block_comment(target.indent, _render_jsdoc(target, content))
    if lang == "java":
        return _block_comment(target.indent, _render_java(target, content))
    if lang == "rust":
        return _line_comment(target.indent, "///", _render_rust(target, content))
    if lang == "go":
        return _line_comment(target.indent, "//", _render_go(target, content))
    raise ValueError(f"unsupported language {lang!r}")


# --------------------------------------------------------------------------------------------
# Edits


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
    eol = _eol(text)
    block = docstring if docstring.endswith("\n") else docstring + "\n"
    block = block.replace("\r\n", "\n")
    lines = _lines(text)
    if target.language == "python":
        return _python_edit(lines, target, block, eol)
    block = block.replace("\n", eol)
    if target.existing is not None and target.existing_span is not None:
        s_line, s_col, e_line, e_col = target.existing_span
        line = _line_text(lines, s_line)
        after = _line_text(lines, e_line)[e_col:]
        if not line[:s_col].strip() and not after.strip() and e_line + 1 < len(lines):
            return TextEdit(s_line, 0, e_line + 1, 0, block)
        return TextEdit(s_line, s_col, e_line, e_col, block.strip(" \t\r\n").lstrip())
    row, col = target.decl_start
    line = _line_text(lines, row)
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
        rest_line = _line_text(lines, e_line)
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
    if target.kind == "class" and _line_text(lines, h_line + 1).strip():
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
