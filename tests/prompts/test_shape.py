"""Single-line vs multi-line, decided before generation: one table per rule and language."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from lsp_llm.languages import resolve
from lsp_llm.prompts.shape import decide_shape


class Case(NamedTuple):
    id: str
    language: str
    text: str
    """The document, with ``|`` at the cursor."""
    multiline: bool
    reason: str


CASES = [
    # Python
    Case("py-after-def-colon", "python", "def f(x):|\n\nprint(1)\n", True, "block opener"),
    Case(
        "py-blank-in-empty-body",
        "python",
        "def f(x):\n    |\n\nx = 1\n",
        True,
        "next line dedented",
    ),
    Case(
        "py-hole-mid-function",
        "python",
        "def f(x):\n    a = 1\n    |\n    return a\n",
        False,
        "next line at the same indentation",
    ),
    Case(
        "py-hole-col0-mid-function",
        "python",
        "def f(x):\n    a = 1\n|\n    return a\n",
        False,
        "next line at the same indentation",
    ),
    Case(
        "py-blank-end-of-function",
        "python",
        "def f(x):\n    a = 1\n    |\n\ndef g():\n    pass\n",
        True,
        "next line dedented",
    ),
    Case("py-end-of-file", "python", "import os\n\n|", True, "end of file"),
    Case(
        "py-end-of-statement",
        "python",
        "def f(x):\n    a = 1|\n    return a\n",
        False,
        "end of line",
    ),
    Case("py-opener-with-body", "python", "if x:|\n    y = 1\n", False, "block has a body"),
    Case("py-mid-line", "python", "x = foo(|)\ny = 2\n", False, "mid-line"),
    Case(
        "py-in-comment",
        "python",
        "def f():\n    # note: |\n    return 1\n",
        False,
        "string or comment",
    ),
    Case("py-in-string", "python", 'x = "abc: |"\n', False, "string or comment"),
    Case("py-open-bracket", "python", "items = [|\n\nprint(items)\n", True, "block opener"),
    # JavaScript / TypeScript
    Case("js-empty-braces-same-line", "javascript", "function f() {|}\n", True, "empty block"),
    Case("js-blank-in-empty-block", "javascript", "function f() {\n  |\n}\n", True, "empty block"),
    Case(
        "js-hole-mid-function",
        "javascript",
        "function f() {\n  const a = 1;\n  |\n  return a;\n}\n",
        False,
        "next line at the same indentation",
    ),
    Case("js-arrow", "javascript", "const f = (x) =>|\n", True, "block opener"),
    Case("js-template-string", "javascript", "const s = `hello {|`;\n", False, "string or comment"),
    Case(
        "ts-hole",
        "typescript",
        "function f(): number {\n  let a = 1;\n  |\n  return a;\n}\n",
        False,
        "next line at the same indentation",
    ),
    Case("ts-empty-interface", "typescriptreact", "interface A {\n  |\n}\n", True, "empty block"),
    # Go
    Case("go-after-brace", "go", "func f() int {|\n}\n", True, "block opener"),
    Case(
        "go-hole",
        "go",
        "func f() int {\n\ta := 1\n\t|\n\treturn a\n}\n",
        False,
        "next line at the same indentation",
    ),
    Case("go-mid-line", "go", "func f() int {\n\treturn g(|)\n}\n", False, "mid-line"),
    # Rust
    Case("rust-empty-fn", "rust", "fn f() -> i32 {\n    |\n}\n", True, "empty block"),
    Case(
        "rust-hole",
        "rust",
        "fn f() -> i32 {\n    let a = 1;\n    |\n    a\n}\n",
        False,
        "next line at the same indentation",
    ),
    Case(
        "rust-in-line-comment", "rust", "fn f() {\n    // todo {|\n}\n", False, "string or comment"
    ),
    # Java
    Case(
        "java-empty-method", "java", "class A {\n  void f() {\n    |\n  }\n}\n", True, "empty block"
    ),
    Case(
        "java-hole",
        "java",
        "class A {\n  int f() {\n    int a = 1;\n    |\n    return a;\n  }\n}\n",
        False,
        "next line at the same indentation",
    ),
    # C / C++
    Case("c-empty-body", "c", "int main(void) {\n    |\n}\n", True, "empty block"),
    Case("c-block-comment", "c", "/* a {\n   b |\n*/\nint x;\n", False, "string or comment"),
    Case(
        "cpp-hole",
        "cpp",
        "int f() {\n  int a = 1;\n  |\n  return a;\n}\n",
        False,
        "next line at the same indentation",
    ),
    Case(
        "cpp-statement-end",
        "cpp",
        "int f() {\n  int a = 1;|\n  return a;\n}\n",
        False,
        "end of line",
    ),
    # A language without tree-sitter rules: text rules alone
    Case("kotlin-empty-braces", "kotlin", "fun f() {|}\n", True, "empty block"),
    Case(
        "kotlin-hole",
        "kotlin",
        "fun f() {\n    val a = 1\n    |\n    a\n}\n",
        False,
        "next line at the same indentation",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_shape(case: Case) -> None:
    prefix, suffix = case.text.split("|", 1)
    shape = decide_shape(prefix, suffix, case.language)
    assert (shape.multiline, shape.reason) == (case.multiline, case.reason)


def test_rules_cover_the_required_languages_with_a_grammar() -> None:
    for language in ("python", "javascript", "typescript", "go", "rust", "java", "c", "cpp"):
        spec = resolve(language)
        assert spec is not None and spec.grammar is not None
        assert spec.shape.block_nodes and spec.shape.literal_nodes


def test_tree_sitter_finds_a_multi_line_comment_the_line_rules_cannot() -> None:
    # The cursor's line alone looks like code ending in a block opener.
    prefix, suffix = "/*\n * if (x) {", "\n */\nint y;\n"
    assert decide_shape(prefix, suffix, "c").reason == "string or comment"
    assert decide_shape(prefix, suffix, "kotlin").reason == "block opener"  # no grammar
