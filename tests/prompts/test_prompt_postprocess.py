"""Post-processing rules, table-driven, and agreement of the early-stop predicate with them."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_llm.prompts.postprocess import (
    LEAKED_TOKENS,
    is_mid_line,
    make_stop_predicate,
    postprocess_completion,
)


class Case(NamedTuple):
    id: str
    completion: str
    prefix: str
    suffix: str
    language: str
    expected: str


PY_FUNC = "def f(x):\n    "
JS_FUNC = "function f() {\n  "

CASES = [
    # 1. leaked special tokens end the completion
    Case("leak-endoftext", "1<|endoftext|>garbage", "x = ", "\n", "python", "1"),
    Case("leak-file-sep", "b, c<|file_sep|>other.py", "f(a, ", "\n", "python", "b, c"),
    Case("leak-deepseek", "y\n<｜fim▁hole｜>z", "x = ", "\n", "python", "y"),
    Case("leak-codellama", "done <EOT> more", "# ", "\n", "python", "done"),
    Case("leak-at-start", "<|im_end|>x = 1", "", "", "python", ""),
    Case("html-s-tag-kept", "<s>old</s>", "<p>", "\n", "html", "<s>old</s>"),
    # 2. mid-line cursor: first line only
    Case("mid-line-first-line", "a, b)\nprint(y)", "print(", ")\n", "python", "a, b"),
    Case("mid-line-leading-newline", "\nfoo()", "x = ", " + 1\n", "python", ""),
    Case("mid-line-crlf", "value\r\nmore", "x = ", " + 1\r\n", "python", "value"),
    Case("end-of-line-multi", "\n    return 1", "def f():", "\n", "python", "\n    return 1"),
    Case("trailing-spaces-not-mid-line", "x = 1", "", "   \nnext()\n", "python", "x = 1"),
    # 3a. python: dedent past the cursor's block
    Case("py-dedent", "return x\n\ndef g():\n    pass", PY_FUNC, "\n", "python", "return x"),
    Case(
        "py-dedent-keeps-deeper",
        "for i in x:\n        y(i)\n    return x",
        PY_FUNC,
        "",
        "python",
        "for i in x:\n        y(i)\n    return x",
    ),
    Case(
        "py-if-opens-block", "\n    y = 1\nelse:\n    y = 2", "if x:", "\n", "python", "\n    y = 1"
    ),
    Case(
        "py-blank-line-after-colon",
        "    return 1\nx = 2",
        "def f():\n",
        "",
        "python",
        "    return 1",
    ),
    Case("py-body-missing", "x = 2", "def f():\n", "", "python", ""),
    Case(
        "py-top-level-no-cut",
        "def g():\n    pass\n\nclass A:\n    pass",
        "x = 1\n\n",
        "",
        "python",
        "def g():\n    pass\n\nclass A:\n    pass",
    ),
    Case(
        "py-dict-colon-not-block",
        " 1,\n    'b': 2,\n}",
        "d = {\n    'a':",
        "\n",
        "python",
        " 1,\n    'b': 2,\n}",
    ),
    Case(
        "py-dedented-comments-end-block",
        "a()\n\n# print(a())\n# print(b())\n# print(c())",
        PY_FUNC,
        "",
        "python",
        "a()",
    ),
    Case(
        "py-comment-at-col0-ignored",
        "a()\n# note\n    b()\nc()",
        PY_FUNC,
        "",
        "python",
        "a()\n# note\n    b()",
    ),
    Case(
        "py-string-lines-ignored",
        'x = """\nraw\n"""\n    return x\ny',
        PY_FUNC,
        "",
        "python",
        'x = """\nraw\n"""\n    return x',
    ),
    Case(
        "py-bracket-continuation",
        "foo(\n1,\n)\n    z()\nw()",
        PY_FUNC,
        "",
        "python",
        "foo(\n1,\n)\n    z()",
    ),
    Case("py-tabs", "return x\ny = 1", "def f():\n\t", "", "python", "return x"),
    Case(
        "py-docstring-cursor",
        'Args:\n        x: int.\n    """\n    return x\nz = 1',
        'def f(x):\n    """Do it.\n\n    ',
        "",
        "python",
        'Args:\n        x: int.\n    """\n    return x',
    ),
    # 3b. brackets: closing more than the completion opened
    Case(
        "js-block-close-suffix-has-it",
        "return 1;\n}\n\nfunction g() {}",
        JS_FUNC,
        "\n}\n",
        "javascript",
        "return 1;",
    ),
    Case(
        "js-block-close-no-suffix",
        "return 1;\n}\n\nfunction g() {}",
        JS_FUNC,
        "",
        "javascript",
        "return 1;\n}",
    ),
    Case(
        "js-callback-run",
        "x();\n});\nbar();",
        "foo(function () {\n  ",
        "",
        "javascript",
        "x();\n});",
    ),
    Case(
        "js-callback-suffix",
        "x();\n});\nbar();",
        "foo(function () {\n  ",
        "\n});\n",
        "javascript",
        "x();",
    ),
    Case(
        "js-own-block-kept",
        "if (a) {\n  y();\n}",
        JS_FUNC,
        "\n}",
        "javascript",
        "if (a) {\n  y();\n}",
    ),
    Case("js-brace-in-string", "s = '}';\nt();", JS_FUNC, "\n}", "javascript", "s = '}';\nt();"),
    Case("js-brace-in-comment", "// }\nt();", JS_FUNC, "\n}", "javascript", "// }\nt();"),
    Case(
        "js-template-literal",
        "`a ${b}\n}`;\nc();",
        JS_FUNC,
        "\n}",
        "javascript",
        "`a ${b}\n}`;\nc();",
    ),
    Case("js-mid-line-call", "x, y);", "console.log(", ");\n", "javascript", "x, y"),
    Case("py-extra-paren", "foo(x))", "y = bar(", ")\n", "python", "foo(x)"),
    Case("py-no-suffix-keeps-close", "x)", "print(", "\n", "python", "x)"),
    Case("py-close-run-stops-at-suffix", "a])", "f([", ")\n", "python", "a]"),
    Case("rust-lifetime-not-string", "&'a str) -> usize {", "fn f(x: ", ")\n", "rust", "&'a str"),
    Case("c-char-literal", "'}';\n}\nint g;", "int f() {\n  char c = ", "\n", "c", "'}';\n}"),
    Case(
        "go-raw-string",
        "`}`\n\treturn s\n}",
        "func f() string {\n\ts := ",
        "\n}\n",
        "go",
        "`}`\n\treturn s",
    ),
    Case("shell-dollar-hash", "echo $#\n}\nnext", "f() {\n  ", "\n}\n", "shellscript", "echo $#"),
    Case(
        "prose-no-bracket-rules", "item 1)\nitem 2)", "Steps:\n", "", "markdown", "item 1)\nitem 2)"
    ),
    # 4. suffix overlap
    Case("overlap-tail", "bar() + foo()", "y = ", "foo()\n", "python", "bar() + "),
    Case("overlap-keeps-balanced-close", "foo()", "print(", ")", "python", "foo()"),
    Case("overlap-single-letter-kept", "ab", "x = ", "b + 1", "python", "ab"),
    Case("overlap-quote", 'hello")', 'print("', '")\n', "python", "hello"),
    Case("overlap-semicolon", "1;", "let a = ", ";\n", "javascript", "1"),
    Case("overlap-lines", "x = 1\n    return x", PY_FUNC, "\n    return x\n", "python", "x = 1"),
    Case("overlap-lines-blank-cursor", "return x", PY_FUNC, "\n    return x\n", "python", ""),
    Case(
        "overlap-lines-multi",
        "a()\n    b()\n    c()",
        PY_FUNC,
        "\n\n    b()\n    c()\n    d()",
        "python",
        "a()",
    ),
    Case(
        "overlap-lines-not-first-line",
        "return x",
        "def f(x):\n    return x",
        "\n",
        "python",
        "return x",
    ),
    Case(
        "overlap-own-brace-kept",
        "if (a) {\n  y();\n}",
        JS_FUNC,
        "\n}\n",
        "javascript",
        "if (a) {\n  y();\n}",
    ),
    Case("no-overlap", "a = 1\n    b = 2", PY_FUNC, "\n    c = 3\n", "python", "a = 1\n    b = 2"),
    # 5. whitespace
    Case("whitespace-only", "   \n  \n", "x = ", "", "python", ""),
    Case("empty", "", "x = ", "", "python", ""),
    Case("trailing-blank-lines", "a()\n\n\n   \n", PY_FUNC, "", "python", "a()"),
    Case("mid-line-space-before-word", "1 ", "x = ", "+ 2", "python", "1 "),
    Case("mid-line-space-before-space", "1  ", "x = ", " + 2", "python", "1"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_postprocess(case: Case) -> None:
    result = postprocess_completion(
        case.completion, prefix=case.prefix, suffix=case.suffix, language=case.language
    )
    assert result == case.expected


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("", False),
        ("\n", False),
        ("   \nfoo", False),
        ("\r\nfoo", False),
        (")", True),
        ("  x\n", True),
        ("\t;\n", True),
    ],
)
def test_is_mid_line(suffix: str, expected: bool) -> None:
    assert is_mid_line(suffix) is expected


def test_leaked_tokens_exclude_code_lookalikes() -> None:
    assert "<|endoftext|>" in LEAKED_TOKENS
    assert "<｜fim▁begin｜>" in LEAKED_TOKENS
    assert "</s>" not in LEAKED_TOKENS
    assert "[PREFIX]" not in LEAKED_TOKENS  # data[PREFIX] is ordinary code


def test_index_expression_with_mistral_token_spelling_kept() -> None:
    out = postprocess_completion("data[PREFIX]", prefix="x = ", suffix="\n", language="python")
    assert out == "data[PREFIX]"


@pytest.mark.parametrize(
    ("generated", "prefix", "suffix", "language", "expected"),
    [
        ("a, b", "print(", ")\n", "python", False),
        ("a, b\n", "print(", ")\n", "python", True),
        ("x<|endoftext|>", "x = ", "\n", "python", True),
        ("return x\n", PY_FUNC, "\n", "python", False),
        ("return x\n\n", PY_FUNC, "\n", "python", False),
        ("return x\nd", PY_FUNC, "\n", "python", True),
        ("return x\n    y", PY_FUNC, "\n", "python", False),
        ("return 1;\n}", JS_FUNC, "", "javascript", False),
        ("return 1;\n}\n", JS_FUNC, "", "javascript", True),
        ("return 1;\n}", JS_FUNC, "\n}", "javascript", True),
        ("if (a) {\n  b();\n}", JS_FUNC, "", "javascript", False),
        ("x = {a: '}'", JS_FUNC, "", "javascript", False),
        ("def g():\n    pass\n", "x = 1\n", "", "python", False),
    ],
)
def test_stop_predicate(
    generated: str, prefix: str, suffix: str, language: str, expected: bool
) -> None:
    should_stop = make_stop_predicate(prefix=prefix, suffix=suffix, language=language)
    assert should_stop(generated) is expected


def _assert_agrees(completion: str, prefix: str, suffix: str, language: str) -> None:
    """Stopping wherever the predicate first says so gives the same final text."""
    should_stop = make_stop_predicate(prefix=prefix, suffix=suffix, language=language)
    full = postprocess_completion(completion, prefix=prefix, suffix=suffix, language=language)
    for end in range(len(completion) + 1):
        partial = completion[:end]
        if should_stop(partial):
            early = postprocess_completion(partial, prefix=prefix, suffix=suffix, language=language)
            assert early == full, (completion, end)
            return


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_stop_predicate_agrees_with_postprocess(case: Case) -> None:
    _assert_agrees(case.completion, case.prefix, case.suffix, case.language)


def test_stop_predicate_fires_on_every_block_case() -> None:
    """The predicate is not vacuous: it stops the cases whose tail gets cut."""
    fired = []
    for case in CASES:
        should_stop = make_stop_predicate(
            prefix=case.prefix, suffix=case.suffix, language=case.language
        )
        fired.append(should_stop(case.completion))
    by_id = dict(zip([c.id for c in CASES], fired, strict=True))
    for case_id in (
        "py-dedent",
        "js-block-close-no-suffix",
        "mid-line-first-line",
        "leak-file-sep",
    ):
        assert by_id[case_id], case_id
    assert not by_id["js-own-block-kept"]


_FRAGMENTS = [
    "x",
    "foo",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ";",
    ",",
    " ",
    "  ",
    "\n",
    "\n    ",
    "\n\t",
    "'",
    '"',
    "#",
    "//",
    ":",
    "return ",
    "if y:",
    "<|endoftext|>",
    "\\",
]
_CONTEXTS = [
    ("def f(x):\n    ", "\n", "python"),
    ("if x:", "\n\nz = 1\n", "python"),
    ("print(", ")\n", "python"),
    ("x = ", "\n    return x\n", "python"),
    ("function f() {\n  ", "\n}\n", "javascript"),
    ("foo(function () {\n  ", "", "typescript"),
    ("call(", ");\n", "javascript"),
    ("fn f() {\n    let s = '", "';\n}", "rust"),
]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(_FRAGMENTS), max_size=14),
    context=st.sampled_from(_CONTEXTS),
)
def test_stop_predicate_agrees_property(parts: list[str], context: tuple[str, str, str]) -> None:
    prefix, suffix, language = context
    _assert_agrees("".join(parts), prefix, suffix, language)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.sampled_from(_FRAGMENTS), max_size=14),
    context=st.sampled_from(_CONTEXTS),
)
def test_postprocess_result_is_leading_part_of_input(
    parts: list[str], context: tuple[str, str, str]
) -> None:
    """The result is always a (stripped) leading part of the model's text."""
    prefix, suffix, language = context
    completion = "".join(parts)
    out = postprocess_completion(completion, prefix=prefix, suffix=suffix, language=language)
    assert completion.startswith(out)
    assert out == "" or out.strip()


# --- the shape and repetition filters (issue 17): golden cases, each with its shape -----------


class ShapedCase(NamedTuple):
    id: str
    completion: str
    text: str
    """The document with ``|`` at the cursor."""
    language: str
    multiline: bool | None
    expected: str


MID_FUNC = "def f(values):\n    out = []\n    |\n    return out\n"
SHAPED_CASES = [
    # one line, used as the stop rule: the model's extra lines are cut
    ShapedCase(
        "single-hole-mid-function",
        "out.append(1)\n    out.append(2)\n    out.append(3)",
        MID_FUNC,
        "python",
        False,
        "out.append(1)",
    ),
    ShapedCase(
        "single-blank-line-drops-leading-newline",
        "\n    out.append(1)\n    x = 2",
        MID_FUNC,
        "python",
        False,
        "out.append(1)",
    ),
    ShapedCase(
        "single-end-of-line-keeps-next-line",
        "\n    total = 0\n    more()",
        "def f(values):\n    out = []|\n    return out\n",
        "python",
        False,
        "\n    total = 0",
    ),
    ShapedCase(
        "never-leading-newline-mid-line",
        "\n    foo()",
        "x = bar(|)\n",
        "python",
        False,
        "",
    ),
    ShapedCase(
        "multi-empty-braces-same-line",
        "\n  return 1;\n}",
        "function f() {|}\n",
        "javascript",
        True,
        "\n  return 1;\n",  # the editor's closing brace lands on its own line
    ),
    # drop lines that repeat the previous line
    ShapedCase(
        "repeat-previous-completion-line",
        "x = load()\n    x = load()\n    x = load()\n    return x",
        "def f():\n    |",
        "python",
        True,
        "x = load()\n    return x",
    ),
    ShapedCase(
        "repeat-line-above-cursor",
        "out = []\n    out.append(1)",
        MID_FUNC,
        "python",
        True,
        "out.append(1)",
    ),
    ShapedCase(
        "repeated-closers-kept",
        "if (a) {\n    if (b) {\n      go();\n    }\n  }",
        "function f() {\n  |\n}\n",
        "javascript",
        True,
        "if (a) {\n    if (b) {\n      go();\n    }\n  }",
    ),
    # drop a line that repeats the line after the cursor; cut where the suffix is re-typed
    ShapedCase(
        "single-repeats-next-line",
        "return out",
        MID_FUNC,
        "python",
        False,
        "",
    ),
    ShapedCase(
        "multi-cut-at-next-line-retype",
        "out.append(1)\n    return out\n\nprint(f([1]))",
        MID_FUNC,
        "python",
        True,
        "out.append(1)",
    ),
    ShapedCase(
        "mid-line-retypes-rest-of-line",
        "a, b) + 1",
        "x = compute(|a, b)\n",
        "python",
        False,
        "",
    ),
    ShapedCase(
        "mid-line-retype-after-new-text",
        "value, a, b) + 1",
        "x = compute(|a, b)\n",
        "python",
        False,
        "value, ",
    ),
    # close only the brackets the suggestion itself opened
    ShapedCase(
        "suffix-closes-the-call",
        "a, b))",
        "x = compute(|)\n",
        "python",
        False,
        "a, b",
    ),
    ShapedCase(
        "own-bracket-closed-suffix-one-not",
        "g(a), b)",
        "x = compute(|)\n",
        "python",
        False,
        "g(a), b",
    ),
    ShapedCase(
        "block-closer-already-below",
        "foo();\n}\n",
        "function f() {\n  |\n}\n",
        "javascript",
        True,
        "foo();",
    ),
    ShapedCase(
        "own-block-closed",
        "if (x) {\n    foo();\n  }\n}",
        "function f() {\n  |\n}\n",
        "javascript",
        True,
        "if (x) {\n    foo();\n  }",
    ),
]


@pytest.mark.parametrize("case", SHAPED_CASES, ids=[c.id for c in SHAPED_CASES])
def test_shape_and_repetition_filters(case: ShapedCase) -> None:
    prefix, suffix = case.text.split("|", 1)
    got = postprocess_completion(
        case.completion,
        prefix=prefix,
        suffix=suffix,
        language=case.language,
        multiline=case.multiline,
    )
    assert got == case.expected


@pytest.mark.parametrize("case", SHAPED_CASES, ids=[c.id for c in SHAPED_CASES])
def test_shaped_stop_predicate_never_changes_the_result(case: ShapedCase) -> None:
    prefix, suffix = case.text.split("|", 1)
    kw = {"prefix": prefix, "suffix": suffix, "language": case.language}
    stop = make_stop_predicate(**kw, multiline=case.multiline)
    full = postprocess_completion(case.completion, **kw, multiline=case.multiline)
    for end in range(1, len(case.completion) + 1):
        if stop(case.completion[:end]):
            early = postprocess_completion(case.completion[:end], **kw, multiline=case.multiline)
            assert early == full, (end, early, full)
            break


def test_single_line_stop_waits_past_a_leading_newline() -> None:
    prefix, suffix = "def f(values):\n    out = []", "\n    return out\n"
    stop = make_stop_predicate(prefix=prefix, suffix=suffix, language="python", multiline=False)
    assert not stop("\n")
    assert not stop("\n    total = 0")
    assert stop("\n    total = 0\n")
