"""Fill-in-the-middle formats as data, family detection, and prompt rendering.

Pure functions: no torch, no LSP types. The rendered prompt runs from the least to the most
volatile part, so consecutive prompts of a typing session share a long common prefix (what a
KV cache reuses): repository name, other files' snippets, the current path, the prefix up to
the cursor's line, the suffix, and last the cursor line's text before the cursor. In a PSM
format that last piece goes after the middle token, as the start of the middle the model
continues (llama.cpp's ``/infill`` and llama.vim do the same): typing on a line then only
appends to the prompt, where a plain ``prefix-tok prefix suffix-tok suffix middle-tok`` prompt
changes in the middle and a prefix cache recomputes the whole suffix on every keystroke.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Literal

from lsp_llm.context.types import ContextSnippet
from lsp_llm.languages import comment_prefix


@dataclasses.dataclass(frozen=True)
class FimTemplate:
    """One model family's FIM control strings.

    ``order`` "psm" renders ``prefix-tok prefix suffix-tok suffix middle-tok``; "spm" renders
    ``suffix-tok suffix prefix-tok prefix middle-tok``. ``file_sep`` (and ``repo_name``), when
    set, enable the repository-level format for snippets from other files. ``bos`` is prepended
    verbatim; it is empty everywhere because tokenizers add their own BOS. ``line_in_middle``
    (PSM only) renders the cursor line's text before the cursor after the middle token instead
    of at the end of the prefix (see the module docstring).
    """

    family: str
    prefix: str
    suffix: str
    middle: str
    order: Literal["psm", "spm"]
    stop_tokens: tuple[str, ...]
    file_sep: str | None = None
    repo_name: str | None = None
    bos: str = ""
    line_in_middle: bool = True


TEMPLATES: dict[str, FimTemplate] = {
    # StarCoder2 (repository format with <repo_name>/<file_sep>).
    "starcoder": FimTemplate(
        family="starcoder",
        prefix="<fim_prefix>",
        suffix="<fim_suffix>",
        middle="<fim_middle>",
        order="psm",
        stop_tokens=(
            "<|endoftext|>",
            "<file_sep>",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            "<fim_pad>",
        ),
        file_sep="<file_sep>",
        repo_name="<repo_name>",
    ),
    # StarCoder / StarCoderBase (same FIM tokens, no <file_sep> in the vocabulary).
    "starcoder1": FimTemplate(
        family="starcoder1",
        prefix="<fim_prefix>",
        suffix="<fim_suffix>",
        middle="<fim_middle>",
        order="psm",
        stop_tokens=("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>"),
    ),
    # SantaCoder spells its FIM tokens with hyphens.
    "santacoder": FimTemplate(
        family="santacoder",
        prefix="<fim-prefix>",
        suffix="<fim-suffix>",
        middle="<fim-middle>",
        order="psm",
        stop_tokens=("<|endoftext|>", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", "<fim-pad>"),
    ),
    # Qwen2.5-Coder.
    "qwen": FimTemplate(
        family="qwen",
        prefix="<|fim_prefix|>",
        suffix="<|fim_suffix|>",
        middle="<|fim_middle|>",
        order="psm",
        stop_tokens=(
            "<|endoftext|>",
            "<|fim_pad|>",
            "<|file_sep|>",
            "<|im_end|>",
            "<|repo_name|>",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
        ),
        file_sep="<|file_sep|>",
        repo_name="<|repo_name|>",
    ),
    # DeepSeek-Coder (v1 and v2): fullwidth bars and U+2581.
    "deepseek": FimTemplate(
        family="deepseek",
        prefix="<｜fim▁begin｜>",
        suffix="<｜fim▁hole｜>",
        middle="<｜fim▁end｜>",
        order="psm",
        stop_tokens=(
            "<｜end▁of▁sentence｜>",
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            "<|EOT|>",
        ),
    ),
    # Code Llama infilling (the spaces belong to the format).
    "codellama": FimTemplate(
        family="codellama",
        prefix="<PRE> ",
        suffix=" <SUF>",
        middle=" <MID>",
        order="psm",
        stop_tokens=("<EOT>",),
    ),
    # CodeGemma.
    "codegemma": FimTemplate(
        family="codegemma",
        prefix="<|fim_prefix|>",
        suffix="<|fim_suffix|>",
        middle="<|fim_middle|>",
        order="psm",
        stop_tokens=(
            "<|file_separator|>",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "<eos>",
            "<end_of_turn>",
        ),
    ),
    # Codestral (Mistral): suffix first, no middle token.
    "codestral": FimTemplate(
        family="codestral",
        prefix="[PREFIX]",
        suffix="[SUFFIX]",
        middle="",
        order="spm",
        stop_tokens=("</s>", "[PREFIX]", "[SUFFIX]", "[MIDDLE]"),
    ),
}

_GENERAL_MISTRAL = ("mistral", "mixtral", "ministral", "pixtral", "magistral")


def _has(tokens: Collection[str], *wanted: str) -> bool:
    return all(w in tokens for w in wanted)


def detect_family(model_name: str, special_tokens: Collection[str]) -> str | None:
    """The FIM family of a model, or None for prefix-only completion.

    The tokenizer's special tokens decide first; the model name is the fallback (remote models
    without a local tokenizer). General-purpose models whose vocabulary happens to contain FIM
    tokens (plain Gemma, general Mistral) are not treated as FIM models.
    """
    name = model_name.lower().replace("_", "-")
    tokens = {t.strip().lstrip("\u2581") for t in special_tokens} | set(special_tokens)
    if _has(tokens, "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"):
        return "deepseek"
    if _has(tokens, "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"):
        if "<|file_sep|>" in tokens or "<|fim_pad|>" in tokens or "<|repo_name|>" in tokens:
            return "qwen"
        if "gemma" in name and "codegemma" not in name:
            return None
        return "codegemma"
    if _has(tokens, "<fim_prefix>", "<fim_suffix>", "<fim_middle>"):
        return "starcoder" if "<file_sep>" in tokens else "starcoder1"
    if _has(tokens, "<fim-prefix>", "<fim-suffix>", "<fim-middle>"):
        return "santacoder"
    if _has(tokens, "<PRE>", "<SUF>", "<MID>"):
        return "codellama"
    if _has(tokens, "[PREFIX]", "[SUFFIX]"):
        if "codestral" in name or not any(m in name for m in _GENERAL_MISTRAL):
            return "codestral"
        return None
    return _family_from_name(name)


def _family_from_name(name: str) -> str | None:
    if "codestral" in name:
        return "codestral"
    if "codegemma" in name:
        return "codegemma"
    if "qwen" in name and "coder" in name:
        return "qwen"
    if "deepseek" in name and "coder" in name:
        return "deepseek"
    if "codellama" in name or "code-llama" in name:
        return "codellama"
    if "starcoder2" in name or "starcoder-2" in name:
        return "starcoder"
    if "starcoder" in name:
        return "starcoder1"
    if "santacoder" in name:
        return "santacoder"
    return None


def _comment_block(text: str, marker: str) -> str:
    return "".join(f"{marker} {line}".rstrip() + "\n" for line in text.splitlines())


def render_snippet_comment(snippet: ContextSnippet, language: str) -> str:
    """A snippet as a path-labelled comment block (every line commented out)."""
    marker = comment_prefix(language)
    return f"{marker} Path: {snippet.path}\n" + _comment_block(snippet.text, marker) + "\n"


def render_snippet_file(template: FimTemplate, snippet: ContextSnippet) -> str:
    """A snippet in the repository-level format (requires ``template.file_sep``)."""
    text = snippet.text if snippet.text.endswith("\n") else snippet.text + "\n"
    return f"{template.file_sep}{snippet.path}\n{text}"


def render_snippet(template: FimTemplate | None, snippet: ContextSnippet, language: str) -> str:
    """How one snippet appears in the prompt for this template (used for budgeting too)."""
    if template is not None and template.file_sep:
        return render_snippet_file(template, snippet)
    return render_snippet_comment(snippet, language)


def split_cursor_line(prefix: str) -> tuple[str, str]:
    """(the prefix up to the start of the cursor's line, the line's text before the cursor)."""
    start = prefix.rfind("\n") + 1
    return prefix[:start], prefix[start:]


def render_completion_prompt(
    template: FimTemplate | None,
    *,
    prefix: str,
    suffix: str,
    path: str,
    language: str,
    snippets: Sequence[ContextSnippet],
    repo_name: str = "",
) -> str:
    """The full completion prompt. Without a template the suffix is dropped (prefix-only)."""
    if template is None:
        context = "".join(render_snippet_comment(s, language) for s in snippets)
        return f"{context}{comment_prefix(language)} Path: {path}\n{prefix}"

    line = ""
    if template.order == "psm" and template.line_in_middle:
        prefix, line = split_cursor_line(prefix)
    if template.file_sep:
        head = ""
        if template.repo_name and repo_name:
            head += f"{template.repo_name}{repo_name}\n"
        head += "".join(render_snippet_file(template, s) for s in snippets)
        head += f"{template.file_sep}{path}\n"
        body_prefix = prefix
    else:
        head = ""
        if snippets:
            marker = comment_prefix(language)
            context = "".join(render_snippet_comment(s, language) for s in snippets)
            body_prefix = f"{context}{marker} Path: {path}\n{prefix}"
        else:
            body_prefix = prefix

    if template.order == "spm":
        fim = f"{template.suffix}{suffix}{template.prefix}{body_prefix}{template.middle}"
    else:
        fim = f"{template.prefix}{body_prefix}{template.suffix}{suffix}{template.middle}{line}"
    return f"{template.bos}{head}{fim}"
