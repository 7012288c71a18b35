"""The prompt layout caches well: the prefix window's start stays put while the user types.

A typing session (one keystroke, one prompt) on a document longer than the budget: a prefix
window that keeps "the longest end that fits" starts somewhere else after nearly every keystroke,
so a prefix cache recomputes the whole prompt every time (issue 15). These tests type into such a
document and look at where each prompt's prefix starts and how much consecutive prompts share.
"""

from __future__ import annotations

import itertools

import pytest

from lsp_llm.engine.backends.base import TokenizerLike
from lsp_llm.prompts.budget import (
    PromptBudget,
    count_tokens,
    fit_prefix_window,
    prefix_step,
    prefix_window_start,
)
from lsp_llm.prompts.completion import build_completion_prompt
from lsp_llm.prompts.templates import TEMPLATES

DOC = "".join(
    f"def handler_{i}(request, *args):\n    value = request.get('k{i}', {i})\n"
    f"    return {{'id': {i}, 'value': value}}\n\n"
    for i in range(120)
)
TYPED = (
    "def moving_average(values, window):\n    out = []\n    total = 0.0\n    for i, v in x:\n" * 4
)


Row = tuple[int, str, str]


def _session(tokenizer: TokenizerLike, total: int, *, anchored: bool = False) -> list[Row]:
    """(prefix start in the document, prompt, prefix) after each keystroke of TYPED."""
    cursor = DOC.index("def handler_80")
    text = DOC
    anchor: int | None = None
    out = []
    for ch in TYPED:
        text = text[:cursor] + ch + text[cursor:]
        cursor += 1
        prompt = build_completion_prompt(
            text=text,
            offset=cursor,
            path="app.py",
            language="python",
            tokenizer=tokenizer,
            template=TEMPLATES["qwen"],
            budget=PromptBudget(total_tokens=total),
            prefix_anchor=anchor,
        )
        assert prompt.prompt_tokens <= total
        assert text[prompt.prefix_start : cursor] == prompt.prefix
        if anchored:
            anchor = prompt.prefix_start
        out.append((prompt.prefix_start, prompt.text, prompt.prefix))
    return out


@pytest.fixture(scope="module")
def session(bpe: TokenizerLike) -> list[Row]:
    return _session(bpe, 1000)


def test_prefix_window_start_moves_in_few_line_aligned_steps(session) -> None:
    rows = session
    starts = [start for start, _, _ in rows]
    assert len(TYPED) == 336
    # The old window (the longest end that fits, snapped to a line) started at 15 places.
    assert len(set(starts)) <= 5, sorted(set(starts))
    assert starts == sorted(starts)  # only forward while typing forward
    for start in set(starts):
        assert start == 0 or DOC[start - 1] == "\n"  # line-aligned (DOC is unchanged above)


def test_keystrokes_only_append_to_the_prompt(session: list[Row]) -> None:
    """A keystroke on the same line leaves the previous prompt as the new one's start."""
    appended = sum(
        after.startswith(before) for (_, before, _), (_, after, _) in itertools.pairwise(session)
    )
    newlines = TYPED.count("\n")
    assert appended >= len(session) - 1 - newlines - 4  # all but new lines and window steps


def test_window_still_uses_most_of_the_budget(bpe, session) -> None:
    for _, prompt, prefix in session[::16]:
        assert count_tokens(prompt, bpe) >= 1000 * 0.6
        assert count_tokens(prefix, bpe) >= 1000 * 0.3


def test_anchor_keeps_the_window_when_text_is_deleted(bpe) -> None:
    """Backspacing over a grid point would move an un-anchored window back; the anchor (the
    previous prompt's start) keeps it where it was while it still fits."""
    prefix = DOC[: DOC.index("def handler_80")]
    _, start = fit_prefix_window(prefix, bpe, 300)
    assert start > 0 and prefix[start - 1] == "\n"
    # A shorter prefix (text deleted at the cursor) fits from an earlier start...
    shorter = prefix[:-40]
    _, free = fit_prefix_window(shorter, bpe, 300)
    _, kept = fit_prefix_window(shorter, bpe, 300, anchor=start)
    assert kept == start and free <= start
    # ...and an anchor that no longer fits is dropped.
    _, moved = fit_prefix_window(prefix + DOC[:4000], bpe, 300, anchor=start)
    assert moved > start


def test_window_start_is_pure_and_on_the_grid() -> None:
    text = "x = 1\n" * 2000
    for min_start in (1, 333, 5000, 9001):
        a = prefix_window_start(text, min_start)
        assert a == prefix_window_start(text, min_start)
        assert min_start <= a <= min_start + 2 * prefix_step(len(text) - min_start)
        assert text[a - 1] == "\n"
    # A line longer than a step: the grid point itself (still stable, not line-aligned).
    long_line = "a" * 50_000
    start = prefix_window_start(long_line, 1000)
    step = prefix_step(len(long_line) - 1000)
    assert 1000 <= start < 1000 + step and start % step == 0
    assert prefix_window_start("abc", 0) == 0


def test_anchored_session_is_also_stable(bpe) -> None:
    starts = [start for start, _, _ in _session(bpe, 1000, anchored=True)]
    assert len(set(starts)) <= 5


def test_real_document_scale_is_cheap(bpe) -> None:
    """A 2 MB document: the window needs a few small encodes, not one of the document."""
    big = DOC * 170
    assert len(big) > 2_000_000
    cursor = len(big) // 2
    before = bpe.calls
    text, start = fit_prefix_window(big[:cursor], bpe, 500)
    assert bpe.calls - before <= 20
    assert big[start:cursor] == text and count_tokens(text, bpe) <= 500
