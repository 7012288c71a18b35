"""The completion façade: slicing, budget, rendering, stops, language ids."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lsp_llm.context.types import ContextSnippet
from lsp_llm.prompts.budget import PromptBudget, count_tokens
from lsp_llm.prompts.completion import (
    CompletionPrompt,
    build_completion_prompt,
    language_from_path,
)
from lsp_llm.prompts.postprocess import postprocess_completion
from lsp_llm.prompts.templates import TEMPLATES, FimTemplate, split_cursor_line

DOC = "".join(
    f"def step_{i}(state):\n    state['n'] += {i}\n    return state\n\n\n" for i in range(60)
)
CURSOR_MARK = "def step_30(state):\n    "
OFFSET = DOC.index(CURSOR_MARK) + len(CURSOR_MARK)

SNIPPETS = [
    ContextSnippet(
        path="lib/state.py",
        text="class State(dict):\n    n: int\n",
        score=0.9,
        source="definition",
        start_line=0,
        symbol="State",
    ),
    ContextSnippet(
        path="lib/state.py",
        text="class State(dict):\n    n: int\n",
        score=0.8,
        source="similar",
        start_line=0,
    ),
    ContextSnippet(
        path="lib/other.py",
        text="class State(dict):\n    n: int\n",
        score=0.7,
        source="similar",
        start_line=9,
    ),
    ContextSnippet(
        path="lib/run.py",
        text="def run(steps):\n    for s in steps:\n        s({})\n",
        score=0.6,
        source="similar",
        start_line=4,
    ),
    ContextSnippet(
        path="app.py",
        text="def step_2(state):\n    state['n'] += 2",
        score=0.95,
        source="similar",
        start_line=5,
    ),
]


def build(tokenizer, template: FimTemplate | None, total: int, **kw: object) -> CompletionPrompt:
    args: dict[str, object] = {
        "text": DOC,
        "offset": OFFSET,
        "path": "app.py",
        "language": "python",
        "tokenizer": tokenizer,
        "template": template,
        "budget": PromptBudget(total_tokens=total),
        "snippets": SNIPPETS,
        "repo_name": "demo",
    }
    args.update(kw)
    return build_completion_prompt(**args)  # type: ignore[arg-type]


FAMILIES = ["qwen", "starcoder", "deepseek", "codellama", "codestral", None]


@pytest.mark.parametrize("total", [40, 96, 200, 512])
@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_never_exceeds_budget(bpe, family: str | None, total: int) -> None:
    template = TEMPLATES[family] if family else None
    prompt = build(bpe, template, total)
    assert prompt.prompt_tokens == count_tokens(prompt.text, bpe)
    assert prompt.prompt_tokens <= total
    assert DOC[:OFFSET].endswith(prompt.prefix)
    assert DOC[OFFSET:].startswith(prompt.suffix)
    head, line = split_cursor_line(prompt.prefix)
    if template is not None and template.order == "psm":
        assert head in prompt.text and prompt.text.endswith(template.middle + line)
    else:
        assert prompt.prefix in prompt.text
    if template is None:
        assert prompt.suffix == ""
    if total >= 200:
        assert prompt.prompt_tokens >= total * 0.75  # the budget is actually used
        assert prompt.prefix.endswith(CURSOR_MARK)


def test_fim_order_and_content(bpe) -> None:
    prompt = build(bpe, TEMPLATES["qwen"], 512)
    text = prompt.text
    assert text.startswith("<|repo_name|>demo\n<|file_sep|>")
    fim = text.index("<|fim_prefix|>")
    head, line = split_cursor_line(prompt.prefix)
    assert line == "    "  # the cursor line's text before the cursor goes after <|fim_middle|>
    assert text.index("<|file_sep|>app.py\n") < fim
    assert fim < text.index(head) < text.index("<|fim_suffix|>")
    assert text.index("<|fim_suffix|>") < text.index(prompt.suffix) < text.index("<|fim_middle|>")
    assert text.endswith("<|fim_middle|>" + line)
    assert prompt.suffix.startswith("state['n'] += 30\n")


def test_snippets_deduplicated_labelled_and_nearby_current_file_dropped(bpe) -> None:
    prompt = build(bpe, TEMPLATES["qwen"], 512)
    places = [(s.path, s.start_line) for s in prompt.snippets]
    assert places == [("lib/run.py", 4), ("lib/state.py", 0)]
    assert prompt.snippets[1].score == 0.9  # the better of the two at the same place
    assert prompt.text.count("class State(dict):") == 1
    assert "<|file_sep|>lib/run.py\ndef run(steps):" in prompt.text
    assert "<|file_sep|>lib/state.py\nclass State(dict):" in prompt.text


def test_prefix_only_prompt_labels_and_drops_suffix(bpe) -> None:
    prompt = build(bpe, None, 512)
    assert prompt.text.endswith("# Path: app.py\n" + prompt.prefix)
    assert "# Path: lib/run.py" in prompt.text
    assert "step_59" not in prompt.text  # after the cursor
    assert prompt.stop == ("\n",)  # the cursor is mid-line


def test_unicode_survives(bpe) -> None:
    text = "# 设置 😀\nname = '名前'\ngreeting = f'héllo {name} 👩‍💻'\n"
    offset = text.index("greeting")
    prompt = build(bpe, TEMPLATES["starcoder"], 200, text=text, offset=offset, snippets=[])
    assert prompt.text == (
        "<repo_name>demo\n"
        f"<file_sep>app.py\n<fim_prefix>{text[:offset]}<fim_suffix>{text[offset:]}<fim_middle>"
    )


def test_offset_clamped(bpe) -> None:
    text = "x = 1\n"
    end = build(bpe, TEMPLATES["qwen"], 100, text=text, offset=99, snippets=[])
    assert (end.prefix, end.suffix) == (text, "")
    start = build(bpe, TEMPLATES["qwen"], 100, text=text, offset=-3, snippets=[])
    assert (start.prefix, start.suffix) == ("", text)


def test_tiny_budget_still_bounded(chars) -> None:
    prompt = build(chars, TEMPLATES["qwen"], 80, snippets=[], repo_name="")
    assert prompt.prompt_tokens <= 80
    assert prompt.prefix and prompt.suffix
    assert prompt.prompt_tokens == len(prompt.text)


def test_golden_budgeted_prompt(chars, golden: Callable[[str, str], None]) -> None:
    prompt = build(chars, TEMPLATES["qwen"], 400)
    assert prompt.prompt_tokens <= 400
    golden("build-qwen-400-chars.txt", prompt.text)


@pytest.mark.parametrize(
    ("family", "text", "offset_mark", "must", "must_not"),
    [
        ("qwen", "print(x)\n", "print(", ("\n", "<|endoftext|>", "<|file_sep|>"), ("\n\n\n",)),
        (None, "def f():\n    \n", "    ", ("\n\n\n", "\ndef ", "\nclass "), ("\n",)),
        (None, "x = 1\n\n", "\n\n", ("\n\n\n",), ("\ndef ", "\n")),
        ("codellama", "if (a) {\n  \n}\n", "  ", ("<EOT>",), ("\n", "\ndef ")),
    ],
)
def test_stops(
    bpe,
    family: str | None,
    text: str,
    offset_mark: str,
    must: tuple[str, ...],
    must_not: tuple[str, ...],
) -> None:
    language = "javascript" if family == "codellama" else "python"
    offset = text.index(offset_mark) + len(offset_mark)
    prompt = build(
        bpe,
        TEMPLATES[family] if family else None,
        200,
        text=text,
        offset=offset,
        snippets=[],
        language=language,
    )
    for stop in must:
        assert stop in prompt.stop
    for stop in must_not:
        assert stop not in prompt.stop


def test_python_stops_only_cut_what_postprocess_cuts(bpe) -> None:
    text = "class A:\n    def f(self):\n        \n"
    offset = text.index("        ") + 8
    prompt = build(bpe, None, 200, text=text, offset=offset, snippets=[])
    completion = "return 1\n\ndef g():\n    pass"
    for stop in prompt.stop:
        if stop in completion:
            cut = completion[: completion.index(stop)]
            kw = {"prefix": text[:offset], "suffix": text[offset:], "language": "python"}
            assert postprocess_completion(cut, **kw) == postprocess_completion(completion, **kw)


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a/b.py", "python"),
        ("x.pyi", "python"),
        ("web/app.js", "javascript"),
        ("web/App.jsx", "javascriptreact"),
        ("src/main.ts", "typescript"),
        ("src/View.tsx", "typescriptreact"),
        ("main.go", "go"),
        ("lib.rs", "rust"),
        ("Main.java", "java"),
        ("x.c", "c"),
        ("x.h", "c"),
        ("x.cpp", "cpp"),
        ("x.hpp", "cpp"),
        ("Program.cs", "csharp"),
        ("a.rb", "ruby"),
        ("init.lua", "lua"),
        ("run.sh", "shellscript"),
        ("pyproject.toml", "toml"),
        ("ci.yml", "yaml"),
        ("data.json", "json"),
        ("README.md", "markdown"),
        ("notes.txt", "plaintext"),
        ("Makefile", "makefile"),
        ("Dockerfile", "dockerfile"),
        ("C:\\src\\MOD.PY", "python"),
        ("no_extension", "plaintext"),
    ],
)
def test_language_from_path(path: str, language: str) -> None:
    assert language_from_path(path) == language
