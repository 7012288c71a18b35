"""The completion prompt façade: document + cursor + snippets -> one prompt within budget."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.backends.base import TokenizerLike
from lsp_llm.languages import language_from_path as language_from_path  # re-export (callers)
from lsp_llm.languages import language_id
from lsp_llm.prompts.budget import (
    CHARS_PER_TOKEN_CAP,
    PromptBudget,
    count_tokens,
    fit_completion,
    fit_prefix,
    fit_suffix,
)
from lsp_llm.prompts.postprocess import block_indent, is_mid_line
from lsp_llm.prompts.templates import (
    FimTemplate,
    render_completion_prompt,
    render_snippet,
)


@dataclasses.dataclass(frozen=True)
class CompletionPrompt:
    """A rendered prompt and the pieces it was built from (after fitting the budget)."""

    text: str
    prefix: str
    """The part of the document before the cursor that made it into the prompt."""
    suffix: str
    """The part after the cursor in the prompt ("" for prefix-only prompts)."""
    snippets: tuple[ContextSnippet, ...]
    template: FimTemplate | None
    stop: tuple[str, ...]
    prompt_tokens: int
    prefix_start: int = 0
    """Where ``prefix`` starts in the document (pass it back as ``prefix_anchor``)."""


def repo_name_for(uri: str, path: str) -> str:
    """The name of the workspace folder a document is in, for ``<repo_name>``-style prompts.

    ``path`` is the document's workspace-relative label; the folder is what is left of the
    ``file:`` URI's path without it ("" for other schemes or when they do not line up).
    """
    parts = urlsplit(uri)
    label = path.replace("\\", "/").strip("/")
    if parts.scheme != "file" or not label:
        return ""
    full = unquote(parts.path)
    if not full.endswith("/" + label):
        return ""
    return posixpath.basename(full[: -len(label) - 1].rstrip("/"))


_PYTHON_TOP_LEVEL_STOPS = ("\ndef ", "\nclass ", "\nasync def ", "\n@", "\nif __name__")


def completion_stops(
    template: FimTemplate | None, *, prefix: str, suffix: str, language: str
) -> tuple[str, ...]:
    """Template stops plus stops whose cut post-processing would make anyway.

    (The Python column-0 stops assume the line is not inside a string or bracket the
    completion opened; :func:`make_stop_predicate` is exact.)
    """
    stops: list[str] = list(template.stop_tokens) if template else []
    if is_mid_line(suffix):
        stops.append("\n")  # only the first line survives post-processing
    else:
        if template is None:
            stops.append("\n\n\n")
        if language_id(language) == "python" and block_indent(prefix, language) > 0:
            stops.extend(_PYTHON_TOP_LEVEL_STOPS)  # column 0 is past the cursor's block
    return tuple(dict.fromkeys(stops))


def _near(snippet: ContextSnippet, path: str, prefix: str, suffix: str) -> bool:
    """A snippet of the current file that the prompt already shows around the cursor."""
    body = snippet.text.strip()
    return snippet.path == path and (body in prefix or body in suffix)


def build_completion_prompt(
    *,
    text: str,
    offset: int,
    path: str,
    language: str,
    tokenizer: TokenizerLike,
    template: FimTemplate | None,
    budget: PromptBudget,
    snippets: Sequence[ContextSnippet] = (),
    repo_name: str = "",
    prefix_anchor: int | None = None,
) -> CompletionPrompt:
    """Slice ``text`` at ``offset`` (a str index), fit the budget, and render the prompt.

    The layout runs from least to most volatile (repository name, other files' snippets, the
    current file's path, its prefix, then the suffix), and the prefix window's start moves in
    coarse steps (``prefix_anchor``: the previous prompt's ``prefix_start`` for this document,
    if the caller keeps it), so consecutive prompts share a long common prefix.

    The rendered prompt is measured; if the parts' separate counts did not add up, the prefix
    (then snippets, then the suffix) shrinks until it fits ``budget.total_tokens``. Only a
    budget smaller than the template itself can leave it over.
    """
    offset = max(0, min(offset, len(text)))
    prefix, suffix = text[:offset], text[offset:]
    fim = template is not None
    total = budget.total_tokens

    window = max(total, 1) * CHARS_PER_TOKEN_CAP
    candidates = [
        s
        for s in snippets
        if s.text.strip() and not _near(s, path, prefix[-window:], suffix[:window])
    ]

    def render(p: str, s: str, chosen: Sequence[ContextSnippet]) -> str:
        return render_completion_prompt(
            template,
            prefix=p,
            suffix=s,
            path=path,
            language=language,
            snippets=chosen,
            repo_name=repo_name,
        )

    def overhead(snippet: ContextSnippet) -> int:
        shown = render_snippet(template, snippet, language)
        return count_tokens(shown, tokenizer) - count_tokens(snippet.text, tokenizer)

    reserve = count_tokens(render("", "", ()), tokenizer)
    fitted_prefix, fitted_suffix, chosen = fit_completion(
        prefix,
        suffix if fim else "",
        candidates,
        tokenizer,
        budget,
        fim,
        overhead_fn=overhead,
        reserve_tokens=reserve,
        prefix_anchor=prefix_anchor,
    )

    prompt = render(fitted_prefix, fitted_suffix, chosen)
    used = count_tokens(prompt, tokenizer)
    while used > total:
        excess = used - total
        if fitted_prefix:
            keep = count_tokens(fitted_prefix, tokenizer) - excess
            fitted_prefix = fit_prefix(fitted_prefix, tokenizer, max(keep, 0))
        elif chosen:
            chosen.remove(min(chosen, key=lambda s: s.score))
        elif fitted_suffix:
            keep = count_tokens(fitted_suffix, tokenizer) - excess
            fitted_suffix = fit_suffix(fitted_suffix, tokenizer, max(keep, 0))
        else:
            break
        prompt = render(fitted_prefix, fitted_suffix, chosen)
        used = count_tokens(prompt, tokenizer)

    return CompletionPrompt(
        text=prompt,
        prefix=fitted_prefix,
        suffix=fitted_suffix,
        snippets=tuple(chosen),
        template=template,
        stop=completion_stops(template, prefix=prefix, suffix=suffix, language=language),
        prompt_tokens=used,
        prefix_start=offset - len(fitted_prefix),
    )
