"""Exact-token packing of prefix, suffix and snippets with the model's own tokenizer.

Every function returns text whose ``encode()`` length is within the limit it was given:
tokenizers are not additive across a cut, so each result is measured and shrunk if needed.
Inputs are cut by characters first, so a 20 MB document costs one small encode.

The layout is chosen for the model's KV cache as much as for the budget. Consecutive prompts of
a typing session should share as much as possible: the prefix window's start stays put while
the user types and moves forward in coarse, line-aligned steps (:func:`prefix_window_start`);
the suffix is capped by lines and never grows into room a short prefix leaves unused (it would
slide with every keystroke, and in a PSM prompt everything after the cursor is recomputed by a
plain prefix cache anyway).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.backends.base import TokenizerLike

CHARS_PER_TOKEN_CAP = 8
"""Characters looked at per allowed token before tokenizing (generous for code)."""
LINE_SNAP_FRACTION = 8
"""Cut at a line boundary when that loses at most 1/LINE_SNAP_FRACTION of the kept text."""
MIN_SNIPPET_TOKENS = 8
"""Stop packing snippets once less than this much room is left."""
MAX_TOKEN_CHARS = 64
"""No real token is longer than this; a longer snippet cannot fit in fewer tokens."""
PREFIX_STEP_FRACTION = 8
"""The prefix window's start moves in steps of about 1/PREFIX_STEP_FRACTION of its length."""
MIN_PREFIX_STEP_CHARS = 64
"""The smallest step (characters) of the prefix window's start."""
_MAX_SHRINK_STEPS = 16


@dataclasses.dataclass(frozen=True)
class PromptBudget:
    """Token budget of a completion prompt and how it is shared out."""

    total_tokens: int
    suffix_share: float = 0.25
    """Up to this share goes to text after the cursor (FIM prompts only)."""
    context_share: float = 0.3
    """Up to this share goes to snippets from other files."""
    suffix_max_lines: int = 64
    """At most this many lines after the cursor (FIM prompts; llama.vim shows 64 too)."""


def count_tokens(text: str, tokenizer: TokenizerLike) -> int:
    """Tokens in ``text`` (0 for the empty string)."""
    return len(tokenizer.encode(text)) if text else 0


def _fits(text: str, tokenizer: TokenizerLike, max_tokens: int) -> bool:
    return count_tokens(text, tokenizer) <= max_tokens


def _search_keep_end(text: str, tokenizer: TokenizerLike, max_tokens: int) -> str:
    """Binary search for the longest tail of ``text`` that fits (fallback path)."""
    lo, hi = 0, len(text)  # answer start index in [lo, hi]; text[hi:] == "" always fits
    while lo < hi:
        mid = (lo + hi) // 2
        if _fits(text[mid:], tokenizer, max_tokens):
            hi = mid
        else:
            lo = mid + 1
    return text[lo:] if _fits(text[lo:], tokenizer, max_tokens) else ""


def _search_keep_start(text: str, tokenizer: TokenizerLike, max_tokens: int) -> str:
    """Binary search for the longest head of ``text`` that fits (fallback path)."""
    lo, hi = 0, len(text)  # answer end index in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(text[:mid], tokenizer, max_tokens):
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] if _fits(text[:lo], tokenizer, max_tokens) else ""


Counted = tuple[str, int | None]
"""A fitted text and its token count when it was measured on the way (else None)."""


def _shrink_keep_end(text: str, tokenizer: TokenizerLike, max_tokens: int) -> Counted:
    for _ in range(_MAX_SHRINK_STEPS):
        ids = tokenizer.encode(text) if text else []
        excess = len(ids) - max_tokens
        if excess <= 0:
            return text, len(ids)
        dropped = len(tokenizer.decode(ids[:excess]))
        text = text[max(dropped, 1) :]
    return _search_keep_end(text, tokenizer, max_tokens), None


def _shrink_keep_start(text: str, tokenizer: TokenizerLike, max_tokens: int) -> Counted:
    for _ in range(_MAX_SHRINK_STEPS):
        ids = tokenizer.encode(text) if text else []
        excess = len(ids) - max_tokens
        if excess <= 0:
            return text, len(ids)
        dropped = len(tokenizer.decode(ids[len(ids) - excess :]))
        text = text[: len(text) - max(dropped, 1)]
    return _search_keep_start(text, tokenizer, max_tokens), None


def fit_prefix(prefix: str, tokenizer: TokenizerLike, max_tokens: int) -> str:
    """The longest end of ``prefix`` within ``max_tokens``, preferably starting at a line."""
    return _fit_prefix(prefix, tokenizer, max_tokens)[0]


def _fit_prefix(prefix: str, tokenizer: TokenizerLike, max_tokens: int) -> Counted:
    if max_tokens <= 0 or not prefix:
        return "", 0
    char_cap = max_tokens * CHARS_PER_TOKEN_CAP
    window = prefix[-char_cap:] if len(prefix) > char_cap else prefix
    ids = tokenizer.encode(window)
    if len(ids) <= max_tokens:
        if len(window) == len(prefix):
            return prefix, len(ids)
        candidate = window
    elif len(tokenizer.decode(ids)) != len(window):
        # decode is not length-true
        return _search_keep_end(window, tokenizer, max_tokens), None
    else:
        dropped = len(tokenizer.decode(ids[: len(ids) - max_tokens]))
        candidate = window[min(dropped, len(window)) :]
    start = len(prefix) - len(candidate)
    if start > 0 and prefix[start - 1] != "\n":
        newline = candidate.find("\n")
        if 0 <= newline < len(candidate) // LINE_SNAP_FRACTION:
            candidate = candidate[newline + 1 :]
    return _shrink_keep_end(candidate, tokenizer, max_tokens)


def prefix_step(window_chars: int) -> int:
    """The step (characters, a power of two) by which a prefix window of this size moves."""
    step = MIN_PREFIX_STEP_CHARS
    while step * 2 <= window_chars // PREFIX_STEP_FRACTION:
        step *= 2
    return step


def prefix_window_start(prefix: str, min_start: int, anchor: int | None = None) -> int:
    """Where the prefix window starts, given ``min_start``: the earliest start that fits.

    Pure and stable: the start is the first line start at or after the next multiple of
    :func:`prefix_step` (counted from the top of the document, so typing at the cursor does
    not move it), unless that line is longer than a step. While the user types, ``min_start``
    creeps forward a token at a time but the window start stays on its grid point until
    ``min_start`` passes it, then jumps a whole step: one full recomputation per step of typed
    text instead of one per keystroke. ``anchor`` (the previous prompt's window start, if the
    caller keeps it) adds hysteresis: it is kept while it still fits, is a line start, and is
    less than two steps past ``min_start`` (so deleting text does not move the window back).
    """
    if min_start <= 0:
        return 0
    step = prefix_step(len(prefix) - min_start)
    if (
        anchor is not None
        and min_start <= anchor <= min(len(prefix), min_start + 2 * step)
        and (anchor == 0 or prefix[anchor - 1] == "\n")
    ):
        return anchor
    grid = -(-min_start // step) * step
    if grid >= len(prefix) or prefix[grid - 1] == "\n":
        return min(grid, len(prefix))
    newline = prefix.find("\n", grid, grid + step)
    return newline + 1 if newline >= 0 else grid


def fit_prefix_window(
    prefix: str, tokenizer: TokenizerLike, max_tokens: int, anchor: int | None = None
) -> tuple[str, int]:
    """A tail of ``prefix`` within ``max_tokens`` whose start moves in coarse steps.

    Returns the text and its start in ``prefix``. See :func:`prefix_window_start`.
    """
    fitted, _ = _fit_prefix_window(prefix, tokenizer, max_tokens, anchor, measure=True)
    return fitted, len(prefix) - len(fitted)


def _fit_prefix_window(
    prefix: str, tokenizer: TokenizerLike, max_tokens: int, anchor: int | None, *, measure: bool
) -> Counted:
    fitted = _fit_prefix(prefix, tokenizer, max_tokens)
    if len(fitted[0]) == len(prefix) or not fitted[0]:
        return fitted
    min_start = len(prefix) - len(fitted[0])
    start = prefix_window_start(prefix, min_start, anchor)
    if start == min_start:
        return fitted
    if measure:
        return _shrink_keep_end(prefix[start:], tokenizer, max_tokens)
    # A line-aligned tail of a text that fits: fit_completion skips measuring it again (one
    # encode less per keystroke); its callers measure the rendered prompt anyway.
    return prefix[start:], None


def first_lines(text: str, max_lines: int) -> str:
    """``text`` up to and including its ``max_lines``-th newline."""
    end = -1
    for _ in range(max_lines):
        end = text.find("\n", end + 1)
        if end < 0:
            return text
    return text[: end + 1]


def fit_suffix(suffix: str, tokenizer: TokenizerLike, max_tokens: int) -> str:
    """The longest start of ``suffix`` within ``max_tokens``, preferably ending at a line."""
    return _fit_suffix(suffix, tokenizer, max_tokens)[0]


def _fit_suffix(suffix: str, tokenizer: TokenizerLike, max_tokens: int) -> Counted:
    if max_tokens <= 0 or not suffix:
        return "", 0
    char_cap = max_tokens * CHARS_PER_TOKEN_CAP
    window = suffix[:char_cap]
    ids = tokenizer.encode(window)
    if len(ids) <= max_tokens:
        if len(window) == len(suffix):
            return suffix, len(ids)
        candidate = window
    elif len(tokenizer.decode(ids)) != len(window):
        # decode is not length-true
        return _search_keep_start(window, tokenizer, max_tokens), None
    else:
        kept = len(tokenizer.decode(ids[:max_tokens]))
        candidate = window[: min(kept, len(window))]
    end = len(candidate)
    if end < len(suffix) and not candidate.endswith("\n") and suffix[end] != "\n":
        newline = candidate.rfind("\n")
        if newline >= 0 and len(candidate) - newline - 1 < len(candidate) // LINE_SNAP_FRACTION:
            candidate = candidate[: newline + 1]
    return _shrink_keep_start(candidate, tokenizer, max_tokens)


def _measured(fitted: Counted, tokenizer: TokenizerLike) -> int:
    text, count = fitted
    return count if count is not None else count_tokens(text, tokenizer)


OverheadFn = Callable[[ContextSnippet], int]
"""Extra tokens a snippet costs beyond its text (its label, separators, comment markers)."""


def _pack(
    snippets: Sequence[ContextSnippet],
    tokenizer: TokenizerLike,
    max_tokens: int,
    overhead_fn: OverheadFn | None,
) -> tuple[list[tuple[ContextSnippet, int]], int]:
    order = sorted(range(len(snippets)), key=lambda i: (-snippets[i].score, i))
    chosen: list[tuple[ContextSnippet, int]] = []
    seen_places: set[tuple[str, int]] = set()
    seen_texts: set[str] = set()
    used = 0
    for index in order:
        if max_tokens - used < MIN_SNIPPET_TOKENS:
            break
        snippet = snippets[index]
        body = snippet.text.strip()
        place = (snippet.path, snippet.start_line)
        if not body or place in seen_places or body in seen_texts:
            continue
        room = max_tokens - used
        if len(snippet.text) > room * MAX_TOKEN_CHARS:
            continue
        cost = count_tokens(snippet.text, tokenizer)
        if overhead_fn is not None:
            cost += overhead_fn(snippet)
        if cost > room:
            continue
        chosen.append((snippet, cost))
        seen_places.add(place)
        seen_texts.add(body)
        used += cost
    chosen.sort(key=lambda pair: (pair[0].path, pair[0].start_line))
    return chosen, used


def pack_snippets(
    snippets: Sequence[ContextSnippet],
    tokenizer: TokenizerLike,
    max_tokens: int,
    overhead_fn: OverheadFn | None = None,
) -> list[ContextSnippet]:
    """Snippets that fit in ``max_tokens``, best score first, without duplicates.

    A snippet that does not fit is skipped and smaller, lower-scored ones are still tried.
    The result is ordered by (path, start_line), so a prompt with the same snippets renders
    the same context even when their scores move (keeps the model's prefix cache warm).
    """
    chosen, _ = _pack(snippets, tokenizer, max_tokens, overhead_fn)
    return [snippet for snippet, _ in chosen]


def fit_completion(
    prefix: str,
    suffix: str,
    snippets: Sequence[ContextSnippet],
    tokenizer: TokenizerLike,
    budget: PromptBudget,
    fim: bool,
    *,
    overhead_fn: OverheadFn | None = None,
    reserve_tokens: int = 0,
    prefix_anchor: int | None = None,
) -> tuple[str, str, list[ContextSnippet]]:
    """Share ``budget`` (less ``reserve_tokens`` for the template) among the three parts.

    The suffix gets up to ``suffix_share`` and ``suffix_max_lines`` (nothing without FIM),
    snippets up to ``context_share``, the prefix the rest, in a window whose start moves in
    coarse steps (:func:`prefix_window_start`; ``prefix_anchor`` is the previous start, if
    known). Room a short prefix leaves is not given to the suffix: the prompt stays short and
    the suffix's end does not move with every keystroke.
    The parts are measured separately (the prefix window's tail after a step is not measured
    again: it is a line-aligned tail of a text that fits); callers that render them must
    measure the result.
    """
    total = max(0, budget.total_tokens - reserve_tokens)
    suffix_max = int(total * budget.suffix_share) if fim else 0
    context_max = int(total * budget.context_share)

    if fim and budget.suffix_max_lines >= 0:
        suffix = first_lines(suffix, budget.suffix_max_lines)
    suffix_fit = _fit_suffix(suffix, tokenizer, suffix_max)
    fitted_suffix = suffix_fit[0]
    suffix_used = _measured(suffix_fit, tokenizer)
    chosen, context_used = _pack(snippets, tokenizer, context_max, overhead_fn)

    prefix_max = total - suffix_used - context_used
    fitted_prefix = _fit_prefix_window(prefix, tokenizer, prefix_max, prefix_anchor, measure=False)[
        0
    ]
    return fitted_prefix, fitted_suffix, [snippet for snippet, _ in chosen]
