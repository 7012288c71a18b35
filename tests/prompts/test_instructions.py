"""Explain / docstring prompts and the tolerant reading of docstring answers."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_llm.docstrings import DocTarget, find_target
from lsp_llm.engine.requests import cut_at_stop
from lsp_llm.prompts.instructions import (
    DOCSTRING_STOPS,
    EXPLAIN_STOPS,
    clip_code,
    docstring_messages,
    docstring_plain_prompt,
    explain_messages,
    explain_plain_prompt,
    explain_should_stop,
    finish_explanation,
    language_name,
    parse_docstring_answer,
)

CODE = "def area(w, h):\n    return w * h\n"


def py_target(src: str = CODE, line: int = 0) -> DocTarget:
    target = find_target(src, line, "python")
    assert target is not None
    return target


@pytest.fixture
def mean_target() -> DocTarget:
    src = "def mean(values, *args, default=None, **kw):\n    return sum(values) / len(values)\n"
    return py_target(src)


# --------------------------------------------------------------------------------------------
# Explain


def test_explain_messages_chat_shape() -> None:
    messages = explain_messages(CODE, language="python", path="geo/area.py")
    assert [m.role for m in messages] == ["system", "user"]
    user = messages[1].content
    assert "```python\n" + CODE.rstrip() + "\n```" in user
    assert "geo/area.py" in user and "Python" in user
    assert "Related code" not in user


def test_explain_messages_with_context_puts_it_before_the_code() -> None:
    messages = explain_messages(
        CODE, language="typescriptreact", path="a.tsx", context="// util.ts\nexport const k = 1;"
    )
    user = messages[-1].content
    assert user.index("export const k = 1;") < user.index("```tsx")
    assert "TypeScript" in user


def test_explain_plain_prompt_few_shot_and_slot() -> None:
    prompt, stops = explain_plain_prompt(CODE, language="python", path="geo/area.py")
    assert prompt.endswith("### Code (python: geo/area.py)\n" + CODE + "### Explanation\n")
    assert prompt.count("### Explanation\n") == 2  # one worked example, then the slot
    assert "### End" in prompt
    assert stops == EXPLAIN_STOPS
    assert "\n###" in stops
    # the prompt itself is not cut by its own stops before the slot is reached
    for stop in stops:
        assert stop not in prompt.split("### Explanation\n")[-1]


def test_explain_plain_prompt_uses_language_example() -> None:
    prompt, _ = explain_plain_prompt("fn main() {}", language="rust", path="src/main.rs")
    assert "pub fn mean" in prompt
    prompt, _ = explain_plain_prompt("int main() {}", language="c", path="a.c")
    assert "def mean" in prompt  # unknown languages fall back to the Python example
    assert "### Code (c: a.c)\nint main() {}\n### Explanation\n" in prompt


def test_explain_stops_cut_a_rambling_base_model() -> None:
    _, stops = explain_plain_prompt(CODE, language="python", path="a.py")
    generated = (
        "`area` multiplies the width by the height.\n### End\n\n### Code (python: b.py)\n"
        "def other(): ..."
    )
    text, stopped = cut_at_stop(generated, stops)
    assert stopped and text == "`area` multiplies the width by the height."


def test_explain_should_stop_and_finish() -> None:
    assert not explain_should_stop("")
    assert not explain_should_stop("\n\nIt adds numbers. Then it returns.")
    assert explain_should_stop("It adds numbers.\n\nAnother paragraph")
    assert explain_should_stop(" ".join(["A sentence."] * 6))
    assert not explain_should_stop(" ".join(["A sentence."] * 5))
    assert finish_explanation("  It adds.\n### End\nmore") == "It adds."


def test_long_code_is_clipped() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(2000))
    clipped = clip_code(code, 500)
    assert len(clipped) <= 504 and clipped.endswith("\n...")
    assert clip_code("a = 1\n\n") == "a = 1"
    prompt, _ = explain_plain_prompt(code, language="python", path="big.py")
    assert len(prompt) < 6000


def test_language_name() -> None:
    assert language_name("javascriptreact") == "JavaScript"
    assert language_name("go") == "Go"
    assert language_name("haskell") == "haskell"


# --------------------------------------------------------------------------------------------
# Docstring prompts


def test_docstring_plain_prompt_ends_in_summary_slot(mean_target: DocTarget) -> None:
    prompt, stops = docstring_plain_prompt(mean_target)
    assert prompt.endswith("### Doc\nSummary:")
    assert "def mean(values, *args, default=None, **kw):" in prompt
    assert "### Parameters\nvalues, *args, default, **kw\n### Doc\nSummary:" in prompt
    assert stops == DOCSTRING_STOPS
    # a typical base-model continuation is cut before the next example
    generated = (
        " Compute the mean.\nParam values: The numbers.\nReturns: The mean.\n### End\n\n"
        "### Code (python)\ndef x(): pass"
    )
    text, stopped = cut_at_stop(generated, stops)
    assert stopped and "### End" not in text and "def x" not in text
    content = parse_docstring_answer(text, mean_target)
    assert content.summary == "Compute the mean."
    assert content.params["values"] == "The numbers."


def test_docstring_prompt_for_other_languages() -> None:
    src = "function debounce(fn, wait) {\n  return fn;\n}\n"
    target = find_target(src, 0, "javascript")
    assert target is not None
    prompt, _ = docstring_plain_prompt(target)
    assert "function mean(values, fallback = 0)" in prompt  # a JS worked example
    assert prompt.endswith(
        "### Code (javascript)\n" + src.rstrip() + "\n### Parameters\nfn, wait\n### Doc\nSummary:"
    )
    no_params = find_target("func Now() {}\n", 0, "go")
    assert no_params is not None
    prompt, _ = docstring_plain_prompt(no_params)
    assert "### Parameters\n(none)\n" in prompt


def test_docstring_messages(mean_target: DocTarget) -> None:
    messages = docstring_messages(mean_target, "numpy")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert "Summary:" in messages[0].content and "Param <name>" in messages[0].content
    assert messages[2].content.startswith("Summary: ")
    last = messages[-1].content
    assert "def mean(values, *args, default=None, **kw):" in last
    assert "Parameters: values, *args, default, **kw" in last
    assert "Include a Returns line." in last
    no_return = py_target("def log(msg):\n    print(msg)\n")
    assert "No Returns line." in docstring_messages(no_return)[-1].content


# --------------------------------------------------------------------------------------------
# Parsing answers


def test_parse_well_formed_answer(mean_target: DocTarget) -> None:
    answer = textwrap.dedent(
        """\
        Summary: Compute the mean of some numbers.
        Param values: The numbers.
        Param *args: Ignored extras.
        Param default: Returned for no values.
        Param **kw: Options.
        Returns: The mean.
        Raises ZeroDivisionError: Never, really.
        """
    )
    content = parse_docstring_answer(answer, mean_target)
    assert content.summary == "Compute the mean of some numbers."
    assert content.params == {
        "values": "The numbers.",
        "*args": "Ignored extras.",
        "default": "Returned for no values.",
        "**kw": "Options.",
    }
    assert content.returns == "The mean."
    assert content.raises == {"ZeroDivisionError": "Never, really."}
    assert content.fallbacks == ()


def test_parse_drops_invented_and_fills_missing(mean_target: DocTarget) -> None:
    answer = "Summary: Mean.\nParam values: Numbers.\nParam weights: Invented.\n  more invented\n"
    content = parse_docstring_answer(answer, mean_target)
    assert list(content.params) == ["values", "*args", "default", "**kw"]
    assert "weights" not in content.params
    assert all("nvented" not in d for d in content.params.values())
    assert content.params["default"] == "The default."
    assert "param:default" in content.fallbacks and "param:values" not in content.fallbacks
    assert content.returns == "The result." and "returns" in content.fallbacks


@pytest.mark.parametrize(
    "answer",
    [
        # the plain prompt's continuation: no "Summary:" key
        " Compute the mean.\nParam values: The numbers.\nReturns: The mean.",
        # Google sections with types and an invented entry
        "Compute the mean.\n\nArgs:\n    values (list): The numbers.\n    bogus: x\n\n"
        "Returns:\n    The mean.",
        # JSDoc-ish
        "Compute the mean.\n@param {number[]} values - The numbers.\n@returns {number} The mean.",
        # reST
        "Compute the mean.\n:param values: The numbers.\n:returns: The mean.",
        # bullets, bold keys, arguments named with backticks
        "**Summary:** Compute the mean.\n- `values`: The numbers.\n- **Returns:** The mean.",
        # a chat model wrapping the answer in a fence
        "```\nSummary: Compute the mean.\nParam values: The numbers.\nReturns: The mean.\n```",
        # numpy
        "Compute the mean.\n\nParameters\n----------\nvalues\n    The numbers.\n\n"
        "Returns\n-------\nThe mean.",
    ],
)
def test_parse_tolerates_formats(mean_target: DocTarget, answer: str) -> None:
    content = parse_docstring_answer(answer, mean_target)
    assert content.summary == "Compute the mean."
    assert content.params["values"] == "The numbers.", content
    assert content.returns.rstrip(".") == "The mean"
    assert set(content.params) == {"values", "*args", "default", "**kw"}


def test_parse_summary_starting_with_returns_is_still_a_summary(mean_target: DocTarget) -> None:
    content = parse_docstring_answer("Return the arithmetic mean.\nParam values: v", mean_target)
    assert content.summary == "Return the arithmetic mean."
    assert content.returns == "The result."


def test_parse_multiline_descriptions_and_second_answer(mean_target: DocTarget) -> None:
    answer = (
        "Summary: Compute the mean\n  of the values.\nParam values: The numbers,\n"
        "  possibly empty.\nReturns: The mean.\nSummary: Another example starts here.\n"
        "Param values: wrong"
    )
    content = parse_docstring_answer(answer, mean_target)
    assert content.summary == "Compute the mean of the values."
    assert content.params["values"] == "The numbers, possibly empty."


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "\n\n\n",
        "### End",
        "Summary: <one sentence>\nParam values: <description>\nReturns: ...",
        "\x00\x01\x02 ;;; ::: ---",
        "Summary:\nParam:\nReturns:\nParam : :",
        "def mean(values):\n    return 0",
        "Parameters: values, *args, default, **kw",
        "x" * 5000,
        "Compute the mean. ### Code (python)\ndef f(): pass",
    ],
)
def test_parse_junk_never_raises_and_falls_back(mean_target: DocTarget, junk: str) -> None:
    content = parse_docstring_answer(junk, mean_target)
    assert content.summary and len(content.summary) <= 200
    assert "###" not in content.summary and "<" not in content.summary
    assert list(content.params) == ["values", "*args", "default", "**kw"]
    assert all(content.params.values())
    assert content.returns
    assert "\x00" not in content.summary


def test_parse_glued_marker_keeps_text_before_it(mean_target: DocTarget) -> None:
    content = parse_docstring_answer("Compute the mean. ### Code (python)", mean_target)
    assert content.summary == "Compute the mean."


def test_parse_target_without_params_or_returns() -> None:
    target = py_target("def hello():\n    print('hi')\n")
    content = parse_docstring_answer("Summary: Greet.\nParam x: no\nReturns: nothing", target)
    assert content.params == {} and content.returns == ""
    assert content.summary == "Greet."


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_parse_any_text(text: str) -> None:
    target = py_target("def f(a, *b, c=1):\n    return a\n")
    content = parse_docstring_answer(text, target)
    assert list(content.params) == ["a", "*b", "c"]
    assert content.summary and content.returns
