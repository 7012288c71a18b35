"""Tree-sitter symbols for each supported language, chunks, and graceful failure."""

from __future__ import annotations

import itertools

import pytest

from lsp_llm.context.parse import (
    CHUNK_BLOCK_LINES,
    language_for,
    make_chunks,
    parse_file,
    split_lines,
)

SAMPLES: dict[str, tuple[str, str]] = {
    "python": (
        "m.py",
        "import os\nfrom pkg.util import helper\n\n@decorator\nclass Repo(Base):\n"
        '    """Stores things."""\n\n    def fetch(self, key: str) -> bytes:\n'
        '        """Fetch one key."""\n        return b""\n\n'
        "async def main(argv: list[str]) -> int:\n    return 0\n",
    ),
    "javascript": (
        "m.js",
        'import { helper } from "./util";\n/** Adds two numbers. */\nfunction add(a, b) {\n'
        "  return a + b;\n}\nclass Counter {\n  increment(step) { return step; }\n}\n"
        "export const double = (x) => x * 2;\n",
    ),
    "typescript": (
        "m.ts",
        'import { helper } from "./util";\ninterface Shape { area(): number }\n'
        "type Id = string;\nenum Color { Red }\nexport class Square implements Shape {\n"
        "  area(): number { return 1; }\n}\nexport function makeSquare(side: number): Square {\n"
        "  return new Square();\n}\n",
    ),
    "tsx": (
        "m.tsx",
        "import React from 'react';\nexport function Button(props: { label: string }) {\n"
        "  return <button>{props.label}</button>;\n}\n",
    ),
    "go": (
        "m.go",
        'package m\n\nimport (\n\t"fmt"\n)\n\n// Server serves.\ntype Server struct {\n'
        "\tAddr string\n}\n\n// Start starts the server.\nfunc (s *Server) Start() error {\n"
        '\tfmt.Println("x")\n\treturn nil\n}\n\nfunc NewServer(addr string) *Server {\n'
        "\treturn &Server{Addr: addr}\n}\n",
    ),
    "rust": (
        "m.rs",
        "use std::collections::HashMap;\n\n/// A cache.\npub struct Cache {\n"
        "    map: HashMap<String, u32>,\n}\n\nimpl Cache {\n"
        "    /// Make one.\n    pub fn new() -> Self {\n"
        "        Cache { map: HashMap::new() }\n    }\n}\n\npub trait Store {\n"
        "    fn get(&self, key: &str) -> Option<u32>;\n}\n\nfn helper(x: u32) -> u32 {\n"
        "    x + 1\n}\n",
    ),
    "java": (
        "M.java",
        "package m;\n\nimport java.util.List;\n\n/** A user. */\npublic class User {\n"
        "    public User(String name) {}\n\n    /** The name. */\n"
        '    public String getName() { return ""; }\n}\n\ninterface Named { String name(); }\n',
    ),
    "c": (
        "m.c",
        '#include <stdio.h>\n#include "util.h"\n\nstruct point { int x; int y; };\n\n'
        "/* Sum of two ints. */\nint add(int a, int b) {\n    return a + b;\n}\n\n"
        "typedef struct { int w; } box_t;\nint prototype_only(void);\n",
    ),
    "cpp": (
        "m.cpp",
        "#include <vector>\n\nnamespace geo {\nclass Polygon {\n public:\n"
        "  double area() const { return 0.0; }\n  void add(int x);\n};\n\n"
        "void Polygon::add(int x) {}\n\ntemplate <typename T>\nT identity(T value) {\n"
        "  return value;\n}\n}  // namespace geo\n",
    ),
}

# (name, kind, container) that must be found; plus docs for some.
EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    "python": [("Repo", "class", ""), ("fetch", "method", "Repo"), ("main", "function", "")],
    "javascript": [
        ("add", "function", ""),
        ("Counter", "class", ""),
        ("increment", "method", "Counter"),
        ("double", "function", ""),
    ],
    "typescript": [
        ("Shape", "interface", ""),
        ("Id", "type", ""),
        ("Color", "enum", ""),
        ("Square", "class", ""),
        ("area", "method", "Square"),
        ("makeSquare", "function", ""),
    ],
    "tsx": [("Button", "function", "")],
    "go": [("Server", "struct", ""), ("Start", "method", "Server"), ("NewServer", "function", "")],
    "rust": [
        ("Cache", "struct", ""),
        ("new", "method", "Cache"),
        ("Store", "trait", ""),
        ("get", "method", "Store"),
        ("helper", "function", ""),
    ],
    "java": [
        ("User", "class", ""),
        ("User", "method", "User"),
        ("getName", "method", "User"),
        ("Named", "interface", ""),
    ],
    "c": [
        ("point", "struct", ""),
        ("add", "function", ""),
        ("box_t", "type", ""),
        ("prototype_only", "function", ""),
    ],
    "cpp": [
        ("geo", "namespace", ""),
        ("Polygon", "class", "geo"),
        ("area", "method", "Polygon"),
        ("add", "method", "Polygon"),
        ("identity", "function", "geo"),
    ],
}

DOCS = {
    "python": ("fetch", "Fetch one key."),
    "javascript": ("add", "Adds two numbers."),
    "go": ("Start", "Start starts the server."),
    "rust": ("Cache", "A cache."),
    "java": ("getName", "The name."),
    "c": ("add", "Sum of two ints."),
}

SIGNATURES = {
    "python": ("fetch", "def fetch(self, key: str) -> bytes:"),
    "go": ("Start", "func (s *Server) Start() error"),
    "rust": ("new", "pub fn new() -> Self"),
    "c": ("add", "int add(int a, int b)"),
    "typescript": ("makeSquare", "export function makeSquare(side: number): Square"),
}

IMPORTS = {
    "python": "from pkg.util import helper",
    "javascript": 'import { helper } from "./util";',
    "go": '"fmt"',
    "rust": "use std::collections::HashMap;",
    "java": "import java.util.List;",
    "c": '#include "util.h"',
    "cpp": "#include <vector>",
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_symbols_per_language(language: str) -> None:
    name, source = SAMPLES[language]
    result = parse_file(f"src/{name}", source)
    assert result.language == language
    found = {(s.name, s.kind, s.container) for s in result.symbols}
    for expected in EXPECTED[language]:
        assert expected in found, (expected, sorted(found))
    assert all(s.path == f"src/{name}" for s in result.symbols)
    lines = split_lines(source)
    for symbol in result.symbols:
        assert 0 <= symbol.start_line <= symbol.end_line < len(lines)
        assert symbol.signature
    if language in DOCS:
        symbol_name, doc = DOCS[language]
        assert doc in {s.doc for s in result.symbols if s.name == symbol_name}
    if language in SIGNATURES:
        symbol_name, signature = SIGNATURES[language]
        assert signature in {s.signature for s in result.symbols if s.name == symbol_name}
    if language in IMPORTS:
        assert IMPORTS[language] in result.imports


def test_decorator_is_part_of_the_definition() -> None:
    result = parse_file("m.py", SAMPLES["python"][1])
    repo = next(s for s in result.symbols if s.name == "Repo")
    assert repo.start_line == 3  # the @decorator line
    assert repo.signature == "class Repo(Base):"
    assert repo.doc == "Stores things."


def test_locals_are_not_symbols() -> None:
    source = "def outer():\n    def inner():\n        pass\n    return inner\n"
    names = [s.name for s in parse_file("m.py", source).symbols]
    assert names == ["outer"]


def test_unknown_extension_falls_back_to_chunks() -> None:
    text = "\n".join(f"line {i}" for i in range(100))
    result = parse_file("notes.txt", text)
    assert result.language == "text"
    assert result.symbols == ()
    assert result.chunks
    assert result.chunks[0].start_line == 0
    assert result.chunks[-1].end_line == 100


@pytest.mark.parametrize(
    "source",
    [
        "def broken(:\n    return )))\nclass\n",
        "\x00\x01\x02 def f(): pass",
        "def f():\n    return '\udc80'\n",  # a lone surrogate
        "",
        "\n\n\n",
        "x" * 50_000,
    ],
)
def test_garbage_never_raises(source: str) -> None:
    result = parse_file("weird.py", source)
    assert result.language == "python"
    for chunk in result.chunks:
        assert chunk.start_line < chunk.end_line


def test_syntax_errors_keep_recoverable_symbols() -> None:
    source = "def good(a):\n    return a\n\ndef bad(:\n    pass\n\nclass Fine:\n    pass\n"
    names = {s.name for s in parse_file("m.py", source).symbols}
    assert {"good", "Fine"} <= names


def test_chunks_are_overlapping_windows() -> None:
    lines = [f"value_{i} = {i}" for i in range(100)]
    chunks = make_chunks(lines)
    assert chunks[0].start_line == 0
    assert chunks[-1].end_line == 100
    for a, b in itertools.pairwise(chunks):
        assert a.start_line < b.start_line < a.end_line  # overlap by one block
        assert b.start_line - a.start_line == CHUNK_BLOCK_LINES
    assert all(c.end_line - c.start_line <= 2 * CHUNK_BLOCK_LINES for c in chunks)


def test_long_lines_make_smaller_chunks() -> None:
    lines = ["y" * 1000 for _ in range(10)]
    chunks = make_chunks(lines)
    assert len(chunks) > 1
    assert all(c.end_line - c.start_line <= 4 for c in chunks)


def test_language_for() -> None:
    assert language_for("a/b/c.py") == "python"
    assert language_for("x.TSX") == "tsx"
    assert language_for("x.hpp") == "cpp"
    assert language_for("Makefile") is None
    assert language_for("notes.md") is None
