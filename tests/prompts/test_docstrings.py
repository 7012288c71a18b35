"""Docstring targets, rendering and edits, checked by really parsing the result."""

from __future__ import annotations

import ast
import json
import os
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_llm.docstrings import (
    DocContent,
    DocTarget,
    TextEdit,
    apply_edit,
    detect_indent_unit,
    docstring_edit,
    find_target,
    go_summary,
    parse_tree,
    render_docstring,
)
from lsp_llm.prompts.instructions import parse_docstring_answer

CASES = Path(__file__).parent / "docstring_cases"


# --------------------------------------------------------------------------------------------
# Helpers


def document(
    text: str,
    line: int,
    language: str = "python",
    answer: str = "Summary: Do the thing.",
    style: str = "google",
) -> tuple[str, DocTarget, TextEdit]:
    target = find_target(text, line, language)
    assert target is not None, f"no target at line {line}"
    content = parse_docstring_answer(answer, target)
    edit = docstring_edit(text, target, render_docstring(target, content, style))
    assert edit is not None
    return apply_edit(text, edit), target, edit


def find_def(tree: ast.AST, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef:
    for node in ast.walk(tree):
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, defs) and node.name == name:
            return node
    raise AssertionError(f"{name} not found")


def google_names(docstring: str) -> list[str]:
    """Parameter names listed in a Google docstring's Args/Attributes section."""
    names: list[str] = []
    in_args = False
    for line in docstring.splitlines():
        if line.strip() in ("Args:", "Attributes:"):
            in_args = True
            continue
        if in_args:
            if not line.strip():
                break
            match = re.match(r"^    (\*{0,2}\w+): ", line)
            if match:
                names.append(match.group(1))
    return names


def numpy_names(docstring: str) -> list[str]:
    lines = docstring.splitlines()
    start = lines.index("Parameters") + 2
    names = []
    for line in lines[start:]:
        if not line.strip():
            break
        if not line.startswith(" "):
            names.append(line.split(" : ")[0].strip())
    return names


def rest_names(docstring: str) -> list[str]:
    return re.findall(r"^:param (\w+):", docstring, re.MULTILINE)


def real_names(node: ast.FunctionDef | ast.AsyncFunctionDef, drop_first: bool) -> list[str]:
    a = node.args
    names = [x.arg for x in [*a.posonlyargs, *a.args]]
    if drop_first:
        names = names[1:]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return names


def check_python(
    text: str, line: int, name: str, expected: list[str], answer: str = "Summary: Do it."
) -> tuple[str, str]:
    """Document ``name`` at ``line``; the result parses and documents exactly ``expected``."""
    out, target, _ = document(text, line, answer=answer)
    assert target.name == name
    tree = ast.parse(out)
    node = find_def(tree, name)
    doc = ast.get_docstring(node)
    assert doc is not None, out
    assert google_names(doc) == expected, doc
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and target.kind != "class":
        static = any(ast.unparse(d) == "staticmethod" for d in node.decorator_list)
        assert real_names(node, target.kind == "method" and not static) == expected
    return out, doc


def inserted_lines(before: str, after: str) -> list[str]:
    """The lines ``after`` has in addition to ``before`` (which must be kept in order)."""
    old = before.split("\n")
    new = after.split("\n")
    extra: list[str] = []
    i = 0
    for line in new:
        if i < len(old) and line == old[i]:
            i += 1
        else:
            extra.append(line)
    assert i == len(old), "original lines were changed"
    return extra


# --------------------------------------------------------------------------------------------
# Python


def test_function_gets_google_docstring_with_every_param() -> None:
    src = "import os\n\n\ndef add(a, b=1):\n    return a + b\n"
    out, doc = check_python(src, 3, "add", ["a", "b"], "Summary: Add two numbers.\nParam a: x")
    assert doc.startswith("Add two numbers.")
    assert "Returns:" in doc
    extra = inserted_lines(src, out)
    assert extra[0] == '    """Add two numbers.'
    assert all(x == "" or x.startswith("    ") for x in extra)


def test_cursor_inside_body_finds_function() -> None:
    src = "def add(a, b):\n    x = a\n    return x + b\n"
    target = find_target(src, 2, "python")
    assert target is not None and target.name == "add"
    assert target.insert_line == 1
    assert target.body_indent == "    "


def test_method_skips_self_and_keeps_indent() -> None:
    src = textwrap.dedent(
        """\
        class Box:
            def __init__(self, size):
                self.size = size

            def grow(self, by: int, *, twice: bool = False) -> int:
                self.size += by
                return self.size
        """
    )
    out, doc = check_python(src, 4, "grow", ["by", "twice"])
    extra = inserted_lines(src, out)
    assert extra[0].startswith('        """')
    assert "Returns:" in doc


def test_classmethod_and_staticmethod() -> None:
    src = textwrap.dedent(
        """\
        class K:
            @classmethod
            def make(cls, n):
                return cls()

            @staticmethod
            def helper(x, y):
                return x
        """
    )
    check_python(src, 1, "make", ["n"])
    out, _ = check_python(src, 6, "helper", ["x", "y"])
    assert "cls" not in out.split("def helper")[1].split('"""')[1]


def test_nested_function_is_innermost_target() -> None:
    src = textwrap.dedent(
        """\
        def outer(a):
            def inner(b, c):
                return b + c
            return inner(a, a)
        """
    )
    out, _ = check_python(src, 2, "inner", ["b", "c"])
    assert ast.get_docstring(find_def(ast.parse(out), "outer")) is None
    assert '        """Do it.' in out
    # on the outer def's own line, the outer function is the target
    check_python(src, 0, "outer", ["a"])


def test_async_def_and_decorators() -> None:
    src = textwrap.dedent(
        """\
        import functools


        @functools.lru_cache(maxsize=None)
        @other(
            1,
        )
        async def fetch(url: str, timeout: float = 2.0) -> bytes:
            return b""
        """
    )
    out, _ = check_python(src, 3, "fetch", ["url", "timeout"])  # cursor on the decorator
    target = find_target(src, 3, "python")
    assert target is not None and target.is_async
    assert out.index('"""Do it.') > out.index("async def fetch")


def test_one_line_def_is_split() -> None:
    src = "def ident(x): return x\nVALUE = ident(1)\n"
    out, _ = check_python(src, 0, "ident", ["x"])
    assert "    return x\n" in out
    assert out.endswith("VALUE = ident(1)\n")
    ns: dict[str, object] = {}
    exec(compile(out, "<doc>", "exec"), ns)
    assert ns["VALUE"] == 1


def test_one_line_def_with_several_statements_and_class() -> None:
    src = "def f(a): b = a; return b\nclass C: pass\n"
    out, _ = check_python(src, 0, "f", ["a"])
    out2, _ = check_python(out, len(out.split("\n")) - 2, "C", [])
    ns: dict[str, object] = {}
    exec(compile(out2, "<doc>", "exec"), ns)
    assert ns["f"](3) == 3  # type: ignore[operator]


def test_existing_docstring_is_replaced() -> None:
    src = textwrap.dedent(
        '''\
        def scale(v, k):
            """Old text.

            Args:
                v: old.
                gone: an argument that no longer exists.
            """
            return v * k
        '''
    )
    target = find_target(src, 0, "python")
    assert target is not None and target.existing == (1, 6)
    out, doc = check_python(src, 0, "scale", ["v", "k"], "Summary: Scale v.\nParam k: Factor.")
    assert "Old text" not in out and "gone" not in out
    assert out.count('"""') == 2
    assert doc.startswith("Scale v.")
    assert "k: Factor." in doc
    # not replacing when told not to
    assert docstring_edit(src, target, '    """x"""\n', replace_existing=False) is None


def test_existing_one_line_docstring_variants() -> None:
    for src in (
        'def f(a): "doc"; return a\n',
        'def f(a): "doc"\n',
        'def f(a):\n    "doc"; return a\n',
        'def f(a):\n    "doc"  # note\n    return a\n',
        'def f(a):\n    """doc"""',  # last line, no newline
    ):
        out, doc = check_python(src, 0, "f", ["a"], "Summary: New.")
        assert doc.startswith("New."), out
        assert "doc" not in out.replace("docstring", ""), out


def test_varargs_and_keyword_only() -> None:
    src = "def call(fn, /, *args, key=None, strict: bool, **kwargs):\n    pass\n"
    _out, doc = check_python(
        src,
        0,
        "call",
        ["fn", "*args", "key", "strict", "**kwargs"],
        "Param args: Positional arguments.\nParam **kwargs: Keyword arguments.",
    )
    assert "*args: Positional arguments." in doc
    assert "**kwargs: Keyword arguments." in doc
    assert "Returns:" not in doc


def test_invented_param_dropped_and_missing_added() -> None:
    src = "def area(width, height):\n    return width * height\n"
    answer = (
        "Summary: Compute an area.\n"
        "Param width: The width.\n"
        "Param depth: Invented by the model.\n"
        "Returns: The area."
    )
    out, doc = check_python(src, 0, "area", ["width", "height"], answer)
    assert "depth" not in out
    assert "Invented" not in out
    assert "height: The height." in doc  # the fallback for the missing one
    assert "width: The width." in doc


def test_class_docstring_documents_init_params() -> None:
    src = textwrap.dedent(
        """\
        class Client:
            timeout = 3

            def __init__(self, url, *, retries=2):
                self.url = url
        """
    )
    out, doc = check_python(src, 0, "Client", ["url", "retries"], "Summary: An HTTP client.")
    assert doc.startswith("An HTTP client.")
    assert "Returns" not in doc
    # PEP 257: a blank line separates the class docstring from what follows
    assert '    """\n\n    timeout = 3' in out


def test_dataclass_documents_fields_as_attributes() -> None:
    src = textwrap.dedent(
        """\
        from dataclasses import dataclass
        from typing import ClassVar


        @dataclass(frozen=True)
        class Point:
            x: float
            y: float = 0.0
            count: ClassVar[int] = 0
        """
    )
    _out, doc = check_python(src, 5, "Point", ["x", "y"])
    assert "Attributes:" in doc


def test_tabs_are_preserved() -> None:
    src = "class T:\n\tdef m(self, a):\n\t\treturn a\n"
    out, _doc = check_python(src, 1, "m", ["a"], "Summary: M.\nParam a: An a.")
    assert '\t\t"""M.\n' in out
    assert "\t\t\ta: An a.\n" in out.replace("    ", "\t")  # section body under the tabs
    for line in inserted_lines(src, out):
        assert line == "" or line.startswith("\t\t")


def test_tabs_for_one_line_def_in_tab_file() -> None:
    src = "def g():\n\treturn 1\n\n\ndef f(a): return a\n"
    out, _ = check_python(src, 4, "f", ["a"])
    assert '\n\t"""Do it.' in out
    assert "\n\treturn a\n" in out


def test_multiline_signature_and_return_annotation_with_colons() -> None:
    src = textwrap.dedent(
        """\
        def build(
            items: dict[str, int],  # a comment: with a colon
            key=lambda x: x,
        ) -> dict[str, "a:b"]:
            return {}
        """
    )
    out, _ = check_python(src, 0, "build", ["items", "key"])
    lines = out.split("\n")
    assert lines[3].startswith(") -> dict")
    assert lines[4] == '    """Do it.'


def test_unicode_before_body_uses_str_columns() -> None:
    src = "def größe(ä, b): return 'ü' + ä\n"
    out, target, edit = document(src, 0)
    assert target.header_end == (0, src.index(":") + 1)
    assert edit.start_col == src.index(":") + 1
    tree = ast.parse(out)
    assert google_names(ast.get_docstring(find_def(tree, "größe")) or "") == ["ä", "b"]


def test_crlf_file_keeps_crlf() -> None:
    src = "def f(a):\r\n    return a\r\n"
    out, _ = check_python(src.replace("\r\n", "\n"), 0, "f", ["a"], "Summary: Do the thing.")
    out_crlf, _, _ = document(src, 0)
    assert "\n" not in out_crlf.replace("\r\n", "")
    assert ast.get_docstring(find_def(ast.parse(out_crlf), "f")) is not None
    assert out_crlf.replace("\r\n", "\n") == out


@pytest.mark.parametrize("style", ["google", "numpy", "rest"])
def test_styles_document_exactly_the_real_params(style: str) -> None:
    src = "def fit(data, epochs: int = 3, *args, **kw) -> float:\n    return 0.0\n"
    out, _target, _ = document(src, 0, answer="Summary: Fit.\nParam nope: x", style=style)
    doc = ast.get_docstring(find_def(ast.parse(out), "fit")) or ""
    expected = ["data", "epochs", "*args", "**kw"]
    if style == "google":
        assert google_names(doc) == expected
    elif style == "numpy":
        assert numpy_names(doc) == expected
        assert "epochs : int, optional" in doc
        assert "Returns\n-------\nfloat" in doc
    else:
        assert rest_names(doc) == ["data", "epochs", "args", "kw"]
        assert ":type epochs: int" in doc and ":rtype: float" in doc
    assert "nope" not in doc


def test_generator_and_raises_sections() -> None:
    src = textwrap.dedent(
        """\
        def chunks(seq, n):
            if n <= 0:
                raise ValueError("n must be positive")
            def helper():
                raise KeyError("not ours")
            for i in range(0, len(seq), n):
                yield seq[i : i + n]
        """
    )
    _out, doc = check_python(src, 0, "chunks", ["seq", "n"])
    assert "Yields:" in doc
    assert "ValueError: n must be positive." in doc
    assert "KeyError" not in doc


def test_no_returns_section_for_none() -> None:
    src = "def log(msg) -> None:\n    print(msg)\n\ndef side(x):\n    x.append(1)\n    return\n"
    for line, name in ((0, "log"), (3, "side")):
        _, doc = check_python(src, line, name, ["msg"] if name == "log" else ["x"])
        assert "Returns" not in doc


def test_quotes_and_backslashes_are_escaped() -> None:
    src = "def q(s):\n    return s\n"
    answer = 'Summary: Strip \\n and """quotes""" from "s"\nParam s: A "quoted" path like C:\\dir\\'
    out, target, _ = document(src, 0, answer=answer)
    doc = ast.get_docstring(find_def(ast.parse(out), "q")) or ""
    assert 'Strip \\n and quotes from "s".' in doc  # the model's triple quotes are dropped
    assert "C:\\dir\\" in doc
    # text given directly (not via the parser) is escaped, not dropped
    content = DocContent(summary='Has """ and \\ inside', params={"s": 'ends in "'})
    rendered = render_docstring(target, content, "google")
    node = find_def(ast.parse("def q(s):\n" + rendered + "    return s\n"), "q")
    assert (ast.get_docstring(node) or "").startswith('Has """ and \\ inside.')
    # a one-line docstring that ends in a quote
    bare = find_target("def z():\n    pass\n", 0, "python")
    assert bare is not None
    one = render_docstring(bare, DocContent(summary='Say "hi"'), "google")
    assert one.count("\n") == 1
    node = find_def(ast.parse("def z():\n" + one + "    pass\n"), "z")
    assert ast.get_docstring(node) == 'Say "hi".'


def test_no_target_outside_definitions_or_on_bad_input() -> None:
    src = "import os\n\nX = 1\n\ndef f():\n    pass\n"
    assert find_target(src, 2, "python") is None
    assert find_target(src, 4, "python") is not None
    assert find_target("def f(:\n", 0, "python") is None  # does not parse
    assert find_target(src, 4, "cobol") is None
    assert find_target("", 0, "javascript") is None


def test_syntax_error_elsewhere_in_the_file() -> None:
    src = textwrap.dedent(
        """\
        class Half:
            def done(self, a, b=2):
                return a

            def typing_now(self, x
        """
    )
    out, target, _ = document(src, 2, answer="Summary: Finish.\nParam b: Bee.")
    assert target.name == "done" and target.kind == "method"
    assert target.param_names == ("a", "b")
    assert target.body_indent == "        "
    lines = out.split("\n")
    assert lines[1] == "    def done(self, a, b=2):"
    assert lines[2] == '        """Finish.'
    assert "            b: Bee." in lines
    # the definition being typed itself cannot be documented
    assert find_target(src, 4, "python") is None


def test_detect_indent_unit() -> None:
    assert detect_indent_unit("if x:\n  y\n  if z:\n    w\n") == "  "
    assert detect_indent_unit("if x:\n\ty\n") == "\t"
    assert detect_indent_unit("x = 1\n") == "    "
    assert detect_indent_unit("", "\t") == "\t"


@settings(max_examples=60, deadline=None)
@given(
    summary=st.text(max_size=80),
    desc=st.text(max_size=60),
)
def test_any_model_text_gives_a_valid_python_file(summary: str, desc: str) -> None:
    src = "class A:\n    def m(self, a, *rest):\n        return a\n"
    out, _, _ = document(src, 1, answer=f"Summary: {summary}\nParam a: {desc}\nParam zz: {desc}")
    doc = ast.get_docstring(find_def(ast.parse(out), "m")) or ""
    assert google_names(doc) == ["a", "*rest"]


# --------------------------------------------------------------------------------------------
# Other languages


def ts_clean(text: str, language: str) -> None:
    tree = parse_tree(text, language)
    assert not tree.root_node.has_error, text


def test_javascript_function_gets_jsdoc() -> None:
    src = textwrap.dedent(
        """\
        import x from "x";

        function greet(name, greeting = "Hello", ...rest) {
          return `${greeting}, ${name}`;
        }
        """
    )
    out, target, _ = document(
        src,
        3,
        "javascript",
        "Summary: Build a greeting.\nParam name: Who to greet.\nParam bogus: no.",
    )
    ts_clean(out, "javascript")
    assert target.kind == "function" and target.returns_value
    doc = out[out.index("/**") : out.index("*/") + 2]
    assert re.findall(r"@param \{[^}]*\} \[?(\.*\w+)", doc) == ["name", "greeting", "rest"]
    assert "@param {*} name - Who to greet." in doc
    assert '@param {string} [greeting="Hello"]' in doc
    assert "@param {...*} rest" in doc
    assert "@returns" in doc
    assert "bogus" not in doc
    assert out.index("/**") < out.index("function greet")
    assert out.split("\n")[2] == "/**"


def test_javascript_arrow_method_and_existing_jsdoc() -> None:
    src = textwrap.dedent(
        """\
        export const double = (n) => n * 2;

        class Counter {
          /**
           * Old.
           * @param {number} old
           */
          add(step, { silent }) {
            this.count += step;
          }
        }
        """
    )
    out, target, _ = document(src, 0, "javascript")
    assert target.name == "double" and target.param_names == ("n",)
    ts_clean(out, "javascript")
    assert out.startswith("/**\n * Do the thing.\n *\n * @param {*} n - The n.\n")

    out2, target2, _ = document(src, 8, "javascript", "Summary: Add a step.")
    assert target2.kind == "method" and target2.existing == (3, 6)
    assert target2.param_names == ("step", "options")
    ts_clean(out2, "javascript")
    assert "Old." not in out2 and "@param {number} old" not in out2
    assert "  /**\n   * Add a step.\n   *\n   * @param {*} step - The step.\n" in out2
    assert "@returns" not in out2


def test_typescript_types_in_jsdoc() -> None:
    src = textwrap.dedent(
        """\
        export class Repo {
          @cached()
          find(this: Repo, id: string, limit?: number, ...tags: string[]): Promise<Item[]> {
            return this.db.find(id);
          }
        }
        """
    )
    out, target, _ = document(src, 2, "typescript")
    ts_clean(out, "typescript")
    assert target.param_names == ("id", "limit", "tags")
    assert "@param {string} id - The id." in out
    assert "@param {number} [limit] - The limit." in out
    assert "@param {...string} tags - The tags." in out
    assert "@returns {Promise<Item[]>}" in out
    assert out.index("/**") < out.index("@cached")  # above the decorator


def test_rust_doc_comment() -> None:
    src = textwrap.dedent(
        """\
        struct S;

        impl S {
            /// Old doc.
            #[inline]
            pub fn scale(&self, factor: f64, mut offset: i32) -> f64 {
                factor
            }
        }
        """
    )
    out, target, _ = document(src, 5, "rust", "Summary: Scale it.\nParam factor: How much.")
    ts_clean(out, "rust")
    assert target.kind == "method" and target.param_names == ("factor", "offset")
    assert "Old doc" not in out
    assert "    /// Scale it.\n    ///\n    /// # Arguments\n" in out
    assert "    /// * `factor` - How much.\n" in out
    assert "    /// * `offset` - The offset.\n" in out
    assert "    /// # Returns\n" in out
    assert out.index("/// Scale it.") < out.index("#[inline]")


def test_go_doc_comment_starts_with_name() -> None:
    src = textwrap.dedent(
        """\
        package stats

        func Sum(xs []int, extra ...int) int {
        \ttotal := 0
        \treturn total
        }

        func (s *Set) Add(v int) {}
        """
    )
    out, target, _ = document(src, 3, "go", "Summary: Add up the numbers.")
    ts_clean(out, "go")
    assert target.param_names == ("xs", "extra")
    assert "// Sum adds up the numbers.\n//\n// Parameters:\n//   - xs: The xs.\n" in out
    assert "//   - extra: The extra.\n" in out
    assert "// Returns: The result.\nfunc Sum" in out

    out2, target2, _ = document(src, 7, "go", "Summary: Insert v.")
    assert target2.kind == "method" and target2.param_names == ("v",)
    assert "// Add inserts v.\n" in out2
    ts_clean(out2, "go")


def test_go_summary_convention() -> None:
    assert go_summary("Get", "Fetch the value.") == "Get fetches the value."
    assert go_summary("Apply", "Apply the patch.") == "Apply applies the patch."
    assert go_summary("Get", "Get returns it.") == "Get returns it."
    assert go_summary("Cache", "A small LRU cache.") == "Cache is a small LRU cache."
    assert go_summary("Sum", "Returns the sum.") == "Sum returns the sum."


def test_java_javadoc() -> None:
    src = textwrap.dedent(
        """\
        public class Store {
            @Override
            public int put(String key, byte[] value, Object... extras) throws IOException {
                return 1;
            }

            public Store(int capacity) {}
        }
        """
    )
    out, target, _ = document(src, 2, "java", "Summary: Store a value.\nParam key: The key.")
    ts_clean(out, "java")
    assert target.param_names == ("key", "value", "extras")
    assert "    /**\n     * Store a value.\n     *\n     * @param key The key.\n" in out
    assert "     * @param extras The extras.\n" in out
    assert "     * @return The result.\n" in out
    assert "     * @throws IOException If the operation fails.\n" in out
    assert out.index("/**") < out.index("@Override")

    out2, target2, _ = document(src, 6, "java")
    assert target2.name == "Store" and target2.param_names == ("capacity",)
    assert "@return" not in out2.split("public Store(")[0].split("/**")[-1]
    ts_clean(out2, "java")


def test_comment_end_in_model_text_is_neutralized() -> None:
    src = "function f(a) { return a; }\n"
    out, _, _ = document(src, 0, "javascript", "Summary: Ends a */ comment.")
    ts_clean(out, "javascript")
    assert out.count("*/") == 1


def test_inline_declaration_gets_its_own_line() -> None:
    src = "class A { m(y) { return y; } }\n"
    out, target, _ = document(src, 0, "javascript")
    assert target.name in ("A", "m")
    ts_clean(out, "javascript")


# --------------------------------------------------------------------------------------------
# Golden cases: docstring_cases/<name>.in.<ext> -> <name>.out.<ext> (UPDATE_GOLDEN=1 rewrites)


def _golden_cases() -> list[dict[str, object]]:
    return list(json.loads((CASES / "cases.json").read_text(encoding="utf-8")))


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda c: str(c["name"]))
def test_golden(case: dict[str, object]) -> None:
    name, ext = str(case["name"]), str(case["ext"])
    src = (CASES / f"{name}.in.{ext}").read_text(encoding="utf-8")
    out, _, _ = document(
        src,
        int(str(case["line"])),
        str(case["language"]),
        str(case["answer"]),
        str(case.get("style", "google")),
    )
    expected_path = CASES / f"{name}.out.{ext}"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(out, encoding="utf-8")
    assert out == expected_path.read_text(encoding="utf-8")
    if case["language"] == "python":
        ast.parse(out)
    else:
        ts_clean(out, str(case["language"]))
