"""Docstring targets for JavaScript, TypeScript (and TSX), Rust, Go and Java, with tree-sitter.

Parsers come from :func:`lsp_llm.treesitter.parser_for` (one per thread). A target includes the
doc comment above the declaration (``/** */``, ``///``, Go ``//`` lines) and its decorators or
attributes.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lsp_llm.docstrings.model import DocTarget, Param, TargetKind
from lsp_llm.docstrings.text import leading_ws, line_text, split_lines
from lsp_llm.languages import docstring_language
from lsp_llm.treesitter import parser_for

if TYPE_CHECKING:
    from tree_sitter import Tree


def parse_tree(text: str, language: str) -> Tree:
    """A tree-sitter tree for ``text`` (used by tests to check the result has no errors)."""
    lang = docstring_language(language)
    parser = parser_for(lang) if lang is not None and lang != "python" else None
    if parser is None:
        raise ValueError(f"no tree-sitter grammar here for {language!r}")
    return parser.parse(text.encode("utf-8"))


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
        self.lines = split_lines(text)

    def of(self, node: Any) -> str:
        if node is None:
            return ""
        return str(self.data[node.start_byte : node.end_byte].decode("utf-8", errors="replace"))

    def col(self, row: int, byte_col: int) -> int:
        line = line_text(self.lines, row)
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
        start_line = line_text(src.lines, prev.start_point[0])
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


def tree_sitter_target(text: str, line: int, lang: str) -> DocTarget | None:
    """The innermost declaration around 0-based ``line``; ``lang`` a docstring language name."""
    parser = parser_for(lang)
    if parser is None:  # the grammar wheel is missing (logged once by the loader)
        return None
    src = _Src(text)
    tree = parser.parse(src.data)
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
    indent = leading_ws(line_text(src.lines, decl_row))
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
    code_lines = [line_text(src.lines, i) for i in range(decl_row, end_line + 1)]
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
