"""Python docstring targets, read with :mod:`ast` (plus :mod:`tokenize` for the header colon).

A file that does not parse (mid-edit) falls back to parsing just the enclosing definition.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import textwrap
import tokenize
from collections.abc import Iterator

from lsp_llm.docstrings.model import DocTarget, Param, TargetKind
from lsp_llm.docstrings.text import detect_indent_unit, leading_ws, line_text, split_lines

_PyDef = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_PY_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _char_col(lines: list[str], lineno: int, byte_col: int) -> int:
    """ast columns are UTF-8 byte offsets; convert to a str index on 1-based ``lineno``."""
    line = line_text(lines, lineno - 1)
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
    lines = split_lines(text)
    for start in range(min(line, len(lines) - 1), -1, -1):
        header = line_text(lines, start)
        match = _PY_DEF_LINE.match(header)
        if match is None:
            continue
        indent = match.group(1)
        end = start
        for i in range(start + 1, len(lines)):
            cur = line_text(lines, i)
            if not cur.strip() or cur.lstrip().startswith("#"):
                continue
            if len(leading_ws(cur)) <= len(indent):
                break
            end = i
        if end < line:
            continue  # the cursor is below this definition's block
        chunk = [
            line_text(lines, i)[len(indent) :]
            if line_text(lines, i).startswith(indent)
            else line_text(lines, i).lstrip(" \t")
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
            prev = line_text(lines, above)
            outer = prev.strip() and len(leading_ws(prev)) < len(indent)
            if outer and not prev.lstrip().startswith(("#", "@")):
                in_class = prev.lstrip().startswith("class ")
                break
        sub = python_target(
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


def python_target(
    text: str, line: int, fallback: bool = True, top_in_class: bool = False
) -> DocTarget | None:
    """The innermost Python def or class around 0-based ``line`` (see ``find_target``).

    ``fallback``: when the file does not parse, try the enclosing definition alone.
    ``top_in_class``: top-level defs of ``text`` are methods (``text`` is a class excerpt).
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _python_target_in_broken_file(text, line) if fallback else None
    lines = split_lines(text)
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
    def_line = line_text(lines, node.lineno - 1)
    indent = leading_ws(def_line)
    first = node.body[0]
    body_start = (first.lineno - 1, _char_col(lines, first.lineno, first.col_offset))
    if body_start[0] > header_end[0]:
        body_indent = line_text(lines, body_start[0])[: body_start[1]]
        if body_indent.strip():  # e.g. "x = 1; y = 2" continuation: should not happen
            body_indent = leading_ws(body_indent)
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

    code = textwrap.dedent("\n".join(line_text(lines, i) for i in range(decl_line, end_line + 1)))
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
        decl_start=(decl_line, len(leading_ws(line_text(lines, decl_line)))),
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
