"""Symbols, imports and retrieval chunks of one file, with tree-sitter.

Supported: Python, JavaScript (+JSX), TypeScript, TSX, Go, Rust, Java, C and C++, through the
per-language grammar wheels (no run-time downloads). Every other text file gets chunks only.

Parsing never raises: a grammar that fails to load, a file with syntax errors or odd bytes
yields whatever symbols tree-sitter recovered, or none, and always the chunks.

Lines are counted the way tree-sitter counts rows: split on ``"\\n"`` only (see
:func:`split_lines`), so symbol and chunk line numbers agree with each other.

File extensions and grammars come from :mod:`lsp_llm.languages`; parsers from
:func:`lsp_llm.treesitter.parser_for` (one per thread and language, never shared). The node-type
tables below are what the indexer extracts from each grammar.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable

from tree_sitter import Node

from lsp_llm.languages import spec_for_path
from lsp_llm.treesitter import parser_for

log = logging.getLogger(__name__)

CHUNK_BLOCK_LINES = 15
"""Chunks are two consecutive blocks of up to this many lines: windows of up to 30 lines that
overlap their neighbours by one block."""
CHUNK_BLOCK_CHARS = 1500
"""A block also ends once it holds this many characters (minified files)."""
MAX_SIGNATURE_CHARS = 300
MAX_DOC_CHARS = 600
MAX_IMPORT_CHARS = 200


@dataclasses.dataclass(frozen=True, slots=True)
class Symbol:
    """A definition found in a file."""

    name: str
    kind: str
    """function, method, class, struct, interface, trait, enum, type, module, namespace, macro"""
    path: str
    """Workspace-relative, forward slashes."""
    start_line: int
    """0-based, including decorators, ``export`` and ``template<>`` prefixes."""
    end_line: int
    """0-based, inclusive."""
    signature: str
    """The header up to the body, whitespace collapsed."""
    doc: str = ""
    container: str = ""
    """Enclosing class, struct, impl, trait or namespace name; empty at top level."""


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """A window of lines for similarity retrieval."""

    start_line: int
    end_line: int
    """Exclusive."""


@dataclasses.dataclass(frozen=True, slots=True)
class ParseResult:
    language: str
    """A language name, or ``"text"`` when only chunks were produced."""
    symbols: tuple[Symbol, ...]
    imports: tuple[str, ...]
    chunks: tuple[Chunk, ...]


def language_for(path: str) -> str | None:
    """The index's language name for a file (its tree-sitter grammar name), by extension.

    None for files without a grammar (chunks only). The names are the grammar names of
    :mod:`lsp_llm.languages` (``tsx``; ``javascript`` for ``.jsx`` files).
    """
    spec = spec_for_path(path)
    return spec.grammar.name if spec is not None and spec.grammar is not None else None


def split_lines(text: str) -> list[str]:
    """Lines as tree-sitter numbers them (``\\r`` stays at the end of CRLF lines)."""
    return text.split("\n")


# -- per-language tables ------------------------------------------------------------------------

_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "class": "class",
    "method_definition": "function",
    "variable_declarator": "function",  # only when its value is a function (checked)
}
_TS_DEFS = {
    **_JS_DEFS,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "function_signature": "function",
    "method_signature": "function",
    "abstract_method_signature": "function",
    "internal_module": "namespace",
    "module": "namespace",
}
_C_DEFS = {
    "function_definition": "function",
    "declaration": "function",  # only prototypes (checked)
    "struct_specifier": "struct",
    "union_specifier": "struct",
    "enum_specifier": "enum",
    "type_definition": "type",
}

DEFS: dict[str, dict[str, str]] = {
    "python": {"function_definition": "function", "class_definition": "class"},
    "javascript": _JS_DEFS,
    "typescript": _TS_DEFS,
    "tsx": _TS_DEFS,
    "go": {
        "function_declaration": "function",
        "method_declaration": "method",
        "type_spec": "type",
        "type_alias": "type",
    },
    "rust": {
        "function_item": "function",
        "function_signature_item": "function",
        "struct_item": "struct",
        "union_item": "struct",
        "enum_item": "enum",
        "trait_item": "trait",
        "impl_item": "impl",
        "type_item": "type",
        "mod_item": "module",
        "macro_definition": "macro",
    },
    "java": {
        "class_declaration": "class",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "class",
        "annotation_type_declaration": "interface",
        "method_declaration": "function",
        "constructor_declaration": "function",
    },
    "c": _C_DEFS,
    "cpp": {
        **_C_DEFS,
        "field_declaration": "function",  # only method prototypes (checked)
        "class_specifier": "class",
        "namespace_definition": "namespace",
    },
}

IMPORTS: dict[str, frozenset[str]] = {
    "python": frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
    "javascript": frozenset({"import_statement"}),
    "typescript": frozenset({"import_statement"}),
    "tsx": frozenset({"import_statement"}),
    "go": frozenset({"import_spec"}),
    "rust": frozenset({"use_declaration", "extern_crate_declaration"}),
    "java": frozenset({"import_declaration"}),
    "c": frozenset({"preproc_include"}),
    "cpp": frozenset({"preproc_include", "using_declaration"}),
}

_WRAPPERS = frozenset(
    {
        "decorated_definition",
        "export_statement",
        "template_declaration",
        "ambient_declaration",
        "lexical_declaration",
        "variable_declaration",
    }
)
_COMMENTS = frozenset({"comment", "line_comment", "block_comment"})
_CONTAINER_KINDS = frozenset(
    {"class", "struct", "interface", "trait", "impl", "enum", "module", "namespace"}
)
_TYPE_KINDS = frozenset({"class", "struct", "interface", "trait", "impl", "enum"})
_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_DECLARATOR_LEAVES = frozenset(
    {
        "identifier",
        "field_identifier",
        "type_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
        "primitive_type",
    }
)
_C_FUNCTIONS = frozenset({"function_definition", "declaration", "field_declaration"})
_OPAQUE: dict[str, frozenset[str]] = {
    # Node types that cannot contain a definition of their language: not descended into.
    # Python definitions are statements, so simple statements and expressions never hold one
    # (most of a module's nodes are inside these).
    "python": frozenset(
        {
            "expression_statement",
            "return_statement",
            "assert_statement",
            "delete_statement",
            "raise_statement",
            "pass_statement",
            "break_statement",
            "continue_statement",
            "global_statement",
            "nonlocal_statement",
            "print_statement",
            "exec_statement",
            "type_alias_statement",
            "decorator",
            "argument_list",
            "parameters",
            "type",
            "string",
            "comment",
        }
    ),
}
_WS_RE = re.compile(r"\s+")


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def _collapse(text: str, limit: int) -> str:
    text = _WS_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _c_declarator(node: Node) -> tuple[Node | None, bool]:
    """Follow C/C++ ``declarator`` fields down to the name; also report a function declarator."""
    is_function = False
    current: Node | None = node.child_by_field_name("declarator")
    for _ in range(32):
        if current is None:
            return None, is_function
        if current.type == "function_declarator":
            is_function = True
        if current.type in _DECLARATOR_LEAVES:
            return current, is_function
        nxt = current.child_by_field_name("declarator")
        if nxt is None:
            nxt = next((c for c in current.named_children if c.type in _DECLARATOR_LEAVES), None)
        current = nxt
    return None, is_function


def _strip_generics(text: str) -> str:
    text = text.lstrip("*& ").strip()
    return re.split(r"[<\[(\s]", text, maxsplit=1)[0]


class _Extractor:
    def __init__(self, lang: str, rel: str, source: bytes) -> None:
        self.lang = lang
        self.rel = rel
        self.source = source
        self.defs = DEFS[lang]
        self.import_types = IMPORTS[lang]
        self.opaque = _OPAQUE.get(lang, frozenset())
        self.symbols: list[Symbol] = []
        self.imports: list[str] = []

    # name, kind and container adjustments; None = not a definition after all
    def describe(self, node: Node, kind: str) -> tuple[str, str, str] | None:
        t = node.type
        lang = self.lang
        extra_container = ""
        if lang in ("c", "cpp") and t in _C_FUNCTIONS:
            leaf, is_function = _c_declarator(node)
            if leaf is None or not is_function:
                return None
            name = _text(leaf)
            if leaf.type == "qualified_identifier" or "::" in name:
                extra_container, _, name = name.rpartition("::")
                extra_container = _strip_generics(extra_container.split("::")[-1])
            return name, kind, extra_container
        if lang in ("c", "cpp") and t in (
            "struct_specifier",
            "union_specifier",
            "enum_specifier",
            "class_specifier",
        ):
            if node.child_by_field_name("body") is None:
                return None
            name_node = node.child_by_field_name("name")
            return (_text(name_node), kind, "") if name_node is not None else None
        if t == "type_definition":
            leaf, _ = _c_declarator(node)
            return (_text(leaf), kind, "") if leaf is not None else None
        if t == "variable_declarator":
            value = node.child_by_field_name("value")
            if value is None or value.type not in _FUNCTION_VALUES:
                return None
        if t == "type_spec":
            type_node = node.child_by_field_name("type")
            if type_node is not None:
                kind = {"struct_type": "struct", "interface_type": "interface"}.get(
                    type_node.type, "type"
                )
        if t == "impl_item":
            type_node = node.child_by_field_name("type")
            return (_strip_generics(_text(type_node)), kind, "") if type_node else None
        if t == "method_declaration" and lang == "go":
            receiver = node.child_by_field_name("receiver")
            for param in receiver.named_children if receiver is not None else []:
                type_node = param.child_by_field_name("type")
                if type_node is not None:
                    extra_container = _strip_generics(_text(type_node))
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return None
        return _text(name_node), kind, extra_container

    def doc_for(self, node: Node, outer: Node) -> str:
        if self.lang == "python":
            body = node.child_by_field_name("body")
            first = body.named_children[0] if body is not None and body.named_children else None
            if first is not None and first.type == "expression_statement":
                string = first.named_children[0] if first.named_children else None
                if string is not None and string.type == "string":
                    content = [c for c in string.named_children if c.type == "string_content"]
                    raw = "".join(_text(c) for c in content) if content else _text(string)
                    return _clean_doc(raw.strip("\"'"))
            return ""
        comments: list[str] = []
        prev = outer.prev_named_sibling
        row = outer.start_point.row
        while prev is not None and prev.type in _COMMENTS and prev.end_point.row >= row - 1:
            comments.append(_text(prev))
            row = prev.start_point.row
            prev = prev.prev_named_sibling
        return _clean_doc("\n".join(_strip_comment(c) for c in reversed(comments)))

    def signature_for(self, node: Node, outer: Node) -> str:
        body = node.child_by_field_name("body")
        if body is None and node.type == "variable_declarator":
            value = node.child_by_field_name("value")
            body = value.child_by_field_name("body") if value is not None else None
        start = outer.start_byte
        end = body.start_byte if body is not None and body.start_byte > start else node.end_byte
        if self.lang == "python" and outer.type == "decorated_definition":
            start = node.start_byte  # decorators are in start_line; keep the signature clean
        text = self.source[start:end].decode("utf-8", errors="replace")
        if body is None and node.type in ("type_spec", "struct_item", "enum_item"):
            text = text.split("{", 1)[0]
        if node.type == "type_spec" and self.lang == "go":
            text = "type " + text
        return _collapse(text.rstrip().rstrip("{").rstrip(), MAX_SIGNATURE_CHARS)

    def run(self, root: Node) -> None:
        # Iterative walk: (node, containers) where containers is [(name, kind), ...].
        stack: list[tuple[Node, tuple[tuple[str, str], ...]]] = [(root, ())]
        defs = self.defs
        import_types = self.import_types
        opaque = self.opaque
        while stack:
            node, containers = stack.pop()
            t = node.type
            if t in import_types:
                self.imports.append(_collapse(_text(node), MAX_IMPORT_CHARS))
                continue
            if t in opaque:
                continue
            child_containers = containers
            descend = True
            kind = defs.get(t)
            if kind is not None:
                described = self.describe(node, kind)
                if described is not None:
                    name, kind, extra = described
                    parent_name, parent_kind = containers[-1] if containers else ("", "")
                    container = extra or parent_name
                    if kind == "function" and (extra or parent_kind in _TYPE_KINDS):
                        kind = "method"
                    outer = node
                    while outer.parent is not None and outer.parent.type in _WRAPPERS:
                        outer = outer.parent
                    if name and kind != "impl":
                        self.symbols.append(
                            Symbol(
                                name=name,
                                kind=kind,
                                path=self.rel,
                                start_line=outer.start_point.row,
                                end_line=node.end_point.row,
                                signature=self.signature_for(node, outer),
                                doc=self.doc_for(node, outer),
                                container=container,
                            )
                        )
                    if kind in _CONTAINER_KINDS and name:
                        child_containers = (*containers, (name, kind))
                    elif kind in ("function", "method"):
                        descend = False  # locals are not workspace symbols
            if descend and node.named_child_count:
                stack.extend([(child, child_containers) for child in reversed(node.named_children)])


def _strip_comment(text: str) -> str:
    lines = []
    for line in text.strip().splitlines():
        line = line.strip()
        for prefix in ("/**", "/*!", "/*", "///", "//!", "//", "*"):
            if line.startswith(prefix):
                line = line[len(prefix) :]
                break
        if line.endswith("*/"):
            line = line[:-2]
        lines.append(line.strip())
    return "\n".join(lines)


def _clean_doc(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    doc = "\n".join(lines).strip()
    return doc if len(doc) <= MAX_DOC_CHARS else doc[: MAX_DOC_CHARS - 1] + "…"


# -- chunks -------------------------------------------------------------------------------------


def make_chunks(lines: list[str]) -> tuple[Chunk, ...]:
    """Windows of up to two blocks (about 30 lines), each overlapping the next by one block."""
    blocks: list[tuple[int, int]] = []
    start = 0
    chars = 0
    for i, line in enumerate(lines):
        chars += len(line) + 1
        if i + 1 - start >= CHUNK_BLOCK_LINES or chars >= CHUNK_BLOCK_CHARS:
            blocks.append((start, i + 1))
            start, chars = i + 1, 0
    if start < len(lines):
        blocks.append((start, len(lines)))
    # Drop trailing whitespace-only blocks (the empty line after a final newline, ...).
    while blocks and not any(lines[j].strip() for j in range(*blocks[-1])):
        blocks.pop()
    if not blocks:
        return ()
    if len(blocks) == 1:
        return (Chunk(*blocks[0]),)
    return tuple(Chunk(blocks[i][0], blocks[i + 1][1]) for i in range(len(blocks) - 1))


# -- entry point --------------------------------------------------------------------------------

ParseFn = Callable[[str, str], ParseResult]


def parse_file(rel: str, text: str) -> ParseResult:
    """Symbols, imports and chunks of one file. Never raises."""
    lines = split_lines(text)
    chunks = make_chunks(lines)
    lang = language_for(rel)
    if lang is None:
        return ParseResult("text", (), (), chunks)
    parser = parser_for(lang)
    if parser is None:
        return ParseResult("text", (), (), chunks)
    try:
        source = text.encode("utf-8", errors="surrogatepass")
        tree = parser.parse(source)
        extractor = _Extractor(lang, rel, source)
        extractor.run(tree.root_node)
    except Exception as exc:  # a grammar bug must not take the index down
        log.warning("cannot parse %s: %s", rel, exc)
        return ParseResult(lang, (), (), chunks)
    symbols = tuple(sorted(extractor.symbols, key=lambda s: (s.start_line, s.end_line, s.name)))
    return ParseResult(lang, symbols, tuple(extractor.imports), chunks)
