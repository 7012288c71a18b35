"""FIM templates: token spellings, order, repository format, family detection, golden prompts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lsp_llm.context.types import ContextSnippet
from lsp_llm.prompts.templates import (
    TEMPLATES,
    comment_prefix,
    detect_family,
    render_completion_prompt,
)

SNIPPETS = [
    ContextSnippet(
        path="pkg/models.py",
        text="class User:\n    name: str\n    email: str\n",
        score=0.9,
        source="definition",
        start_line=3,
        symbol="User",
    ),
    ContextSnippet(
        path="pkg/db.py",
        text="def connect(url: str) -> Connection:\n    ...",
        score=0.5,
        source="similar",
        start_line=10,
    ),
]
PREFIX = "from pkg.models import User\n\n\ndef greet(user: User) -> str:\n    return "
HEAD, LINE = "from pkg.models import User\n\n\ndef greet(user: User) -> str:\n", "    return "
"""PSM prompts show PREFIX as HEAD (up to the cursor's line) and LINE (after the middle token)."""
SUFFIX = "\n\n\ndef main() -> None:\n    print(greet(User()))\n"


def render(family: str | None, **overrides: object) -> str:
    template = TEMPLATES[family] if family else None
    args: dict[str, object] = {
        "prefix": PREFIX,
        "suffix": SUFFIX,
        "path": "pkg/greet.py",
        "language": "python",
        "snippets": SNIPPETS,
        "repo_name": "acme/tools",
    }
    args.update(overrides)
    return render_completion_prompt(template, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", [*sorted(TEMPLATES), None])
def test_golden_prompt(family: str | None, golden: Callable[[str, str], None]) -> None:
    golden(f"{family or 'prefix-only'}.txt", render(family))


@pytest.mark.parametrize("family", [*sorted(TEMPLATES), None])
def test_golden_prompt_without_snippets(
    family: str | None, golden: Callable[[str, str], None]
) -> None:
    golden(f"{family or 'prefix-only'}-no-context.txt", render(family, snippets=[], repo_name=""))


def test_golden_prefix_only_typescript(golden: Callable[[str, str], None]) -> None:
    snippet = ContextSnippet(
        path="src/api.ts",
        text="export interface Api {\n  get(id: string): Item;\n}",
        score=1.0,
        source="definition",
    )
    prompt = render_completion_prompt(
        None,
        prefix="import { Api } from './api';\n\nconst api: Api = ",
        suffix=";\n",
        path="src/main.ts",
        language="typescript",
        snippets=[snippet],
    )
    golden("prefix-only-typescript.txt", prompt)


def test_token_spellings() -> None:
    assert TEMPLATES["deepseek"].prefix == "<\uff5cfim\u2581begin\uff5c>"
    assert TEMPLATES["deepseek"].suffix == "<\uff5cfim\u2581hole\uff5c>"
    assert TEMPLATES["deepseek"].middle == "<\uff5cfim\u2581end\uff5c>"
    assert (TEMPLATES["codellama"].prefix, TEMPLATES["codellama"].suffix) == ("<PRE> ", " <SUF>")
    assert TEMPLATES["codellama"].middle == " <MID>"
    assert "<EOT>" in TEMPLATES["codellama"].stop_tokens
    qwen = TEMPLATES["qwen"]
    assert (qwen.prefix, qwen.suffix, qwen.middle) == (
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    )
    assert {"<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|im_end|>"} <= set(qwen.stop_tokens)
    assert (qwen.file_sep, qwen.repo_name) == ("<|file_sep|>", "<|repo_name|>")
    assert TEMPLATES["starcoder"].file_sep == "<file_sep>"
    assert TEMPLATES["codegemma"].stop_tokens[0] == "<|file_separator|>"
    assert TEMPLATES["codestral"].order == "spm"


@pytest.mark.parametrize("family", [f for f, t in TEMPLATES.items() if t.order == "psm"])
def test_psm_order(family: str) -> None:
    template = TEMPLATES[family]
    prompt = render(family, snippets=[])
    positions = [
        prompt.index(template.prefix),
        prompt.index(HEAD),
        prompt.index(template.suffix),
        prompt.index(SUFFIX),
        prompt.rindex(template.middle),
        prompt.rindex(LINE),
    ]
    assert positions == sorted(positions)
    assert prompt.endswith(template.middle + LINE)


@pytest.mark.parametrize("family", ["qwen", "starcoder", "deepseek", "codellama", "codestral"])
def test_typing_on_a_line_only_appends_to_the_prompt(family: str) -> None:
    """The cursor line's text comes last (after the middle token in PSM), so a keystroke that
    does not start a new line leaves the whole previous prompt as the new one's prefix: a
    plain prefix cache then recomputes one or two tokens, not the suffix (issue 15)."""
    before = render(family, prefix=PREFIX)
    after = render(family, prefix=PREFIX + "u")
    assert after.startswith(before) and after == before + "u"


def test_spm_order_codestral() -> None:
    prompt = render("codestral", snippets=[])
    assert prompt == f"[SUFFIX]{SUFFIX}[PREFIX]{PREFIX}"


def test_qwen_repository_format_exact() -> None:
    prompt = render("qwen", snippets=SNIPPETS[:1])
    assert prompt == (
        "<|repo_name|>acme/tools\n"
        "<|file_sep|>pkg/models.py\nclass User:\n    name: str\n    email: str\n"
        "<|file_sep|>pkg/greet.py\n"
        f"<|fim_prefix|>{HEAD}<|fim_suffix|>{SUFFIX}<|fim_middle|>{LINE}"
    )


def test_repository_format_without_repo_name_and_unterminated_snippet() -> None:
    prompt = render("starcoder", snippets=SNIPPETS[1:], repo_name="")
    assert prompt.startswith("<file_sep>pkg/db.py\ndef connect(url: str) -> Connection:\n    ...\n")
    assert "<repo_name>" not in prompt


def test_comment_context_for_templates_without_file_sep() -> None:
    prompt = render("deepseek")
    body = prompt.split("<｜fim▁begin｜>", 1)[1].split(HEAD, 1)[0]
    lines = body.splitlines()
    assert lines[0] == "# Path: pkg/models.py"
    assert all(line.startswith("#") for line in lines if line)  # snippet code commented out
    assert lines[-1] == "# Path: pkg/greet.py"


def test_prefix_only_drops_suffix_and_labels_paths() -> None:
    prompt = render(None)
    assert SUFFIX.strip() not in prompt
    assert prompt.endswith("# Path: pkg/greet.py\n" + PREFIX)
    assert prompt.index("# Path: pkg/db.py") < prompt.index("# Path: pkg/greet.py")


def test_context_comes_first_and_is_shared_between_cursor_positions() -> None:
    first = render("qwen", prefix="a = 1\n", suffix="")
    second = render("qwen", prefix="a = 1\nb = 2\n", suffix="c")
    shared = first.split("<|fim_prefix|>")[0]
    assert second.startswith(shared)
    assert "pkg/db.py" in shared and "pkg/models.py" in shared


@pytest.mark.parametrize(
    ("language", "marker"),
    [
        ("python", "#"),
        ("shellscript", "#"),
        ("sh", "#"),
        ("ruby", "#"),
        ("toml", "#"),
        ("yaml", "#"),
        ("javascript", "//"),
        ("typescriptreact", "//"),
        ("go", "//"),
        ("rust", "//"),
        ("java", "//"),
        ("c", "//"),
        ("cpp", "//"),
        ("csharp", "//"),
        ("swift", "//"),
        ("kotlin", "//"),
        ("lua", "--"),
        ("sql", "--"),
        ("haskell", "--"),
        ("Python", "#"),
        ("unknown-language", "#"),
    ],
)
def test_comment_prefix(language: str, marker: str) -> None:
    assert comment_prefix(language) == marker


QWEN_TOKENS = {
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
}
CODEGEMMA_TOKENS = {
    "<bos>",
    "<eos>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|file_separator|>",
}
GEMMA3_TOKENS = {"<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<unused0>"}


@pytest.mark.parametrize(
    ("name", "tokens", "expected"),
    [
        ("Qwen/Qwen2.5-Coder-0.5B", QWEN_TOKENS, "qwen"),
        ("my-finetune", QWEN_TOKENS, "qwen"),
        (
            "bigcode/starcoder2-3b",
            {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"},
            "starcoder",
        ),
        (
            "bigcode/starcoderbase-1b",
            {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<filename>"},
            "starcoder1",
        ),
        ("bigcode/santacoder", {"<fim-prefix>", "<fim-suffix>", "<fim-middle>"}, "santacoder"),
        (
            "deepseek-ai/deepseek-coder-1.3b-base",
            {"<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"},
            "deepseek",
        ),
        ("codellama/CodeLlama-7b-hf", {"▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"}, "codellama"),
        ("codellama/CodeLlama-7b-hf", {"<PRE>", "<SUF>", "<MID>", "<EOT>"}, "codellama"),
        ("google/codegemma-2b", CODEGEMMA_TOKENS, "codegemma"),
        ("google/gemma-2-2b", CODEGEMMA_TOKENS, None),
        ("gemma-3-270m-q4_k_m.gguf", GEMMA3_TOKENS, None),
        ("google/gemma-3-270m", set(), None),
        ("mistralai/Codestral-22B-v0.1", {"[PREFIX]", "[SUFFIX]", "[MIDDLE]", "</s>"}, "codestral"),
        ("mistralai/Mistral-7B-v0.3", {"[PREFIX]", "[SUFFIX]", "[MIDDLE]", "</s>"}, None),
        # name fallback (no local tokenizer, e.g. a remote endpoint)
        ("qwen2.5-coder:1.5b", set(), "qwen"),
        ("deepseek-coder-v2-lite", set(), "deepseek"),
        ("codellama:7b-code", set(), "codellama"),
        ("starcoder2:3b", set(), "starcoder"),
        ("codestral-latest", set(), "codestral"),
        ("codegemma:2b", set(), "codegemma"),
        ("gpt-4o-mini", set(), None),
        ("Qwen2.5-7B-Instruct", set(), None),
        # tokens beat the name
        (
            "qwen2.5-coder",
            {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"},
            "starcoder",
        ),
    ],
)
def test_detect_family(name: str, tokens: set[str], expected: str | None) -> None:
    assert detect_family(name, tokens) == expected
